"""`runner adopt MANIFEST --held-back` on a big batch: the ledger's videos are read once, not once a video.

Each video found at a held-back job's name was looked up among the videos other jobs record, by its sha256: a full
scan of the jobs (no index on sha256) per video. 2,000 jobs held back in a 200k-job ledger took 144 s (90 s of CPU),
silent, dry run or not (bench/ops_scale.py, docs/benchmarks.md). Past a few videos, one pass over the done jobs now
answers them all; a copy of another job's video is still refused, and so is a second copy of one adopted in the
same command. Counted here (full scans), never timed.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from runner.ledger import open_ledger
from runner.ledger.sqlite.ledger import SqliteLedger
from runner.manifest import expand, load_manifest
from runner.service.adopting_file import adopt_held_back
from runner.simulator.media import Video

HELD = 40  # more than _ONE_BY_ONE: the command's own way for many


def _held_back_batch(tmp_path: Path) -> tuple[Path, Path, str, str]:
    """60 jobs: 10 done with their videos, HELD pending with a video at their name no job records, one pending with
    a copy of a done job's video at its name, one pending with the same bytes as another held-back one (the rest
    pending, nothing at their names): (manifest, state, the done video copied, the held-back video copied)."""
    manifest = tmp_path / "many.yaml"
    manifest.write_text('name: many\nprompt: "a {thing} at {n}"\nmatrix:\n  thing: [fox, owl, cat]\n'
                        "  n: [" + ", ".join(str(i) for i in range(20)) + ']\noutput: "{thing}-{n}.mp4"\n')
    spec = load_manifest(manifest)
    state = tmp_path / "state"
    with open_ledger(state) as ledger:
        ledger.register(spec.name, spec.digest, expand(spec))
    folder = state / "outputs" / "many"
    folder.mkdir(parents=True)
    db = sqlite3.connect(state / "ledger.db")
    rows = db.execute("SELECT j.id, j.key, t.output FROM jobs j JOIN targets t ON t.job_id = j.id ORDER BY j.id").fetchall()
    with db:
        for job_id, _key, output in rows[:10]:
            data = Video(f"done-{job_id}").read()
            (folder / output).write_bytes(data)
            db.execute("UPDATE jobs SET state = 'done', task_id = ?, path = ?, sha256 = ?, bytes = ? WHERE id = ?",
                       (f"done-{job_id}", f"outputs/many/{output}", hashlib.sha256(data).hexdigest(), len(data),
                        job_id))
    db.close()
    for job_id, _key, output in rows[10:10 + HELD]:
        (folder / output).write_bytes(Video(f"paid-{job_id}").read())
    copy_of_done, copy_of_held = rows[10 + HELD][2], rows[11 + HELD][2]
    (folder / copy_of_done).write_bytes((folder / rows[0][2]).read_bytes())
    (folder / copy_of_held).write_bytes((folder / rows[10][2]).read_bytes())
    return manifest, state, copy_of_done, copy_of_held


@pytest.mark.parametrize("dry_run", [True, False])
def test_held_back_videos_are_checked_against_the_ledger_in_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dry_run: bool,
) -> None:
    manifest, state, copy_of_done, copy_of_held = _held_back_batch(tmp_path)
    scans = []
    each = SqliteLedger.paths_with_sha256

    def counted(self: SqliteLedger, sha256: str) -> list[str]:
        scans.append(sha256)
        return each(self, sha256)

    monkeypatch.setattr(SqliteLedger, "paths_with_sha256", counted)
    done = adopt_held_back(manifest, state, dry_run=dry_run)

    assert len(done.adopted) == HELD, done.refused
    refused = dict(done.refused)
    assert len(refused) == 2, refused
    assert any(f"outputs/many/{copy_of_done} holds the same video as" in why for why in refused.values())
    assert any(f"outputs/many/{copy_of_held} holds the same video as" in why for why in refused.values())
    assert scans == []  # one full scan per video before: HELD + 2
    with open_ledger(state, readonly=True) as ledger:
        assert ledger.counts("many")["done"] == (10 if dry_run else 10 + HELD)
