"""A video an export or a report copies (across devices, where no hard link goes) is on the disk before its name."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from runner.storage import local


def test_a_copy_is_fsynced_before_it_takes_its_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The copy was renamed into place unsynced: after a power cut the export's metadata.jsonl (fsynced, written
    after it) listed a video the disk held empty or cut short, a half-written export taken as whole."""
    source = tmp_path / "stored.mp4"
    source.write_bytes(b"video" * 1000)
    dest = tmp_path / "export" / "cat.mp4"
    steps: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def no_link(src: object, dst: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    def fsync(fd: int) -> None:
        steps.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: object, dst: object) -> None:
        steps.append(("replace", str(src)))
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(local.os, "link", no_link)
    monkeypatch.setattr(local.os, "fsync", fsync)
    monkeypatch.setattr(local.os, "replace", replace)
    assert local.link_or_copy(source, dest) == "copied"
    assert dest.read_bytes() == source.read_bytes()
    [(_, tmp)] = [step for step in steps if step[0] == "replace"]
    assert ("fsync", tmp) in steps and steps.index(("fsync", tmp)) < steps.index(("replace", tmp)), steps


def test_a_link_planted_at_the_temporary_name_is_never_written_through(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The temporary name (``.NAME.link-PID``) is guessable: the copy opened whatever stood there and wrote through
    a symbolic link planted at it into its target."""
    source = tmp_path / "stored.mp4"
    source.write_bytes(b"video" * 1000)
    victim = tmp_path / "ledger.db"
    victim.write_bytes(b"the ledger")
    dest = tmp_path / "export" / "cat.mp4"
    dest.parent.mkdir()
    os.symlink(victim, dest.with_name(f".cat.mp4.link-{os.getpid()}"))

    def no_link(src: object, dst: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(local.os, "link", no_link)
    assert local.link_or_copy(source, dest) == "copied"
    assert victim.read_bytes() == b"the ledger" and dest.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["cat.mp4"]
