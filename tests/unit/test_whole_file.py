"""whole_file: an export's or a report's file is written whole or not at all (OS sweep, 2026-12-05)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from runner.reporting import whole_file as module
from runner.reporting.whole_file import whole_file


def _temporaries(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if ".tmp-" in path.name)


def test_a_stop_halfway_leaves_the_earlier_file_and_no_temporary_one(tmp_path: Path) -> None:
    """Ctrl-C or SIGTERM (the CLI raises them as exceptions) in the middle of an export."""
    out = tmp_path / "out.jsonl"
    out.write_text("earlier\n", encoding="utf-8")
    with pytest.raises(KeyboardInterrupt), whole_file(out) as stream:
        stream.write("half a li")
        raise KeyboardInterrupt
    assert out.read_text(encoding="utf-8") == "earlier\n" and _temporaries(tmp_path) == []


def test_a_write_the_disk_refuses_names_the_file_asked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out.csv"

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(module.os, "fsync", full)
    with pytest.raises(OSError) as raised, whole_file(out) as stream:
        stream.write("row\n")
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(out)
    assert not out.exists() and _temporaries(tmp_path) == []


def test_an_error_naming_another_file_is_left_as_it_is(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as raised, whole_file(tmp_path / "out.jsonl"):
        (tmp_path / "video.mp4").read_bytes()
    assert raised.value.filename == str(tmp_path / "video.mp4")


def test_a_link_named_by_the_operator_is_followed_and_kept(tmp_path: Path) -> None:
    target = tmp_path / "real.jsonl"
    target.write_text("old\n", encoding="utf-8")
    os.chmod(target, 0o600)
    link = tmp_path / "latest.jsonl"
    link.symlink_to(target)
    with whole_file(link) as stream:
        stream.write("new\n")
    assert link.is_symlink() and target.read_text(encoding="utf-8") == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_in_a_folder_runner_owns_a_link_is_replaced_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("not runner's\n", encoding="utf-8")
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "README.md").symlink_to(outside)
    with whole_file(folder / "README.md", follow=False) as stream:
        stream.write("card\n")
    assert not (folder / "README.md").is_symlink() and (folder / "README.md").read_text(encoding="utf-8") == "card\n"
    assert outside.read_text(encoding="utf-8") == "not runner's\n"


def test_a_device_is_written_in_place_never_replaced(tmp_path: Path) -> None:
    """``--to /dev/stdout``, a FIFO: there is no earlier file to keep, and a device node is never renamed over."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        with whole_file(fifo) as stream:
            stream.write("row\n")
        assert os.read(reader, 100) == b"row\n"
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and _temporaries(tmp_path) == []


@pytest.mark.parametrize("follow", [True, False])
def test_a_link_planted_at_the_temporary_name_is_never_written_through(tmp_path: Path, follow: bool) -> None:
    """The temporary name was predictable (``.NAME.tmp-PID``) and opened with a plain ``open("w")``: a link planted
    there (in an export folder others can write to) was followed, and the file it named — a ledger.db — emptied and
    overwritten with the export, then the link renamed onto the export's name."""
    victim = tmp_path / "ledger.db"
    victim.write_bytes(b"SQLite format 3\x00 the ledger")
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / f".out.jsonl.tmp-{os.getpid()}").symlink_to(victim)
    with whole_file(folder / "out.jsonl", follow=follow) as stream:
        stream.write("row\n")
    assert victim.read_bytes() == b"SQLite format 3\x00 the ledger"
    assert not (folder / "out.jsonl").is_symlink() and (folder / "out.jsonl").read_text(encoding="utf-8") == "row\n"
