"""A FIFO put in place of a file between the check of it and the open of it, at a known moment; and a call that
must not block on it, run so that a block fails the test instead of hanging it.

The swap is made by the open itself (``open``, ``Path.open``, ``os.open``): every check of the path before it (a
``stat``) saw the regular file, and right before the open the path becomes a FIFO (``os.mkfifo`` + ``os.replace``).
A reader that trusted the check and opens the path with a plain ``open()`` waits for a writer forever.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

__all__ = ["no_block", "swap_before_open"]


def swap_before_open(monkeypatch: pytest.MonkeyPatch, path: Path) -> list[bool]:
    """Make ``path`` a FIFO right before it is first opened (``open``, ``Path.open``, ``os.open``), after every check
    of it; the list returned gets an entry once it is swapped."""
    swapped: list[bool] = []

    def swapping(real: Callable[..., Any]) -> Callable[..., Any]:
        def opening(target: Any, *args: Any, **kwargs: Any) -> Any:
            if not swapped and isinstance(target, str | os.PathLike) and os.fspath(target) == str(path):
                swapped.append(True)
                fifo = path.with_name(f".{path.name}.fifo")
                os.mkfifo(fifo)
                os.replace(fifo, path)
            return real(target, *args, **kwargs)
        return opening

    for module, name in ((os, "open"), (io, "open"), (builtins, "open")):
        monkeypatch.setattr(module, name, swapping(getattr(module, name)))
    return swapped


def no_block(call: Callable[[], Any], fifo: Path, seconds: float = 5.0) -> BaseException | None:
    """What ``call`` raised (None if it returned), run in a thread; when it is still running after ``seconds``
    (blocked opening or reading the FIFO at ``fifo``), a writer opens and closes the FIFO so it ends, and the
    test fails."""
    raised: list[BaseException | None] = []

    def target() -> None:
        try:
            call()
        except BaseException as exc:
            raised.append(exc)
        else:
            raised.append(None)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        with contextlib.suppress(OSError):  # a writer that leaves at once: a blocked open returns, the read ends
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(seconds)
        pytest.fail(f"blocked on the FIFO {fifo} for {seconds} s (a plain open() waits for a writer forever)")
    return raised[0]
