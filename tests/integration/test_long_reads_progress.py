"""`runner verify`, `export` (each format), `report` and `ledger copy` say how far they are as they go through a big batch.

Each went through every job without a word until its last line: 15 s (verify), 44 s (export hf) and 36 s (report)
on a 200k-job batch of 5 KB videos (bench/ops_scale.py, docs/benchmarks.md); verify reads every video whole, most
of an hour for real ones. `export` jsonl / csv and `ledger copy` said nothing for 11-18 s, the hf export and the report
nothing in their first passes (9.5 s, 6 s). A line now every 2 s on a terminal, every minute in a log (``runner.reporting.ticker``):
the clock is moved here, 30 s a reading, never waited for.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from batch_support import stored_batch
from click.testing import CliRunner

from runner.cli import main
from runner.reporting import ticker

N = 60


@pytest.fixture
def slow_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ticker's clock 30 s on at each look: every row read is a long pass's next line."""
    now = [0.0]

    def clock() -> float:
        now[0] += 30.0
        return now[0]

    monkeypatch.setattr(ticker, "_clock", clock)


def _batch(tmp_path: Path) -> tuple[Path, Path]:
    """N jobs, every other one done with its video."""
    manifest, state, _ = stored_batch(tmp_path, "long", ["fox", "owl"], N // 2)
    return manifest, state


@pytest.mark.parametrize(("args", "line"), [
    (["verify", "--check-only"], "verify: 2 of 30 stored video(s) checked"),
    (["export", "--format", "hf", "--to", "{tmp}/hf"], "export: 2 of 30 video(s) placed"),
    (["report", "--to", "{tmp}/report"], "report: 2 of 60 job(s) on the page"),
    (["export", "--format", "jsonl", "--to", "{tmp}/all.jsonl"], "export: 2 of 60 record(s) written"),
    (["export", "--format", "csv"], "export: 2 of 60 record(s) written"),  # on stdout: the lines on stderr
    # the passes before the work itself: 6-10 s at 200k jobs
    (["export", "--format", "hf", "--to", "{tmp}/hf"], "export: 2 of 30 done job(s) read (pass 1 of 3: the columns)"),
    (["export", "--format", "hf", "--to", "{tmp}/hf"],
     "export: 2 of 30 done job(s) read (pass 2 of 3: the names in the folder)"),
    (["report", "--to", "{tmp}/report"], "report: 2 of 60 job(s) read (their variables)"),
])
def test_a_long_pass_says_how_far_it_is(tmp_path: Path, slow_clock: None, args: list[str], line: str) -> None:
    manifest, state = _batch(tmp_path)
    command = [args[0], str(manifest), "--state", str(state), *(a.format(tmp=tmp_path) for a in args[1:])]
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 0, result.output
    assert f"runner: {line}" in result.stderr, result.stderr
    assert result.stderr.count(line.split(":")[0] + ": ") >= 10, result.stderr  # all along, not once
    quiet = CliRunner().invoke(main, ["-q", *command])
    assert quiet.exit_code == 0 and line.split(":")[0] + ": " not in quiet.stderr, quiet.stderr  # -q: none


def test_a_ledger_copy_says_how_far_it_is(tmp_path: Path, slow_clock: None) -> None:
    """`runner ledger copy` said nothing until its last line: 18 s at 200k jobs, about a minute at 1M."""
    _, state = _batch(tmp_path)
    result = CliRunner().invoke(main, ["ledger", "copy", str(state), str(tmp_path / "copy")])
    assert result.exit_code == 0, result.output
    said = re.findall(r"runner: ledger copy: ([\d,]+) of ([\d,]+) row\(s\) copied", result.stderr)
    assert len(said) >= 10 and said[0][0] == "2", result.stderr
    assert int(said[0][1].replace(",", "")) >= 2 * N  # every table's rows: the jobs and their targets at least
