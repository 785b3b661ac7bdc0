"""The first registration into a ledger with no job writes with a rollback journal, then goes back to WAL.

In WAL mode each page of a million-job registration was written twice: into the WAL, then by the checkpoint
into the file (~1.2 GB for a 580 MB ledger, 3-4 s of a 13-14 s registration). With a rollback journal a page
the file did not have is written once. ``journal.rollback_journal`` switches only when the connection has
the file to itself, commits durably inside (a NORMAL commit with a rollback journal is not power-cut safe),
and gives WAL back after, or raises. A kill inside is covered in ``test_ledger_first_register.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.errors import LedgerError
from runner.jobs import JobSpec, JobState
from runner.ledger import open_ledger
from runner.ledger.sqlite import first

MODEL = "kling-v3.0-pro-t2v"


def spec(i: int) -> JobSpec:
    return JobSpec.build(model=MODEL, request={"prompt": f"harbour {i}", "duration": 5}, vars={"i": i},
                         repeat=1, output=f"{i}.mp4", estimated_usd=0.56)


def watched(state: Path, n: int, seen: dict[str, object]) -> Iterator[JobSpec]:
    """``n`` jobs; halfway, what files the ledger has beside it (the worker thread builds them mid-transaction)."""
    for i in range(n):
        if i == n // 2:
            seen["journal"] = (state / "ledger.db-journal").exists()
            wal = state / "ledger.db-wal"
            seen["wal bytes"] = wal.stat().st_size if wal.exists() else 0
        yield spec(i)


def mode(ledger: object) -> str:
    return str(ledger._conn.db.conn.execute("PRAGMA journal_mode").fetchone()[0])  # type: ignore[attr-defined]


def test_the_first_registration_writes_with_a_rollback_journal_and_returns_to_wal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(first, "FIRST_BATCH", 2000)
    state = tmp_path / "state"
    seen: dict[str, object] = {}
    with open_ledger(state) as ledger:
        sql: list[str] = []
        ledger._conn.db.conn.set_trace_callback(sql.append)
        assert ledger.register("m", "d", watched(state, 20_000, seen), batch=2000) == 20_000
        ledger._conn.db.conn.set_trace_callback(None)
        assert seen == {"journal": True, "wal bytes": 0}
        assert mode(ledger) == "wal"
        # Committed durably, the directory synced after the journal is deleted: EXTRA before the BEGIN.
        begin = sql.index("BEGIN IMMEDIATE")
        assert "PRAGMA synchronous=EXTRA" in sql[:begin]
        assert sql.index("PRAGMA journal_mode=DELETE") < begin < sql.index("PRAGMA journal_mode=WAL")
        # A ledger with jobs: the usual path, in WAL mode throughout.
        seen.clear()
        assert ledger.register("m", "d2", watched(state, 20_001, seen), batch=2000) == 20_001
        assert seen["journal"] is False and mode(ledger) == "wal"
        assert ledger.counts("m")[JobState.PENDING] == 20_001
    assert not (state / "ledger.db-journal").exists()


def test_with_another_connection_open_the_first_registration_stays_in_wal(tmp_path: Path) -> None:
    """Leaving WAL needs the file to itself: a reader open (a `runner status`) keeps the registration in WAL."""
    state = tmp_path / "state"
    seen: dict[str, object] = {}
    with open_ledger(state) as ledger, open_ledger(state, readonly=True) as reader:
        assert reader.total() == 0
        assert ledger.register("m", "d", watched(state, 5000, seen), batch=1000) == 5000
        assert seen["journal"] is False and mode(ledger) == "wal"
        assert reader.total() == 5000


def test_a_ledger_that_cannot_return_to_wal_raises_after_keeping_what_was_planned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never a run without WAL: the registration is committed, and the caller is told to run again."""
    state = tmp_path / "state"
    with open_ledger(state) as ledger:
        raw = ledger._conn.db.conn
        real_execute = ledger._conn.db.conn.execute

        class Refusing:  # sqlite3.Connection's methods are read-only: wrap the connection
            def __getattr__(self, name: str) -> object:
                return getattr(raw, name)

            def execute(self, sql: str, *args: object) -> object:
                return real_execute("PRAGMA journal_mode" if sql == "PRAGMA journal_mode=WAL" else sql, *args)

        monkeypatch.setattr(ledger._conn.db, "conn", Refusing())
        with pytest.raises(LedgerError, match=r"cannot return .* to WAL mode .* what was planned is kept"):
            ledger.register("m", "d", (spec(i) for i in range(100)))
        monkeypatch.undo()
    with open_ledger(state) as ledger:
        assert mode(ledger) == "wal" and ledger.total() == 100
