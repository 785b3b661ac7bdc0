"""Rate limiting: a requests-per-minute pacer that backs off on 429.

:class:`RateLimiter` spaces requests evenly at the configured rate (no bursts:
the provider counts requests in a sliding minute, and an even pace is the
fastest one that never trips it). On a 429 it multiplies the rate down and
honours Retry-After; every success nudges the rate back up (AIMD), never past
the configured ceiling. With no configured rate it starts unpaced and learns
the provider's limit from the first 429s.
"""

from __future__ import annotations

import collections
import math
import random
import time
from collections.abc import Awaitable, Callable

import anyio

__all__ = ["RateLimiter"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# Requests are spaced a hair wider than 60/R so that timer wake-ups that come a
# little early never put R+1 requests inside one sliding minute.
SAFETY = 1.005
DECREASE = 0.7  # multiplicative decrease on 429
MIN_RPM = 1.0


class RateLimiter:
    """Paces calls to ``acquire()`` at ``rpm`` requests per minute (None: unpaced until a 429)."""

    def __init__(
        self,
        rpm: float | None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.ceiling = rpm
        self.rate: float | None = rpm
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._next_at = -math.inf  # earliest time the next request may go
        self._paused_until = -math.inf
        self._recent: collections.deque[float] = collections.deque()
        self._lock = anyio.Lock()
        self.rate_limited = 0  # 429s seen

    @property
    def interval(self) -> float:
        return 0.0 if self.rate is None else SAFETY * 60.0 / self.rate

    async def acquire(self) -> None:
        """Wait for this request's turn. Callers are served in arrival order."""
        async with self._lock:
            while True:
                now = self._clock()
                start = max(self._next_at, self._paused_until)
                if start <= now:
                    break
                await self._sleep(start - now)
            now = self._clock()
            self._next_at = max(now, self._next_at) + self.interval if self.rate else now
            self._recent.append(now)
            while self._recent and self._recent[0] <= now - 60.0:
                self._recent.popleft()

    def on_success(self) -> None:
        """Additive increase: about one extra request per minute per minute of success."""
        if self.rate is None:
            return
        step = max(0.02, self.rate * 0.002)
        ceiling = self.ceiling if self.ceiling is not None else math.inf
        self.rate = min(ceiling, self.rate + step)

    def on_rate_limited(self, retry_after: float | None) -> None:
        """Multiplicative decrease, and a pause of Retry-After (or a jittered guess)."""
        self.rate_limited += 1
        now = self._clock()
        if self.rate is None:
            # Learn: the provider let through about as many as we sent in the last minute.
            observed = len([t for t in self._recent if t > now - 60.0])
            self.rate = max(MIN_RPM, observed * DECREASE)
        else:
            self.rate = max(MIN_RPM, self.rate * DECREASE)
        pause = retry_after if retry_after is not None else self.interval * (1 + self._rng.random())
        self._paused_until = max(self._paused_until, now + pause)
        self._next_at = max(self._next_at, now + self.interval)
