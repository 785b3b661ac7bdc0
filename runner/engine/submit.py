"""The submit lane: pending ─▶ submitting ─▶ running | in doubt | pending again (the write-ahead POST).

Jobs come from the :class:`~runner.engine.intake.Intake` (the ledger's pending rows in small batches, due retries,
failed tasks the updates lane sends back to be paid for again). For each: the budget check, the rate limiter, the wire
body (:mod:`.admission`: a job whose video could not be stored is not sent this run, asked before the limiter; local
inputs resolved now, a changed file fails the job and nothing is sent; images inline wait for room for the body's
bytes first, :mod:`.room`, before anything of the job is written). When several slots are free at once, every further
job ready NOW (slot, limiter, budget, room — waiting for none) joins the first one's *group*; then the money path:

- the group's write-aheads (``mark_submitting_many``) are committed in ONE durable transaction before a byte of any of
  its POSTs goes on the wire (one fsync for a wave of submits, not one a job; a shared ledger's write-ahead, which
  carries every runner's limits, stays one job at a time);
- on a shared ledger a POST leaves only while the lease it was written ahead under may still hold (:mod:`.gate`);
- the POST and the write of its answer run in one shielded scope, with no await between the answer and the ledger
  write: a graceful stop lets them finish and be recorded;
- an ambiguous answer turns the job ``in_doubt``: it is never resubmitted here; so does an accepted answer naming a
  task id a job holds already (``mark_running`` checks it in its own transaction and refuses,
  :class:`~runner.errors.TaskIdTaken`, writing nothing): reason ``TASK_ID_TAKEN``;
- an accepted task whose id cannot be written goes to the rescue journal and the write is retried.

An accepted task goes to the poller's stream. The lane waits while every slot is held (:attr:`RunState.has_slot`).
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from runner.client import NovitaClient, SubmitOutcome, SubmitResult
from runner.client.submit import NOT_SENT, is_balance, taken
from runner.endpoints.media import InputResolver
from runner.engine import events as ev
from runner.engine.admission import ROOM_LOOK_S, Admission, AdoptCommands, Destinations
from runner.engine.gate import Refusal, SharedGate
from runner.engine.intake import Intake
from runner.engine.landing import land_later, landed
from runner.engine.policy import EngineConfig
from runner.engine.ratelimit import RateLimiter
from runner.engine.refusals import Refusals
from runner.engine.room import Bodies, NotNow
from runner.engine.sources import Watch
from runner.engine.state import RunState, StopReason
from runner.engine.streams import put
from runner.errors import (
    AuthError,
    BalanceError,
    EndpointNotFound,
    LedgerError,
    ProviderError,
    RunnerError,
    TaskIdTaken,
    TransientError,
)
from runner.ledger import JobRecord, LedgerBackend
from runner.ledger.rescue import crash_point
from runner.storage import OutputStore

__all__ = ["SubmitLane"]

log = logging.getLogger("runner.engine")


class SubmitLane:
    def __init__(
        self, ledger: LedgerBackend, client: NovitaClient, config: EngineConfig, state: RunState, reporter: ev.Reporter,
        *, limiter: RateLimiter, clock: Callable[[], float], rng: random.Random,
        retries: MemoryObjectReceiveStream[str] | None, watch: MemoryObjectSendStream[Watch] | None,
        inputs: InputResolver | None = None, edited: Callable[[], str | None] | None = None,
        store: OutputStore | None = None,
        may_send: Callable[[], bool] | None = None,  # a shared ledger: whether this runner's lease may still hold
    ) -> None:
        self.ledger = ledger
        self.client = client
        self.config = config
        self.policy = config.policy
        self.state = state
        self.reporter = reporter
        self.limiter = limiter
        self.clock = clock
        self.rng = rng
        self._retries = retries  # keys of failed tasks to submit again, from the updates lane
        self._intake = Intake(ledger, config, state, clock=clock, retries=retries, edited=edited)
        self._watch = watch  # accepted tasks, to the poller (None: `runner submit`, nothing is polled)
        self._in_flight = 0  # POSTs on the wire (or their answers not yet recorded)
        self._refusals = Refusals(self.policy, limiter, rng, clock, client.base_url)  # when a refused job goes again
        self._ambiguous_streak = 0
        self._held_said = False  # the line that every slot is held in doubt was written (until a slot frees)
        self._gate = SharedGate(ledger, config, state, reporter, clock=clock, may_send=may_send) if config.shared else None
        # Each job's folder is checked before its POST (None: not checked: `collect` alone, a test's store).
        destinations = (Destinations(store, ledger, state, reporter, clock=clock, shared=config.shared,
                                     collecting=config.collect, adopt=AdoptCommands.of(config))
                        if store is not None and config.manifest is not None else None)
        self._admission = Admission(ledger, inputs, destinations, reporter)  # inputs as planned, videos storable
        self._bodies = Bodies(self._admission, config.inline_memory)  # inline bodies' bytes: at most this many held

    @property
    def on_wire(self) -> int:  # POSTs written ahead whose answers are not recorded yet (a chore waits for none)
        return self._in_flight

    async def run(self) -> None:
        with contextlib.ExitStack() as streams:  # closed when the lane returns: the poller's stream ends with it
            for stream in (self._retries, self._watch):
                if stream is not None:
                    streams.enter_context(stream)
            await self._run()
        self._admission.finish()

    async def _run(self) -> None:
        state, config = self.state, self.config
        async with anyio.create_task_group() as posts:
            while not state.halted and state.stop_reason is None:  # a stop that lets the run collect ends the submits too
                if not state.has_slot:
                    release = state.next_release()  # an in-doubt job's slot frees then
                    if not self._in_flight and (not config.collect or (state.followed == 0 and release is None)):
                        break  # `runner submit` filled its slots, or no slot frees this run (polls given up)
                    if release is not None and not state.followed and not self._held_said:  # idle: say why, once
                        self._held_said = True
                        log.warning("every slot is held by a job in doubt (its POST may have created a task that still"
                                    " runs at the provider): the next frees in %.0f s (RUNNER_IN_DOUBT_HOLD)", release)
                    await state.wait_change(release)
                    continue
                self._held_said = False
                if self._ambiguous_streak and self._ambiguous_streak + self._in_flight >= self.policy.uncertain_after:
                    # Answers are getting lost: never have more POSTs on the wire than could still be
                    # ambiguous before the run stops (whatever order the answers come back in).
                    await state.wait_change()
                    continue
                job = await self._intake.next()
                if job is None:
                    # A POST on the wire may still be refused (429…) and come back; with job-level
                    # retries, a task still running may still fail and come back.
                    if not state.halted and (self._in_flight or (config.retries > 0 and state.followed)):
                        await state.wait_change()
                        continue
                    break
                if not state.within_budget(job.estimated_usd):
                    self._budget_reached(job)
                    break
                if self._intake.edited():
                    break
                verdict = self._admission.storable(job)  # before the limiter: a job held back costs no turn
                if verdict != "send":
                    if verdict == "later":  # room on the disk once the videos on their way are stored
                        self._intake.put_back(job)
                        await state.wait_change(ROOM_LOOK_S)
                    continue
                await self.limiter.acquire()
                if self._gate is not None and not await self._gate.admit():
                    break
                if state.halted or self._intake.edited():  # again after the waits: the edit may be newer
                    break
                if not await self._send(posts, job):
                    break

    async def _send(self, posts: TaskGroup, job: JobRecord) -> bool:
        """Build ``job``'s body, write it ahead (with the jobs ready now) and start the POSTs; False: no more submits.
        Its own method so that no body outlives it in the lane: each is held by its POST alone, until answered."""
        # Its body (images inline: its bytes, once room for them is taken — the lane's one wait for room, before
        # the write-ahead, while nothing of this job is written; the room held is POSTs' on the wire, given back
        # as they are answered).
        state = self.state
        body = await self._bodies.when_room(job, lambda: state.halted or state.stop_reason is not None
                                            or self._intake.edited())
        if body is NotNow.STOPPED:
            return False
        if body is None or body is NotNow.LATER:  # an input not as planned: the job failed unsent
            return True
        if self._gate is not None:  # a shared ledger: every runner's limits, one write-ahead at a time
            attempt = self._gate.write_ahead(job)
            if attempt is None:  # no longer ours to submit, no slot or budget left
                self._bodies.give(body)
                del body  # not held while the gate waits
                return await self._refused(job)
            self._launch(posts, job, attempt, body)
            return True
        group = [(job, body)]
        over_budget = self._gather(group)
        # Write-ahead: the intents of the whole group are durable, in ONE commit, before a byte of any
        # of its POSTs goes on the wire (they start below, after it; nothing awaits in between).
        attempts = self.ledger.mark_submitting_many([job.key for job, _ in group])
        # A crash from here until the POSTs are answered and recorded leaves the group's jobs `submitting`:
        # the next start holds each one in doubt, never resubmitted — as a crash between one job's
        # write-ahead and its POST always did. A group is at most the free slots, so a crash can still
        # leave at most `concurrency` jobs in doubt, as before.
        if len(group) > 1:
            crash_point("write-ahead-group")
        for (job, body), attempt in zip(group, attempts, strict=True):
            if attempt is not None:  # None: no longer pending (nothing was written for it)
                self._launch(posts, job, attempt, body)
            else:
                self._bodies.give(body)
        if over_budget is not None:
            if None in attempts:  # the group counted a job not launched: its estimate may let this one in
                self._intake.put_back(over_budget)
                return True
            self._budget_reached(over_budget)
            return False
        return True

    def _gather(self, group: list[tuple[JobRecord, dict[str, Any] | bytes]]) -> JobRecord | None:
        """Add to ``group`` every further job ready NOW — a slot free, the rate limiter's turn come, a job at hand
        (a due retry or a pending row), in the budget — waiting for none: no await in here, no latency added.
        The budget is counted as job by job: each job's estimate before the next is admitted. Returns the
        job that no longer fits the budget (the run stops submitting after this group), else None."""
        state, uncertain_after = self.state, self.policy.uncertain_after
        cost = group[0][0].estimated_usd
        while state.free_slots > len(group) and self.limiter.ready():
            if self._ambiguous_streak and self._ambiguous_streak + self._in_flight + len(group) >= uncertain_after:
                return None  # answers are getting lost: no more POSTs on the wire than could still be ambiguous
            job = self._intake.ready()[0]
            if job is None:
                return None
            if not state.within_budget(cost + job.estimated_usd):
                return job
            verdict = self._admission.storable(job, ahead=len(group))
            if verdict == "later":  # the group goes; this one waits for room
                self._intake.put_back(job)
                return None
            if verdict == "hold":
                if state.stop_reason is not None:  # a read-only disk: the group goes, no job after it
                    return None
                continue
            body = self._bodies.now(job)
            if body is NotNow.LATER:  # no room for its bytes: the group goes, this one waits (before its write-ahead)
                self._intake.put_back(job)
                return None
            if body is not None and body is not NotNow.STOPPED:
                self.limiter.take_now()
                group.append((job, body))
                cost += job.estimated_usd
        return None

    def _launch(self, posts: TaskGroup, job: JobRecord, attempt: int, body: dict[str, Any] | bytes) -> None:
        """After its committed write-ahead: the job takes its slot and its estimate, and its POST starts."""
        self.state.submitting(job.key, job.estimated_usd)
        self._in_flight += 1
        posts.start_soon(self._submit_one, job, attempt, body)

    # ------------------------------------------------------ the write-ahead
    async def _refused(self, job: JobRecord) -> bool:
        """After a refused write-ahead on a shared ledger; False when the run stops submitting (the
        budget of every runner together is reached). A job still pending waiting for a slot (the other
        runners' tasks fill the concurrency) goes back to the head of the queue, to be tried again."""
        assert self._gate is not None
        why, current = self._gate.refusal(job)
        if why is Refusal.BUDGET:
            self._budget_reached(job)
            return False
        if current is not None:
            self._intake.put_back(current)
            await self._gate.idle()
        return True

    def _budget_reached(self, job: JobRecord) -> None:
        state, budget = self.state, self.config.budget_usd
        assert budget is not None
        if state.spent_usd > budget + 1e-9:  # lowered below what earlier runs spent
            log.warning("budget already passed: %.2f USD estimated spent before this run's submits, budget %.2f USD;"
                        " nothing more is sent (raise --budget to go on)", state.spent_usd, budget)
        else:
            log.warning("budget reached: %.2f USD estimated spent, next job %.2f USD, budget %.2f USD",
                        state.spent_usd, job.estimated_usd, budget)
        self.reporter.emit(ev.BudgetReached(spent_usd=state.spent_usd, budget_usd=budget))
        state.stop(StopReason.BUDGET, submitting_only=True)  # keep collecting what was paid for

    # ----------------------------------------------------------- the money path
    async def _submit_one(self, job: JobRecord, attempt: int, body: dict[str, Any] | bytes) -> None:
        accepted: str | None = None
        held = len(body) if isinstance(body, bytes) else 0  # an inline body's room, given back once answered
        try:
            # Shielded: a graceful stop (or the lane's cancellation) must not cut a POST
            # between the wire and the ledger. The client's timeouts bound it.
            with anyio.CancelScope(shield=True):
                if self._gate is not None and self._gate.lapsed(job, attempt, self._intake.retry_later):
                    return  # stopped past its lease since the write-ahead: not sent
                if self._gate is None:
                    result = await self.client.submit(job.model, body)
                else:  # its lease asked once more by the client as the first byte is about to go
                    result = await self.client.submit(job.model, body, may_send=self._gate.may_send)
                    if result.reason == NOT_SENT:
                        self._gate.give_back(job, attempt, self._intake.retry_later)
                        return
                del body  # its bytes (images inline) are not kept while the answer is recorded and polled
                answered = self.clock()
                if self._record_submit(job, attempt, result):  # accepted: it keeps its slot (not when in doubt)
                    accepted = result.task_id if self.state.holds(job.key) else None
                else:
                    accepted = await self._record_accepted_later(job, attempt, result)
        finally:
            self._in_flight -= 1  # every outcome above changed the run state: the lane wakes and sees this
            if held:
                self._bodies.room.give(held)
        if accepted is not None and self._watch is not None:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):  # the poller has ended
                await put(self._watch, Watch(job.key, accepted, answered=answered))  # recorded already: polling may start late, never wrongly

    def _record_submit(self, job: JobRecord, attempt: int, result: SubmitResult) -> bool:
        """Record a POST's outcome. No await in here: it lands in one breath with the response.

        Returns False only when the provider accepted the task and the ledger could not record it:
        the task id is then in the rescue journal and the caller retries the write."""
        key = job.key
        if result.outcome is SubmitOutcome.ACCEPTED:
            task_id = result.task_id
            assert task_id is not None
            try:
                landed(self.ledger.mark_running(key, attempt, task_id=task_id, http_status=result.http_status),
                       key, "running")
            except TaskIdTaken as exc:  # a job holds this id already (checked in the same transaction): nothing
                log.info("job %s: the answer names task %s, which job %s holds already", key, task_id, exc.holder)
                result = taken(result, exc.holder)  # was written, and this POST's own task is in doubt (below)
            except LedgerError as exc:
                log.critical("job %s was ACCEPTED as task %s but the ledger could not record it (%s); keeping the"
                             " id, writing it to the rescue journal and trying again", key, task_id, exc)
                self.ledger.rescue_task_id(key, attempt, task_id)
                return False
            except BaseException:  # not a ledger error (a bug, a bare encoding error): journalled too, then raised
                log.critical("job %s was ACCEPTED as task %s but the ledger could not record it; this line and the"
                             " rescue journal are the only link to a paid task", key, task_id)
                self.ledger.rescue_task_id(key, attempt, task_id)
                raise
            else:
                self._accepted(job, task_id)
                return True
        if result.outcome is SubmitOutcome.AMBIGUOUS:
            landed(self.ledger.mark_in_doubt(
                key, attempt, http_status=result.http_status, reason=result.reason, message=result.message
            ), key, "in_doubt")
            self.state.doubted(key, self.clock() + self.policy.in_doubt_hold_s)
            log.warning("job %s is IN DOUBT: %s — the provider may have created (and billed) a task whose id we never"
                        " received; it is held, not resubmitted", key, result.message or result.reason)
            self.reporter.emit(ev.InDoubt(key=key, reason=result.reason, message=result.message))
            self._ambiguous_streak += 1
            if self._ambiguous_streak >= self.policy.uncertain_after:
                self._fail(TransientError(
                    f"{self._ambiguous_streak} submits in a row got no usable answer ({result.message or result.reason});"
                    " stopping before paying for more tasks whose ids would be lost"))
            return True
        # Refused: nothing was created.
        permanent = not result.retryable and not result.fatal
        landed(self.ledger.mark_refused(
            key, attempt, http_status=result.http_status, reason=result.reason,
            message=result.message, permanent=permanent,
        ), key, "refused")
        if result.fatal:
            if result.unknown_route:  # a wrong base URL: the job is pending again, untouched and unpaid
                error_type: type[ProviderError] = EndpointNotFound
            elif is_balance(result.http_status, result.reason):
                error_type = BalanceError
            else:
                error_type = AuthError
            self._fail(error_type(result.message or None, status=result.http_status, reason=result.reason))
        elif permanent:
            log.error("job %s refused by the provider: %s", key, " ".join(filter(None, (result.reason, result.message))))
            self.reporter.emit(ev.Refused(key=key, reason=result.reason, message=result.message))
        else:
            again = self._refusals.again(result)
            if again.fatal is not None:
                self._fail(again.fatal)
            self._intake.retry_later(key, self.clock() + again.delay)
            self.reporter.emit(ev.RetryLater(key=key, reason=result.reason, delay=again.delay))
            if again.stop is not None and self.state.stop(StopReason.REFUSING, submitting_only=True):
                log.error("%s", again.stop)  # the tasks paid for are collected; the run then ends with it
                self.state.end_with(again.stop)
                self.reporter.emit(ev.Stopping(reason=str(StopReason.REFUSING)))
        self.state.refused(key, job.estimated_usd)  # after the retry is queued: a waiting lane sees both
        return True

    def _accepted(self, job: JobRecord, task_id: str) -> None:
        """Bookkeeping once an accepted task's id is recorded (the job keeps its slot, now running)."""
        self._refusals.accepted()
        self._ambiguous_streak = 0
        self.limiter.on_success()
        self.state.accepted(job.key)
        self.reporter.emit(ev.Accepted(key=job.key, task_id=task_id, estimated_usd=job.estimated_usd))

    async def _record_accepted_later(self, job: JobRecord, attempt: int, result: SubmitResult) -> str | None:
        """The first write of an accepted task id failed: written again (:func:`land_later`: a few tries, then the run
        stops) — the job is never turned in doubt for it, unless a retry finds the id held by a job already (another
        runner recorded it meanwhile): then it is in doubt as on a first try (None: nothing to poll)."""
        assert result.task_id is not None
        holder = await land_later(self.ledger, job.key, attempt, result.task_id, result.http_status,
                                  self.policy.record_retry_delays, AdoptCommands.of(self.config))
        if holder is not None:
            self._record_submit(job, attempt, taken(result, holder))
            return None
        self._accepted(job, result.task_id)
        return result.task_id

    def _fail(self, error: RunnerError) -> None:
        if self.state.fail(error):
            self.reporter.emit(ev.Fatal(message=str(error)))

