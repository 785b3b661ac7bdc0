"""A ledger is never silently made again, never swapped under a run, and locked as the real file."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from runner.errors import LedgerLocked, LedgerMissing, LedgerReplaced
from runner.jobs import JobSpec, JobState
from runner.ledger import DB_NAME, LOCK_NAME, SqliteLedger, ledger_traces, open_ledger
from runner.ledger.sqlite.mark import MARK_NAME


def spec(i: int) -> JobSpec:
    return JobSpec.build(
        model="kling-v3.0-pro-t2v",
        request={"prompt": f"a lighthouse at dusk, take {i}", "duration": 5},
        vars={"i": i},
        repeat=1,
        output=f"{i}.mp4",
        estimated_usd=0.56,
    )


def used_state(state: Path, jobs: int = 3) -> Path:
    """A state directory whose ledger knows ``jobs`` jobs, the first one running."""
    with open_ledger(state) as ledger:
        ledger.register("m", "d", [spec(i) for i in range(jobs)])
        attempt = ledger.mark_submitting(spec(0).key)
        ledger.mark_running(spec(0).key, attempt, task_id="task-0", http_status=200)
    return state / DB_NAME


def test_a_fresh_state_directory_gets_a_new_ledger(tmp_path: Path) -> None:
    """Nothing there yet: the ledger is created (and says so); the next open finds it."""
    state = tmp_path / "state"
    assert ledger_traces(state) == []
    with open_ledger(state) as ledger:
        assert ledger.created
    with open_ledger(state) as ledger:
        assert not ledger.created


def test_a_removed_ledger_is_not_made_again(tmp_path: Path) -> None:
    """ledger.db deleted: refused (naming what shows a ledger was there and --new-ledger); nothing created."""
    db = used_state(tmp_path)
    db.unlink()
    with pytest.raises(LedgerMissing) as caught:
        open_ledger(tmp_path)
    message = str(caught.value)
    assert str(db) in message and "missing" in message and LOCK_NAME in message
    assert "--new-ledger" in message and "backup" in message
    assert not db.exists()
    with open_ledger(tmp_path, new_ledger=True) as ledger:
        assert ledger.created and ledger.total() == 0


def test_an_emptied_ledger_is_not_made_again(tmp_path: Path) -> None:
    """ledger.db truncated to zero bytes: refused and left as it is."""
    db = used_state(tmp_path)
    db.write_bytes(b"")
    with pytest.raises(LedgerMissing, match="is empty"):
        open_ledger(tmp_path)
    assert db.read_bytes() == b""


@pytest.mark.parametrize("trace", ["provider", "outputs/m/a.mp4", "ledger.lock", "ledger.db-wal"])
def test_each_trace_of_a_ledger_alone_refuses_a_new_one(tmp_path: Path, trace: str) -> None:
    """The provider mark, a file under outputs/, the lock file or a WAL: each says a ledger was used here."""
    (tmp_path / trace).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / trace).write_text("x")
    with pytest.raises(LedgerMissing):
        open_ledger(tmp_path)
    assert not (tmp_path / DB_NAME).exists()


def test_an_empty_outputs_folder_is_no_trace(tmp_path: Path) -> None:
    """A state directory with only empty folders (say, prepared by hand) takes a new ledger."""
    (tmp_path / "outputs" / "m").mkdir(parents=True)
    with open_ledger(tmp_path) as ledger:
        assert ledger.created


def test_new_ledger_sets_a_stale_wal_aside(tmp_path: Path) -> None:
    """With --new-ledger, the WAL of the vanished ledger is renamed, not replayed into the new one."""
    (tmp_path / "ledger.db-wal").write_bytes(b"old frames")
    with open_ledger(tmp_path, new_ledger=True) as ledger:
        assert ledger.total() == 0
    aside = list(tmp_path.glob("ledger.db-wal.stale-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == b"old frames"


def test_create_false_never_creates(tmp_path: Path) -> None:
    """A command with nothing to do without a ledger (retry) refuses to make one."""
    with pytest.raises(LedgerMissing, match="no ledger"):
        open_ledger(tmp_path / "state", create=False)
    assert not (tmp_path / "state").exists()


def _rescued(state: Path) -> Path:
    found = sorted(state.glob("ledger.rescued-*.db"))
    assert len(found) == 1, found
    return found[0]


def test_a_ledger_removed_under_a_run_takes_no_more_submits_and_is_rescued(tmp_path: Path) -> None:
    """ledger.db deleted mid-run: the next submit is refused (nothing written) and close() saves a copy."""
    db = used_state(tmp_path)
    ledger = open_ledger(tmp_path)
    try:
        attempt = ledger.mark_submitting(spec(1).key)
        ledger.mark_running(spec(1).key, attempt, task_id="task-1", http_status=200)
        db.unlink()
        with pytest.raises(LedgerReplaced) as caught:
            ledger.mark_submitting(spec(2).key)
        assert "removed" in str(caught.value) and "ledger.rescued-" in str(caught.value)
        assert ledger.get(spec(2).key) is not None and ledger.get(spec(2).key).state is JobState.PENDING  # type: ignore[union-attr]
    finally:
        ledger.close()
    assert ledger.rescued is not None and ledger.rescued == _rescued(tmp_path)
    raw = sqlite3.connect(ledger.rescued)
    try:
        rows = dict(raw.execute("SELECT task_id, state FROM jobs WHERE task_id IS NOT NULL").fetchall())
    finally:
        raw.close()
    assert rows == {"task-0": "running", "task-1": "running"}


def test_a_ledger_replaced_under_a_run_takes_no_more_submits(tmp_path: Path) -> None:
    """Another file moved into ledger.db's place mid-run: the next submit is refused."""
    db = used_state(tmp_path / "a")
    other = used_state(tmp_path / "b")
    ledger = open_ledger(tmp_path / "a")
    try:
        os.replace(other, db)
        with pytest.raises(LedgerReplaced, match="replaced by another file"):
            ledger.mark_submitting(spec(1).key)
    finally:
        ledger.close()
    _rescued(tmp_path / "a")


def test_an_untouched_ledger_passes_the_identity_check(tmp_path: Path) -> None:
    """No false alarm: a ledger left alone, and one reached through a symlink, keep taking submits."""
    used_state(tmp_path / "real")
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / DB_NAME).symlink_to(tmp_path / "real" / DB_NAME)
    with open_ledger(tmp_path / "linked") as ledger:
        ledger.check_identity()
        ledger.mark_submitting(spec(1).key)
    assert not list((tmp_path / "linked").glob("ledger.rescued-*"))


def test_a_ledger_reached_through_a_symlink_takes_the_same_lock(tmp_path: Path) -> None:
    """Two state directories, one ledger file (a symlink): a second writer is refused either way."""
    first, second = tmp_path / "first", tmp_path / "second"
    used_state(first)
    second.mkdir()
    (second / DB_NAME).symlink_to(first / DB_NAME)
    holder: SqliteLedger = open_ledger(first)
    try:
        with pytest.raises(LedgerLocked):
            open_ledger(second)
    finally:
        holder.close()
    holder = open_ledger(second)
    try:
        with pytest.raises(LedgerLocked):
            open_ledger(first)
    finally:
        holder.close()


_DIE_WHILE_CREATING = """
import os, sys
from runner.ledger import open_ledger
from runner.ledger.connection import Connection

def die(self, version):
    os._exit(9)

Connection.migrate = die
open_ledger(sys.argv[1])
"""


def test_a_first_run_killed_while_creating_the_ledger_leaves_no_trace(tmp_path: Path) -> None:
    """Killed halfway through creating the very first ledger: the next run creates it, no --new-ledger needed."""
    state = tmp_path / "state"
    died = subprocess.run([sys.executable, "-c", _DIE_WHILE_CREATING, str(state)], check=False, timeout=60)
    assert died.returncode == 9
    assert (state / LOCK_NAME).exists() and not (state / DB_NAME).exists()
    assert ledger_traces(state) == []
    with open_ledger(state) as ledger:
        assert ledger.created and ledger.total() == 0
    assert sorted(p.name for p in state.iterdir()) == [DB_NAME, LOCK_NAME, MARK_NAME]


def test_a_refused_open_keeps_the_lock_file_a_trace(tmp_path: Path) -> None:
    """Refusing a new ledger must not turn the lock file into a 'was creating' one: the next try refuses too."""
    db = used_state(tmp_path)
    db.unlink()
    for _ in range(2):
        with pytest.raises(LedgerMissing, match=LOCK_NAME):
            open_ledger(tmp_path)
    assert LOCK_NAME in ledger_traces(tmp_path)


def test_a_first_creation_that_fails_leaves_no_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The very first ledger cannot be made (say the disk is full): the next run may still create it."""
    from runner.errors import LedgerError
    from runner.ledger.connection import Connection

    def full(file: Path) -> None:
        raise LedgerError(f"disk full while writing {file}")

    monkeypatch.setattr(Connection, "create", staticmethod(full))
    with pytest.raises(LedgerError, match="disk full"):
        open_ledger(tmp_path)
    assert ledger_traces(tmp_path) == []
    monkeypatch.undo()
    with open_ledger(tmp_path) as ledger:
        assert ledger.created


def test_stored_videos_count_as_a_trace_through_the_output_store(tmp_path: Path) -> None:
    """Issue 10 item 3: the guard asks the run's output store whether videos were stored, not the outputs/
    folder: a store holding one refuses a new ledger; a local file the store does not hold is not asked about."""
    from runner.storage.memory import MemoryStore

    store = MemoryStore()
    assert ledger_traces(tmp_path / "state", store=store) == []
    store.files["outputs/m/fox.mp4"] = b"video"
    assert ledger_traces(tmp_path / "state", store=store) == ["files under outputs/"]
    with pytest.raises(LedgerMissing):
        open_ledger(tmp_path / "state", store=store)
    with open_ledger(tmp_path / "state", store=store, new_ledger=True) as ledger:
        assert ledger.created
