"""The rate limiter against a provider that admits L requests per sliding minute and says nothing else.

No Retry-After, constant demand (every request is retried until admitted): after a learning
period, the limiter must keep the provider busy near its limit and mostly stop hitting it. A
limiter that learns a limit only to climb past it again answers most requests with 429s (it did:
88 % of requests at L=30 before the fix).
"""

from __future__ import annotations

import collections
import random
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from runner.engine.ratelimit import RateLimiter


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


def drive(limit: int, *, ceiling: float | None, minutes: float, learn: float = 3.0) -> tuple[float, float]:
    """Run the limiter against a sliding-window provider; (share of 429s, admitted per minute) after ``learn`` min."""
    clock = FakeTime()
    limiter = RateLimiter(ceiling, clock=clock, sleep=clock.sleep, rng=random.Random(7))
    window: collections.deque[float] = collections.deque()
    start = clock.now
    counted = {"ok": 0, "429": 0}

    async def run() -> None:
        while clock.now < start + 60 * (learn + minutes):
            await limiter.acquire()
            now = clock.now
            while window and window[0] <= now - 60:
                window.popleft()
            admitted = len(window) < limit
            if admitted:
                window.append(now)
                limiter.on_success()
            else:
                limiter.on_rate_limited(None)
            if now >= start + 60 * learn:
                counted["ok" if admitted else "429"] += 1

    anyio.run(run)
    sent = counted["ok"] + counted["429"]
    return counted["429"] / sent, counted["ok"] / minutes


@pytest.mark.parametrize("limit", [30, 120, 600])
@pytest.mark.parametrize("ceiling", [None, 10_000.0])
def test_a_learned_limit_is_kept_not_hammered(limit: int, ceiling: float | None) -> None:
    """Unknown limit (or a configured rate far above it): ≤ 10 % 429s and ≥ 80 % of the limit admitted."""
    share_429, per_minute = drive(limit, ceiling=ceiling, minutes=10)
    assert share_429 <= 0.10, f"{share_429:.0%} of requests answered 429 at a limit of {limit}/min"
    assert per_minute >= 0.8 * limit, f"{per_minute:.0f}/min admitted of {limit}/min"


class _CountingLock:
    """Stands in for the limiter's lock: counts the acquisitions."""

    def __init__(self) -> None:
        self.real = anyio.Lock()
        self.taken = 0

    def locked(self) -> bool:
        return self.real.locked()

    async def __aenter__(self) -> None:
        self.taken += 1
        await self.real.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.real.release()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_request_whose_turn_has_come_takes_no_lock(anyio_backend: str) -> None:
    """The unpaced submit and poll limiters are asked once a job each: a request whose turn has come (no rate, no
    pause, nobody waiting) is booked at once, with one yield to the loop and no lock; a paused limiter still serves its callers in arrival order through the lock."""
    clock = FakeTime()
    limiter = RateLimiter(None, clock=clock, sleep=clock.sleep, rng=random.Random(1))
    lock = _CountingLock()
    limiter._lock = lock  # type: ignore[assignment]
    for _ in range(20):
        await limiter.acquire()
    assert lock.taken == 0
    limiter.on_rate_limited(2.0)
    before = clock.now
    await limiter.acquire()
    assert lock.taken == 1 and clock.now >= before + 2.0


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_free_turn_is_one_plain_checkpoint(anyio_backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unpaced request (twice a job) yields once, through ``checkpoint()``: no shielded cancel scope, no separate
    look for a cancellation first (each costs a ``current_task()`` and more, on the loop's hot path)."""
    calls: list[str] = []
    for name in ("checkpoint_if_cancelled", "cancel_shielded_checkpoint", "checkpoint"):
        real = getattr(anyio.lowlevel, name)

        async def counted(real: Any = real, name: str = name) -> None:
            calls.append(name)
            await real()

        monkeypatch.setattr(anyio.lowlevel, name, counted)
    clock = FakeTime()
    limiter = RateLimiter(None, clock=clock, sleep=clock.sleep, rng=random.Random(1))
    for _ in range(5):
        await limiter.acquire()
    assert calls == ["checkpoint"] * 5


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_a_cancelled_caller_books_no_request(anyio_backend: str) -> None:
    """A caller cancelled before its turn is looked at sends nothing: it must not use up a place in the
    window (the next caller would wait for a request that never went out)."""
    clock = FakeTime()
    limiter = RateLimiter(60, clock=clock, sleep=clock.sleep, rng=random.Random(1))
    with anyio.CancelScope() as scope:
        scope.cancel()
        await limiter.acquire()
    before = clock.now
    await limiter.acquire()  # the first real request: at once
    assert clock.now == before
