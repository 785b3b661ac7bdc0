"""The parts the submit lane's grouped write-aheads rely on: how many slots are free now (RunState.free_slots)
and a rate limiter that books a request at once only when its turn has come (RateLimiter.take_now)."""

from __future__ import annotations

import pytest

from runner.engine import RunState
from runner.engine.ratelimit import RateLimiter

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_free_slots_counts_held_foreign_and_in_doubt_slots() -> None:
    clock = Clock()
    state = RunState(concurrency=5, clock=clock)
    state.resume(running=["r"], foreign=1, spent_usd=0.0, doubts={"d": clock.now + 10})
    assert state.free_slots == 2
    state.submitting("a", 0.5)
    assert state.free_slots == 1 and state.has_slot
    clock.now += 11  # the in-doubt job's hold is over: its slot frees
    assert state.free_slots == 2


async def test_take_now_books_only_a_request_whose_turn_has_come() -> None:
    clock = Clock()
    paced = RateLimiter(60.0, clock=clock)
    assert paced.ready() and paced.take_now()
    assert not paced.ready() and not paced.take_now()  # the next turn is a second away: nothing booked
    clock.now += 1.01
    assert paced.take_now()
    unpaced = RateLimiter(None, clock=clock)
    assert all(unpaced.take_now() for _ in range(50))  # no rate: every request at once
    unpaced.on_rate_limited(retry_after=2.0)
    assert not unpaced.take_now()  # paused after a 429
    clock.now += 2.0
    assert unpaced.take_now()
