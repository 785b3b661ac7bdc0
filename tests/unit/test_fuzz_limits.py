"""The rate limiter, fuzzed: random successes, 429s and Retry-Afters on a simulated clock.

Properties a user relies on: a configured rate is never exceeded in any sliding
minute; the rate stays within [MIN_RPM, ceiling]; a few random 429s do not
collapse it; a dense run of 429s does slow it down.
"""

from __future__ import annotations

import random

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.engine.ratelimit import MIN_RPM, RateLimiter


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


events = st.lists(
    st.one_of(
        st.just(("ok", None)),
        st.tuples(st.just("429"), st.one_of(st.none(), st.floats(0, 5))),
        st.tuples(st.just("wait"), st.floats(0, 30)),
    ),
    max_size=200,
)


@settings(max_examples=120, deadline=None)
@given(rpm=st.one_of(st.none(), st.integers(1, 2000)), script=events, seed=st.integers(0, 2**16))
def test_rate_stays_within_bounds_and_configured_rate_is_never_exceeded(
    rpm: int | None, script: list[tuple[str, float | None]], seed: int
) -> None:
    """Whatever the provider answers, the pace never passes the configured rate and never drops below MIN_RPM."""
    clock = FakeTime()
    limiter = RateLimiter(rpm, clock=clock, sleep=clock.sleep, rng=random.Random(seed))
    sent: list[float] = []

    async def drive() -> None:
        for kind, value in script:
            if kind == "wait":
                clock.now += value or 0.0
                continue
            await limiter.acquire()
            sent.append(clock.now)
            if kind == "ok":
                limiter.on_success()
            else:
                limiter.on_rate_limited(value)
            if limiter.rate is not None:
                assert limiter.rate >= MIN_RPM
                if rpm is not None:
                    assert limiter.rate <= rpm

    anyio.run(drive)
    if rpm is not None:
        j = 0
        for i, t in enumerate(sent):
            while sent[j] <= t - 60.0:
                j += 1
            assert i - j + 1 <= rpm, f"{i - j + 1} requests in one sliding minute at {rpm} rpm"


def _run(limiter: RateLimiter, clock: FakeTime, outcomes: list[bool]) -> None:
    async def drive() -> None:
        for limited in outcomes:
            await limiter.acquire()
            if limited:
                limiter.on_rate_limited(1.0)
            else:
                limiter.on_success()

    anyio.run(drive)


def test_sparse_random_429s_do_not_collapse_a_configured_rate() -> None:
    """One 429 in 25 (a provider shedding load at random) leaves the rate near the configured one."""
    clock = FakeTime()
    limiter = RateLimiter(600, clock=clock, sleep=clock.sleep, rng=random.Random(1))
    _run(limiter, clock, [i % 25 == 24 for i in range(2000)])
    assert limiter.rate is not None and limiter.rate >= 0.9 * 600, limiter.rate


def test_an_early_random_429_does_not_pin_an_unknown_rate_to_a_crawl() -> None:
    """Unpaced at start, a lone 429 after two requests only pauses: the limiter stays unpaced."""
    clock = FakeTime()
    limiter = RateLimiter(None, clock=clock, sleep=clock.sleep, rng=random.Random(1))
    _run(limiter, clock, [False, False, True, False, False])
    assert limiter.rate is None


def test_dense_429s_teach_an_unknown_limit_and_slow_down() -> None:
    """A burst answered mostly by 429s sets a rate, and the pace slows below the burst's."""
    clock = FakeTime()
    limiter = RateLimiter(None, clock=clock, sleep=clock.sleep, rng=random.Random(1))
    _run(limiter, clock, [False] * 20 + [True] * 10)
    assert limiter.rate is not None and limiter.rate < 60 * 20, limiter.rate
    assert limiter.rate_limited == 10
