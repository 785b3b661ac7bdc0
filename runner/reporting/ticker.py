"""How far a long pass over a batch's jobs is (`runner verify`, `export`, `report`): a line now and then, never
silent for long.

``verify`` read every stored video of a 200k-job batch without a word for 15 s (a batch of real 10 MB videos:
most of an hour), ``export --format hf`` and ``report`` for 36-44 s (bench/ops_scale.py, docs/benchmarks.md). A
:class:`Ticker` is called once a job; it says ``what`` with how many of ``total`` are done every 2 s on a terminal,
every minute elsewhere (a cron log), through the ``say`` it is given (the CLI's: an ``info`` line, dropped by
``-q``). It reads the clock only, never the ledger. ``export`` (jsonl, csv) and ``ledger copy`` said nothing for
11-18 s at 200k jobs, an hf export and a report nothing in their first passes (9.5 s, 6 s): each ticks too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

__all__ = ["Ticker"]

_clock = time.monotonic  # tests move it
T = TypeVar("T")


class Ticker:
    """``what`` (a format with ``{done}`` and ``{total}``) said now and then as the work goes on; ``of`` starts it."""

    def __init__(self, say: Callable[[str], None], what: str, *, tty: bool) -> None:
        self._say, self._what, self._said = say, what, what
        self._every = 2.0 if tty else 60.0
        self.done, self.total = 0, 0
        self._next = 0.0

    def of(self, total: int, what: str | None = None) -> Ticker:
        """Start counting towards ``total``, saying ``what`` this time (None: the ticker's own words)."""
        self.done, self.total, self._said = 0, total, what or self._what
        self._next = _clock() + self._every
        return self

    def __call__(self) -> None:
        """One more done."""
        self.done += 1
        if self.done < self.total and (now := _clock()) >= self._next:
            self._say(self._said.format(done=f"{self.done:,}", total=f"{self.total:,}"))
            self._next = now + self._every

    def over(self, items: Iterable[T], total: int, what: str) -> Iterator[T]:
        """``items`` (``total`` of them), one tick each as it is taken: a pass before the work itself (a report's,
        an export's first reading of the jobs), saying ``what``."""
        tick = self.of(total, what)
        for item in items:
            tick()
            yield item
