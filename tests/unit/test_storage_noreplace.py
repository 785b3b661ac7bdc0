"""The rename that never replaces (runner/storage/noreplace.py): renameat2's answers, and the fallback."""

from __future__ import annotations

import ctypes
import errno
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.storage import noreplace
from runner.storage.noreplace import rename_new


def _answering(code: int, calls: list[bytes]) -> Callable[[int, bytes, int, bytes, int], int]:
    """A ``renameat2`` that fails with ``code`` (as libc does: -1 and errno)."""

    def renameat2(olddirfd: int, old: bytes, newdirfd: int, new: bytes, flags: int) -> int:
        calls.append(new)
        ctypes.set_errno(code)
        return -1

    return renameat2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux's")
def test_linux_has_renameat2_and_it_refuses_an_existing_name(tmp_path: Path) -> None:
    """The C library's renameat2 is found; a name taken is refused by the call itself (no check before it)."""
    assert noreplace._renameat2 is not None
    (tmp_path / "a").write_bytes(b"mine")
    (tmp_path / "b").write_bytes(b"theirs")
    assert noreplace._renameat2(-100, bytes(tmp_path / "a"), -100, bytes(tmp_path / "b"), 1) == -1
    assert ctypes.get_errno() == errno.EEXIST
    assert rename_new(tmp_path / "a", tmp_path / "c") and (tmp_path / "c").read_bytes() == b"mine"
    assert (tmp_path / "b").read_bytes() == b"theirs"


@pytest.mark.parametrize("code", [errno.EINVAL, errno.ENOSYS], ids=["EINVAL", "ENOSYS"])
def test_a_file_system_without_it_renames_after_a_check_said_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, code: int,
) -> None:
    """A kernel without renameat2 (ENOSYS) or a file system that cannot refuse in one step (EINVAL): the check and
    the rename of before, and one warning for the process, not one per video."""
    calls: list[bytes] = []
    monkeypatch.setattr(noreplace, "_renameat2", _answering(code, calls))
    monkeypatch.setattr(noreplace, "_warned", False)
    for name in ("a", "b", "taken"):
        (tmp_path / name).write_bytes(name.encode())
    with caplog.at_level(logging.WARNING, logger="runner.storage"):
        assert rename_new(tmp_path / "a", tmp_path / "a2")
        assert rename_new(tmp_path / "b", tmp_path / "b2")
        assert not rename_new(tmp_path / "b2", tmp_path / "taken")
    assert (tmp_path / "a2").read_bytes() == b"a" and (tmp_path / "b2").read_bytes() == b"b"
    assert (tmp_path / "taken").read_bytes() == b"taken"
    assert len(calls) == 2  # the taken name is seen before any rename
    assert [r.getMessage() for r in caplog.records if "RENAME_NOREPLACE" in r.getMessage()] != []
    assert len(caplog.records) == 1


def test_another_error_is_raised_naming_both_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """EACCES, EIO…: the rename did not happen, and the error says which files (never a silent fallback)."""
    monkeypatch.setattr(noreplace, "_renameat2", _answering(errno.EIO, []))
    (tmp_path / "a").write_bytes(b"a")
    with pytest.raises(OSError) as caught:
        rename_new(tmp_path / "a", tmp_path / "b")
    assert caught.value.errno == errno.EIO
    assert caught.value.filename == str(tmp_path / "a") and caught.value.filename2 == str(tmp_path / "b")
    assert (tmp_path / "a").exists() and not (tmp_path / "b").exists()
