"""Reading the files a manifest names without ever blocking or reading endlessly.

A path in a manifest may name anything: a named pipe (``open`` waits for a writer forever), a
symlink to ``/dev/zero`` (it never ends), a folder; and what it names may change between a look at it
and the open. Every such file (the manifest, its value files, its inputs) is opened one way,
:func:`open_regular`: without blocking, then refused unless what was opened (``fstat``) is a regular
file, so no check-then-open race is left. :func:`read_regular` reads one, at most a limit.
"""

from __future__ import annotations

import errno
import fcntl
import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, overload

__all__ = ["LineTooLong", "NotAFile", "bad_utf8", "open_regular", "read_regular", "utf16_hint"]

_KINDS = {stat.S_IFIFO: "a named pipe (FIFO)", stat.S_IFCHR: "a device", stat.S_IFBLK: "a device",
          stat.S_IFSOCK: "a socket"}
# O_NONBLOCK: the open of a FIFO returns at once (instead of waiting for a writer), and fstat refuses it.
# O_NOCTTY: a terminal opened is never made the controlling one.
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


class NotAFile(OSError):
    """The path (symlinks followed) is a FIFO, a device or a socket: reading it could block or never end."""

    def __init__(self, path: str | Path, mode: int) -> None:
        what = _KINDS.get(stat.S_IFMT(mode), "not a file")
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            what += f" ({os.path.realpath(path)})"
        super().__init__(f"it is {what}, not a regular file")
        self.what = what


def _check(path: str | Path, mode: int) -> None:
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if not stat.S_ISREG(mode):
        raise NotAFile(path, mode)


def regular(path: str | Path) -> None:
    """A first look (``stat``, symlinks followed), so that a device named outright is never opened (opening some
    has effects); the guard is :func:`open_regular`'s ``fstat`` of what it opened, not this."""
    _check(path, os.stat(path).st_mode)


class LineTooLong(OSError):
    """A file of lines with a line longer than its bound: no file of values holds one (a disk image, zeros…)."""


class _LinesBound(io.RawIOBase):
    """A file's bytes, refused (:class:`LineTooLong`) once ``limit`` of them come with no line break: a text reader
    gathers a line whole, so a file of 100 GB with none (a sparse file, zeros) grew the process until memory ran
    out. Looked at a read at a time (8 KiB and more), never a line at a time: the lines still go at C speed."""

    def __init__(self, fd: int, limit: int) -> None:
        self._file = io.FileIO(fd, "r", closefd=True)
        self._limit = limit
        self._run = 0  # bytes since the last line break

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._file.fileno()

    def readinto(self, buffer: Any) -> int:
        n = self._file.readinto(buffer) or 0
        if n:
            chunk = bytes(memoryview(buffer)[:n])
            last = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
            self._run = n - last - 1 if last >= 0 else self._run + n
            if self._run > self._limit:
                raise LineTooLong(f"a line of more than {self._limit >> 20} MiB (no line break in it), which no file of"
                                  " values holds: is it the file you meant?")
        return n

    def close(self) -> None:
        self._file.close()
        super().close()


@overload
def open_regular(path: str | Path) -> io.BufferedReader: ...


@overload
def open_regular(path: str | Path, encoding: str, newline: str | None = None, *,
                 line_max: int | None = None) -> io.TextIOWrapper: ...


def open_regular(
    path: str | Path, encoding: str | None = None, newline: str | None = None, *, line_max: int | None = None
) -> io.BufferedReader | io.TextIOWrapper:
    """The regular file ``path`` (symlinks followed), open for reading: its bytes, or its text with ``encoding``
    (with ``line_max``: a line of more bytes than that raises :class:`LineTooLong` as it is read).

    Anything else is refused without blocking: a FIFO, a device or a socket with :class:`NotAFile`, a folder with
    ``IsADirectoryError``, else the ``OSError`` of ``stat``/``open`` (``FileNotFoundError``, a symlink loop…). The
    path is opened with ``O_NONBLOCK`` and what was opened is looked at (``fstat``): a FIFO or a device put in place
    after any earlier check is refused here, never waited on nor read. ``O_NONBLOCK`` is then cleared for the reads.
    """
    regular(path)
    fd = os.open(path, _OPEN_FLAGS)
    try:
        _check(path, os.fstat(fd).st_mode)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    if encoding is None:  # from here the file object owns the fd (os.fdopen closes it if it cannot make one)
        return os.fdopen(fd, "rb")
    if line_max is not None:
        return io.TextIOWrapper(io.BufferedReader(_LinesBound(fd, line_max)), encoding=encoding, newline=newline)
    return os.fdopen(fd, "r", encoding=encoding, newline=newline)


def read_regular(path: Path, limit: int) -> tuple[bytes, int]:
    """At most ``limit`` bytes of the regular file ``path``, and its size as ``fstat`` tells it.

    Never blocks and never reads endlessly: anything but a regular file is refused (:func:`open_regular`);
    a file whose size passes ``limit`` is not read at all, and one that grows (or whose size lies) is cut at
    ``limit``.
    """
    with open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > limit:
            return b"", size
        return handle.read(limit), size



def bad_utf8(source: str | Path | bytes) -> tuple[int, int, int] | None:
    """``(line, column, byte)`` of the first byte of the file ``source`` (or of these bytes) that is not UTF-8 (from
    1; the column counts bytes), None when there is none: where a text reader's "can't decode byte 0xe9 in position
    3385" is, that position being in the last piece it read, not in the file. A file is read in pieces of 1 MiB."""
    if isinstance(source, bytes):
        return _first_bad(iter((source, b"")))
    with open_regular(source) as handle:
        return _first_bad(iter(lambda: handle.read(1 << 20), None))


def _first_bad(pieces: Iterator[bytes]) -> tuple[int, int, int] | None:
    line, column, carry = 1, 0, b""  # column: bytes of the current line before this piece
    for piece in pieces:
        data = carry + piece
        if not data:
            return None
        try:
            data.decode("utf-8")
            good, bad = len(data), None
        except UnicodeDecodeError as exc:
            cut = piece and exc.reason == "unexpected end of data"  # a character the piece's end cut in two
            good, bad = exc.start, None if cut else exc.start
        end = good if bad is None else bad
        last = data.rfind(b"\n", 0, end)
        line += data.count(b"\n", 0, end)
        column = end - last - 1 if last >= 0 else column + end
        if bad is not None:
            return line, column + 1, data[bad]
        carry = data[good:]
    return None


def utf16_hint(exc: Exception) -> str:
    """What to do about a file that is UTF-16 (Notepad's "Unicode", Excel's "Unicode Text"), said after why it is not
    UTF-8; "" for another error."""
    if not isinstance(exc, UnicodeDecodeError) or exc.start != 0:
        return ""
    if bytes(exc.object[:2]) in (b"\xff\xfe", b"\xfe\xff"):  # UTF-16's byte order mark, which both write
        return "; it looks like UTF-16 (Notepad's \"Unicode\", Excel's \"Unicode Text\"): save it as UTF-8"
    return ""
