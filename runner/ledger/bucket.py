"""The rate bucket of a one-process ledger (SQLite, memory): :meth:`LedgerBackend.take_token` in memory.

One runner holds a SQLite ledger (its lock), so its bucket needs no database: a token bucket of one
token, refilled at the rate asked, on this process's monotonic clock. A token is *reserved*: when
the bucket is empty the caller gets the seconds until its token is due and the bucket goes into
debt, so callers are served in the order they asked and never poll. The PostgreSQL ledger keeps the
same bucket in a table, on the server's clock (:mod:`runner.ledger.postgres.limits`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["CAPACITY", "TokenBuckets"]

CAPACITY = 1.0  # tokens a bucket holds: no bursts, as the engine's own pacer


class TokenBuckets:
    """Named buckets; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # name: (tokens, at)

    def take(self, name: str, per_minute: float) -> float:
        if per_minute <= 0:
            raise ValueError(f"a rate bucket needs a positive rate, not {per_minute}")
        rate = per_minute / 60.0
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.get(name, (CAPACITY, now))
            tokens = min(CAPACITY, tokens + max(0.0, now - at) * rate) - 1.0
            self._buckets[name] = (tokens, max(now, at))
        return max(0.0, -tokens / rate)
