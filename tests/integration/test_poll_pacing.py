"""Poll pacing (issue 14): with default settings the poller follows the tasks' due times and is never the
bottleneck; a provider that answers polls 429 slows it down instead of being hammered."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from runner.config import RunSettings
from runner.engine import Engine, EngineConfig, StopReason
from runner.jobs import JobState
from runner.simulator import SimConfig, Simulator, sim_transport

from engine_rig import Rig, make_jobs

pytestmark = pytest.mark.anyio


def default_engine(rig: Rig, **settings: object) -> Engine:
    """The engine with the default run settings and the default Policy, apart from ``settings``."""
    config = EngineConfig.from_settings(RunSettings(**settings), manifest="t")  # type: ignore[arg-type]
    return Engine(rig.ledger, rig.client, config)


async def test_default_settings_do_not_cap_polls_of_a_big_batch(rig_factory: Callable[..., Rig]) -> None:
    """C=40, 200 tasks of 0.1 s, defaults apart from --rpm none and a short per-task poll floor: every job is
    done within a runtime a fixed 120-polls-a-minute cap could not reach (it would finish ~20), at ~1 poll a job."""
    rig = rig_factory(task_seconds=0.1)
    jobs = 200
    rig.plan(make_jobs(jobs))
    with anyio.fail_after(60):
        result = await default_engine(rig, concurrency=40, rpm=None, poll_interval=0.1, max_runtime=10.0).run()
    assert result.reason is StopReason.COMPLETE
    assert rig.counts()[JobState.DONE] == jobs
    stats = rig.sim.stats()
    assert stats["accepted_total"] == jobs
    assert stats["polls"] <= 3 * jobs  # polls follow due times: no busy polling either
    assert stats["responses"].get("task_result:rpm_limited", 0) == 0


async def test_poll_429s_back_off_and_the_batch_completes(tmp_path: Path) -> None:
    """A provider admitting 30 polls a minute on a clock 60× faster than the engine's (so 30 a second), with no
    Retry-After (the default): the unpaced poller meets 429s, pauses every poll on each 429; far fewer 429s than
    polls that went through, every job done and paid once."""
    sim = Simulator(SimConfig(task_seconds=0.0, poll_rpm=30), clock=lambda: time.monotonic() * 60)
    async with httpx.AsyncClient(transport=sim_transport(sim), base_url="http://sim.test") as http:
        rig = Rig(tmp_path / "state", sim, http)
        jobs = 120
        rig.plan(make_jobs(jobs))
        engine = default_engine(rig, concurrency=40, rpm=None, poll_interval=0.05)
        try:
            with anyio.fail_after(60):
                result = await engine.run()
            assert result.reason is StopReason.COMPLETE
            assert rig.counts()[JobState.DONE] == jobs
        finally:
            rig.ledger.close()
    stats = sim.stats()
    limited = stats["responses"].get("task_result:rpm_limited", 0)
    assert limited > 0  # the provider's limit was met ...
    assert engine.poll_limiter.rate_limited == limited
    assert limited * 10 <= stats["polls"]  # ... and not hammered: every 429 paused all polls (retried per request,
    # 429s outnumbered the polls that went through)
    assert stats["accepted_total"] == jobs


async def test_the_first_poll_follows_the_learned_task_time_not_the_poll_interval(
    rig_factory: Callable[..., Rig],
) -> None:
    """Defaults apart from --rpm none (poll_interval 3 s): tasks of 0.2 s are first polled just after the time
    tasks have been taking, not 3 s after submit. 160 jobs at C=40 are four waves: ≥ 12 s if every first poll
    waited 3 s; all done within 8 s when only the first wave does, at about one poll a job."""
    rig = rig_factory(task_seconds=0.2)
    jobs = 160
    rig.plan(make_jobs(jobs))
    with anyio.fail_after(60):
        result = await default_engine(rig, concurrency=40, rpm=None, max_runtime=8.0).run()
    assert result.reason is StopReason.COMPLETE
    assert rig.counts()[JobState.DONE] == jobs
    assert rig.sim.stats()["polls"] <= 2 * jobs


async def test_the_first_wave_is_polled_at_the_time_a_scouts_eta_gives_not_at_the_poll_interval(
    rig_factory: Callable[..., Rig],
) -> None:
    """Defaults apart from --rpm none (poll_interval 3 s), no task finished yet: the first tasks submitted are
    polled at once (scouts); the first eta they bring back (whole seconds: 1 s) moves every waiting first poll
    to ~1.1 s after its submit. Before, no first poll went sooner than 0.9 × 3 s after its submit. The scouts
    themselves keep the per-task spacing (their next poll ≥ poll_interval later). Measured from the client's own
    calls (submit answered → first task-result), so a loaded machine's slow downloads do not blur it."""
    rig = rig_factory(task_seconds=0.2)
    jobs = 40
    rig.plan(make_jobs(jobs))
    answered: dict[str, float] = {}
    first_poll: dict[str, float] = {}
    submit, task_result = rig.client.submit, rig.client.task_result

    async def recording_submit(model: str, body: dict[str, object]) -> Any:
        result = await submit(model, body)
        if result.task_id:
            answered[result.task_id] = time.monotonic()
        return result

    async def recording_task_result(task_id: str) -> Any:
        first_poll.setdefault(task_id, time.monotonic())
        return await task_result(task_id)

    rig.client.submit = recording_submit  # type: ignore[method-assign]
    rig.client.task_result = recording_task_result  # type: ignore[method-assign]
    with anyio.fail_after(60):
        result = await default_engine(rig, concurrency=40, rpm=None, max_runtime=20.0).run()
    assert result.reason is StopReason.COMPLETE
    assert rig.counts()[JobState.DONE] == jobs
    delays = sorted(first_poll[task] - answered[task] for task in answered)
    assert len(delays) == jobs
    assert sum(1 for d in delays if d < 2.5) >= jobs - 3  # before: none (≥ 2.7 s); now ~1.1 s (scouts 0.1 s) ...
    assert sum(1 for d in delays if d < 0.5) <= 3  # ... and only the scouts are polled before the estimate
    stats = rig.sim.stats()
    assert stats["polls"] <= jobs + 3  # one poll a job, one more a scout
    assert stats["accepted_total"] == jobs
