"""The engine on virtual time with the production policy and realistic task times.

These runs would take minutes to hours on the wall clock; on the virtual clock of
``conftest.py`` they take milliseconds, so a test can assert on *time*: how close a batch comes to
Little's law, that a submit limit holds in every sliding minute, where a max-runtime stop lands.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import anyio
import pytest

from runner.engine import Engine, Policy, StopReason
from runner.jobs import JobState

from engine_rig import Rig, make_jobs

pytestmark = pytest.mark.anyio



async def timed_run(engine: Engine) -> tuple[object, float]:
    started = anyio.current_time()
    result = await engine.run()
    return result, anyio.current_time() - started


@pytest.mark.parametrize(("jobs", "concurrency", "task_s"), [(40, 8, 90.0), (120, 40, 180.0)])
async def test_a_batch_takes_about_what_little_s_law_allows(rig_factory: Callable[..., Rig], jobs: int,
                                                            concurrency: int, task_s: float) -> None:
    """Default settings apart from --rpm none: ⌈N/C⌉ waves of T seconds, plus at most 10 % for polls that land
    after a task ends; a few polls a job (the first wave doubles its interval from 3 s; later ones poll first at the
    learned task time)."""
    rig = rig_factory(task_seconds=task_s)
    rig.plan(make_jobs(jobs))
    result, elapsed = await timed_run(rig.default_engine(concurrency=concurrency, rpm=None))
    assert result.reason is StopReason.COMPLETE  # type: ignore[attr-defined]
    assert rig.counts()[JobState.DONE] == jobs
    ideal = math.ceil(jobs / concurrency) * task_s
    assert ideal <= elapsed <= 1.10 * ideal, f"{elapsed:.0f} s for an ideal of {ideal:.0f} s"
    stats = rig.sim.stats()
    assert stats["accepted_total"] == jobs
    assert stats["max_active"] <= concurrency
    assert stats["polls"] <= 4 * jobs, f"{stats['polls']} polls for {jobs} jobs"  # the first wave backs off from 3 s


async def test_a_submit_limit_holds_in_every_sliding_minute(rig_factory: Callable[..., Rig]) -> None:
    """--rpm 6 against a provider that answers a 7th submit in a minute with 429: 15 jobs are sent over more
    than two minutes and the provider never says no."""
    rig = rig_factory(task_seconds=20.0, rpm=6)
    rig.plan(make_jobs(15))
    result, elapsed = await timed_run(rig.default_engine(concurrency=20, rpm=6))
    assert result.reason is StopReason.COMPLETE  # type: ignore[attr-defined]
    assert rig.counts()[JobState.DONE] == 15
    responses = rig.sim.stats()["responses"]
    assert not any(kind.endswith("rpm_limited") for kind in responses), responses
    assert elapsed >= 2 * 60  # 15 submits at 6 a minute: the 13th goes two minutes after the first


async def test_max_runtime_stops_on_time_and_the_next_run_pays_nothing_again(rig_factory: Callable[..., Rig]) -> None:
    """Tasks of 15 minutes and --max-runtime 10m: the run stops at 10 minutes with every task still running at
    the provider (none in doubt); the next run collects them all without a new submit."""
    rig = rig_factory(task_seconds=900.0)
    rig.plan(make_jobs(6))
    result, elapsed = await timed_run(rig.default_engine(concurrency=6, rpm=None, max_runtime=600.0))
    assert result.reason is StopReason.MAX_RUNTIME  # type: ignore[attr-defined]
    assert 600 <= elapsed <= 600 + 60, f"stopped after {elapsed:.0f} s"
    assert rig.counts()[JobState.RUNNING] == 6
    result, elapsed = await timed_run(rig.default_engine(concurrency=6, rpm=None))
    assert result.reason is StopReason.COMPLETE  # type: ignore[attr-defined]
    assert rig.counts()[JobState.DONE] == 6
    assert rig.sim.stats()["accepted_total"] == 6
    assert elapsed <= 900 - 600 + 60 + 5  # the tasks had ~5 minutes left (plus one poll interval of slack)


async def test_an_in_doubt_submit_keeps_its_slot_while_its_task_may_run(rig_factory: Callable[..., Rig]) -> None:
    """--concurrency 1, tasks of 5 minutes, the first POST's answer lost after the provider created the task: the
    job is held in doubt and its slot stays taken for the hold (15 minutes, the life of a task), so the provider
    never runs two tasks at once; then the other jobs run, and nothing is paid twice."""
    rig = rig_factory(task_seconds=300.0, p_drop=0.5, seed=1)  # seed 1: the first POST drops, the next ones answer
    rig.plan(make_jobs(3))
    result, elapsed = await timed_run(rig.default_engine(concurrency=1, rpm=None))
    stats = rig.sim.stats()
    assert stats["responses"].get("submit:drop") == 1, stats["responses"]
    assert rig.counts()[JobState.IN_DOUBT] == 1 and rig.counts()[JobState.DONE] == 2
    assert stats["max_active"] == 1, stats  # before: 2 (the dropped one's task and the next one)
    assert stats["accepted_total"] == 3  # the in-doubt job was not resubmitted
    assert elapsed >= Policy().in_doubt_hold_s + 2 * 300.0
    assert result.in_doubt_new == 1  # type: ignore[attr-defined]


async def test_in_doubt_jobs_from_an_earlier_run_keep_their_slot_for_what_is_left_of_the_hold(
        rig_factory: Callable[..., Rig]) -> None:
    """A run that ended with a job in doubt 5 minutes ago: the next run at --concurrency 1 waits the 10 minutes
    left of its hold before the first submit."""
    rig = rig_factory(task_seconds=300.0, p_drop=1.0)
    rig.plan(make_jobs(2))
    await timed_run(rig.default_engine(concurrency=1, rpm=None, max_runtime=30.0))
    assert rig.counts()[JobState.IN_DOUBT] == 1
    rig.sim.configure(p_drop=0.0)
    await anyio.sleep(300)
    started = anyio.current_time()
    await timed_run(rig.default_engine(concurrency=1, rpm=None))
    assert rig.counts()[JobState.DONE] == 1
    first_submit = min(rig.sim.task(task_id).submitted_at for task_id in rig.sim.task_ids()
                       if rig.sim.task(task_id).submitted_at >= started)
    assert first_submit - started >= Policy().in_doubt_hold_s - 300 - 35, first_submit - started
    assert rig.sim.stats()["max_active"] == 1


async def test_a_clock_set_back_never_holds_an_in_doubt_slot_longer_than_the_hold(
        rig_factory: Callable[..., Rig]) -> None:
    """The wall clock ran a day ahead when a job went in doubt, then was set right (NTP): its recorded submit time
    is a day in the future. Its slot is held for the hold at most (15 minutes), not for the day (operator sweep,
    2026-12-04: "the next frees in 87297 s", nothing submitted)."""
    rig = rig_factory(task_seconds=300.0, p_drop=1.0)
    rig.plan(make_jobs(2))
    await timed_run(rig.default_engine(concurrency=1, rpm=None, max_runtime=30.0))
    assert rig.counts()[JobState.IN_DOUBT] == 1
    with rig.ledger._conn.write() as db:
        db.execute("UPDATE jobs SET submitted_at = submitted_at + 86400 WHERE state = 'in_doubt'")
    rig.sim.configure(p_drop=0.0)
    started = anyio.current_time()
    await timed_run(rig.default_engine(concurrency=1, rpm=None))
    assert rig.counts()[JobState.DONE] == 1
    first_submit = min(rig.sim.task(task_id).submitted_at for task_id in rig.sim.task_ids()
                       if rig.sim.task(task_id).submitted_at >= started)
    assert first_submit - started <= Policy().in_doubt_hold_s + 35, first_submit - started


async def test_downloads_cut_by_max_runtime_are_said_and_stay_succeeded(rig_factory: Callable[..., Rig],
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    """A download longer than the run may last was cut at --max-runtime, run after run, and nothing said so
    (operator sweep, 2026-12-05: a 20 MB clip on a slow link never arrived, four runs exited 3 in silence)."""
    from runner.engine.fetch import FetchLane

    async def slow(self: FetchLane, key: str) -> None:
        await anyio.sleep(3600)  # a video too big for the link in the time a run has

    monkeypatch.setattr(FetchLane, "_fetch_one", slow)
    rig = rig_factory(task_seconds=5.0)
    rig.plan(make_jobs(2))
    result, _ = await timed_run(rig.default_engine(concurrency=2, rpm=None, max_runtime=60.0))
    assert result.reason is StopReason.MAX_RUNTIME  # type: ignore[attr-defined]
    assert rig.counts()[JobState.SUCCEEDED] == 2
    said = [r.getMessage() for r in caplog.records if "were not downloaded before the run stopped" in r.getMessage()]
    assert said and said[0].startswith("2 paid video(s)") and "raise --max-runtime" in said[0], said
