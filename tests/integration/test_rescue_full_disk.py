"""A full disk when a paid task's id arrives: the rescue journal still gets the line (review of 2026-12-04).

The ledger could not record an accepted task's id because the disk was full, and the rescue journal's append
failed for the same reason: the id survived only in a log line (on the same full disk, for a cron job). A run
keeps a reserve in the state directory (``rescue.reserve``, its blocks allocated) and gives it up when a journal
write finds no space. Proven on a real full file system: a small tmpfs, filled by another file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.ledger import rescue


@contextlib.contextmanager
def small_disk(where: Path, size: str = "1m") -> Iterator[Path]:
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path) -> None:
    """Write a file until the disk refuses another byte."""
    with (disk / "filler").open("wb", buffering=0) as out:
        block = b"\0" * 65536
        while True:
            try:
                out.write(block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
        while True:  # the last few bytes
            try:
                out.write(b"\0")
            except OSError:
                return


def test_the_journal_takes_the_reserved_space_when_the_disk_is_full(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        state = disk / "state"
        state.mkdir()
        assert rescue.reserve(state)
        fill(disk)
        with pytest.raises(OSError):  # the disk is full indeed
            (state / "probe").write_bytes(b"x" * 4096)
        entry = rescue.RescueEntry(key="k" * 20, task_id="task-0123456789", attempt=3, at=1.0)
        assert rescue.append_entry(state, entry), "the paid task's id was not journalled"
        assert rescue.pending_entries(state) == [entry]
        assert not (state / rescue.RESERVE_NAME).exists()  # given up for the journal
        second = rescue.RescueEntry(key="j" * 20, task_id="task-9876543210", attempt=4, at=2.0)
        assert rescue.append_entry(state, second)  # the released space holds many more lines
        assert rescue.pending_entries(state) == [entry, second]


def test_a_torn_line_left_by_the_failed_write_does_not_swallow_the_retried_one(tmp_path: Path) -> None:
    """A write cut short by the full disk may leave part of a line: the retried line starts on a line of its own."""
    state = tmp_path / "state"
    state.mkdir()
    (state / rescue.RESCUE_NAME).write_bytes(b'{"key": "torn')  # what a short write leaves
    (state / rescue.RESERVE_NAME).write_bytes(b"\0" * 10)
    real = rescue._append
    calls: list[int] = []

    def full_once(file: Path, record: dict[str, object], *, fresh_line: bool = False) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(file, record, fresh_line=fresh_line)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rescue, "_append", full_once)
        entry = rescue.RescueEntry(key="k", task_id="t-1", attempt=1, at=1.0)
        assert rescue.append_entry(state, entry)
    assert rescue.pending_entries(state) == [entry]


def test_the_reserve_is_made_once_and_costs_nothing_when_the_disk_is_full(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    assert rescue.reserve(state) and (state / rescue.RESERVE_NAME).stat().st_size == rescue.RESERVE_BYTES
    before = os.stat(state / rescue.RESERVE_NAME).st_mtime_ns
    assert rescue.reserve(state)
    assert os.stat(state / rescue.RESERVE_NAME).st_mtime_ns == before  # found, not written again
    with small_disk(tmp_path / "disk") as disk:
        fill(disk)
        assert not rescue.reserve(disk)  # no room: nothing is left behind, nothing raised
        assert not (disk / rescue.RESERVE_NAME).exists()
