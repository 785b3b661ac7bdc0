"""RunState: slots are held by job key (a duplicate or late settle frees nothing twice), spend follows
the write-ahead and refusals, a given-up task keeps its slot; Policy is keyword-only and frozen."""

from __future__ import annotations

import dataclasses

import pytest

from runner.config import RunSettings
from runner.engine import EngineConfig, Policy, RunState, StopReason

pytestmark = pytest.mark.anyio


async def test_a_slot_is_freed_once_by_its_own_key() -> None:
    state = RunState(concurrency=1, budget_usd=1.0)
    state.submitting("a", 0.56)
    assert not state.has_slot and state.followed == 1 and state.spent_usd == pytest.approx(0.56)
    state.settled("b")  # a late update for a job that holds no slot
    assert not state.has_slot
    state.settled("a")
    state.settled("a")  # a duplicate
    assert state.has_slot and state.followed == 0
    assert state.spent_usd == pytest.approx(0.56), "an accepted or ambiguous submit keeps its estimate"
    assert not state.within_budget(0.56) and state.within_budget(0.44)


async def test_a_refusal_gives_the_slot_and_the_estimate_back() -> None:
    state = RunState(concurrency=2)
    state.resume(running=["r"], foreign=1, spent_usd=1.0)
    assert not state.has_slot and state.followed == 1
    state.settled("r")
    state.submitting("a", 0.5)
    state.refused("a", 0.5)
    assert state.has_slot and state.spent_usd == pytest.approx(1.0)


async def test_a_given_up_task_keeps_its_slot_but_is_not_waited_for() -> None:
    state = RunState(concurrency=1)
    state.resume(running=["r"], foreign=0, spent_usd=0.0)
    state.given_up("r")
    assert not state.has_slot and state.followed == 0
    state.settled("r")  # a webhook still delivered its result
    assert state.has_slot


async def test_the_first_stop_reason_wins_and_the_budget_stops_submitting_only() -> None:
    state = RunState(concurrency=1)
    assert state.stop(StopReason.BUDGET, submitting_only=True)
    assert not state.halted
    assert not state.stop(StopReason.SIGNAL)
    assert state.halted and state.stop_reason is StopReason.BUDGET


def test_policy_is_keyword_only_and_frozen_and_reaches_the_engine_config() -> None:
    with pytest.raises(TypeError):
        Policy(60.0)  # type: ignore[misc]
    fast = Policy(poll_max_interval=0.1, record_retry_delays=(0.0,))
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.poll_max_interval = 1.0  # type: ignore[misc]
    config = EngineConfig.from_settings(RunSettings(), manifest="m", policy=fast)
    assert config.policy is fast
    assert EngineConfig(manifest=None).policy == Policy()
    assert EngineConfig(manifest=None, downloads=2, concurrency=3).fetch_buffer == 8


async def test_a_slot_check_reads_the_clock_only_for_jobs_in_doubt() -> None:
    """``has_slot`` is asked at every turn of the submit lane: with nothing in doubt it is a count, no clock read
    and no list built; a job in doubt still holds its slot until its time, then frees it."""
    now = [0.0]
    reads = 0

    def clock() -> float:
        nonlocal reads
        reads += 1
        return now[0]

    state = RunState(concurrency=1, clock=clock)
    for _ in range(5):
        assert state.has_slot
    assert reads == 0
    state.submitting("a", 0.5)
    state.doubted("a", 10.0)
    assert not state.has_slot and reads == 1
    now[0] = 10.0
    assert state.has_slot and state.next_release() is None
