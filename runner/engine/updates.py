"""The updates lane: what the provider says about a task, from any source, applied once.

A *source* (:mod:`runner.engine.sources`: the poller today; a webhook receiver later) turns what
it hears about a task into a ``TaskUpdate`` and sends it into one anyio memory object stream. One
``UpdateConsumer`` applies each update to the ledger and reports, as ``Applied``, whether the
ledger moved. Sources may deliver an update twice, late or out of order; the consumer makes
that harmless:

- a *duplicate* (the state it reports is already recorded) moves nothing;
- a *late* one (the job is already done/failed/lost, or the task is not the job's current task —
  an old task of a retried job) moves nothing;
- an *out-of-order* one (PROCESSING after SUCCEED) moves nothing.

:class:`UpdatesLane` reads the stream and reacts only to what moved: a succeeded job frees its
slot and goes to the fetch lane's stream; a failed one frees its slot and, within the manifest's
``retries:``, goes back to the submit lane as a new paid task. TASK_NOT_FOUND is not an update:
the poller keeps those rules.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import logging
from collections.abc import Mapping
from typing import Any, Literal

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from runner.engine import events as ev
from runner.engine.state import RunState
from runner.engine.streams import put
from runner.jobs import JobState
from runner.ledger import LedgerBackend
from runner.novita_wire import TaskResult, TaskStatus

__all__ = ["Applied", "Outcome", "TaskUpdate", "UpdateConsumer", "UpdatesLane", "update_from_result"]

log = logging.getLogger("runner.engine")

Source = Literal["poll", "webhook"]


@dataclasses.dataclass(frozen=True, slots=True)
class TaskUpdate:
    """One statement of the provider about one task of one job."""

    task_id: str
    key: str  # the job key
    status: TaskStatus
    source: Source
    received_at: float  # wall clock (seconds since the epoch)
    video_url: str | None = None
    video_url_ttl: float | None = None  # seconds, as the provider said it
    url_expires_at: float | None = None  # wall clock, received_at + ttl
    reason: str | None = None  # why a task failed
    eta: float | None = None  # seconds the provider expects the task still to take
    progress_percent: int | None = None
    debug: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False, hash=False)


def update_from_result(key: str, task_id: str, result: TaskResult, *, received_at: float, source: Source) -> TaskUpdate:
    """A task-result answer as an update (the first video, when there is one)."""
    task = result.task
    video = result.videos[0] if result.videos else None
    ttl = None if video is None or video.video_url_ttl is None else float(video.video_url_ttl)
    return TaskUpdate(
        task_id=task_id, key=key, status=task.status, source=source, received_at=received_at,
        video_url=None if video is None else video.video_url, video_url_ttl=ttl,
        url_expires_at=None if ttl is None else received_at + ttl,
        reason=task.reason or None, eta=None if task.eta is None else float(task.eta),
        progress_percent=task.progress_percent, debug=dict(result.debug_info()),
    )


class Outcome(enum.StrEnum):
    SUCCEEDED = "succeeded"  # running → succeeded: a result URL is recorded
    FAILED = "failed"  # running → failed
    RUNNING = "running"  # queued/processing for the job's current running task: nothing to record
    NO_VIDEO = "no_video"  # SUCCEED listing no video: nothing recorded, ask again
    DUPLICATE = "duplicate"  # that state is already recorded for this task
    LATE = "late"  # the job moved on (finished, retried, unknown) or this is not its current task
    OUT_OF_ORDER = "out_of_order"  # an earlier state after a later one (PROCESSING after SUCCEED)


@dataclasses.dataclass(frozen=True, slots=True)
class Applied:
    outcome: Outcome
    update: TaskUpdate

    @property
    def moved(self) -> bool:
        """Whether the ledger moved: only then does the run's state change."""
        return self.outcome in (Outcome.SUCCEEDED, Outcome.FAILED)

    @property
    def current(self) -> bool:
        """Whether the task is still the job's running task, with nothing recorded (keep asking)."""
        return self.outcome in (Outcome.RUNNING, Outcome.NO_VIDEO)


_FINISHED = (JobState.DONE, JobState.FAILED, JobState.LOST)


class UpdateConsumer:
    """Turns updates into ledger transitions, idempotently. No awaits: one update, one breath.

    A SUCCEED listing a video (nearly every update that moves anything) is one guarded write
    (``mark_succeeded(task_id=…)``: running, that very task); only what it did not move is read and classified."""

    def __init__(self, ledger: LedgerBackend) -> None:
        self.ledger = ledger

    def apply(self, update: TaskUpdate) -> Applied:
        status = update.status
        if status is TaskStatus.SUCCEED and update.video_url is not None and self.ledger.mark_succeeded(
                update.key, video_url=update.video_url, url_expires_at=update.url_expires_at, debug=dict(update.debug),
                task_id=update.task_id):
            return Applied(Outcome.SUCCEEDED, update)  # the usual answer: moved in one guarded write, nothing read
        job = self.ledger.get(update.key)
        if job is None or job.task_id != update.task_id:
            return Applied(Outcome.LATE, update)
        if job.state is JobState.RUNNING:
            if status is TaskStatus.SUCCEED:  # not moved above: no video listed (or a race with another writer)
                return Applied(Outcome.NO_VIDEO if update.video_url is None else Outcome.LATE, update)
            if status is TaskStatus.FAILED:
                reason = update.reason or "the provider reported TASK_STATUS_FAILED without a reason"
                moved = self.ledger.mark_failed(update.key, reason=reason)
                return Applied(Outcome.FAILED if moved else Outcome.LATE, update)
            return Applied(Outcome.RUNNING, update)
        if job.state is JobState.SUCCEEDED or job.state is JobState.DONE:
            if status is TaskStatus.SUCCEED:
                return Applied(Outcome.DUPLICATE, update)
            return Applied(Outcome.OUT_OF_ORDER if not status.terminal else Outcome.LATE, update)
        if job.state is JobState.FAILED and status is TaskStatus.FAILED:
            return Applied(Outcome.DUPLICATE, update)
        if job.state in _FINISHED and not status.terminal:
            return Applied(Outcome.OUT_OF_ORDER, update)
        return Applied(Outcome.LATE, update)


class UpdatesLane:
    """Applies every task update, from any source, through the one consumer; reacts only to what moved."""

    def __init__(self, ledger: LedgerBackend, state: RunState, reporter: ev.Reporter, *, retries: int,
                 fetch: MemoryObjectSendStream[str], resubmit: MemoryObjectSendStream[str] | None) -> None:
        self.ledger = ledger
        self.consumer = UpdateConsumer(ledger)
        self.state = state
        self.reporter = reporter
        self.retries = retries
        self._fetch = fetch
        self._resubmit = resubmit

    async def run(self, updates: MemoryObjectReceiveStream[TaskUpdate]) -> None:
        with updates:  # the fetch stream is closed by the engine once this lane has ended
            async for update in updates:
                await self._on_applied(self.consumer.apply(update))

    async def _on_applied(self, applied: Applied) -> None:
        update = applied.update
        key = update.key
        if applied.outcome is Outcome.SUCCEEDED:
            self.reporter.emit(ev.Succeeded(key=key, task_id=update.task_id))
            self.state.to_store(key)
            await _send(self._fetch, key)  # a full buffer waits here: downloads go first
            self.state.settled(key)  # after the hand-over: the run cannot end with the key in neither place
            return
        if applied.outcome is not Outcome.FAILED:
            if not applied.current:
                log.debug("task %s of job %s: %s update from %s moves nothing (%s)", update.task_id, key,
                          update.status, update.source, applied.outcome)
            return
        reason = update.reason or "the provider reported TASK_STATUS_FAILED without a reason"
        tasks = self._paid_tasks(key)
        # A job no manifest lists any more is never paid for again.
        if (tasks <= self.retries and not self.state.halted and self.ledger.targets_of(key)
                and self.ledger.retry_failed_job(key)):
            log.warning("task %s failed (%s); retrying as a new paid task (%d of %d)",
                        update.task_id, reason, tasks + 1, self.retries + 1)
            if self._resubmit is not None:  # else pending for the next run
                await _send(self._resubmit, key)  # queued before the slot frees: the submit lane sees both
            self.state.settled(key)
            self.reporter.emit(ev.RetryFailed(key=key, reason=reason))
            return
        self.state.settled(key)
        log.error("job %s failed at the provider: %s", key, reason)
        self.reporter.emit(ev.Failed(key=key, reason=reason))

    def _paid_tasks(self, key: str) -> int:
        """Tasks the provider accepted for this job, over its whole life (retries are bounded by it)."""
        return sum(1 for a in self.ledger.attempts(key)
                   if a.kind == "submit" and a.outcome in ("accepted", "adopted", "rescued"))


async def _send(stream: MemoryObjectSendStream[str], key: str) -> None:
    """Hand ``key`` on; a lane that has ended leaves it to the next run (the ledger has it)."""
    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
        await put(stream, key)
