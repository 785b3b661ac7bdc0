"""Repeated identical log lines, collapsed: a cron log shows one line and a count, not 37 copies.

:class:`RepeatCollapser` stands in front of the handler that writes. The first record with a given level
and text is written; the same text again within ``window`` seconds of it is counted, not written. The
count is written as ``<text> (repeated N times in the last S s)`` when the window is over (at the next
line logged after it) or when the run ends (:meth:`RepeatCollapser.flush_repeats`, also on close).
Debug lines (``-v``) are never collapsed, nor the progress lines, which do not go through logging.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["DEFAULT_WINDOW", "RepeatCollapser"]

DEFAULT_WINDOW = 60.0


@dataclass(slots=True)
class _Burst:
    record: logging.LogRecord
    first: float
    last: float
    count: int = 0  # copies not written


class RepeatCollapser(logging.Handler):
    """Writes through ``inner``, collapsing identical records of ``level`` or above within ``window`` seconds."""

    def __init__(self, inner: logging.Handler, *, window: float = DEFAULT_WINDOW,
                 clock: Callable[[], float] = time.monotonic, level: int = logging.INFO) -> None:
        super().__init__()
        self.inner = inner
        self.window = window
        self.clock = clock
        self.collapse_from = level
        self._bursts: dict[tuple[int, str, str], _Burst] = {}

    def emit(self, record: logging.LogRecord) -> None:
        now = self.clock()
        self._expire(now)
        if record.levelno >= self.collapse_from:
            key = (record.levelno, record.name, record.getMessage())
            burst = self._bursts.get(key)
            if burst is not None:
                burst.count += 1
                burst.last = now
                return
            self._bursts[key] = _Burst(record, now, now)
        self.inner.handle(record)

    def _expire(self, now: float) -> None:
        for key, burst in list(self._bursts.items()):
            if now - burst.first >= self.window:
                del self._bursts[key]
                self._summarise(burst)

    def _summarise(self, burst: _Burst) -> None:
        if not burst.count:
            return
        seconds = max(1, round(burst.last - burst.first))
        times = "once more" if burst.count == 1 else f"{burst.count} times"
        summary = logging.makeLogRecord(burst.record.__dict__)
        summary.msg = f"{burst.record.getMessage()} (repeated {times} in the last {seconds} s)"
        summary.args = None
        summary.exc_info = None
        summary.created = time.time()
        self.inner.handle(summary)

    def flush_repeats(self) -> None:
        """Write the counts of every burst still open (the run is ending)."""
        bursts, self._bursts = self._bursts, {}
        for burst in bursts.values():
            self._summarise(burst)

    def setFormatter(self, fmt: logging.Formatter | None) -> None:
        self.inner.setFormatter(fmt)

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        try:
            self.flush_repeats()
        finally:
            self.inner.close()
            super().close()
