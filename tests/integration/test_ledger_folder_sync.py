"""A file system that refuses to fsync a folder (EINVAL: some SMB and FUSE mounts) holds a ledger as any other.

A folder's fsync makes a rename or a new name in it durable; where the file system answers EINVAL it syncs no
folders at all (it orders its own metadata, or it cannot be told to), and nothing more can be done. Before, a
ledger could not be created there (``cannot create the ledger … (Invalid argument)``), nor opened for a run (its
commit mark), and the rescue journal of a paid task the ledger could not record said it could not be written
although its line was written and synced."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

import pytest

from runner.errors import LedgerError
from runner.jobs import JobSpec, JobState
from runner.ledger import open_ledger, rescue
from runner.service.outcome import EXIT_LOCAL, exit_code_for

_real_fsync = os.fsync


def _refusing_folders(fd: int) -> None:
    if stat.S_ISDIR(os.fstat(fd).st_mode):
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
    _real_fsync(fd)


@pytest.fixture
def no_folder_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "fsync", _refusing_folders)


def _spec() -> JobSpec:
    return JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": "a slow pan", "duration": 5}, vars={"i": 1},
                         repeat=1, output="1.mp4", estimated_usd=0.56)


@pytest.mark.usefixtures("no_folder_sync")
def test_a_ledger_is_created_and_opened_again_where_folders_cannot_be_synced(tmp_path: Path) -> None:
    job = _spec()
    with open_ledger(tmp_path) as ledger:
        ledger.register("m", "d", [job])
    with open_ledger(tmp_path) as ledger:
        assert ledger.get(job.key).state is JobState.PENDING  # type: ignore[union-attr]


@pytest.mark.usefixtures("no_folder_sync")
def test_the_rescue_journal_of_a_paid_task_is_written_where_folders_cannot_be_synced(tmp_path: Path) -> None:
    entry = rescue.RescueEntry(key="k" * 64, task_id="task-1", attempt=1, at=1.0)
    assert rescue.append_entry(tmp_path, entry) is True
    assert rescue.pending_entries(tmp_path) == [entry]


def test_a_file_system_that_locks_no_file_refuses_the_ledger_and_says_where_to_put_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An NFS mount without its lock daemon (or a FUSE one) answers ``flock`` with ENOLCK: nothing keeps a second
    runner off the ledger there, so it is refused, nothing made; it said only ``cannot lock … (No locks
    available)``, exit 3 (work outstanding, a later run resumes: it never does)."""

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.raises(LedgerError) as caught:
        open_ledger(tmp_path / "state")
    said = str(caught.value)
    assert "No locks available" in said and "local disk" in said and "--state" in said, said
    assert exit_code_for(caught.value) == EXIT_LOCAL  # someone must act: a cron unit taking 3 as success fails
    assert not (tmp_path / "state" / "ledger.db").exists()
