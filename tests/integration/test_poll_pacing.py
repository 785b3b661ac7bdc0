"""Poll pacing (issue 14): with default settings the poller follows the tasks' due times and is never the
bottleneck; a provider that answers polls 429 slows it down instead of being hammered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest

from runner.engine import StopReason
from runner.engine.policy import Policy
from runner.engine.sources.poller import Poller
from runner.jobs import JobState

from engine_rig import Rig, guard, make_jobs

pytestmark = pytest.mark.anyio



async def test_default_settings_do_not_cap_polls_of_a_big_batch(rig_factory: Callable[..., Rig]) -> None:
    """C=40, 200 tasks of 0.1 s, defaults apart from --rpm none and a short per-task poll floor: every job is
    done within a runtime a fixed 120-polls-a-minute cap could not reach (it would finish ~20), at ~1 poll a job."""
    rig = rig_factory(task_seconds=0.1)
    jobs = 200
    rig.plan(make_jobs(jobs))
    with guard(60):
        result = await rig.default_engine(concurrency=40, rpm=None, poll_interval=0.1, max_runtime=10.0).run()
    assert result.reason is StopReason.COMPLETE
    assert rig.counts()[JobState.DONE] == jobs
    stats = rig.sim.stats()
    assert stats["accepted_total"] == jobs
    assert stats["polls"] <= 3 * jobs  # polls follow due times: no busy polling either
    assert stats["responses"].get("task_result:rpm_limited", 0) == 0


async def test_poll_429s_back_off_and_the_batch_completes(rig_factory: Callable[..., Rig]) -> None:
    """A provider admitting 30 polls a minute, with no Retry-After (the default), and 120 tasks of 30 s, on virtual
    time with the production policy: the unpaced poller meets 429s, pauses every poll on each 429 and keeps to the
    limit it learns: few 429s once learned, every job done and paid once, in about the time the provider's poll limit
    allows (120 jobs at 30 polls a minute: ≥ 4 minutes), not hours of back-off."""
    rig = rig_factory(task_seconds=30.0, poll_rpm=30)
    jobs = 120
    rig.plan(make_jobs(jobs))
    engine = rig.default_engine(concurrency=40, rpm=None)
    started = anyio.current_time()
    result = await engine.run()
    elapsed = anyio.current_time() - started
    assert result.reason is StopReason.COMPLETE
    assert rig.counts()[JobState.DONE] == jobs
    stats = rig.sim.stats()
    limited = stats["responses"].get("task_result:rpm_limited", 0)
    assert limited > 0  # the provider's limit was met ...
    assert engine.poll_limiter.rate_limited == limited
    # ... and not hammered: every 429 paused all polls, and the limit learned from them was kept (before the
    # limiter's fix, 429s answered 45 % of the polls); most 429s come while it learns, in the first minute.
    assert limited <= 0.25 * stats["polls"], f"{limited} of {stats['polls']} polls answered 429"
    assert stats["accepted_total"] == jobs
    assert 4 * 60 <= elapsed <= 20 * 60, f"{elapsed:.0f} s"


async def test_the_first_poll_follows_the_learned_task_time_not_the_poll_interval(
    rig_factory: Callable[..., Rig],
) -> None:
    """Defaults apart from --rpm none (poll_interval 3 s): tasks of 0.2 s are first polled just after the time
    tasks have been taking, not 3 s after submit. 160 jobs at C=40 are four waves: ≥ 12 s if every first poll
    waited 3 s; all done within 8 s when only the first wave does, at about one poll a job."""
    rig = rig_factory(task_seconds=0.2)
    jobs = 160
    rig.plan(make_jobs(jobs))
    with guard(60):
        result = await rig.default_engine(concurrency=40, rpm=None, max_runtime=8.0).run()
    assert result.reason is StopReason.COMPLETE
    assert rig.counts()[JobState.DONE] == jobs
    assert rig.sim.stats()["polls"] <= 2 * jobs


async def test_the_first_wave_is_polled_when_the_first_task_is_done_not_at_the_poll_interval_or_the_eta(
    rig_factory: Callable[..., Rig],
) -> None:
    """Defaults apart from --rpm none (poll_interval 3 s), no task finished yet: the first tasks submitted are
    polled at once (scouts); the first eta they bring back (whole seconds: 1 s) moves every waiting first poll
    to ~1.1 s after its submit, and the scout that gave it probes until its task is done (0.2 s): the provider's
    timing of it moves them again, to ~0.2 s. Before the scouts, no first poll went sooner than 0.9 × 3 s after
    its submit; before the probe, none sooner than the eta's 1.1 s (a tenth of every slot of a batch of 1 s
    tasks, up to a second of a longer one). Measured from the client's own calls (submit answered → first
    task-result), on virtual time: one poll a job apart from the scouts and the probe."""
    rig = rig_factory(task_seconds=0.2)
    jobs = 40
    rig.plan(make_jobs(jobs))
    answered, polls = _record_calls(rig)
    result = await rig.default_engine(concurrency=40, rpm=None, max_runtime=20.0).run()
    assert result.reason is StopReason.COMPLETE
    assert rig.counts()[JobState.DONE] == jobs
    scouts = {task for task, times in polls.items() if times[0] - answered[task] < 0.15}
    assert len(scouts) == 3
    delays = sorted(polls[task][0] - answered[task] for task in answered if task not in scouts)
    assert len(delays) == jobs - 3
    step = Policy().probe_step
    assert all(0.2 <= d <= 0.2 + step + 0.02 for d in delays), delays  # before: ≥ 1.1 s (the eta), ≥ 2.7 s
    assert all(len(polls[task]) == 1 for task in answered if task not in scouts)
    stats = rig.sim.stats()
    assert stats["polls"] <= jobs + 3 + 0.2 / step + 2  # one poll a job, one more a scout, the probe's few
    assert stats["accepted_total"] == jobs


async def test_scouts_are_polled_again_with_the_first_task_done_and_the_first_one_probes(
    rig_factory: Callable[..., Rig],
) -> None:
    """A scout's first poll (0.1 s after its submit) brings back an eta (1 s, whole seconds). The first scout to
    answer probes: asked again every ``probe_step`` from its eta less a second, it is found done within a step of
    its 0.2 s. The others wait like the first polls of the wave and move with them when that first task is done:
    asked again within a step of 0.2 s, not at their eta (~1.1 s: the wave's last slots, late to the end of the
    batch) nor ``poll_interval`` (3 s) later, and polled only twice. Before: at ≥ 3 s, then at the eta."""
    rig = rig_factory(task_seconds=0.2)
    jobs = 40
    rig.plan(make_jobs(jobs))
    answered, polls = _record_calls(rig)
    result = await rig.default_engine(concurrency=40, rpm=None, max_runtime=20.0).run()
    assert result.reason is StopReason.COMPLETE
    scouts = sorted((task for task, times in polls.items() if times[0] - answered[task] < 0.15),
                    key=lambda task: len(polls[task]))
    assert len(scouts) == 3
    step = Policy().probe_step
    *others, probe = scouts
    for task in others:
        assert len(polls[task]) == 2
        again = polls[task][1] - answered[task]
        assert 0.2 <= again <= 0.2 + step + 0.02, polls[task]  # before: ~1.1 s (the eta), 0.1 + 3 s
    found = polls[probe][-1] - answered[probe]
    assert 0.2 <= found <= 0.2 + step + 0.01, polls[probe]
    assert len(polls[probe]) <= 2 + 0.1 / step + 1


async def _three_second_tasks(
    rig_factory: Callable[..., Rig], *, jobs: int, concurrency: int,
) -> tuple[Rig, dict[str, float], dict[str, list[float]]]:
    """``jobs`` tasks of 3 s run to the end with default settings apart from --rpm none, calls recorded."""
    rig = rig_factory(task_seconds=3.0)
    rig.plan(make_jobs(jobs))
    answered, polls = _record_calls(rig)
    with guard(60):
        result = await rig.default_engine(concurrency=concurrency, rpm=None, max_runtime=60.0).run()
    assert result.reason is StopReason.COMPLETE
    assert rig.counts()[JobState.DONE] == jobs
    return rig, answered, polls


def _record_calls(rig: Rig) -> tuple[dict[str, float], dict[str, list[float]]]:
    """When each task's submit was answered, and when each of its polls went out (the loop's clock)."""
    answered: dict[str, float] = {}
    polls: dict[str, list[float]] = {}
    submit, task_result = rig.client.submit, rig.client.task_result

    async def recording_submit(model: str, body: dict[str, object]) -> Any:
        result = await submit(model, body)
        if result.task_id:
            answered[result.task_id] = anyio.current_time()
        return result

    async def recording_task_result(task_id: str) -> Any:
        polls.setdefault(task_id, []).append(anyio.current_time())
        return await task_result(task_id)

    rig.client.submit = recording_submit  # type: ignore[method-assign]
    rig.client.task_result = recording_task_result  # type: ignore[method-assign]
    return answered, polls


async def test_once_task_times_are_learned_a_first_poll_goes_just_after_one_not_a_percentage_later(
    rig_factory: Callable[..., Rig],
) -> None:
    """Tasks of 3 s at C=10, three waves: once the provider's timings are known, a task is first polled within
    about 10 ms after that time has passed since its submit was answered (the submit's answer comes after the
    provider started the task, so that poll finds it done), not 0.5 to 1.5 % of the task time later (15 to 45 ms of
    every 3 s slot, ~1 % of a batch's wall time). Still one poll a job. Measured on the loop's clock."""
    _rig, answered, polls = await _three_second_tasks(rig_factory, jobs=30, concurrency=10)
    later = sorted(answered.items(), key=lambda item: item[1])[-10:]  # the third wave: task time learned
    delays = [polls[task][0] - at for task, at in later]
    assert all(3.0 <= d <= 3.012 for d in delays), delays
    assert all(len(polls[task]) == 1 for task, _ in later)


async def test_a_first_wave_placed_before_the_scouts_answer_is_not_polled_before_the_estimate(
    rig_factory: Callable[..., Rig],
) -> None:
    """Defaults apart from --rpm none: tasks of 3 s, the same as the default poll_interval. Before any task time
    is known a first poll is placed 0.9 to 1.1 poll_interval after its submit, so about half of the first wave
    would be asked before their task is done, answered "processing", and asked again a whole poll_interval
    later: their slots then run 3 s late to the end of the batch (measured: 24 of 200 slots, +3.4 s on a 30 s
    batch). The scouts' estimate (age + eta, whole seconds) moves every such first poll to it, later as well as
    earlier: one poll a job apart from the scouts."""
    jobs = 40
    rig, answered, polls = await _three_second_tasks(rig_factory, jobs=jobs, concurrency=jobs)
    twice = sorted(task for task, times in polls.items() if len(times) > 1)
    assert len(twice) <= 3, [(round(polls[t][0] - answered[t], 3), len(polls[t])) for t in twice]  # the scouts
    assert rig.sim.stats()["polls"] <= jobs + 3 + Policy().probes  # and one scout's probes


class _LateWatches:
    """The poller's stream of new tasks, each handed over ``late`` seconds after it was sent: a loop busy with
    the rest of a wave of submits (measured: ~40 ms at C = 40 on two cores)."""

    def __init__(self, stream: Any, late: float) -> None:
        self._stream, self._late = stream, late

    def __enter__(self) -> _LateWatches:
        self._stream.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.__exit__(*exc)

    def __aiter__(self) -> _LateWatches:
        return self

    async def __anext__(self) -> Any:
        watch = await self._stream.__anext__()
        await anyio.sleep(self._late)
        return watch


async def test_a_first_poll_counts_from_the_submits_answer_not_from_when_the_poller_took_the_task(
    rig_factory: Callable[..., Rig], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The task was running when the provider answered its submit; the poller may take it 50 ms later (the loop
    busy with the rest of the wave). Once task times are learned, its first poll still goes ~10 ms after that
    time has passed since the *answer*: before, it went 50 ms later in every wave (5 % of a slot of 1 s tasks),
    the poller counting from when it took the task. Still one poll a job; on virtual time."""
    original = Poller.__init__

    def late_init(self: Poller, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._watch = _LateWatches(self._watch, 0.05)  # type: ignore[assignment]

    monkeypatch.setattr(Poller, "__init__", late_init)
    _rig, answered, polls = await _three_second_tasks(rig_factory, jobs=30, concurrency=10)
    later = sorted(answered.items(), key=lambda item: item[1])[-10:]  # the third wave: task time learned
    delays = [polls[task][0] - at for task, at in later]
    assert all(3.0 <= d <= 3.012 for d in delays), delays
    assert all(len(polls[task]) == 1 for task, _ in later)


async def test_polls_that_spend_the_submit_rate_limit_still_let_the_batch_complete(
    rig_factory: Callable[..., Rig],
) -> None:
    """Whether polls count against the RPM is undocumented: a provider whose 20 requests a minute are shared by submits
    and polls (``shared_rpm``), no Retry-After, the runner at its defaults (20 submits a minute, polls unpaced): every
    job is done and paid once, within the time the shared limit allows (a submit and about two polls a job), not
    hours of 429s."""
    rig = rig_factory(task_seconds=30.0, rpm=20, shared_rpm=True)
    jobs = 60
    rig.plan(make_jobs(jobs))
    started = anyio.current_time()
    result = await rig.default_engine(concurrency=20).run()
    elapsed = anyio.current_time() - started
    assert result.reason is StopReason.COMPLETE
    assert rig.counts()[JobState.DONE] == jobs
    stats = rig.sim.stats()
    assert stats["accepted_total"] == jobs and max(stats["accepted_by_body"].values()) == 1
    responses = stats["responses"]
    assert responses.get("submit:rpm_limited", 0) > 0 and responses.get("task_result:rpm_limited", 0) > 0, responses
    asked = jobs + stats["polls"]  # every request the provider counted, 429s included
    assert elapsed <= 1.5 * 60 * asked / 20, f"{elapsed:.0f} s for {asked} requests at 20 a minute"
