"""Rate limiting: a requests-per-minute pacer that backs off on 429.

:class:`RateLimiter` spaces requests evenly at the configured rate (no bursts:
the provider counts requests in a sliding minute, and an even pace is the
fastest one that never trips it). On a 429 it multiplies the rate down and
honours Retry-After; successes bring the rate back up, never past the
configured ceiling. With no configured rate it starts unpaced and learns the
provider's limit from its 429s.

Like TCP's congestion control, recovery has two speeds: below the rate at
which the last 429 came (the *threshold*) the rate climbs back fast (×1.03 a
success); at or above it, slowly (+0.2 % a success), probing for headroom.
Three guards keep one burst of 429s (or a few random ones) from collapsing the
rate: every 429 pauses (Retry-After, or a jittered interval), but the rate is
cut only when 429s are dense — at least ``DENSE`` of the last ``OUTCOMES``
submit outcomes since the last cut (a provider shedding a few random requests
is not a limit to learn); the 429s answering requests already in flight count
as one cut (at most one cut per ``max(1 s, pause)``); and the rate is never cut below
``DECREASE`` × the requests the provider *accepted* in the last minute —
evidence that it admits at least that many. An unknown limit is first
estimated from the accepted rate so far (extrapolated to a minute when the
limiter is younger than that), so one early, random 429 does not pin the rate
to a crawl; further 429s cut an overestimate down within seconds.
"""

from __future__ import annotations

import collections
import math
import random
from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel

__all__ = ["RateLimiter"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# Requests are spaced a hair wider than 60/R so that timer wake-ups that come a
# little early never put R+1 requests inside one sliding minute.
SAFETY = 1.005
DECREASE = 0.7  # multiplicative decrease on 429
FAST = 1.03  # per success, below the threshold
SLOW = 0.002  # relative step per success, at or above the threshold
MIN_RPM = 1.0
WINDOW = 60.0
OUTCOMES = 20  # recent submit outcomes weighed before a cut
DENSE = 4  # 429s among them that mean a limit, not noise


class RateLimiter:
    """Paces calls to ``acquire()`` at ``rpm`` requests per minute (None: unpaced until a 429)."""

    def __init__(
        self,
        rpm: float | None,
        *,
        clock: Clock = anyio.current_time,
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
        self._recent: collections.deque[float] = collections.deque()  # sent, last minute
        self._accepted: collections.deque[float] = collections.deque()  # accepted, last minute
        self._outcomes: collections.deque[bool] = collections.deque(maxlen=OUTCOMES)  # True: a 429
        self._threshold: float | None = rpm
        self._no_cut_until = -math.inf
        self._first_at = math.inf  # first request: how long this limiter has been watching
        self._lock = anyio.Lock()
        self.rate_limited = 0  # 429s seen

    @property
    def interval(self) -> float:
        return 0.0 if self.rate is None else SAFETY * 60.0 / self.rate

    async def acquire(self) -> None:
        """Wait for this request's turn. Callers are served in arrival order."""
        if not self._lock.locked() and max(self._next_at, self._paused_until) <= self._clock():
            # Its turn has come and nobody waits: no lock (the unpaced limiters' every request), one plain yield
            # (a cancelled caller raises there and books nothing: it sends no request). Booked if its turn is still
            # there after the yield (another caller may have taken it meanwhile: then it queues like the others).
            await anyio.lowlevel.checkpoint()
            if not self._lock.locked() and max(self._next_at, self._paused_until) <= self._clock():
                self._book()
                return
        async with self._lock:
            while True:
                now = self._clock()
                start = max(self._next_at, self._paused_until)
                if start <= now:
                    break
                await self._sleep(start - now)
            self._book()

    def ready(self) -> bool:
        """Whether a request may go at once: its turn has come and nobody waits (nothing booked, no await)."""
        return not self._lock.locked() and max(self._next_at, self._paused_until) <= self._clock()

    def take_now(self) -> bool:
        """Book a request at once if :meth:`ready`, never waiting: a submit that joins a group of submits ready
        together (the submit lane waits for the first one only). False, nothing booked, if its turn has not come."""
        if not self.ready():
            return False
        self._book()
        return True

    def _book(self) -> None:
        now = self._clock()
        self._next_at = max(now, self._next_at) + self.interval if self.rate else now
        self._recent.append(now)
        self._first_at = min(self._first_at, now)
        _trim(self._recent, now)

    def on_success(self) -> None:
        """The provider accepted a request: climb back (fast below the threshold, slowly above it)."""
        now = self._clock()
        self._outcomes.append(False)
        self._accepted.append(now)
        _trim(self._accepted, now)
        if self.rate is None:
            return
        ceiling = self.ceiling if self.ceiling is not None else math.inf
        if self._threshold is not None and self.rate < self._threshold:
            rate = min(self._threshold, self.rate * FAST)
        else:
            rate = self.rate + max(0.02, self.rate * SLOW)
        self.rate = min(ceiling, rate)

    def on_rate_limited(self, retry_after: float | None) -> None:
        """A 429: pause for Retry-After (or a jittered guess) and cut the rate once per burst."""
        self.rate_limited += 1
        now = self._clock()
        _trim(self._recent, now)
        _trim(self._accepted, now)
        accepted = len(self._accepted)
        self._outcomes.append(True)
        if now >= self._no_cut_until and sum(self._outcomes) >= DENSE:
            self._outcomes.clear()
            # The provider let through about as many as it accepted in the last minute (a young limiter
            # extrapolates its first seconds; later 429s correct an overshoot): that is its limit as far
            # as we know, and where the fast climb back stops. Only the slow probe goes past it.
            span = min(WINDOW, max(1.0, now - self._first_at))
            observed = max(MIN_RPM, accepted * WINDOW / span)
            self._threshold = observed if self.rate is None else min(self.rate, observed)
            self.rate = max(MIN_RPM, self._threshold * DECREASE, accepted * DECREASE)
            cut = True
        else:
            cut = False
        guess = self.interval if self.rate is not None else 1.0  # unpaced: still wait a moment
        pause = retry_after if retry_after is not None else guess * (1 + self._rng.random())
        if cut:  # the 429s answering requests already on the wire belong to this cut, not to the next one
            self._no_cut_until = now + max(1.0, pause)
        self._paused_until = max(self._paused_until, now + pause)
        self._next_at = max(self._next_at, now + self.interval)


def _trim(times: collections.deque[float], now: float) -> None:
    while times and times[0] <= now - WINDOW:
        times.popleft()
