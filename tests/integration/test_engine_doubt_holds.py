"""An in-doubt job an earlier run left keeps its concurrency slot for what is left of its hold: timed on the boot's
steady clock (CLOCK_BOOTTIME) within one boot, so a wall clock stepped between runs neither frees it early nor
holds it longer; across a reboot the wall clock times it, as before."""
from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest

from runner.config import RunSettings
from runner.engine import Engine, EngineConfig, Policy
from runner.jobs import JobState
from runner.ledger import open_ledger

from engine_rig import Rig, Wall, make_jobs

pytestmark = pytest.mark.anyio

HOLD = Policy().in_doubt_hold_s


def setup(rig_factory: Callable[..., Rig], wall: Wall) -> Rig:
    """Tasks of 5 minutes and every POST's answer lost (in doubt); the ledger on ``wall`` and its boot."""
    rig = rig_factory(task_seconds=300.0, p_drop=1.0)
    rig.ledger.close()
    rig.ledger = open_ledger(rig.state, clock=wall)
    rig.ledger.boot = wall.boot
    rig.plan(make_jobs(2))
    return rig


async def run(rig: Rig, wall: Wall, max_runtime: float) -> None:
    rig.ledger.start_run(argv=["test"])
    config = EngineConfig.from_settings(RunSettings(concurrency=1, rpm=None, max_runtime=max_runtime), manifest="t")
    await Engine(rig.ledger, rig.client, config, store=rig.store, wall=wall, boot=wall.boot).run()


def sent_since(rig: Rig, started: float) -> list[str]:
    return [task_id for task_id in rig.sim.task_ids() if rig.sim.task(task_id).submitted_at >= started]


@pytest.mark.parametrize("reboot", [False, True], ids=["one-boot", "rebooted-between-runs"])
async def test_a_wall_clock_stepped_ahead_between_runs_does_not_free_an_in_doubt_slot(
        rig_factory: Callable[..., Rig], reboot: bool) -> None:
    """--concurrency 1: a run leaves a job in doubt (its task may run 15 minutes), then the wall clock steps a day
    ahead (NTP, `date -s`, a VM restored) and a run starts a minute later. Its slot was timed by the wall clock: the
    hold read as long over, the next job was sent at once, two tasks at the provider. In one boot the hold is timed
    on the boot's steady clock from the write-ahead's stamp: nothing is sent for the rest of the hold. After a
    reboot nothing steady spans the runs: the wall clock times it, as before."""
    wall = Wall()
    rig = setup(rig_factory, wall)
    await run(rig, wall, max_runtime=30.0)
    assert rig.counts()[JobState.IN_DOUBT] == 1 and rig.counts()[JobState.PENDING] == 1
    doubted = next(job.key for job in rig.ledger.iter_jobs("t", states=[JobState.IN_DOUBT]))
    detail = rig.ledger.attempts(doubted)[-1].detail or ""
    assert detail.endswith("s]") and " [boot boot-1 +" in detail, detail  # the write-ahead's stamp, kept
    rig.sim.configure(p_drop=0.0)
    wall.later(60)
    wall.offset += 86400  # stepped a day ahead: the steady clock does not move
    if reboot:
        wall.reboot()
    started = anyio.current_time()
    await run(rig, wall, max_runtime=HOLD / 2)
    assert len(sent_since(rig, started)) == (1 if reboot else 0), rig.counts()
    assert rig.counts()[JobState.PENDING] == (0 if reboot else 1)


async def test_a_wall_clock_set_back_between_runs_holds_an_in_doubt_slot_only_for_what_is_left(
        rig_factory: Callable[..., Rig]) -> None:
    """A job in doubt 14 minutes ago, then the wall clock set back a day: the hold is capped at 15 minutes whatever
    the wall clock says, and in one boot it is what is left of it by the steady clock: the next job goes within a
    minute, not 15."""
    wall = Wall()
    rig = setup(rig_factory, wall)
    await run(rig, wall, max_runtime=30.0)
    rig.sim.configure(p_drop=0.0)
    wall.later(HOLD - 60)
    wall.offset -= 86400
    started = anyio.current_time()
    await run(rig, wall, max_runtime=HOLD / 2)
    sent = sent_since(rig, started)
    assert len(sent) == 1 and rig.sim.task(sent[0]).submitted_at - started <= 60 + 35, rig.counts()
