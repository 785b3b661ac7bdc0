"""Reading the files a manifest names without ever blocking or reading endlessly.

A path in a manifest may name anything: a named pipe (``open`` waits for a writer forever), a
symlink to ``/dev/zero`` (it never ends), a folder. :func:`regular` says what a path (symlinks
followed) is before anything opens it; :func:`read_regular` reads a regular file, at most a limit.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

__all__ = ["NotAFile", "read_regular", "regular"]

_KINDS = {stat.S_IFIFO: "a named pipe (FIFO)", stat.S_IFCHR: "a device", stat.S_IFBLK: "a device",
          stat.S_IFSOCK: "a socket"}
# O_NONBLOCK: a FIFO put in place after the stat cannot block the open (fstat refuses it after).
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)


class NotAFile(OSError):
    """The path (symlinks followed) is a FIFO, a device or a socket: reading it could block or never end."""

    def __init__(self, path: Path, mode: int) -> None:
        what = _KINDS.get(stat.S_IFMT(mode), "not a file")
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            what += f" ({os.path.realpath(path)})"
        super().__init__(f"it is {what}, not a regular file")
        self.what = what


def _check(path: Path, mode: int) -> None:
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if not stat.S_ISREG(mode):
        raise NotAFile(path, mode)


def regular(path: Path) -> os.stat_result:
    """``path``'s stat (symlinks followed) if it is a regular file; ``IsADirectoryError``, :class:`NotAFile` or
    the ``OSError`` of ``stat`` (``FileNotFoundError``, a symlink loop…) if not."""
    info = os.stat(path)
    _check(path, info.st_mode)
    return info


def read_regular(path: Path, limit: int) -> tuple[bytes, int]:
    """At most ``limit`` bytes of the regular file ``path``, and its size as ``fstat`` tells it.

    Never blocks and never reads endlessly: anything but a regular file is refused as :func:`regular`
    does, before it is opened and again after (by ``fstat``); a file whose size passes ``limit`` is
    not read at all, and one that grows (or whose size lies) is cut at ``limit``.
    """
    regular(path)  # a device is never opened (opening some has effects)
    fd = os.open(path, _OPEN_FLAGS)
    try:
        info = os.fstat(fd)
        _check(path, info.st_mode)
        if info.st_size > limit:
            return b"", info.st_size
        blocks: list[bytes] = []
        got = 0
        while got < limit:
            block = os.read(fd, min(1 << 20, limit - got))
            if not block:
                break
            blocks.append(block)
            got += len(block)
        return b"".join(blocks), info.st_size
    finally:
        os.close(fd)
