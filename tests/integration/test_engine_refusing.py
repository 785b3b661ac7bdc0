"""A provider that keeps refusing submits with 500 CREATE_TASK_FAILED (nothing created, "try again") is not
asked for ever: the delay grows with the streak, and once the refusals have lasted ``create_failed_for_s`` with no
task accepted, the run stops submitting, collects what it paid for and ends with the provider's words (exit 3)."""
from __future__ import annotations

from collections.abc import Callable

import anyio
import httpx
import pytest

from runner.engine import Policy, StopReason
from runner.errors import BalanceError, TransientError
from runner.jobs import JobState
from runner.simulator import sim_transport

from engine_rig import Rig, make_jobs

pytestmark = pytest.mark.anyio

CREATE_FAILED = {"code": 500, "reason": "CREATE_TASK_FAILED", "message": "failed to create task", "metadata": {}}


class RefuseAfter(httpx.AsyncBaseTransport):
    """The simulator, except that every submit after the first ``accept`` answers 500 CREATE_TASK_FAILED."""

    def __init__(self, inner: httpx.AsyncBaseTransport, accept: int) -> None:
        self.inner, self.accept, self.posts = inner, accept, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.posts += 1
            if self.posts > self.accept:
                return httpx.Response(500, json=CREATE_FAILED)
        return await self.inner.handle_async_request(request)


def refusing_rig(rig_factory: Callable[..., Rig], accept: int) -> tuple[Rig, RefuseAfter]:
    first = rig_factory()
    transport = RefuseAfter(sim_transport(first.sim), accept)
    rig = rig_factory(transport=transport, state=first.state.parent / "refusing")
    rig.sim = first.sim
    return rig, transport


async def test_a_provider_that_never_creates_a_task_stops_the_submits(rig_factory: Callable[..., Rig]) -> None:
    """Every submit refused CREATE_TASK_FAILED: the run ends by itself within minutes (it used to send ~4,700 POSTs
    an hour, for ever), every job pending, unpaid, and the error says why."""
    rig, transport = refusing_rig(rig_factory, accept=0)
    rig.plan(make_jobs(4))
    start = anyio.current_time()
    with anyio.move_on_after(6 * 3600) as scope:
        result = await rig.engine(concurrency=4).run()
    assert not scope.cancelled_caught, f"still submitting after 6 h: {transport.posts} POSTs"
    took = anyio.current_time() - start
    assert took <= Policy().create_failed_for_s + 300
    assert transport.posts <= 100
    assert result.reason is StopReason.REFUSING
    assert isinstance(result.error, TransientError) and "CREATE_TASK_FAILED" in str(result.error)
    assert rig.counts()[JobState.PENDING] == 4 and rig.sim.stats()["accepted_total"] == 0


async def test_the_tasks_paid_before_the_refusals_are_collected(rig_factory: Callable[..., Rig]) -> None:
    """Two tasks accepted, then only refusals: the submits stop, the two paid videos are still downloaded."""
    rig, transport = refusing_rig(rig_factory, accept=2)
    rig.plan(make_jobs(5))
    with anyio.move_on_after(6 * 3600) as scope:
        result = await rig.engine(concurrency=2).run()
    assert not scope.cancelled_caught, f"still submitting after 6 h: {transport.posts} POSTs"
    assert result.reason is StopReason.REFUSING
    counts = rig.counts()
    assert counts[JobState.DONE] == 2 and counts[JobState.PENDING] == 3
    assert rig.sim.stats()["accepted_total"] == 2


async def test_a_refusal_streak_broken_by_an_accepted_task_does_not_stop(rig_factory: Callable[..., Rig]) -> None:
    """Refusals that come and go (half the submits) never add up to a stop: every job is done."""
    rig = rig_factory(p_create_failed=0.5, seed=11)
    rig.plan(make_jobs(12))
    result = await rig.engine(concurrency=3).run()
    assert result.reason is StopReason.COMPLETE
    assert rig.counts()[JobState.DONE] == 12


class BalanceAfter(RefuseAfter):
    """The simulator, except that every submit after the first ``accept`` answers 402 with a reason the docs do not
    list (the documented one is a 400 BILLING_BALANCE_NOT_ENOUGH)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and self.posts >= self.accept:
            self.posts += 1
            return httpx.Response(402, json={"code": 402, "reason": "INSUFFICIENT_BALANCE", "message": "add funds"})
        return await super().handle_async_request(request)


async def test_a_402_of_any_reason_stops_the_run_with_the_jobs_pending(rig_factory: Callable[..., Rig]) -> None:
    """The semantic-fault hunt: a 402 whose reason was not BILLING_BALANCE_NOT_ENOUGH was refused for good, job after
    job — a batch of 20 ended "complete" with 18 failed (exit 1, `retry --failed` to get them back) for a balance to
    top up. Any 402 now stops the run as the balance does: nothing created, the jobs pending for the next run."""
    first = rig_factory()
    transport = BalanceAfter(sim_transport(first.sim), accept=2)
    rig = rig_factory(transport=transport, state=first.state.parent / "balance")
    rig.sim = first.sim
    rig.plan(make_jobs(6))
    result = await rig.engine(concurrency=1).run()
    assert isinstance(result.error, BalanceError) and "top up" in str(result.error), result
    counts = rig.counts()
    assert counts[JobState.FAILED] == 0 and counts[JobState.PENDING] == 4, counts
    assert transport.posts == 3 and rig.sim.stats()["accepted_total"] == 2


async def test_a_provider_task_cap_below_the_concurrency_costs_little_time(rig_factory: Callable[..., Rig]) -> None:
    """The provider caps an account at 5 unfinished tasks (undocumented; ``max_concurrent``, a 429 without
    Retry-After beyond it) and the run asks for 20: its 429s slow the submits without choking them, every job is done
    and paid once, in at most 1.5 times what the cap allows (40 tasks of 5 minutes, 5 at a time: 40 minutes)."""
    rig = rig_factory(task_seconds=300.0, max_concurrent=5)
    jobs = 40
    rig.plan(make_jobs(jobs))
    started = anyio.current_time()
    result = await rig.default_engine(concurrency=20).run()
    elapsed = anyio.current_time() - started
    assert result.reason is StopReason.COMPLETE and rig.counts()[JobState.DONE] == jobs
    stats = rig.sim.stats()
    assert stats["responses"].get("submit:concurrency_limited", 0) > 0
    assert stats["accepted_total"] == jobs and max(stats["accepted_by_body"].values()) == 1
    assert max(stats["max_active_by_account"].values()) == 5
    assert elapsed <= 1.5 * (jobs / 5) * 300, f"{elapsed:.0f} s"
