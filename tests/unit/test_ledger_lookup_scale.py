"""Looking up a batch of keys reads those keys, not the whole table (issue 14: `plan` of 1M done jobs)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from runner.jobs import JobSpec
from runner.ledger import open_ledger


def _jobs(n: int) -> list[JobSpec]:
    return [JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"clip {i}", "duration": 5}, vars={"i": i},
                          repeat=1, output=f"clip-{i}.mp4", estimated_usd=0.56) for i in range(n)]


def _steps_of_stored_paths(state: Path, n: int) -> int:
    """SQLite VM steps (progress-handler calls) of one stored_paths() of 500 keys, with n done jobs."""
    jobs = _jobs(n)
    with open_ledger(state) as ledger:
        ledger.register("m", "d", jobs)
    raw = sqlite3.connect(state / "ledger.db")
    raw.execute("UPDATE jobs SET state = 'done', path = 'outputs/m/' || key || '.mp4', finished_at = updated_at")
    raw.commit()
    raw.close()
    keys = [job.key for job in jobs[:500]]
    with open_ledger(state) as ledger:
        conn = ledger._conn.db.conn  # the one sqlite3 connection of this ledger
        steps = 0

        def count() -> int:
            nonlocal steps
            steps += 1
            return 0

        conn.set_progress_handler(count, 100)
        found = ledger.stored_paths(keys)
        conn.set_progress_handler(None, 0)
    assert len(found) == 500
    return steps


def test_stored_paths_reads_the_keys_asked_not_every_done_job(tmp_path: Path) -> None:
    small = _steps_of_stored_paths(tmp_path / "small", 1_000)
    large = _steps_of_stored_paths(tmp_path / "large", 10_000)
    assert large < 2 * small, (small, large)  # it scanned every done job: 10× the work for 10× the table
