"""`runner verify`, `export --format hf` and `report` say how far they are as they go through a big batch.

Each went through every job without a word until its last line: 15 s (verify), 44 s (export hf) and 36 s (report)
on a 200k-job batch of 5 KB videos (bench/ops_scale.py, docs/benchmarks.md); verify reads every video whole, most
of an hour for real ones. A line now every 2 s on a terminal, every minute in a log (``runner.reporting.ticker``):
the clock is moved here, 30 s a reading, never waited for.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from runner.cli import main
from runner.ledger import open_ledger
from runner.manifest import expand, load_manifest
from runner.reporting import ticker
from runner.simulator.media import Video

N = 60


def _batch(tmp_path: Path) -> tuple[Path, Path]:
    """N jobs, every other one done with its video."""
    manifest = tmp_path / "long.yaml"
    manifest.write_text('name: long\nprompt: "a {thing} at {n}"\nmatrix:\n  thing: [fox, owl]\n'
                        "  n: [" + ", ".join(str(i) for i in range(N // 2)) + ']\noutput: "{thing}-{n}.mp4"\n')
    spec = load_manifest(manifest)
    state = tmp_path / "state"
    with open_ledger(state) as ledger:
        ledger.register(spec.name, spec.digest, expand(spec))
    (state / "outputs" / "long").mkdir(parents=True)
    db = sqlite3.connect(state / "ledger.db")
    with db:
        for job_id, output in db.execute("SELECT j.id, t.output FROM jobs j JOIN targets t ON t.job_id = j.id").fetchall():
            if job_id % 2:
                data = Video(f"t-{job_id}").read()
                (state / "outputs" / "long" / output).write_bytes(data)
                db.execute("UPDATE jobs SET state = 'done', path = ?, sha256 = ?, bytes = ? WHERE id = ?",
                           (f"outputs/long/{output}", hashlib.sha256(data).hexdigest(), len(data), job_id))
    db.close()
    return manifest, state


@pytest.mark.parametrize(("args", "line"), [
    (["verify", "--check-only"], "verify: 2 of 30 stored video(s) checked"),
    (["export", "--format", "hf", "--to", "{tmp}/hf"], "export: 2 of 30 video(s) placed"),
    (["report", "--to", "{tmp}/report"], "report: 2 of 60 job(s) on the page"),
])
def test_a_long_pass_says_how_far_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str],
                                        line: str) -> None:
    manifest, state = _batch(tmp_path)
    now = [0.0]

    def clock() -> float:
        now[0] += 30.0
        return now[0]

    monkeypatch.setattr(ticker, "_clock", clock)
    command = [args[0], str(manifest), "--state", str(state), *(a.format(tmp=tmp_path) for a in args[1:])]
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 0, result.output
    assert f"runner: {line}" in result.stderr, result.stderr
    assert result.stderr.count(line.split(":")[0] + ": ") >= 10, result.stderr  # all along, not once
