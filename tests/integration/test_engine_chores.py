"""A chore the service hands the engine (saving the review decisions queued during a run is one) runs every few
seconds of the run, on its loop, and never while a POST is on the wire: never between a job's write-ahead and the
record of its answer. A chore that raises is logged and dropped; the run goes on."""
from __future__ import annotations

from collections.abc import Callable

import anyio
import httpx
import pytest

from runner.engine import Engine, StopReason
from runner.engine.chores import Chore
from runner.jobs import JobState
from runner.simulator import sim_transport

from engine_rig import Rig, engine_config, guard, loop_wall, make_jobs

pytestmark = pytest.mark.anyio

POST_SECONDS = 4.0  # each submit's answer takes this long (a slow gateway): POSTs are on the wire most of the run


class SlowPosts(httpx.AsyncBaseTransport):
    """The simulator, each submit answered ``POST_SECONDS`` later (the task created at once)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        answer = await self.inner.handle_async_request(request)
        if request.method == "POST":
            await anyio.sleep(POST_SECONDS)
        return answer


def slow_rig(rig_factory: Callable[..., Rig]) -> Rig:
    first = rig_factory()
    rig = rig_factory(transport=SlowPosts(sim_transport(first.sim)), state=first.state.parent / "slow")
    rig.sim = first.sim
    return rig


async def test_a_chore_runs_during_the_run_and_never_while_a_post_is_on_the_wire(
        rig_factory: Callable[..., Rig]) -> None:
    rig = slow_rig(rig_factory)
    rig.plan(make_jobs(12))
    seen: list[int] = []  # jobs `submitting` (written ahead, their answer not recorded) at each call

    def chore() -> None:
        seen.append(rig.ledger.counts("t")[JobState.SUBMITTING])

    config = engine_config(manifest="t", concurrency=2, rpm=None, poll_rpm=None)
    engine = Engine(rig.ledger, rig.client, config, wall=loop_wall(), chores=[Chore("a test's chore", chore, 0.5)])
    with guard(60):
        result = await engine.run()
    assert result.reason is StopReason.COMPLETE and rig.counts()[JobState.DONE] == 12
    assert len(seen) >= 3, seen  # it ran while the run did (12 tasks, 45 s each on virtual time, two at once)
    assert seen == [0] * len(seen), seen


async def test_a_chore_that_raises_is_dropped_and_the_run_goes_on(
        rig_factory: Callable[..., Rig], caplog: pytest.LogCaptureFixture) -> None:
    rig = rig_factory()
    rig.plan(make_jobs(3))
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise RuntimeError("a bug")

    config = engine_config(manifest="t", concurrency=1, rpm=None, poll_rpm=None)
    engine = Engine(rig.ledger, rig.client, config, wall=loop_wall(), chores=[Chore("the broken chore", broken, 0.5)])
    with guard(60):
        result = await engine.run()
    assert result.reason is StopReason.COMPLETE and rig.counts()[JobState.DONE] == 3
    assert calls == [1]
    assert any("the broken chore failed" in r.getMessage() for r in caplog.records), caplog.text
