"""The engine's clock: the event loop's time, looked up once.

``anyio.current_time()`` asks sniffio which library runs, then its backend, on every read; the engine
reads the clock some thirty times a job. :class:`LoopClock` resolves the running loop's own clock on
its first read (asyncio: ``loop.time``; any other library: ``anyio.current_time``, e.g. trio's, whose
test clock may be virtual) and calls it directly afterwards. One clock serves one event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import anyio

__all__ = ["LoopClock"]


class LoopClock:
    """``anyio.current_time``, resolved on the first read inside the running event loop."""

    __slots__ = ("_now",)

    def __init__(self) -> None:
        self._now: Callable[[], float] | None = None

    def __call__(self) -> float:
        now = self._now
        if now is None:
            try:
                now = asyncio.get_running_loop().time  # what anyio.current_time() returns on asyncio
            except RuntimeError:  # not asyncio (trio): anyio asks it
                now = anyio.current_time
            self._now = now
        return now()
