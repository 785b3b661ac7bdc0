"""The first registration's two halves side by side: jobs built by a worker thread, written in chunks.

``runner/ledger/sqlite/first.py``: the job stream is consumed by a worker thread while the caller's thread
writes the previous chunk, each chunk with a statement per run of jobs (not one per job); foreign keys are
off for that transaction only; an error on either side stops both and plans nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.errors import ManifestError
from runner.jobs import JobSpec
from runner.ledger import open_ledger
from runner.ledger.connection import Connection
from runner.ledger.sqlite import first

MODEL = "kling-v3.0-pro-t2v"


def spec(i: int) -> JobSpec:
    return JobSpec.build(model=MODEL, request={"prompt": f"harbour {i}", "duration": 5}, vars={"i": i},
                         repeat=1, output=f"{i}.mp4", estimated_usd=0.56)


def specs(n: int) -> Iterator[JobSpec]:
    return (spec(i) for i in range(n))


def workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "runner-first-plan"]


def test_a_chunk_of_jobs_is_inserted_by_one_statement(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(first, "FIRST_BATCH", 2000)
    with open_ledger(tmp_path / "state") as ledger:
        seen: list[str] = []
        ledger._conn.db.conn.set_trace_callback(seen.append)
        assert ledger.register("m", "d", specs(5000), batch=2000) == 5000
        ledger._conn.db.conn.set_trace_callback(None)
        assert len([sql for sql in seen if sql.startswith("INSERT INTO jobs")]) == 3  # one per chunk, not 5,000
        assert len([sql for sql in seen if sql.startswith("INSERT INTO targeted")]) == 3
        assert [job.key for job in ledger.iter_jobs("m")] == [s.key for s in specs(5000)]


def test_the_jobs_are_built_by_a_worker_while_the_caller_writes(tmp_path: Path) -> None:
    threads: set[str] = set()

    def stream() -> Iterator[JobSpec]:
        for job in specs(100):
            threads.add(threading.current_thread().name)
            yield job

    with open_ledger(tmp_path / "state") as ledger:
        assert ledger.register("m", "d", stream()) == 100
    assert threads == {"runner-first-plan"}
    assert workers() == []


def test_foreign_keys_are_enforced_again_after_a_first_registration(tmp_path: Path) -> None:
    def broken() -> Iterator[JobSpec]:
        yield from specs(10)
        raise ManifestError("bad job", path="m.yaml", line=7)

    with open_ledger(tmp_path / "state") as ledger:
        raw = ledger._conn.db.conn
        with pytest.raises(ManifestError, match="bad job"):
            ledger.register("m", "d", broken())
        assert raw.execute("PRAGMA foreign_keys").fetchone() == (1,)
        assert workers() == []
        assert ledger.register("m", "d", specs(10)) == 10
        assert raw.execute("PRAGMA foreign_keys").fetchone() == (1,)
        assert raw.execute("PRAGMA foreign_key_check").fetchall() == []


def test_a_write_that_fails_stops_the_worker_and_plans_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(first, "FIRST_BATCH", 100)
    taken: list[int] = []

    def stream() -> Iterator[JobSpec]:
        for i in range(100_000):
            taken.append(i)
            yield spec(i)

    def failing(*args: object) -> int:
        raise KeyboardInterrupt  # what Ctrl-C raises in the caller's thread

    monkeypatch.setattr(first, "_write", failing)
    with open_ledger(tmp_path / "state") as ledger:
        with pytest.raises(KeyboardInterrupt):
            ledger.register("m", "d", stream(), batch=100)
        assert workers() == []
        assert len(taken) <= 100 * 5  # the worker stopped within a few chunks of the failure
        assert ledger.total() == 0
        assert ledger._conn.db.conn.execute("PRAGMA foreign_keys").fetchone() == (1,)


def test_jobs_planned_by_another_process_just_before_the_transaction(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The ledger looked empty before the transaction, not inside it: planned as into any ledger, foreign keys on."""
    with open_ledger(tmp_path / "state") as ledger:
        assert ledger.register("other", "d", specs(3)) == 3
        monkeypatch.setattr(Connection, "scalar", lambda self, sql, params=(): 1)  # "no job", as seen a moment ago
        seen: list[str] = []
        ledger._conn.db.conn.set_trace_callback(seen.append)
        assert ledger.register("m", "d", specs(5)) == 5
        ledger._conn.db.conn.set_trace_callback(None)
        monkeypatch.undo()
        assert seen.count("ROLLBACK") == 1 and not any(sql.startswith("DROP INDEX") for sql in seen)
        assert ledger.total() == 5
        assert ledger._conn.db.conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
