"""The SQLite ledger's commit mark (``ledger.mark``): a ledger put back older than the commits its state directory
saw is refused before anything is written; everything consistent opens as before (restore hunt, 2026-12-05)."""

from __future__ import annotations

import logging
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from runner.errors import LedgerError, LedgerOutdated
from runner.jobs import JobSpec, JobState
from runner.ledger import open_ledger
from runner.ledger.sqlite.mark import MARK_NAME


def spec(i: int) -> JobSpec:
    return JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"a slow pan over city {i}", "duration": 5},
                         vars={"i": i}, repeat=1, output=f"{i}.mp4", estimated_usd=0.56)


def _send(state: Path, *indexes: int) -> None:
    """Plan the jobs and write each ahead and record its task, as a run does (two durable commits a job)."""
    with open_ledger(state) as ledger:
        ledger.register("m", "d", [spec(i) for i in range(6)])
        for i in indexes:
            attempt = ledger.mark_submitting(spec(i).key)
            assert attempt is not None
            assert ledger.mark_running(spec(i).key, attempt, task_id=f"task-{i}", http_status=200)


def _commits(state: Path) -> int:
    return int((state / MARK_NAME).read_text().splitlines()[3].split()[1])


def test_a_ledger_copied_without_its_wal_is_refused_and_says_what_is_missing(tmp_path: Path) -> None:
    """The copy was taken while a run had it open: the commits in ``ledger.db-wal`` are not in it."""
    state = tmp_path / "state"
    _send(state, 0)
    with open_ledger(state) as ledger:
        attempt = ledger.mark_submitting(spec(1).key)
        assert attempt is not None and ledger.mark_running(spec(1).key, attempt, task_id="task-1", http_status=200)
        assert (state / "ledger.db-wal").stat().st_size > 0
        shutil.copyfile(state / "ledger.db", tmp_path / "copy.db")  # the file alone: its WAL left behind
    shutil.copyfile(tmp_path / "copy.db", state / "ledger.db")
    assert not (state / "ledger.db-wal").exists()

    with pytest.raises(LedgerOutdated) as refused:
        open_ledger(state)
    said = str(refused.value)
    assert "is older than what this state directory last recorded" in said
    assert "2 durable commit(s) are missing" in said and "copied without its ledger.db-wal" in said
    assert f"mv {state / MARK_NAME} {state / MARK_NAME}.old" in said and "--new-ledger" in said
    with open_ledger(state, readonly=True) as reader:  # nothing was written: job 1 still reads pending
        assert reader.states_of([spec(1).key]) == {spec(1).key: JobState.PENDING}
    with pytest.raises(LedgerOutdated):  # the refusal released the lock: opened again, it refuses again
        open_ledger(state)


def test_every_durable_commit_advances_the_mark_and_nothing_else_does(tmp_path: Path) -> None:
    """Write-ahead and task id: one each; a poll event (not durable) and a rolled-back write: none."""
    state = tmp_path / "state"
    _send(state)
    start = _commits(state)
    _send(state, 0, 1)
    assert _commits(state) == start + 4
    with open_ledger(state) as ledger:
        ledger.record_event(spec(0).key, "poll", "error", detail="a blip")
        with pytest.raises(LedgerError):
            ledger.mark_submitting("no-such-key")
    assert _commits(state) == start + 4


def test_a_mark_behind_its_ledger_is_harmless_and_caught_up(tmp_path: Path) -> None:
    """The mark is never synced: a power cut may take its last writes. A ledger ahead of it opens."""
    state = tmp_path / "state"
    _send(state, 0)
    stale = (state / MARK_NAME).read_bytes()
    _send(state, 1)
    (state / MARK_NAME).write_bytes(stale)
    with open_ledger(state):
        pass
    assert _commits(state) > int(stale.decode().splitlines()[3].split()[1])


def test_a_ledger_of_an_older_runner_gets_a_mark_at_its_first_open(tmp_path: Path) -> None:
    """No mark, no name in the ledger: it opens, and from then on is guarded."""
    state = tmp_path / "state"
    _send(state, 0)
    backup = tmp_path / "backup.db"
    shutil.copyfile(state / "ledger.db", backup)
    (state / MARK_NAME).unlink()
    raw = sqlite3.connect(state / "ledger.db")
    raw.execute("DELETE FROM meta WHERE key IN ('ledger_id', 'commits')")
    raw.commit()
    raw.close()
    _send(state, 1)
    assert (state / MARK_NAME).exists() and _commits(state) == 2  # the ledger's count starts at its naming
    shutil.copyfile(state / "ledger.db", backup)  # a backup from now on is of the named ledger
    _send(state, 2)
    (state / "ledger.db").unlink()
    shutil.copyfile(backup, state / "ledger.db")
    with pytest.raises(LedgerOutdated, match="2 durable commit"):
        open_ledger(state)


def test_a_backup_from_before_the_mark_is_refused(tmp_path: Path) -> None:
    """A ledger an older runner wrote, backed up, then opened by this one: the backup has no name, and is older."""
    state = tmp_path / "state"
    _send(state, 0)
    raw = sqlite3.connect(state / "ledger.db")
    raw.execute("DELETE FROM meta WHERE key IN ('ledger_id', 'commits')")
    raw.commit()
    raw.close()
    (state / MARK_NAME).unlink()
    shutil.copyfile(state / "ledger.db", tmp_path / "backup.db")
    _send(state, 1)
    shutil.copyfile(tmp_path / "backup.db", state / "ledger.db")
    with pytest.raises(LedgerOutdated, match="the ledger holds 0"):
        open_ledger(state)


def test_another_ledger_put_in_place_is_refused(tmp_path: Path) -> None:
    """A ledger from elsewhere, even one with more commits, does not know the tasks this directory's recorded."""
    state, other = tmp_path / "state", tmp_path / "other"
    _send(state, 0)
    _send(other, 0, 1, 2)
    shutil.copyfile(other / "ledger.db", state / "ledger.db")
    with pytest.raises(LedgerOutdated, match="is not the ledger this state directory last recorded"):
        open_ledger(state)


def test_a_state_directory_moved_whole_opens_and_the_mark_follows(tmp_path: Path) -> None:
    state = tmp_path / "state"
    _send(state, 0)
    moved = tmp_path / "elsewhere" / "state"
    moved.parent.mkdir()
    shutil.copytree(state, moved)
    shutil.rmtree(state)
    _send(moved, 1)
    assert f":{moved / 'ledger.db'}" in (moved / MARK_NAME).read_text()


def test_new_ledger_sets_the_old_mark_aside(tmp_path: Path) -> None:
    """``rm ledger.db`` is refused as a ledger gone missing (the mark is a trace); --new-ledger starts over."""
    state = tmp_path / "state"
    _send(state, 0)
    (state / "ledger.db").unlink()
    (state / "ledger.lock").unlink()  # the mark alone shows a ledger was used here
    with pytest.raises(LedgerError, match=rf"ledger.db is missing.*{MARK_NAME}.*--new-ledger"):
        open_ledger(state)
    with open_ledger(state, new_ledger=True) as ledger:
        assert ledger.created
    assert list(state.glob(f"{MARK_NAME}.stale-*")) and _commits(state) == 0
    _send(state, 0)


def test_an_unreadable_mark_is_made_again_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "state"
    _send(state, 0)
    held = _commits(state)
    (state / MARK_NAME).write_bytes(b"\0" * 40)
    with caplog.at_level(logging.WARNING, "runner.ledger"), open_ledger(state):
        pass
    assert "cannot be read" in caplog.text and _commits(state) == held


def test_a_read_only_open_of_an_older_ledger_warns_and_reads(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """status, ls, show, export read what is there, saying first that it is older than what was recorded."""
    state = tmp_path / "state"
    _send(state)
    shutil.copyfile(state / "ledger.db", tmp_path / "backup.db")
    _send(state, 0)
    shutil.copyfile(tmp_path / "backup.db", state / "ledger.db")
    with caplog.at_level(logging.WARNING, "runner.ledger"), open_ledger(state, readonly=True) as reader:
        assert reader.counts("m")[JobState.PENDING] == 6
    assert "is older than what this state directory last recorded" in caplog.text
    assert "What follows reads that older ledger" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, "runner.ledger"), open_ledger(state, readonly=True):
        pass  # `status --watch` opens it at each refresh: said once
    assert "is older than" not in caplog.text


def test_an_older_ledger_is_not_copied_elsewhere_where_no_mark_would_see_it(tmp_path: Path) -> None:
    """``runner ledger copy`` of a restored ledger would run it in a state directory (or on PostgreSQL) with no
    mark of the commits it lost: refused, the destination untouched."""
    from runner.ledger.postgres.transfer import copy_ledger

    state = tmp_path / "state"
    _send(state)
    shutil.copyfile(state / "ledger.db", tmp_path / "backup.db")
    _send(state, 0)
    shutil.copyfile(tmp_path / "backup.db", state / "ledger.db")
    with pytest.raises(LedgerOutdated, match=r"not copied: .* is older than"):
        copy_ledger(str(state), str(tmp_path / "copy"))
    assert not (tmp_path / "copy" / "ledger.db").exists()
    (state / MARK_NAME).rename(tmp_path / "aside")  # consistent again (on purpose): it copies, name and count kept
    _send(state, 1)
    copy_ledger(str(state), str(tmp_path / "copy"))
    with open_ledger(tmp_path / "copy") as copied:
        assert copied.meta("ledger_id") is not None and copied.meta("moved_to") is None
    assert (tmp_path / "copy" / MARK_NAME).exists()


class _FailingCommit:
    """A raw connection whose next COMMIT raises: after committing (``commits``), as an I/O error reported once the
    commit's WAL frames were written does (on disk, the caller told it failed), or instead of it (rolled back)."""

    def __init__(self, raw: sqlite3.Connection, *, commits: bool) -> None:
        self.raw, self.commits, self.armed = raw, commits, True

    def execute(self, sql: str, params: object = ()) -> sqlite3.Cursor:
        if sql == "COMMIT" and self.armed:
            self.armed = False
            if self.commits:
                self.raw.execute(sql)
            raise sqlite3.OperationalError("disk I/O error")
        return self.raw.execute(sql, params)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> object:
        return getattr(self.raw, name)


def _write_ahead_whose_commit_fails(ledger: Any, key: str, *, commits: bool) -> None:
    """``key``'s write-ahead, its COMMIT raising (:class:`_FailingCommit`); the connection given back after."""
    db = ledger._conn.db
    raw = db.conn
    db.conn = _FailingCommit(raw, commits=commits)
    try:
        with pytest.raises(LedgerError):
            ledger.mark_submitting(key)
    finally:
        db.conn = raw


@pytest.mark.parametrize("commits", [True, False], ids=["committed, then raised", "rolled back"])
def test_a_commit_that_raised_never_puts_the_mark_ahead_of_the_ledger(tmp_path: Path, commits: bool) -> None:
    """The mark follows a COMMIT only once it returned: one that raised after committing leaves the ledger a commit
    ahead of the mark (harmless), one rolled back leaves both as they were; the commits after it, in that open and
    the next, never put the mark ahead of the ledger (which would refuse the next run, exit 2)."""
    state = tmp_path / "state"
    _send(state)
    with open_ledger(state) as ledger:
        _write_ahead_whose_commit_fails(ledger, spec(0).key, commits=commits)
        assert ledger.states_of([spec(0).key]) == {
            spec(0).key: JobState.SUBMITTING if commits else JobState.PENDING}
    _send(state, 1)  # the run stopped there; the next opens (the ledger is not behind its mark) and goes on
    with open_ledger(state) as ledger:
        _write_ahead_whose_commit_fails(ledger, spec(3).key, commits=commits)
        attempt = ledger.mark_submitting(spec(4).key)  # the same open goes on after it
        assert attempt is not None and ledger.mark_running(spec(4).key, attempt, task_id="task-4", http_status=200)
    _send(state, 2)
    with open_ledger(state, readonly=True) as reader:
        assert reader.states_of([spec(2).key]) == {spec(2).key: JobState.RUNNING}


def test_a_mark_that_cannot_be_written_warns_once_and_says_when_it_is_kept_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A disk refusing the mark's ``pwrite`` for a while: one warning, not one at every durable commit of the run (two a
    job), and a word when the mark follows again; the ledger's commits stand throughout."""
    import os

    import runner.ledger.sqlite.mark as mark_module

    state = tmp_path / "state"
    _send(state, 0)
    real = os.pwrite
    failing = {"on": True}

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        if failing["on"]:
            raise OSError(28, "No space left on device")
        return real(fd, data, offset)

    with caplog.at_level(logging.INFO, "runner.ledger"), open_ledger(state) as ledger:
        monkeypatch.setattr(mark_module.os, "pwrite", pwrite)
        for i in (1, 2, 3):
            attempt = ledger.mark_submitting(spec(i).key)
            assert attempt is not None and ledger.mark_running(spec(i).key, attempt, task_id=f"t{i}", http_status=200)
        failing["on"] = False
        attempt = ledger.mark_submitting(spec(4).key)
        assert attempt is not None
    monkeypatch.undo()
    warned = [r for r in caplog.records if "could not advance" in r.getMessage()]
    assert len(warned) == 1, [r.getMessage() for r in caplog.records]
    assert "is kept again" in caplog.text
    with open_ledger(state) as ledger:  # the mark lagged, then caught up: the ledger opens, its commits all there
        assert ledger.states_of([spec(3).key]) == {spec(3).key: JobState.RUNNING}


def _copy(src: Path, dst: Path) -> None:
    from runner.ledger.postgres.transfer import copy_ledger

    copy_ledger(str(src), str(dst))


def test_a_copy_run_apart_from_its_reopened_source_is_refused_in_the_sources_place(tmp_path: Path) -> None:
    """`runner ledger copy a b`, `runner ledger reopen a`, both run on: a hand move of b's ledger into a (a restore
    mixed up) was accepted, the copy keeping a's name and count — and it would pay again for what a sent since."""
    a, b = tmp_path / "a", tmp_path / "b"
    _send(a, 0)
    _copy(a, b)
    with open_ledger(a) as source:
        source.set_meta("moved_to", "")  # `runner ledger reopen a`
    _send(a, 1)  # a goes on: job 1 paid there
    _send(b, 2, 3)  # b goes on, further
    shutil.copyfile(b / "ledger.db", a / "ledger.db")
    with pytest.raises(LedgerOutdated, match="is not the ledger this state directory last recorded"):
        open_ledger(a)


@pytest.mark.parametrize("runs", [True, False], ids=["the copy ran", "the copy never opened"])
def test_a_copy_put_back_in_its_sources_place_opens(tmp_path: Path, runs: bool) -> None:
    """A copy holds every commit its source's mark saw when it was taken: moved by hand into the source's state
    directory, it opens (a ledger of its own name from then on)."""
    a, b = tmp_path / "a", tmp_path / "b"
    _send(a, 0)
    _copy(a, b)
    if runs:
        _send(b, 1)
    with open_ledger(a) as source:
        before = source.meta("ledger_id")
    shutil.copyfile(b / "ledger.db", a / "ledger.db")
    with open_ledger(a) as moved:
        assert moved.meta("ledger_id") not in (None, before)
        assert moved.counts()[JobState.RUNNING] == (2 if runs else 1)
