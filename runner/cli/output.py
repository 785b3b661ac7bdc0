"""Writing to stdout and stderr when the reader may leave (``runner ls | head``, a closed terminal).

Two rules, after the Python docs' "Note on SIGPIPE":

* stdout carries results. When its reader leaves, a read-only command has
  nothing more to do: it stops printing and exits 0 (:func:`reader_left`).
  Any other failure to write it (``> file`` on a full disk, ``>/dev/full``) is
  :class:`OutputNotWritten`: the CLI says the output, not the state directory,
  could not be written (:func:`guard_stdout`).
* stderr carries progress and logs. Losing it — a closed pipe, a terminal
  window closed, an ssh session dropped (EIO) — must not stop a run or change
  its exit code: :func:`guard_stderr` puts a stream in front of it that drops
  what can no longer be written, so no print, log handler or live display
  ever raises because of it.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
from collections.abc import Iterator
from typing import Any, NoReturn, TextIO

__all__ = ["DroppingStream", "OutputNotWritten", "guard_stderr", "guard_stdout", "reader_left", "reader_may_leave"]

# A stream in one of these states is gone for good: stop writing to it at all.
_GONE = frozenset({errno.EPIPE, errno.EIO, errno.EBADF, errno.ENXIO, errno.ECONNRESET, errno.ENOTCONN})


def _to_devnull(fd: int) -> None:
    """Point ``fd`` at /dev/null: later writes (and the interpreter's final flush) go nowhere, quietly."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)


def reader_left() -> NoReturn:
    """stdout's reader left: stop printing and exit 0 (the reader had what it wanted)."""
    with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
        _to_devnull(sys.stdout.fileno())
    sys.exit(0)


@contextlib.contextmanager
def reader_may_leave() -> Iterator[None]:
    """A closed pipe on stdout ends the command quietly (exit 0): the reader had what it wanted."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        reader_left()


class _InFront(io.TextIOBase):
    """A text stream in front of another (``stream``): what it does not change is the other's."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self.stream, "encoding", None) or "utf-8")

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self.stream, "errors", None)

    def __getattr__(self, name: str) -> Any:
        # Anything else a library asks of the stream (``mode``, ``name``) is the other's; but not
        # its binary ``buffer``, which would bypass the stream in front (click writes to it when a text
        # stream in front, like rich's FileProxy, reports no encoding).
        if name == "buffer":
            raise AttributeError(name)
        return getattr(self.stream, name)


class DroppingStream(_InFront):
    """A text stream in front of another that never raises on write or flush.

    A write that fails because the other end is gone (EPIPE, EIO…) is dropped, and so is every
    later one (the file descriptor is pointed at /dev/null); any other failure (a full disk
    under a redirected log) drops that write only.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.gone = False

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, ValueError) or (isinstance(exc, OSError) and exc.errno in _GONE):
            self.gone = True
            with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
                _to_devnull(self.stream.fileno())

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                self.stream.write(text)
            except (OSError, ValueError) as exc:
                self._failed(exc)
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except (OSError, ValueError) as exc:
                self._failed(exc)

    def isatty(self) -> bool:
        if self.gone:
            return False
        try:
            return self.stream.isatty()
        except (OSError, ValueError):
            return False


def guard_stderr() -> None:
    """Put a :class:`DroppingStream` in front of ``sys.stderr`` (once)."""
    if not isinstance(sys.stderr, DroppingStream) and sys.stderr is not None:
        sys.stderr = DroppingStream(sys.stderr)


class OutputNotWritten(OSError):
    """A write to stdout failed, and not because its reader left: the results are incomplete (a full disk)."""


class _ResultStream(_InFront):
    """stdout, with a failed write raised as :class:`OutputNotWritten` (a closed pipe stays BrokenPipeError)."""

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputNotWritten(exc.errno, exc.strerror) from exc

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputNotWritten(exc.errno, exc.strerror) from exc

    def isatty(self) -> bool:
        return self.stream.isatty()


def guard_stdout() -> None:
    """Put a stream in front of ``sys.stdout`` whose failed writes say they were stdout's (once)."""
    if not isinstance(sys.stdout, _ResultStream) and sys.stdout is not None:
        sys.stdout = _ResultStream(sys.stdout)
