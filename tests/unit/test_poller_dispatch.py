"""The poller sends the polls that are due together in one go (issue 14): counted in event-loop rounds, not
time, so the test does not depend on the machine. A loop busy with a wave of downloads and submits made a
round last milliseconds: one round a poll put the first polls of a wave of 40 tasks, due within 26 ms, on the
wire over 100 ms. After a 429 they go one a round again, so an answer can pause the rest."""

from __future__ import annotations

import random
from typing import Any, cast

import anyio
import anyio.lowlevel
import pytest

from runner.engine import events as ev
from runner.engine.policy import EngineConfig
from runner.engine.ratelimit import RateLimiter
from runner.engine.sources import Watch
from runner.engine.sources.poller import Poller
from runner.engine.state import RunState

pytestmark = pytest.mark.anyio

DUE = 20


class _Blocking:
    """A client whose task-result never answers: it records when each poll went out, in loop rounds."""

    def __init__(self, rounds: list[int]) -> None:
        self.rounds = rounds
        self.sent: list[int] = []

    async def task_result(self, task_id: str) -> Any:
        self.sent.append(len(self.rounds))
        await anyio.sleep_forever()


async def _rounds_to_send(*, rate_limited: bool) -> list[int]:
    """The loop round in which each of DUE polls, all already due when the poller starts, was sent."""
    rounds: list[int] = []
    client = _Blocking(rounds)
    limiter = RateLimiter(None, rng=random.Random(1))
    if rate_limited:  # a 429 earlier in the run, its pause over: the rate stays unpaced
        limiter.on_rate_limited(0.0)
    config = EngineConfig(manifest="m", concurrency=40, rpm=None, poll_rpm=None)
    send_watch, receive_watch = anyio.create_memory_object_stream[Watch](1)
    poller = Poller(cast(Any, None), cast(Any, client), config, RunState(concurrency=40, budget_usd=None),
                    ev.NullReporter(), cast(Any, None), receive_watch, limiter=limiter, clock=anyio.current_time,
                    wall=anyio.current_time, rng=random.Random(1))
    now = anyio.current_time()
    for i in range(DUE):
        poller.follow(Watch(f"k{i}", f"t{i}", now - 1.0))

    async def count_rounds() -> None:
        while len(client.sent) < DUE:
            rounds.append(len(client.sent))
            await anyio.lowlevel.checkpoint()

    async def no_updates(update: Any) -> None:
        raise AssertionError("no poll answers here")

    with send_watch, anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(poller.run, no_updates)
            await count_rounds()
            tg.cancel_scope.cancel()
    return client.sent


async def test_polls_due_together_go_out_in_the_same_loop_round() -> None:
    sent = await _rounds_to_send(rate_limited=False)
    assert len(sent) == DUE
    assert max(sent) - min(sent) <= 1, sent  # before: one round a poll (DUE rounds)


async def test_after_a_429_polls_due_together_go_one_a_round() -> None:
    sent = await _rounds_to_send(rate_limited=True)
    assert len(sent) == DUE
    assert max(sent) - min(sent) >= DUE - 2, sent
