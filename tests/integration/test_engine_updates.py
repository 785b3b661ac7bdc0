"""A second producer of task updates (a webhook-like replay of every poll answer, delivered twice)
feeding the engine's one consumer alongside the poller: the batch completes, each video is
downloaded once and nothing is paid twice."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from runner.engine import Engine, SendUpdate, StopReason, TaskUpdate, update_from_result
from runner.engine import events as ev
from runner.jobs import JobState
from runner.novita_wire import TaskResult

from engine_rig import Rig, engine_config, guard, make_jobs

pytestmark = pytest.mark.anyio


class ReplaySource:
    """Hears every task-result answer the client gets and delivers it again, twice, as a webhook would."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.send_tap, self.receive_tap = anyio.create_memory_object_stream[tuple[str, TaskResult]](1000)
        self.sent: list[TaskUpdate] = []
        real = rig.client.task_result

        async def tapped(task_id: str) -> TaskResult:
            result = await real(task_id)
            self.send_tap.send_nowait((task_id, result))
            return result

        rig.client.task_result = tapped  # type: ignore[method-assign]

    async def run(self, send: SendUpdate) -> None:
        with self.receive_tap:
            async for task_id, result in self.receive_tap:
                key = self.rig.ledger.key_of_task(task_id)
                if key is None:
                    continue
                update = update_from_result(key, task_id, result, received_at=time.time(), source="webhook")
                for _ in range(2):
                    self.sent.append(update)
                    await send(update)

    def close(self) -> None:
        self.send_tap.close()


class Events:
    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()
        self.done: Counter[str] = Counter()

    def emit(self, event: ev.Event, /) -> None:
        self.kinds[event.kind] += 1
        if isinstance(event, ev.Stored):
            self.done[event.key] += 1


def _engine(rig: Rig, source: ReplaySource, events: Events, **overrides: Any) -> Engine:
    options: dict[str, Any] = {"manifest": "t", "concurrency": 4, "rpm": None, "poll_rpm": None,
                               "poll_interval": 0.02, "poll_max_interval": 0.1, **overrides}
    return Engine(rig.ledger, rig.client, engine_config(**options), store=rig.store, reporter=events, sources=[source])


@pytest.mark.parametrize("memory", [False, True])
async def test_a_second_producer_delivering_every_update_twice_changes_nothing(
    rig_factory: Callable[..., Rig], memory: bool
) -> None:
    rig = rig_factory(memory=memory, task_seconds=0.08)
    rig.plan(make_jobs(10))
    source, events = ReplaySource(rig), Events()
    try:
        with guard(30):
            result = await _engine(rig, source, events).run()
    finally:
        source.close()
    assert result.reason is StopReason.COMPLETE
    assert rig.counts()[JobState.DONE] == 10
    stats = rig.sim.stats()
    assert stats["accepted_total"] == 10 and all(n == 1 for n in stats["accepted_by_body"].values())
    assert stats["downloads"] == 10  # each video downloaded once
    assert len(events.done) == 10 and set(events.done.values()) == {1}
    assert events.kinds["succeeded"] == 10 and result.done == 10
    assert {u.status for u in source.sent} >= {"TASK_STATUS_SUCCEED"}
    assert len(source.sent) >= 20  # the replays really reached the consumer's stream


async def test_duplicated_failures_retry_once_each(rig_factory: Callable[..., Rig]) -> None:
    """A FAILED delivered three times retries the job once: one new paid task, not three."""
    rig = rig_factory(task_seconds=0.05, p_task_failed=0.5, seed=3)
    rig.plan(make_jobs(8))
    source, events = ReplaySource(rig), Events()
    try:
        with guard(30):
            result = await _engine(rig, source, events, retries=1).run()
    finally:
        source.close()
    stats = rig.sim.stats()
    failed_tasks = sum(1 for t in stats["tasks"].values() if t["status"] == "TASK_STATUS_FAILED")
    assert failed_tasks > 0, "the seed must fail some tasks"
    # Every paid task is one the ledger asked for: first tries plus one retry per failed first try.
    assert all(n <= 2 for n in stats["accepted_by_body"].values())
    assert events.kinds["retry_failed"] + 8 == stats["accepted_total"]
    counts = rig.counts()
    assert counts[JobState.DONE] + counts[JobState.FAILED] == 8
    assert result.failed == counts[JobState.FAILED]
    assert stats["downloads"] == counts[JobState.DONE]
