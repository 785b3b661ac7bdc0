"""A full disk when a paid task's id arrives: the rescue journal still gets the line (review of 2026-12-04).

The ledger could not record an accepted task's id because the disk was full, and the rescue journal's append
failed for the same reason: the id survived only in a log line (on the same full disk, for a cron job). A run
keeps a reserve in the state directory (``rescue.reserve``, its blocks allocated) and gives it up when a journal
write finds no space. Proven on a real full file system: a small tmpfs, filled by another file.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.ledger import rescue
from runner.testing import fill_disk

SmallDisk = Callable[..., Path]  # the suite's fixture (tests/conftest.py)


def test_the_journal_takes_the_reserved_space_when_the_disk_is_full(tmp_path: Path, small_disk: SmallDisk) -> None:
    disk = small_disk(tmp_path / "disk")
    state = disk / "state"
    state.mkdir()
    assert rescue.reserve(state)
    fill_disk(disk)
    with pytest.raises(OSError):  # the disk is full indeed
        (state / "probe").write_bytes(b"x" * 4096)
    entry = rescue.RescueEntry(key="k" * 20, task_id="task-0123456789", attempt=3, at=1.0)
    assert rescue.append_entry(state, entry), "the paid task's id was not journalled"
    assert rescue.pending_entries(state) == [entry]
    assert not (state / rescue.RESERVE_NAME).exists()  # given up for the journal
    second = rescue.RescueEntry(key="j" * 20, task_id="task-9876543210", attempt=4, at=2.0)
    assert rescue.append_entry(state, second)  # the released space holds many more lines
    assert rescue.pending_entries(state) == [entry, second]


def test_no_line_is_glued_to_a_torn_one_even_once_the_reserve_is_gone(tmp_path: Path) -> None:
    """A write cut short by the full disk leaves part of a line. Whatever comes next — the line retried after the
    reserve was given up, or a later line once space came back with no reserve left — starts on a line of its own,
    entries and their `consumed` lines alike (review: a glued line was reported written and never replayed)."""
    state = tmp_path / "state"
    state.mkdir()
    journal = state / rescue.RESCUE_NAME
    first = rescue.RescueEntry(key="k1", task_id="t-1", attempt=1, at=1.0)
    assert rescue.append_entry(state, first)
    with journal.open("ab") as torn:
        torn.write(b'{"key": "k2", "task_id": "t-')  # what a short write leaves
    second = rescue.RescueEntry(key="k3", task_id="t-3", attempt=3, at=3.0)
    assert rescue.append_entry(state, second)  # no reserve here at all
    assert rescue.pending_entries(state) == [first, second]
    with journal.open("ab") as torn:
        torn.write(b'{"consumed": {"key"')
    rescue.mark_consumed(state, first, at=4.0, outcome="running")
    assert rescue.pending_entries(state) == [second]


def test_the_line_retried_after_the_reserve_is_given_up_is_written(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / rescue.RESERVE_NAME).write_bytes(b"\0" * 10)
    real = rescue._append
    calls: list[int] = []

    def full_once(file: Path, record: dict[str, object]) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(file, record)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rescue, "_append", full_once)
        entry = rescue.RescueEntry(key="k", task_id="t-1", attempt=1, at=1.0)
        assert rescue.append_entry(state, entry)
    assert rescue.pending_entries(state) == [entry] and not (state / rescue.RESERVE_NAME).exists()


def test_the_reserve_is_made_once_and_costs_nothing_when_the_disk_is_full(tmp_path: Path, small_disk: SmallDisk) -> None:
    state = tmp_path / "state"
    state.mkdir()
    assert rescue.reserve(state) and (state / rescue.RESERVE_NAME).stat().st_size == rescue.RESERVE_BYTES
    before = os.stat(state / rescue.RESERVE_NAME).st_mtime_ns
    assert rescue.reserve(state)
    assert os.stat(state / rescue.RESERVE_NAME).st_mtime_ns == before  # found, not written again
    disk = small_disk(tmp_path / "disk")
    fill_disk(disk)
    assert not rescue.reserve(disk)  # no room: nothing is left behind, nothing raised
    assert not (disk / rescue.RESERVE_NAME).exists()


def test_a_sparse_reserve_is_made_again_and_a_file_size_limit_leaves_none(tmp_path: Path) -> None:
    """A reserve copied sparse (``cp --sparse``, a restore) has its size and no blocks: no room at all. Under a
    file size limit the zeros are cut short: no reserve, and none claimed."""
    state = tmp_path / "state"
    state.mkdir()
    with (state / rescue.RESERVE_NAME).open("wb") as sparse:
        sparse.truncate(rescue.RESERVE_BYTES)
    assert (state / rescue.RESERVE_NAME).stat().st_blocks == 0
    assert rescue.reserve(state)
    assert (state / rescue.RESERVE_NAME).stat().st_blocks * 512 >= rescue.RESERVE_BYTES
    limited = tmp_path / "limited"
    limited.mkdir()
    script = ("import resource, sys; from pathlib import Path; from runner.ledger import rescue;"
              " resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000));"
              " print(rescue.reserve(Path(sys.argv[1])), (Path(sys.argv[1]) / rescue.RESERVE_NAME).exists())")
    out = subprocess.run([sys.executable, "-c", script, str(limited)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"], out
