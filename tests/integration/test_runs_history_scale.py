"""`runner runs` reads a batch's finished jobs once, however many runs it shows.

It joined each of its runs with the jobs by `finished_at`, which no index orders: every run a pass over every job
of the manifest, 2.2 s for 20 runs on a 200k-job batch (bench/ops_scale.py, docs/benchmarks.md), growing with
runs × jobs. Counted here in SQLite's own steps (its progress handler, every 100 virtual-machine instructions),
never timed: 20 runs cost about what 2 do; the counts are those the join gave.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from runner.jobs import JobSpec
from runner.ledger import open_ledger
from runner.ledger.sqlite.ledger import SqliteLedger

JOBS = 1500


def _ledger(tmp_path: Path, runs: int) -> Path:
    """JOBS jobs of manifest m, finished one a second over ``runs`` runs of JOBS / runs seconds each (the last one
    killed: no end, its window open), one in 5 failed, one in 15 lost; a few of another manifest too."""
    state = tmp_path / f"state{runs}"
    with open_ledger(state) as ledger:
        specs = [JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"clip {i}", "duration": 5},
                               vars={"i": i}, repeat=1, output=f"c{i}.mp4", estimated_usd=0.56) for i in range(JOBS)]
        ledger.register("m", "d", specs[: JOBS - 30])
        ledger.register("other", "d", specs[JOBS - 30:])
    db = sqlite3.connect(state / "ledger.db")
    with db:
        span = JOBS // runs
        for r in range(runs):
            db.execute("INSERT INTO runs (pid, host, argv, started_at, ended_at) VALUES (1, 'h', '[]', ?, ?)",
                       (1000.0 + r * span, None if r == runs - 1 else 1000.0 + (r + 1) * span - 0.5))
        db.execute("UPDATE jobs SET finished_at = 1000.0 + id - 1, state = CASE WHEN id % 5 = 0 THEN 'failed'"
                   " WHEN id % 15 = 1 THEN 'lost' WHEN id % 7 = 0 THEN 'pending' ELSE 'done' END")
    db.close()
    return state


def _history(state: Path, manifest: str | None) -> tuple[list[tuple[int, int]], int]:
    """(done, failed) of each run shown, newest first; SQLite's steps."""
    with open_ledger(state, readonly=True) as ledger:
        assert isinstance(ledger, SqliteLedger)
        steps = [0]

        def count() -> int:
            steps[0] += 1
            return 0

        ledger._conn.db.conn.set_progress_handler(count, 100)
        summaries = ledger.run_history(manifest, limit=20)
        ledger._conn.db.conn.set_progress_handler(None, 100)
    return [(s.done, s.failed) for s in summaries], steps[0]


def test_runs_reads_the_finished_jobs_once_however_many_runs(tmp_path: Path) -> None:
    few, many = _ledger(tmp_path, 2), _ledger(tmp_path, 20)
    for manifest in ("m", None):
        two, steps_two = _history(few, manifest)
        twenty, steps_twenty = _history(many, manifest)
        assert len(two) == 2 and len(twenty) == 20
        assert sum(d for d, _ in twenty) == sum(d for d, _ in two) > 0  # every finished job counted once
        assert sum(f for _, f in twenty) == sum(f for _, f in two) > 0
        assert steps_twenty < 2 * steps_two, (steps_two, steps_twenty)  # it was ~10 times
