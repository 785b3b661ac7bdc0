"""The engine: one task group, three lanes, the ledger as the only truth.

    submit lane   pending ─▶ submitting ─▶ running       (write-ahead POST)
    poll lane     GET task-result, by due time ─▶ task updates (other sources: ``sources=``)
    updates lane  running ─▶ succeeded | failed          (one idempotent consumer, runner/updates.py)
    fetch lane    succeeded ─▶ done | lost               (download, verify, rename)

Memory does not grow with the batch: pending jobs are read from the ledger in
small batches; only tasks outstanding at the provider (bounded by the
concurrency limit) and results waiting for download are held in memory.

Exactly-once rules (docs/architecture.md): the ``submitting`` row is committed before the
POST; the task_id is committed with no await between the response and the
write; every POST runs shielded from cancellation so that a graceful stop lets
it finish and be recorded; an ambiguous outcome becomes ``in_doubt`` and is
never retried here.
"""

from __future__ import annotations

import dataclasses
import enum
import heapq
import itertools
import logging
import random
import statistics
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any, Protocol

import anyio

from runner import endpoints
from runner.client import NovitaClient, SubmitOutcome, SubmitResult
from runner.config import DEFAULTS, RunSettings
from runner.endpoints.media import InputResolver
from runner.errors import (
    AuthError,
    BalanceError,
    EndpointNotFound,
    LedgerError,
    ProviderError,
    ProviderUnreachable,
    RateLimited,
    RunnerError,
    TaskNotFound,
    TransientError,
    UrlExpired,
)
from runner.jobs import JobState
from runner.layout import orphan_path, output_path
from runner.ledger import JobRecord, LedgerBackend
from runner.ledger.rescue import RESCUE_NAME
from runner.limits import RateLimiter
from runner.models import TaskStatus
from runner.storage import WHOLE_DISK_ERRNOS, OutputStore, Sink, UnsafeDestination, beside_name
from runner.storage.local import LocalStore
from runner.updates import Applied, Outcome, TaskUpdate, TaskUpdateSource, UpdateConsumer, update_from_result

__all__ = ["Engine", "EngineConfig", "Reporter", "RunResult", "StopReason", "materialise_targets"]

log = logging.getLogger("runner.engine")

URL_MARGIN_S = 60.0  # refresh a result URL that expires sooner than this
MAX_FETCH_TRIES = 8  # downloads (and, apart, fresh URLs) of one result per run before leaving it for the next
DURATION_SAMPLES = 50  # recent task durations that place the first poll of a new task
PENDING_BATCH = 64  # pending rows read from the ledger at a time
MAX_POLL_ERRORS = 30  # consecutive failed polls of one task before giving up this run
UNREACHABLE_AFTER = 4  # consecutive connect failures of submits (nothing sent; ~7 s of backoff) before the run stops
UNCERTAIN_AFTER = 3  # consecutive in-doubt submits before the run stops (F5)
GONE_AFTER_S = 6 * 3600.0  # TASK_NOT_FOUND must persist this long before `lost` (F3): monotonic in a run, recorded across runs
GONE_ANSWERS = 3  # ... with at least this many answers within one run
GONE_RUNS = 3  # ... or in at least this many distinct runs (one run's wall clock jump never suffices)
RECORD_RETRY_DELAYS = (0.05, 0.25, 1.0)  # retries of a failed write of an accepted task id, after the first
UPDATE_BUFFER = 64  # task updates produced and not yet applied (the updates lane never blocks)


class StopReason(enum.StrEnum):
    COMPLETE = "complete"  # nothing left to do in scope
    SIGNAL = "signal"
    MAX_RUNTIME = "max_runtime"
    BUDGET = "budget"
    SUBMITTED = "submitted"  # `runner submit`: capacity full or nothing pending
    FATAL = "fatal"  # auth / balance / unreachable provider


@dataclasses.dataclass(frozen=True, slots=True)
class EngineConfig:
    """Everything the engine needs besides its collaborators.

    The run settings' defaults are :data:`runner.config.DEFAULTS` (never typed
    here); :meth:`from_settings` builds one from resolved :class:`RunSettings`.
    """

    manifest: str | None  # the manifest whose pending jobs may be submitted; None: submit nothing new
    concurrency: int = DEFAULTS.concurrency
    rpm: float | None = DEFAULTS.rpm
    poll_rpm: float | None = DEFAULTS.poll_rpm
    poll_interval: float = DEFAULTS.poll_interval
    poll_max_interval: float = 60.0  # engine tuning, no setting reaches it
    downloads: int = DEFAULTS.downloads
    budget_usd: float | None = DEFAULTS.budget_usd
    retries: int = 0  # the manifest's `retries:` (not a run setting)
    submit: bool = True
    collect: bool = True
    max_runtime: float | None = DEFAULTS.max_runtime
    polls_in_flight: int = 16  # engine tuning, no setting reaches it

    @classmethod
    def from_settings(
        cls, settings: RunSettings, *, manifest: str | None, retries: int = 0, submit: bool = True, collect: bool = True
    ) -> EngineConfig:
        """The engine's view of resolved run settings: every setting the engine reads, copied by name."""
        shared = {field.name for field in dataclasses.fields(cls)} & {field.name for field in dataclasses.fields(settings)}
        return cls(manifest=manifest, retries=retries, submit=submit, collect=collect,
                   **{name: getattr(settings, name) for name in shared})


@dataclasses.dataclass(slots=True)
class RunResult:
    reason: StopReason
    error: RunnerError | None = None
    submitted: int = 0
    in_doubt_new: int = 0
    done: int = 0
    failed: int = 0
    lost: int = 0
    rate_limited: int = 0
    file_errors: int = 0  # jobs whose video could not be stored (name, permissions, a link outside); they stay succeeded


class Reporter(Protocol):
    """Receives engine events; the CLI renders them (progress, logs)."""

    def event(self, kind: str, /, **fields: Any) -> None: ...


class _NullReporter:
    def event(self, kind: str, /, **fields: Any) -> None:
        pass


class _Fatal(Exception):
    """Internal: stop the run with this error."""

    def __init__(self, error: RunnerError) -> None:
        self.error = error


@dataclasses.dataclass(order=True, slots=True)
class _Due:
    at: float
    seq: int
    key: str = dataclasses.field(compare=False)
    task_id: str = dataclasses.field(compare=False)
    errors: int = dataclasses.field(default=0, compare=False)


class Engine:
    """Drives one ledger to completion (or to a stop) against one provider client."""

    def __init__(
        self,
        ledger: LedgerBackend,
        client: NovitaClient,
        config: EngineConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        reporter: Reporter | None = None,
        rng: random.Random | None = None,
        store: OutputStore | None = None,
        sources: Sequence[TaskUpdateSource] = (),
        inputs: InputResolver | None = None,
    ) -> None:
        self.ledger = ledger
        self.inputs = inputs  # turns a job's local input files into what is sent (the manifest's)
        self.store: OutputStore = store if store is not None else LocalStore(ledger.state_dir)
        self.client = client
        self.config = config
        self.clock = clock
        self.wall = wall
        self.reporter = reporter or _NullReporter()
        self.rng = rng or random.Random()
        self.submit_limiter = RateLimiter(config.rpm, clock=clock, rng=self.rng)
        self.poll_limiter = RateLimiter(config.poll_rpm, clock=clock, rng=self.rng)
        self.result = RunResult(reason=StopReason.COMPLETE)
        self._stopping = False
        self._stop_reason: StopReason | None = None
        self._changed = anyio.Event()
        self._outstanding = 0
        self._spent = 0.0
        self._submits_in_flight = 0
        self._due: list[_Due] = []
        self._seq = itertools.count()
        self._fetch_queue: deque[str] = deque()
        self._fetching = 0
        self._polling = 0  # polls on the wire, or whose update is not yet applied
        self.updates = UpdateConsumer(ledger)
        self._sources = tuple(sources)  # further producers of task updates (e.g. a webhook receiver)
        self._unapplied = 0  # their updates sent and not yet applied
        self._retry_queue: deque[tuple[float, str]] = deque()
        self._pending_cursor = 0
        self._pending_buffer: deque[JobRecord] = deque()
        self._ledger_drained = False
        self._pending_exhausted = not (config.submit and config.manifest is not None)
        self._connect_failures = 0
        self._durations: deque[float] = deque(maxlen=DURATION_SAMPLES)
        self._ambiguous_streak = 0
        self._fatal: RunnerError | None = None
        self._not_found: dict[tuple[str, str], tuple[float, int]] = {}  # (key, task) -> first answer (clock), answers
        self._suspect: set[str] = set()  # jobs with not-found answers a successful poll has not yet cancelled

    # ------------------------------------------------------------------ control
    def request_stop(self, reason: StopReason = StopReason.SIGNAL) -> None:
        """Graceful stop: submit nothing more, let POSTs on the wire finish and be recorded."""
        if not self._stopping:
            self._stopping = True
            self._stop_reason = reason
            log.info("stopping (%s): no new submits; waiting for POSTs on the wire", reason)
            self.reporter.event("stopping", reason=str(reason))
        self._notify()

    def _notify(self) -> None:
        self._changed.set()

    async def _wait_change(self, timeout: float | None = None) -> None:
        event = self._changed
        if timeout is None:
            await event.wait()
        else:
            with anyio.move_on_after(max(0.0, timeout)):
                await event.wait()
        if self._changed is event and event.is_set():
            self._changed = anyio.Event()

    # ---------------------------------------------------------------------- run
    async def run(self) -> RunResult:
        """Run until nothing is left to do, or a stop; returns how it ended."""
        self._load()
        try:
            await self._run_lanes()
        except BaseExceptionGroup as group:
            # An expected failure (disk full, ledger trouble) reaches the CLI as itself, not as a group.
            errors = _leaves(group)
            first = next((e for e in errors if isinstance(e, RunnerError)), None)
            if first is not None and all(isinstance(e, (RunnerError, anyio.get_cancelled_exc_class())) for e in errors):
                raise first from group
            raise
        self.result.rate_limited = self.submit_limiter.rate_limited
        if self._fatal is not None:
            self.result.reason, self.result.error = StopReason.FATAL, self._fatal
        elif self._stop_reason is not None:
            self.result.reason = self._stop_reason
        elif not self.config.collect:
            self.result.reason = StopReason.SUBMITTED
        return self.result

    async def _run_lanes(self) -> None:
        deadline = None if self.config.max_runtime is None else self.clock() + self.config.max_runtime
        self._update_send, self._update_receive = anyio.create_memory_object_stream[TaskUpdate](UPDATE_BUFFER)
        with self._update_send, self._update_receive:
            await self._lanes(deadline)

    async def _lanes(self, deadline: float | None) -> None:
        async with anyio.create_task_group() as lanes:
            if self.config.submit and self.config.manifest is not None:
                lanes.start_soon(self._submit_lane)
            if self.config.collect:
                lanes.start_soon(self._updates_lane)
                lanes.start_soon(self._poll_lane)
                for source in self._sources:
                    lanes.start_soon(source.run, self._send_update)
                for _ in range(max(1, self.config.downloads)):
                    lanes.start_soon(self._fetch_worker)
            while not self._finished():
                timeout = None if deadline is None else deadline - self.clock()
                if timeout is not None and timeout <= 0:
                    self.request_stop(StopReason.MAX_RUNTIME)
                    timeout = None
                await self._wait_change(timeout)
            lanes.cancel_scope.cancel()

    def _load(self) -> None:
        """Resume: count what is outstanding, queue what is running or awaiting download."""
        self._outstanding = self.ledger.outstanding()
        if self.config.manifest is not None:
            # Every job the manifest ever targeted, including those an edit dropped since.
            self._spent = self.ledger.spent_usd(self.config.manifest)
        if not self.config.collect:
            return
        self._suspect = self.ledger.not_found_keys()
        now = self.clock()
        spread = self.config.poll_interval  # resumed tasks: first polls spread over one interval
        for job in self.ledger.iter_jobs(None, states=[JobState.RUNNING]):
            assert job.task_id is not None
            self._schedule_poll(job.key, job.task_id, now + self.rng.uniform(0, spread))
        for job in self.ledger.iter_jobs(None, states=[JobState.SUCCEEDED]):
            self._fetch_queue.append(job.key)

    def _finished(self) -> bool:
        if self._fatal is not None or self._stopping:
            return self._submits_in_flight == 0
        submit_done = self._pending_exhausted and self._submits_in_flight == 0  # the lane has exited
        if not self.config.collect:
            return submit_done or (self._outstanding >= self.config.concurrency and self._submits_in_flight == 0)
        collect_done = (not self._due and not self._polling and not self._unapplied and not self._fetch_queue
                        and not self._fetching)
        return submit_done and collect_done

    # -------------------------------------------------------------- submit lane
    async def _submit_lane(self) -> None:
        async with anyio.create_task_group() as posts:
            while not self._stopping and self._fatal is None:
                if self._outstanding >= self.config.concurrency or self._downloads_urgent():
                    if self.config.collect and self._outstanding >= self.config.concurrency and not (
                        self._submits_in_flight or self._due or self._polling
                    ):
                        break  # polling of every outstanding task was given up: no slot frees this run
                    await self._wait_change()
                    continue
                if self._ambiguous_streak and self._ambiguous_streak + self._submits_in_flight >= UNCERTAIN_AFTER:
                    # Answers are getting lost: never have more POSTs on the wire than could still be
                    # ambiguous before the run stops (whatever order the answers come back in).
                    await self._wait_change()
                    continue
                job = await self._next_pending()
                if job is None:
                    # A POST on the wire may still be refused (429…) and come back; with job-level
                    # retries, a task still running may still fail and come back.
                    if self._submits_in_flight or (self.config.retries > 0 and (self._due or self._polling)):
                        await self._wait_change()
                        continue
                    break
                if self.config.budget_usd is not None and self._spent + job.estimated_usd > self.config.budget_usd + 1e-9:
                    log.warning(
                        "budget reached: %.2f USD estimated spent, next job %.2f USD, budget %.2f USD",
                        self._spent, job.estimated_usd, self.config.budget_usd,
                    )
                    self.reporter.event("budget_reached", spent_usd=self._spent, budget_usd=self.config.budget_usd)
                    self._stop_reason = StopReason.BUDGET  # stop submitting; keep collecting what was paid for
                    break
                await self.submit_limiter.acquire()
                if self._stopping or self._fatal is not None:
                    self._retry_queue.appendleft((0.0, job.key))
                    break
                body = endpoints.get(job.model).wire_body(job.request, self.inputs)  # built now, never stored
                # Write-ahead: the intent is durable before a byte goes on the wire.
                attempt = self.ledger.mark_submitting(job.key)
                if attempt is None:  # no longer pending, or another live owner holds it: nothing written
                    continue
                self._outstanding += 1
                self._spent += job.estimated_usd
                self._submits_in_flight += 1
                posts.start_soon(self._submit_one, job, attempt, body)
        self._pending_exhausted = True
        self._notify()

    async def _next_pending(self) -> JobRecord | None:
        """The next job to submit: due retries first, then the ledger's pending rows in order."""
        while True:
            now = self.clock()
            if self._retry_queue:
                not_before, key = self._retry_queue[0]
                if not_before <= now:
                    self._retry_queue.popleft()
                    job = self.ledger.get(key)
                    if job is not None and job.state is JobState.PENDING:
                        return job
                    continue
            if not self._pending_buffer and not self._ledger_drained:
                batch = self.ledger.pending_batch(self.config.manifest, limit=PENDING_BATCH, after_rowid=self._pending_cursor)
                if batch:
                    self._pending_cursor = batch[-1][0]
                    self._pending_buffer.extend(job for _, job in batch)
                else:
                    self._ledger_drained = True
            if self._pending_buffer:
                return self._pending_buffer.popleft()
            if not self._retry_queue:
                return None
            await self._wait_change(self._retry_queue[0][0] - now)
            if self._stopping or self._fatal is not None:
                return None

    async def _submit_one(self, job: JobRecord, attempt: int, body: dict[str, Any]) -> None:
        try:
            # Shielded: a graceful stop (or the lane's cancellation) must not cut a POST
            # between the wire and the ledger. The client's timeouts bound it.
            with anyio.CancelScope(shield=True):
                result = await self.client.submit(job.model, body)
                if not self._record_submit(job, attempt, result):
                    await self._record_accepted_later(job, attempt, result)
        finally:
            self._submits_in_flight -= 1
            self._notify()

    def _record_submit(self, job: JobRecord, attempt: int, result: SubmitResult) -> bool:
        """Record a POST's outcome. No await in here: it lands in one breath with the response.

        Returns False only when the provider accepted the task and the ledger could not record it:
        the task id is then in the rescue journal and the caller retries the write."""
        if result.outcome is SubmitOutcome.ACCEPTED:
            assert result.task_id is not None
            try:
                _moved(self.ledger.mark_running(job.key, attempt, task_id=result.task_id, http_status=result.http_status),
                       job.key, "running")
            except LedgerError as exc:
                log.critical("job %s was ACCEPTED as task %s but the ledger could not record it (%s); keeping the"
                             " id, writing it to the rescue journal and trying again", job.key, result.task_id, exc)
                self.ledger.rescue_task_id(job.key, attempt, result.task_id)
                return False
            except BaseException:
                log.critical("job %s was ACCEPTED as task %s but the ledger could not record it; this line is the"
                             " only link to a paid task", job.key, result.task_id)
                raise
            self._accepted(job, result.task_id)
            return True
        if result.outcome is SubmitOutcome.AMBIGUOUS:
            _moved(self.ledger.mark_in_doubt(
                job.key, attempt, http_status=result.http_status, reason=result.reason, message=result.message
            ), job.key, "in_doubt")
            self._outstanding -= 1
            self.result.in_doubt_new += 1
            log.warning(
                "job %s is IN DOUBT: %s — the provider may have created (and billed) a task whose id we never"
                " received; it is held, not resubmitted", job.key, result.message or result.reason,
            )
            self.reporter.event("in_doubt", key=job.key, reason=result.reason, message=result.message)
            self._ambiguous_streak += 1
            if self._ambiguous_streak >= UNCERTAIN_AFTER:
                self._set_fatal(TransientError(
                    f"{self._ambiguous_streak} submits in a row got no usable answer ({result.message or result.reason});"
                    " stopping before paying for more tasks whose ids would be lost"))
            return True
        # Refused: nothing was created.
        permanent = not result.retryable and not result.fatal
        _moved(self.ledger.mark_refused(
            job.key, attempt, http_status=result.http_status, reason=result.reason,
            message=result.message, permanent=permanent,
        ), job.key, "refused")
        self._outstanding -= 1
        self._spent -= job.estimated_usd
        if result.fatal:
            if result.unknown_route:  # a wrong base URL: the job is pending again, untouched and unpaid
                error_type: type[ProviderError] = EndpointNotFound
            elif result.reason == "BILLING_BALANCE_NOT_ENOUGH":
                error_type = BalanceError
            else:
                error_type = AuthError
            self._set_fatal(error_type(result.message or None, status=result.http_status, reason=result.reason))
            return True
        if permanent:
            self.result.failed += 1
            log.error("job %s refused by the provider: %s %s", job.key, result.reason, result.message)
            self.reporter.event("failed", key=job.key, reason=result.reason, message=result.message)
            return True
        delay = self._refused_delay(result)
        self._retry_queue.append((self.clock() + delay, job.key))
        self.reporter.event("retry_later", key=job.key, reason=result.reason, delay=delay)
        return True

    def _recorded_job(self, key: str) -> JobRecord | None:
        try:
            return self.ledger.get(key)
        except LedgerError:
            return None

    def _accepted(self, job: JobRecord, task_id: str) -> None:
        """Bookkeeping once an accepted task's id is recorded."""
        self._connect_failures = 0
        self._ambiguous_streak = 0
        self.submit_limiter.on_success()
        self.result.submitted += 1
        self.reporter.event("submitted", key=job.key, task_id=task_id, estimated_usd=job.estimated_usd)
        self._schedule_poll(job.key, task_id, self.clock() + self._first_poll_delay())

    async def _record_accepted_later(self, job: JobRecord, attempt: int, result: SubmitResult) -> None:
        """The first write of an accepted task id failed: try again a few times, then stop the run.

        The id is already in the rescue journal (when that could be written), so the next start
        records it even if every retry here fails; the job is never turned in doubt for it."""
        assert result.task_id is not None
        error: LedgerError | None = None
        for delay in RECORD_RETRY_DELAYS:
            await anyio.sleep(delay)
            try:
                _moved(self.ledger.mark_running(job.key, attempt, task_id=result.task_id, http_status=result.http_status),
                       job.key, "running")
            except LedgerError as exc:
                error = exc
                recorded = self._recorded_job(job.key)  # a commit that reported failure but landed
                if recorded is None or recorded.state is not JobState.RUNNING or recorded.task_id != result.task_id:
                    continue
            log.warning("job %s: task %s recorded after all", job.key, result.task_id)
            self._accepted(job, result.task_id)
            return
        assert error is not None
        journal = self.ledger.state_dir / RESCUE_NAME
        raise LedgerError(
            f"{error} — job {job.key} was accepted as task {result.task_id}; the id is kept in {journal} (or,"
            " failing that, in the log above) and the next run records it: free space and run again"
        ) from error

    def _refused_delay(self, result: SubmitResult) -> float:
        if result.http_status == 429:
            self.submit_limiter.on_rate_limited(result.retry_after)
            return result.retry_after if result.retry_after is not None else float(self.submit_limiter.interval)
        if result.http_status is None:  # connect error: nothing was sent
            self._connect_failures += 1
            if self._connect_failures >= UNREACHABLE_AFTER:
                self._set_fatal(ProviderUnreachable(
                    f"the provider at {self.client.base_url} is unreachable ({self._connect_failures} connections"
                    f" failed: {result.reason or result.message}); check the network, or --base-url /"
                    " NOVITA_BASE_URL; run again later (the jobs are pending, nothing was sent)"))
            return min(60.0, 0.5 * 2.0**self._connect_failures) * (0.5 + self.rng.random())
        return 1.0 + self.rng.random()  # CREATE_TASK_FAILED and the like

    def _set_fatal(self, error: RunnerError) -> None:
        if self._fatal is None:
            self._fatal = error
            log.error("stopping the run: %s", error)
            self.reporter.event("fatal", message=str(error))
        self._stopping = True
        self._notify()

    def _first_poll_delay(self) -> float:
        """The first poll of a new task: just after tasks of this run have been taking to finish.

        The provider's timings (``debug_info``: submit → complete) of recent tasks give the
        typical duration; polling a hair after it finds most tasks done in one request, where
        polling at the floor would only learn an eta rounded up to whole seconds (and cost a
        request). Until a few tasks have finished, the floor.
        """
        floor = self.config.poll_interval
        if len(self._durations) >= 3:
            typical = statistics.median(self._durations)
            return min(self.config.poll_max_interval, max(floor, typical * (1.01 + 0.02 * self.rng.random())))
        return floor * (0.9 + 0.2 * self.rng.random())

    def _learn_duration(self, info: Mapping[str, Any]) -> None:
        """Record how long the provider says this task took (submit → complete), when it says."""
        try:
            seconds = (float(info["complete_time_ms"]) - float(info["submit_time_ms"])) / 1000.0
        except (KeyError, TypeError, ValueError):
            return
        if 0 < seconds < 86400:
            self._durations.append(seconds)

    def _downloads_urgent(self) -> bool:
        """Hold new submits while results pile up for download (their URLs expire).

        A backlog of up to one concurrency's worth is normal (a wave of tasks finishing
        together); beyond that, downloads go first.
        """
        return len(self._fetch_queue) > max(4 * self.config.downloads, self.config.concurrency)

    # ---------------------------------------------------------------- poll lane
    def _schedule_poll(self, key: str, task_id: str, at: float, errors: int = 0) -> None:
        heapq.heappush(self._due, _Due(at, next(self._seq), key, task_id, errors))
        self._notify()

    async def _poll_lane(self) -> None:
        limit = anyio.Semaphore(max(1, self.config.polls_in_flight))
        async with anyio.create_task_group() as polls:
            while True:
                if not self._due:
                    await self._wait_change()
                    continue
                wait = self._due[0].at - self.clock()
                if wait > 0:
                    await self._wait_change(wait)
                    continue
                item = heapq.heappop(self._due)
                self._polling += 1  # counted before any await: the item is in neither place meanwhile
                await limit.acquire()
                await self.poll_limiter.acquire()
                polls.start_soon(self._poll_one, item, limit)

    async def _poll_one(self, item: _Due, limit: anyio.Semaphore) -> None:
        """Poll one task: its answer becomes a task update for the updates lane (TASK_NOT_FOUND and
        errors stay here: they are not updates)."""
        handed_over = False
        try:
            try:
                result = await self.client.task_result(item.task_id)
            except TaskNotFound as exc:
                self.ledger.record_event(item.key, "poll", "not_found", http_status=404, detail=str(exc), task_id=item.task_id)
                if self._confirmed_gone(item.key, item.task_id):
                    self._lose(item.key, f"the provider no longer knows task {item.task_id} (TASK_NOT_FOUND)", running=True)
                    return
                if item.errors + 1 >= MAX_POLL_ERRORS:
                    return
                delay = min(self.config.poll_max_interval, self.config.poll_interval * 2 ** min(item.errors, 5))
                self._schedule_poll(item.key, item.task_id, self.clock() + delay, item.errors + 1)
                return
            except (AuthError, EndpointNotFound) as exc:
                self._set_fatal(exc)
                return
            except (TransientError, RateLimited, ProviderError) as exc:
                self.ledger.record_event(item.key, "poll", "error", http_status=exc.status, detail=str(exc), task_id=item.task_id)
                if isinstance(exc, RateLimited):
                    self.poll_limiter.on_rate_limited(exc.retry_after)
                if item.errors + 1 >= MAX_POLL_ERRORS:
                    log.error("giving up polling task %s this run after %d errors; it stays running", item.task_id, item.errors + 1)
                    return
                delay = min(self.config.poll_max_interval, self.config.poll_interval * 2 ** min(item.errors, 5))
                self._schedule_poll(item.key, item.task_id, self.clock() + delay, item.errors + 1)
                return
            self._task_found(item.key, item.task_id)
            if result.task.status is TaskStatus.SUCCEED and not result.videos:
                # Not an update: nothing to record; ask again (a few times) before leaving it for the next run.
                self.ledger.record_event(item.key, "poll", "succeeded_without_video", task_id=item.task_id)
                if item.errors + 1 >= MAX_POLL_ERRORS:
                    log.error("task %s says SUCCEED but lists no video; it stays running for the next run", item.task_id)
                    return
                self._schedule_poll(item.key, item.task_id, self.clock() + self.config.poll_interval, item.errors + 1)
                return
            update = update_from_result(item.key, item.task_id, result, received_at=self.wall(), source="poll")
            await self._update_send.send(update)
            handed_over = True  # the updates lane settles `_polling` once it has applied the update
        finally:
            if not handed_over:
                self._polling -= 1
            limit.release()
            self._notify()

    async def _send_update(self, update: TaskUpdate) -> None:
        """How further sources (a webhook receiver) hand their updates to the one consumer."""
        self._unapplied += 1
        try:
            await self._update_send.send(update)
        except BaseException:
            self._unapplied -= 1
            raise

    # ------------------------------------------------------------- updates lane
    async def _updates_lane(self) -> None:
        """Apply every task update, from any source, through the one consumer; react only to what moved."""
        async for update in self._update_receive:
            try:
                self._on_applied(self.updates.apply(update))
            finally:
                if update.source == "poll":
                    self._polling -= 1
                else:
                    self._unapplied -= 1
                self._notify()

    def _on_applied(self, applied: Applied) -> None:
        update = applied.update
        key, task_id = update.key, update.task_id
        if applied.outcome is Outcome.SUCCEEDED:
            self._outstanding -= 1
            self._learn_duration(update.debug)
            self.reporter.event("succeeded", key=key, task_id=task_id)
            self._fetch_queue.append(key)
            return
        if applied.outcome is Outcome.FAILED:
            reason = update.reason or "the provider reported TASK_STATUS_FAILED without a reason"
            self._outstanding -= 1
            tasks = self._paid_tasks(key)
            # A job no manifest lists any more is never paid for again.
            if tasks <= self.config.retries and not self._stopping and self.ledger.targets_of(key):
                self.ledger.retry_failed_job(key)
                self._retry_queue.append((self.clock(), key))
                log.warning("task %s failed (%s); retrying as a new paid task (%d of %d)",
                            task_id, reason, tasks + 1, self.config.retries + 1)
                self.reporter.event("retry_failed", key=key, reason=reason)
                return
            self.result.failed += 1
            log.error("job %s failed at the provider: %s", key, reason)
            self.reporter.event("failed", key=key, reason=reason)
            return
        if not applied.current:
            log.debug("task %s of job %s: %s update from %s moves nothing (%s)", task_id, key, update.status,
                      update.source, applied.outcome)
            return
        if update.source != "poll":
            return  # the poller keeps its own schedule of the task
        eta = update.eta if update.eta is not None and update.eta > 0 else self.config.poll_interval
        delay = min(self.config.poll_max_interval, max(self.config.poll_interval, float(eta)))
        # Never before the provider's own estimate: a poll at 0.9 x eta finds the task still running
        # and costs a whole extra interval (measured: +30 % per job at T = 1 s, bench/saturation.py).
        delay *= 1.0 + 0.05 * self.rng.random()
        self._schedule_poll(key, task_id, self.clock() + delay)
        self.reporter.event("progress", key=key, status=str(update.status), percent=update.progress_percent)

    def _confirmed_gone(self, key: str, task_id: str) -> bool:
        """Whether TASK_NOT_FOUND for ``task_id`` (just recorded) is final: the job is then `lost`.

        Within this run, on the monotonic ``clock``: GONE_ANSWERS answers spanning GONE_AFTER_S.
        Across runs, by the ledger's records: not-found answers in at least GONE_RUNS distinct runs
        spanning GONE_AFTER_S of recorded time — so no wall clock jump within one run suffices. Only
        answers after the last successful poll of the task count.
        """
        now = self.clock()
        first, answers = self._not_found.get((key, task_id), (now, 0))
        self._not_found[(key, task_id)] = (first, answers + 1)
        self._suspect.add(key)
        if answers + 1 >= GONE_ANSWERS and now - first >= GONE_AFTER_S:
            return True
        since_found: list[float] = []
        runs: set[int] = set()
        for attempt in self.ledger.attempts(key):
            if attempt.task_id != task_id or attempt.kind not in ("poll", "download"):
                continue
            if attempt.outcome == "found":
                since_found, runs = [], set()
            elif attempt.outcome == "not_found":
                since_found.append(attempt.started_at)
                if attempt.run_id is not None:
                    runs.add(attempt.run_id)
        return len(runs) >= GONE_RUNS and bool(since_found) and max(since_found) - min(since_found) >= GONE_AFTER_S

    def _task_found(self, key: str, task_id: str) -> None:
        """The provider answered for ``task_id``: earlier not-found answers no longer count (recorded once)."""
        if key in self._suspect:
            self._suspect.discard(key)
            self._not_found.pop((key, task_id), None)
            self.ledger.record_event(key, "poll", "found", task_id=task_id,
                                     detail="the provider answered for the task again; earlier TASK_NOT_FOUND answers no longer count")

    def _paid_tasks(self, key: str) -> int:
        """Tasks the provider accepted for this job, over its whole life (retries are bounded by it)."""
        return sum(1 for a in self.ledger.attempts(key) if a.kind == "submit" and a.outcome in ("accepted", "adopted", "rescued"))

    def _lose(self, key: str, reason: str, *, running: bool) -> None:
        self.ledger.mark_lost(key, reason=reason)
        if running:
            self._outstanding -= 1
        self.result.lost += 1
        log.error("job %s is LOST: %s — it was paid for but its video can no longer be fetched", key, reason)
        self.reporter.event("lost", key=key, reason=reason)

    # --------------------------------------------------------------- fetch lane
    async def _fetch_worker(self) -> None:
        while True:
            if not self._fetch_queue:
                await self._wait_change()
                continue
            key = self._fetch_queue.popleft()
            self._fetching += 1
            try:
                await self._fetch_one(key)
            finally:
                self._fetching -= 1
                self._notify()

    async def _fetch_one(self, key: str) -> None:
        """Download one result. Failing here never loses it: the job stays `succeeded` for the next run
        unless the provider no longer knows the task (then it is `lost`, loudly).

        Every touch of the local disk happens inside the per-job handling: a problem with one job's
        file (name too long, no permission, a folder in the way, a link leading outside the state
        directory) is recorded on that job and the engine moves on; only a full or read-only disk
        stops the run."""
        job = self.ledger.get(key)
        if job is None or job.state is not JobState.SUCCEEDED:
            return
        targets = self.ledger.targets_of(key)
        dest_rel = output_path(*targets[0]) if targets else None
        if dest_rel is None:  # an edit dropped it from every manifest after it was paid for: keep it anyway
            dest_rel = orphan_path(self.ledger.orphan_home(key), key)
            log.warning("job %s is no longer in any manifest but was paid for; storing its video as %s", key, dest_rel)
        try:
            await self._download(job, dest_rel)
        except (OSError, UnsafeDestination) as exc:
            self._file_problem(job, dest_rel, exc)

    async def _download(self, job: JobRecord, dest_rel: str) -> None:
        key = job.key
        self.store.prepare(dest_rel)
        # An existing file at dest is never overwritten: adopted if it holds this very video (a run
        # killed between the rename and its record), else this one is stored beside it.
        beside = beside_name(dest_rel, key)
        try:
            check_media = endpoints.get(job.model).check_media  # the endpoint says what a good result looks like
        except endpoints.UnknownEndpoint:
            check_media = None  # a model this runner does not know: the default check (an MP4)

        def open_sink() -> Sink:
            return self.store.open_sink(dest_rel, beside=beside)

        url, expires = job.video_url, job.url_expires_at
        downloads = refreshes = 0
        while downloads < MAX_FETCH_TRIES and refreshes < MAX_FETCH_TRIES:
            try:
                if url is None or (expires is not None and expires - self.wall() < URL_MARGIN_S):
                    refreshes += 1
                    url, expires = await self._fresh_url(job)
                    if url is None:
                        return
                downloads += 1
                download = await self.client.download(url, open_sink, check_media=check_media)
            except UrlExpired as exc:
                self.ledger.record_event(key, "download", "url_expired", http_status=exc.status, detail=str(exc), task_id=job.task_id)
                url = None
                continue
            except (AuthError, EndpointNotFound) as exc:  # a wrong key or base URL: stop, as a poll would
                self._set_fatal(exc)
                return
            except ProviderError as exc:  # DownloadError, TransientError, RateLimited, a refused refresh…
                self.ledger.record_event(key, "download", "error", http_status=exc.status, detail=str(exc), task_id=job.task_id)
                await anyio.sleep(min(30.0, 0.25 * 2**downloads) * self.rng.random())
                continue
            rel = download.rel
            if rel != dest_rel:
                log.warning("job %s: %s already holds another video; storing this one as %s", key, dest_rel, PurePosixPath(rel).name)
            if download.adopted:
                log.info("job %s: %s already holds this very video (an earlier run stopped before recording it);"
                         " recorded as it is", key, rel)
            self.ledger.mark_done(key, path=rel, sha256=download.sha256, bytes=download.bytes)
            self.result.done += 1
            self.reporter.event("done", key=key, path=rel, bytes=download.bytes)
            self._materialise_other_targets(key, rel)
            return
        log.error("job %s: could not download its video this run (%d downloads, %d fresh URLs); it stays"
                  " succeeded and the next run tries again", key, downloads, refreshes)
        self.reporter.event("download_deferred", key=key)

    def _file_problem(self, job: JobRecord, dest_rel: str, exc: OSError | UnsafeDestination) -> None:
        """One job's destination cannot be written: record it on the job and move on (a full disk: stop)."""
        key = job.key
        where = self.store.describe(dest_rel)
        if isinstance(exc, OSError) and exc.errno in WHOLE_DISK_ERRNOS:
            self.ledger.record_event(key, "download", "disk_error", detail=str(exc), task_id=job.task_id)
            self._set_fatal(RunnerError(
                f"cannot write {where}: {exc.strerror or exc}; free space (or make the disk writable) and run"
                " again (the video stays recorded as succeeded and will be downloaded then)"))
            return
        if isinstance(exc, OSError):
            what = exc.strerror or str(exc)
            target = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(where) else ""
            detail = (f"cannot store its video at {dest_rel}: {what}{target}; fix the output name or the folder"
                      " and run again (the video stays recorded as succeeded)")
        else:
            detail = f"cannot store its video at {dest_rel}: {exc}"
        self.ledger.note_file_problem(key, detail)
        self.result.file_errors += 1
        log.error("job %s: %s", key, detail)
        self.reporter.event("file_error", key=key, path=dest_rel, message=detail)

    async def _fresh_url(self, job: JobRecord) -> tuple[str | None, float | None]:
        """Ask the provider again: each task-result call signs a new URL."""
        assert job.task_id is not None
        try:
            result = await self.client.task_result(job.task_id)
        except TaskNotFound as exc:
            self.ledger.record_event(job.key, "download", "not_found", http_status=404, detail=str(exc), task_id=job.task_id)
            if self._confirmed_gone(job.key, job.task_id):
                self._lose(job.key, f"the result URL expired and the provider no longer knows task {job.task_id}", running=False)
                return None, None
            raise TransientError(str(exc)) from exc
        self._task_found(job.key, job.task_id)
        if not result.videos:
            raise TransientError("the provider returned no video for a finished task")
        video = result.videos[0]
        expires = None if video.video_url_ttl is None else self.wall() + video.video_url_ttl
        self.ledger.mark_succeeded(job.key, video_url=video.video_url, url_expires_at=expires, debug=result.debug_info())
        return video.video_url, expires

    def _materialise_other_targets(self, key: str, source: str) -> None:
        """Other manifests asking for the same video get a link (or copy) of the one paid for.

        A target that cannot be placed is reported and skipped: the video itself is stored."""
        for rel in [output_path(manifest, output) for manifest, output in self.ledger.targets_of(key)[1:]]:
            try:
                if self.store.exists(rel):
                    continue
                self.store.link(source, rel)
            except (OSError, RunnerError) as exc:
                log.error("job %s: could not place a copy at %s: %s", key, rel, exc)
                self.reporter.event("file_error", key=key, path=rel, message=str(exc))


def materialise_targets(ledger: LedgerBackend, manifest: str, store: OutputStore | None = None) -> int:
    """Give ``manifest`` its files for jobs another manifest already paid for and stored.

    Called after (re-)planning a manifest; returns how many files were linked or copied. A file
    that cannot be placed (its source gone, a name or folder the disk refuses) is logged and
    skipped: one job's file never blocks the others.
    """
    store = store if store is not None else LocalStore(ledger.state_dir)
    made = 0
    for job in ledger.iter_jobs(manifest, states=[JobState.DONE]):
        output = ledger.target_output(manifest, job.key)
        target = None if output is None else output_path(manifest, output)
        if target is None or job.path is None or target == job.path:
            continue
        try:
            if store.exists(target):
                continue
            store.link(job.path, target)
        except (OSError, RunnerError) as exc:
            log.error("job %s: could not place its video at %s: %s", job.key, target, exc)
            continue
        made += 1
    return made


def _moved(moved: bool, key: str, target: str) -> None:
    """A POST's answer must land: a refused transition here (only a bug can make one while this
    process owns the job) is handled as a failed ledger write (the task id goes to the journal)."""
    if not moved:
        raise LedgerError(f"job {key} could not be moved to {target}: it is no longer submitting; this is a bug in runner")


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for error in group.exceptions:
        leaves.extend(_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    return leaves
