"""TASK_NOT_FOUND turns a paid job `lost` only when confirmed: on the monotonic clock within a run, or in
several runs spanning hours — never by a wall clock that jumps, and never counting answers before a success."""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from runner.engine import Engine, Policy
from runner.jobs import JobState
from runner.ledger import open_ledger
from runner.simulator import sim_transport

from engine_rig import Rig, Wall, engine_config, make_jobs

GONE_AFTER_S = Policy().gone_after_s

pytestmark = pytest.mark.anyio

NOT_FOUND = {"code": 404, "reason": "TASK_NOT_FOUND", "message": "task not found", "metadata": {}}


class Blips(httpx.AsyncBaseTransport):
    """The simulator, except that task-result answers TASK_NOT_FOUND while ``plan`` says so."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.plan: Callable[[int], bool] = lambda n: False
        self.polls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/task-result"):
            self.polls += 1
            if self.plan(self.polls):
                return httpx.Response(404, json=NOT_FOUND)
        return await self.inner.handle_async_request(request)


def setup(rig_factory: Callable[..., Rig], wall: Wall, **sim: Any) -> tuple[Rig, Blips]:
    first = rig_factory(**sim)
    blips = Blips(sim_transport(first.sim))
    rig = rig_factory(transport=blips, state=first.state.parent / "blips", **sim)
    rig.sim = first.sim
    rig.ledger.close()
    rig.ledger = open_ledger(rig.state, clock=wall)
    return rig, blips


async def run(rig: Rig, wall: Wall, **overrides: Any) -> Any:
    rig.ledger.start_run(argv=["test"])
    options: dict[str, Any] = {"manifest": "t", "concurrency": 4, "rpm": None, "poll_rpm": None, **overrides}
    return await Engine(rig.ledger, rig.client, engine_config(**options), wall=wall, boot=wall.boot).run()


async def test_wall_clock_hours_ahead_does_not_turn_a_blip_into_lost(rig_factory: Callable[..., Rig]) -> None:
    """The wall clock jumps +10 h during a run with a few TASK_NOT_FOUND answers: the job is still collected."""
    wall = Wall()
    rig, blips = setup(rig_factory, wall)
    rig.plan(make_jobs(1))

    def plan(n: int) -> bool:
        if n == 2:
            wall.offset = 10 * 3600.0  # the clock is corrected by ten hours, mid-run
        return n <= 6

    blips.plan = plan
    await run(rig, wall)
    assert rig.counts()[JobState.LOST] == 0, "a short TASK_NOT_FOUND blip made a paid job lost"
    assert rig.counts()[JobState.DONE] == 1


async def test_not_found_in_three_runs_spanning_hours_is_lost(rig_factory: Callable[..., Rig]) -> None:
    """Three runs, each answered only TASK_NOT_FOUND, over more than GONE_AFTER_S: the job is lost."""
    wall = Wall()
    rig, blips = setup(rig_factory, wall, task_seconds=3600)
    rig.plan(make_jobs(1))
    await run(rig, wall, collect=False)  # submitted; running
    blips.plan = lambda n: True
    for _ in range(3):
        await run(rig, wall, manifest=None, submit=False)
        wall.later(GONE_AFTER_S / 2 + 60)
    assert rig.counts()[JobState.LOST] == 1


@pytest.mark.parametrize("reboot", [False, True], ids=["one-boot", "rebooted-between-runs"])
async def test_three_quick_runs_across_a_clock_stepped_ahead_a_day_are_lost_only_across_reboots(
        rig_factory: Callable[..., Rig], reboot: bool) -> None:
    """The wall clock stepped ahead a day before each of three runs minutes apart (an operator's `date -s`, a VM's
    clock corrected), each answered TASK_NOT_FOUND: their answers were recorded two days apart by the clock, minutes
    apart in truth, and a paid job was made lost by a glitch of minutes. In one boot the span is read on the boot's
    steady clock (CLOCK_BOOTTIME): minutes, not lost. Across reboots nothing steady spans the runs: the recorded
    times count, as before, and the three runs are the guard."""
    wall = Wall()
    rig, blips = setup(rig_factory, wall, task_seconds=3600)
    rig.plan(make_jobs(1))
    await run(rig, wall, collect=False)  # submitted; running
    blips.plan = lambda n: True
    for _ in range(3):
        if reboot:
            wall.reboot()
        await run(rig, wall, manifest=None, submit=False)
        wall.later(60)
        wall.offset += 86400.0  # stepped ahead a day
    lost = rig.counts()[JobState.LOST]
    assert lost == (1 if reboot else 0), rig.counts()
    boots = {a.detail.rsplit(" [boot ", 1)[1].split()[0] for a in rig.ledger.attempts(make_jobs(1)[0].key)
             if a.outcome == "not_found" and a.detail}
    assert len(boots) == (3 if reboot else 1), boots  # each answer says its boot


async def test_three_quick_runs_across_a_clock_set_back_a_day_are_not_hours_of_not_found(
        rig_factory: Callable[..., Rig]) -> None:
    """The wall clock set back a day between runs (NTP after a clock that ran ahead), then three runs minutes apart
    answered TASK_NOT_FOUND: their answers were recorded a day apart by the clock, minutes apart in truth. The span
    was max − min of the recorded times (a day), and a paid job was made lost by a glitch of minutes; answers
    recorded earlier than the one before them cannot say how long went by, and the span starts after them."""
    wall = Wall()
    rig, blips = setup(rig_factory, wall, task_seconds=3600)
    rig.plan(make_jobs(1))
    await run(rig, wall, collect=False)  # submitted; running
    blips.plan = lambda n: True
    await run(rig, wall, manifest=None, submit=False)
    wall.offset -= 86400.0  # set back a day
    for _ in range(2):
        await run(rig, wall, manifest=None, submit=False)
        wall.later(60)  # a minute later
    assert rig.counts()[JobState.LOST] == 0 and rig.counts()[JobState.RUNNING] == 1


async def test_one_run_is_never_enough_whatever_the_wall_clock(rig_factory: Callable[..., Rig]) -> None:
    """A single run of TASK_NOT_FOUND answers with the wall clock 10 h ahead: not lost."""
    wall = Wall()
    rig, blips = setup(rig_factory, wall, task_seconds=3600)
    rig.plan(make_jobs(1))
    await run(rig, wall, collect=False)
    start = blips.polls

    def plan(n: int) -> bool:
        if n == start + 2:
            wall.offset = 10 * 3600.0  # the clock jumps mid-run
        return True

    blips.plan = plan
    await run(rig, wall, manifest=None, submit=False)
    assert rig.counts()[JobState.LOST] == 0 and rig.counts()[JobState.RUNNING] == 1


async def test_a_successful_poll_resets_the_count(rig_factory: Callable[..., Rig]) -> None:
    """Not-found answers before a successful poll of the task do not count toward `lost`."""
    wall = Wall()
    rig, blips = setup(rig_factory, wall, task_seconds=3600)
    rig.plan(make_jobs(1))
    await run(rig, wall, collect=False)
    blips.plan = lambda n: True
    await run(rig, wall, manifest=None, submit=False)  # run 1: not found
    wall.later(GONE_AFTER_S / 2 + 60)
    start = blips.polls
    blips.plan = lambda n: n != start + 3  # run 2: not found, one success, not found again
    await run(rig, wall, manifest=None, submit=False)
    wall.later(GONE_AFTER_S / 2 + 60)
    blips.plan = lambda n: True
    await run(rig, wall, manifest=None, submit=False)  # run 3: not found
    assert rig.counts()[JobState.LOST] == 0, "not-found answers from before a successful poll were counted"
    assert rig.counts()[JobState.RUNNING] == 1


async def test_a_task_given_up_on_not_found_answers_is_said(rig_factory: Callable[..., Rig],
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """A task answered only TASK_NOT_FOUND (a 200 naming an id the provider never knew, say) is given up for this run
    after max_poll_errors answers; the run then ended "complete" with the job running and not one line said why.
    The warning and the give-up line name the task and the provider's answer."""
    wall = Wall()
    rig, blips = setup(rig_factory, wall)
    rig.plan(make_jobs(1))
    blips.plan = lambda n: True
    await run(rig, wall)
    assert rig.counts()[JobState.RUNNING] == 1 and rig.counts()[JobState.LOST] == 0
    task_id = next(iter(rig.ledger.iter_jobs("t", states=[JobState.RUNNING]))).task_id
    assert task_id is not None
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("giving up polling task" in line and task_id in line and "TASK_NOT_FOUND" in line
               and "stays running" in line for line in said), said
