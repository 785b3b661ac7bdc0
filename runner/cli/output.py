"""Writing results to stdout when the reader may leave early (``runner ls | head``)."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator

__all__ = ["reader_may_leave"]


@contextlib.contextmanager
def reader_may_leave() -> Iterator[None]:
    """A closed pipe on stdout ends the command quietly (exit 0): the reader had what it wanted."""
    try:
        yield
    except BrokenPipeError:
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
