"""Opening a ledger: read-only opens, bad files, unwritable places, a full disk."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

import runner
from runner.errors import LedgerError, LedgerSchemaError
from runner.jobs import JobSpec, JobState
from runner.ledger import SCHEMA_VERSION, open_ledger
from runner.ledger.lock import LedgerLock


def spec(i: int) -> JobSpec:
    return JobSpec.build(
        model="kling-v3.0-pro-t2v",
        request={"prompt": f"a slow pan over city {i} " + "x" * 200, "duration": 5},
        vars={"i": i},
        repeat=1,
        output=f"{i}.mp4",
        estimated_usd=0.56,
    )


def test_readonly_open_of_a_missing_ledger_is_empty_and_creates_nothing(tmp_path: Path) -> None:
    """status/plan on a state dir that was never used show an empty ledger and write nothing."""
    state = tmp_path / "never-used"
    with open_ledger(state, readonly=True) as ledger:
        assert ledger.readonly
        assert ledger.counts() == dict.fromkeys(JobState, 0)
        assert ledger.total("m") == 0 and list(ledger.iter_jobs("m")) == []
        assert ledger.manifest_digest("m") is None and ledger.states_of(["k"]) == {}
        with pytest.raises(LedgerError, match="read-only"):
            ledger.register("m", "d", [spec(0)])
    assert not state.exists()


def test_readonly_open_sees_the_writer_and_takes_no_lock(tmp_path: Path) -> None:
    """status works while a runner holds the ledger, and cannot change anything."""
    with open_ledger(tmp_path) as writer:
        writer.register("m", "d", [spec(0), spec(1)])
        writer.mark_submitting(spec(0).key)
        with open_ledger(tmp_path, readonly=True) as reader:
            assert reader.counts("m")[JobState.SUBMITTING] == 1
            assert reader.total("m") == 2
            with pytest.raises(LedgerError, match="read-only"):
                reader.mark_submitting(spec(1).key)
            with pytest.raises(LedgerError, match="read-only"):
                reader.recover_expired(reader.owner)
        writer.mark_submitting(spec(1).key)
    with open_ledger(tmp_path, readonly=True) as reader:
        assert reader.outstanding() == 2


def test_readonly_open_of_an_empty_file_does_not_migrate_it(tmp_path: Path) -> None:
    """A zero-byte ledger.db reads as empty and is left as it was."""
    (tmp_path / "ledger.db").write_bytes(b"")
    with open_ledger(tmp_path, readonly=True) as ledger:
        assert ledger.total() == 0
    assert (tmp_path / "ledger.db").read_bytes() == b""


def test_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    """A ledger written by a newer runner is refused with an upgrade hint, and not modified."""
    with open_ledger(tmp_path) as ledger:
        ledger.register("m", "d", [spec(0)])
    db = tmp_path / "ledger.db"
    raw = sqlite3.connect(db)
    raw.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    raw.close()
    before = db.read_bytes()
    for readonly in (False, True):
        with pytest.raises(LedgerSchemaError) as caught:
            open_ledger(tmp_path, readonly=readonly)
        message = str(caught.value)
        assert "newer runner" in message and "upgrade runner" in message
        assert f"schema {SCHEMA_VERSION + 1} > {SCHEMA_VERSION}" in message and str(db) in message
    assert db.read_bytes() == before
    LedgerLock.acquire(tmp_path / "ledger.lock").release()  # the refusal gave the lock back


def test_corrupt_file_is_refused_untouched(tmp_path: Path) -> None:
    """A ledger.db that is not SQLite is refused, naming the file; nothing is changed."""
    db = tmp_path / "ledger.db"
    garbage = b"this is not a database, just some bytes\n" * 200
    db.write_bytes(garbage)
    for readonly in (False, True):
        with pytest.raises(LedgerSchemaError) as caught:
            open_ledger(tmp_path, readonly=readonly)
        assert str(db) in str(caught.value) and "nothing was changed" in str(caught.value)
    assert db.read_bytes() == garbage
    assert not (tmp_path / "ledger.db-wal").exists()


def test_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    """Some other program's SQLite file is not taken for a ledger (nor migrated)."""
    db = tmp_path / "ledger.db"
    raw = sqlite3.connect(db)
    raw.execute("CREATE TABLE notes (body TEXT)")
    raw.commit()
    raw.close()
    with pytest.raises(LedgerSchemaError, match="not a runner ledger"):
        open_ledger(tmp_path)
    raw = sqlite3.connect(db)
    tables = [row[0] for row in raw.execute("SELECT name FROM sqlite_master")]
    raw.close()
    assert tables == ["notes"]


def test_state_dir_that_cannot_be_created(tmp_path: Path) -> None:
    """A state path that cannot be a directory gives a LedgerError naming it."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(LedgerError) as caught:
        open_ledger(blocker / "state")
    assert str(blocker / "state") in str(caught.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_state_dir(tmp_path: Path) -> None:
    """A state directory without write permission gives a LedgerError naming it."""
    state = tmp_path / "ro"
    state.mkdir()
    state.chmod(0o555)
    try:
        with pytest.raises(LedgerError) as caught:
            open_ledger(state)
        assert str(state) in str(caught.value)
    finally:
        state.chmod(0o755)


def test_disk_full_is_reported_and_loses_nothing(tmp_path: Path) -> None:
    """A full disk mid-write gives a clear LedgerError; what was recorded before survives."""
    with open_ledger(tmp_path) as ledger:
        ledger.register("m", "d1", [spec(i) for i in range(10)])
        attempt = ledger.mark_submitting(spec(0).key)
        ledger.mark_running(spec(0).key, attempt, task_id="task-0", http_status=200)
        pages = int(ledger._conn.scalar("PRAGMA page_count"))
        ledger._conn.set_max_pages(pages + 2)  # the "disk" has room for two more pages
        with pytest.raises(LedgerError) as caught:
            ledger.register("m", "d2", [spec(i) for i in range(2000)])
        assert "disk full while writing" in str(caught.value)
        assert str(tmp_path / "ledger.db") in str(caught.value)
        assert "nothing recorded was lost" in str(caught.value)
        assert not isinstance(caught.value.__cause__, LedgerError)
        ledger._conn.set_max_pages(1 << 30)
        assert ledger.total() == 10 and ledger.manifest_digest("m") == "d1"
        ledger.mark_submitting(spec(1).key)  # still usable once there is room
    with open_ledger(tmp_path, readonly=True) as reader:
        record = reader.get(spec(0).key)
        assert record is not None and record.state is JobState.RUNNING
        assert record.task_id == "task-0" and reader.total() == 10


def test_schema_is_migrated_once_and_reopened(tmp_path: Path) -> None:
    """A new ledger gets the current schema; reopening keeps the data."""
    with open_ledger(tmp_path) as ledger:
        ledger.register("m", "d", [spec(0)])
    raw = sqlite3.connect(tmp_path / "ledger.db")
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()
    with open_ledger(tmp_path) as ledger:
        assert ledger.total("m") == 1
        assert repr(ledger).endswith("writable>")


def test_a_ledger_upgraded_by_a_newer_runner_is_refused_by_the_older_naming_both_versions(tmp_path: Path) -> None:
    """Downgrade after an upgrade: the newer runner migrated the ledger (and recorded its version, as this one does);
    the older refuses it naming the version that wrote it, its own, both schemas and the upgrade, changing nothing.
    It said only "newer runner (schema 8 > 7); upgrade runner", with no version to upgrade to."""
    with open_ledger(tmp_path) as ledger:
        ledger.register("m", "d", [spec(0)])
    db = tmp_path / "ledger.db"
    raw = sqlite3.connect(db)
    assert raw.execute("SELECT value FROM meta WHERE key = 'schema_written_by'").fetchone() == (runner.__version__,)
    raw.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")  # as a newer runner's migration leaves it
    raw.execute("UPDATE meta SET value = '99.1.0' WHERE key = 'schema_written_by'")
    raw.commit()
    raw.close()
    before = db.read_bytes()
    for readonly in (False, True):
        with pytest.raises(LedgerSchemaError) as caught:
            open_ledger(tmp_path, readonly=readonly)
        message = str(caught.value)
        assert f"newer runner, 99.1.0 (schema {SCHEMA_VERSION + 1} > {SCHEMA_VERSION} of this runner," in message
        assert f"this runner, {runner.__version__})" in message and "upgrade runner to 99.1.0 or later" in message
        assert "pip install -U kling-runner" in message and "Nothing was changed" in message
    assert db.read_bytes() == before
