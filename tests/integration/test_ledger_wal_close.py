"""A run that closes its ledger while another process reads it (``runner review`` left open, ``status --watch``).

SQLite deletes the WAL only when its last connection closes; a reader still open keeps it, full of the run's
frames, and the next writable open took that for a writer killed mid-run: the whole file's ``quick_check``
(about 0.5 s per 50 MB: ~12 s for a ledger of a million jobs) before each cron or timer run of the night.
A clean close truncates the WAL (everything is in the file by then); a kill still leaves its frames behind.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from runner.jobs import JobSpec
from runner.ledger import connection, open_ledger
from runner.ledger.journal import wal_left_behind


def spec(i: int) -> JobSpec:
    return JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"city {i} at night", "duration": 5},
                         vars={"city": f"c{i}"}, repeat=1, output=f"c{i}.mp4", estimated_usd=0.56)


def _reader(state: Path) -> sqlite3.Connection:
    """A read-only connection between two reads, as a watcher's or the review server's (no transaction open)."""
    reader = sqlite3.connect(f"{(state / 'ledger.db').absolute().as_uri()}?mode=ro", uri=True, isolation_level=None)
    assert reader.execute("SELECT count(*) FROM jobs").fetchone()[0] >= 0
    return reader


def _checks(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The integrity checks the next writable opens run (None: the whole file), as for a ledger above 128 MB."""
    checked: list[Any] = []
    real_check = connection.check_integrity

    def spy(raw: Any, file: Path, *, tables: Any) -> None:
        checked.append(tables)
        real_check(raw, file, tables=tables)

    monkeypatch.setattr(connection, "FULL_CHECK_MAX_BYTES", 0)
    monkeypatch.setattr(connection, "check_integrity", spy)
    return checked


def test_a_clean_close_beside_a_reader_leaves_no_wal_to_take_for_a_kill(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    with open_ledger(state) as ledger:
        ledger.register("m", "digest", [spec(i) for i in range(50)])
    reader = _reader(state)
    try:
        with open_ledger(state) as ledger:  # the next run: writes, then closes cleanly with the reader open
            for i in range(10):
                ledger.mark_submitting(spec(i).key)
        assert reader.execute("SELECT count(*) FROM jobs WHERE state = 'submitting'").fetchone()[0] == 10
        assert not wal_left_behind(state / "ledger.db"), "a clean close left the WAL's frames behind"
        checked = _checks(monkeypatch)
        with open_ledger(state) as ledger:
            assert ledger.total() == 50
        assert None not in checked, f"a clean close was taken for a kill: the checks run were {checked}"
    finally:
        reader.close()


def test_frames_a_writer_left_unclosed_are_still_taken_for_a_kill(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The other side: a WAL with frames (a writer killed, which never closed) still gets the whole file checked."""
    state = tmp_path / "state"
    with open_ledger(state) as ledger:
        ledger.register("m", "digest", [spec(i) for i in range(5)])
    reader = _reader(state)
    try:
        killed = sqlite3.connect(state / "ledger.db", isolation_level=None)
        killed.execute("PRAGMA journal_mode=WAL")
        killed.execute("INSERT INTO meta VALUES ('x', 'y')")  # frames in the WAL, and no close that checkpoints them
        assert wal_left_behind(state / "ledger.db")
        checked = _checks(monkeypatch)
        with open_ledger(state) as ledger:
            assert ledger.total() == 5
        assert checked == [None]
        killed.close()
    finally:
        reader.close()
