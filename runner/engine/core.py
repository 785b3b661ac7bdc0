"""The engine: lanes in one task group, wired by bounded streams, the ledger the only truth.

    submit lane ──Watch──▶ poller (a source) ──TaskUpdate──▶ updates lane ──key──▶ fetch lane
         ▲                 other sources ──TaskUpdate──┘           │
         └──────────────── key (a failed task retried) ───────────┘

    submit    pending ─▶ submitting ─▶ running        (write-ahead POST; runner/engine/submit.py)
    poller    GET task-result, by due time ─▶ task updates (runner/engine/sources/poller.py)
    updates   running ─▶ succeeded | failed           (one idempotent consumer; runner/engine/updates.py)
    fetch     succeeded ─▶ done | lost                (download, verify, store; runner/engine/fetch.py)

The lanes share no counters: what more than one needs (slots held, spend, the stop) is the
:class:`RunState`, changed only when a ledger transition moved. The run ends when the lanes have
nothing left: the submit lane returns (nothing pending, a stop, the budget), then — collecting —
once no job this run follows holds a slot, the sources and the updates lane are cancelled, which
closes the fetch stream; the fetch lane drains it and returns. A stop or a fatal error ends the
run as soon as the POSTs on the wire are recorded.

Memory does not grow with the batch: pending jobs are read in small batches; only tasks holding a
slot (bounded by the concurrency) and the streams' bounded buffers are held.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from runner.boot import BootStamp, this_boot
from runner.client import NovitaClient
from runner.endpoints.media import InputResolver
from runner.engine import events as ev
from runner.engine.chores import Chore, keep
from runner.engine.clock import LoopClock
from runner.engine.fetch import FetchLane
from runner.engine.gone import GoneRules
from runner.engine.holds import hold_left
from runner.engine.leases import LeaseKeeper
from runner.engine.policy import EngineConfig
from runner.engine.ratelimit import RateLimiter
from runner.engine.sources import SendUpdate, TaskUpdateSource, Watch
from runner.engine.sources.poller import Poller
from runner.engine.state import RunResult, RunState, StopReason, Tally
from runner.engine.streams import put
from runner.engine.submit import SubmitLane
from runner.engine.updates import TaskUpdate, UpdatesLane
from runner.errors import RunnerError
from runner.jobs import JobState
from runner.ledger import JobRecord, LedgerBackend
from runner.storage import OutputStore
from runner.storage.local import LocalStore

__all__ = ["Engine"]

log = logging.getLogger("runner.engine")

_T = TypeVar("_T")
_Stream = TypeVar("_Stream", MemoryObjectSendStream, MemoryObjectReceiveStream)  # type: ignore[type-arg]


class Engine:
    """Drives one ledger to completion (or to a stop) against one provider client."""

    def __init__(
        self,
        ledger: LedgerBackend,
        client: NovitaClient,
        config: EngineConfig,
        *,
        clock: Callable[[], float] | None = None,  # None: the event loop's (LoopClock)
        wall: Callable[[], float] = time.time,
        reporter: ev.Reporter | None = None,
        rng: random.Random | None = None,
        store: OutputStore | None = None,
        sources: Sequence[TaskUpdateSource] = (),
        inputs: InputResolver | None = None,
        edited: Callable[[], str | None] | None = None,
        boot: Callable[[], BootStamp | None] = this_boot,
        chores: Sequence[Chore] = (),
    ) -> None:
        self.ledger = ledger
        self.store: OutputStore = store if store is not None else LocalStore(ledger.state_dir)
        self.client = client
        self.config = config
        self.policy = config.policy
        self.clock = clock = clock if clock is not None else LoopClock()
        self.wall = wall
        self.boot = boot  # this boot's id and steady clock: how long between TASK_NOT_FOUND answers of one boot
        self.tally = Tally(reporter or ev.NullReporter())
        self.reporter: ev.Reporter = self.tally
        self.rng = rng or random.Random()
        self.inputs = inputs
        self.edited = edited  # the manifest file (or a file it reads) that changed since it was planned, else None
        self.submit_limiter = RateLimiter(config.rpm, clock=clock, rng=self.rng)
        self.poll_limiter = RateLimiter(config.poll_rpm, clock=clock, rng=self.rng)
        self.state = RunState(concurrency=config.concurrency, budget_usd=config.budget_usd, clock=clock)
        self._keeper: LeaseKeeper | None = None  # a shared ledger's lease and takeovers (config.shared)
        self._keeper_fetch: MemoryObjectSendStream[str] | None = None  # its way to the downloads (taken-over results)
        self._sources = tuple(sources)  # further producers of task updates (e.g. a webhook receiver)
        self._chores = tuple(chores)  # the caller's work done now and then between POSTs (runner/engine/chores.py)
        self._submit: SubmitLane | None = None

    @property
    def result(self) -> RunResult:
        return self.tally.result

    def request_stop(self, reason: StopReason = StopReason.SIGNAL) -> None:
        """Graceful stop: submit nothing more, let POSTs on the wire finish and be recorded."""
        if self.state.stop(reason):
            log.info("stopping (%s): no new submits; waiting for POSTs on the wire", reason)
            self.reporter.emit(ev.Stopping(reason=str(reason)))

    async def run(self) -> RunResult:
        """Run until nothing is left to do, or a stop; returns how it ended."""
        try:
            await self._run()
        except BaseExceptionGroup as group:
            # An expected failure (disk full, ledger trouble) reaches the CLI as itself, not as a group.
            errors = _leaves(group)
            first = next((e for e in errors if isinstance(e, RunnerError)), None)
            if first is not None and all(isinstance(e, (RunnerError, anyio.get_cancelled_exc_class())) for e in errors):
                raise first from group
            raise
        result, state = self.result, self.state
        result.rate_limited = self.submit_limiter.rate_limited
        if state.fatal is not None:
            result.reason, result.error = StopReason.FATAL, state.fatal
        elif state.stop_reason is not None:
            result.reason = state.stop_reason
        elif not self.config.collect:
            result.reason = StopReason.SUBMITTED
        if result.error is None:
            result.error = state.end_error
        if state.unstored and state.stop_reason is not None:
            log.warning("%d paid video(s) were not downloaded before the run stopped (%s): they stay succeeded and the"
                        " next run downloads them, each from its start — one that takes longer than a run may last"
                        " (--max-runtime) to download never arrives: raise --max-runtime", state.unstored,
                        state.stop_reason)
        return result

    async def _run(self) -> None:
        config, ledger, state = self.config, self.ledger, self.state
        deadline = None if config.max_runtime is None else self.clock() + config.max_runtime
        submitting = config.submit and config.manifest is not None
        running = list(ledger.iter_jobs(None, states=[JobState.RUNNING])) if config.collect else []
        if config.shared:  # other live runners follow their own tasks
            running = [job for job in running if job.owner == ledger.owner]
        held = ledger.outstanding()  # submitting + running, whole ledger: every one holds a provider slot
        if config.shared:  # other live runners' tasks count against their own concurrency, not this run's
            held = len(running)
        state.resume(running=[job.key for job in running], foreign=max(0, held - len(running)),
                     spent_usd=ledger.spent_usd(config.manifest) if config.manifest is not None else 0.0,
                     doubts=self._doubts_still_running())
        # Every job the manifest ever targeted counts in its spend, including those an edit dropped since.
        # Every stream and clone is closed when the run ends, whichever lanes got to start.
        with contextlib.ExitStack() as self._streams:
            watch_send, watch_receive = self._pair(anyio.create_memory_object_stream[Watch](max(1, config.concurrency)))
            resubmit_send, resubmit_receive = self._pair(
                anyio.create_memory_object_stream[str](max(1, config.concurrency)))
            async with anyio.create_task_group() as lanes:
                collect = anyio.CancelScope()
                if config.collect:
                    await self._start_collecting(lanes, collect, running, self._own(watch_receive.clone()),
                                                 self._own(resubmit_send.clone()) if submitting else None)
                if config.shared:
                    self._keeper = LeaseKeeper(ledger, config, state, self.reporter, clock=self.clock,
                                               watch=self._own(watch_send.clone()) if config.collect else None,
                                               fetch=self._keeper_fetch, wall=self.wall, boot=self.boot)
                    self._keeper.renew()  # before the first POST (may_send); refused: its run stops at once
                if submitting:
                    self._submit = submit = SubmitLane(
                        ledger, self.client, config, state, self.reporter, limiter=self.submit_limiter,
                        clock=self.clock, rng=self.rng, retries=self._own(resubmit_receive.clone()),
                        watch=self._own(watch_send.clone()) if config.collect else None, inputs=self.inputs,
                        edited=self.edited, store=self.store,
                        may_send=None if self._keeper is None else self._keeper.may_send)
                    lanes.start_soon(self._lane, "submit", submit.run)
                else:
                    state.close_lane("submit")
                for chore in self._chores:  # cancelled with the lanes: a chore never holds the run's end
                    lanes.start_soon(keep, chore, state, self._quiet)
                if self._keeper is not None:
                    lanes.start_soon(self._keeper.run)
                for stream in (watch_send, resubmit_receive, watch_receive, resubmit_send):
                    stream.close()  # the lanes hold clones: a stream ends when its last holder closes
                await self._until_finished(deadline, collect)
                lanes.cancel_scope.cancel()

    def _doubts_still_running(self) -> dict[str, float]:
        """In-doubt jobs whose task, if the POST created one, may still run (sent within the hold): each keeps
        its slot until then, timed on this boot's steady clock where its write-ahead was stamped in this boot
        (:func:`~runner.engine.holds.hold_left`). On a shared ledger the write-ahead counts them across runners
        instead."""
        if self.config.shared:
            return {}
        hold, now, wall, boot = self.policy.in_doubt_hold_s, self.clock(), self.wall(), self.boot()
        doubts = {}
        for job in self.ledger.iter_jobs(None, states=[JobState.IN_DOUBT]):
            left = hold_left(job, self.ledger.attempts(job.key), hold=hold, wall=wall, boot=boot)
            if left > 0:
                doubts[job.key] = now + left
        return doubts

    def _quiet(self) -> bool:
        """No POST is on the wire: every write-ahead of this run has its answer recorded."""
        return self._submit is None or self._submit.on_wire == 0

    def _others_busy(self) -> bool:
        return self._keeper is not None and self._keeper.others_busy()

    def _own(self, stream: _Stream) -> _Stream:
        return self._streams.enter_context(stream)

    def _pair(self, pair: tuple[MemoryObjectSendStream[_T], MemoryObjectReceiveStream[_T]]
              ) -> tuple[MemoryObjectSendStream[_T], MemoryObjectReceiveStream[_T]]:
        return self._own(pair[0]), self._own(pair[1])

    async def _start_collecting(self, lanes: TaskGroup, collect: anyio.CancelScope, running: Sequence[JobRecord],
                                watch: MemoryObjectReceiveStream[Watch],
                                resubmit: MemoryObjectSendStream[str] | None) -> None:
        config, state = self.config, self.state
        gone = GoneRules(self.ledger, state, self.reporter, self.policy, self.clock, self.boot)
        fetch_send, fetch_receive = self._pair(anyio.create_memory_object_stream[str](config.fetch_buffer))
        if config.shared:
            self._keeper_fetch = self._own(fetch_send.clone())
        update_send, update_receive = self._pair(
            anyio.create_memory_object_stream[TaskUpdate](self.policy.update_buffer))
        fetch = FetchLane(self.ledger, self.client, self.store, state, self.reporter, gone, policy=self.policy,
                          wall=self.wall, rng=self.rng, shared=config.shared)
        lanes.start_soon(self._lane, "fetch", functools.partial(fetch.run, fetch_receive, config.download_workers))
        lanes.start_soon(self._resume_fetches, self._own(fetch_send.clone()), self._succeeded_before())
        poller = Poller(self.ledger, self.client, config, state, self.reporter, gone, watch,
                        limiter=self.poll_limiter, clock=self.clock, wall=self.wall, rng=self.rng)
        updates = UpdatesLane(self.ledger, state, self.reporter, retries=config.retries, fetch=fetch_send,
                              resubmit=resubmit)
        now = self.clock()
        for job in running:  # resumed tasks: first polls spread over one interval
            assert job.task_id is not None
            poller.follow(Watch(job.key, job.task_id, now + self.rng.uniform(0, config.poll_interval)))
        senders: list[MemoryObjectSendStream[TaskUpdate]] = [self._own(update_send.clone()) for _ in range(1 + len(self._sources))]
        update_send.close()

        async def collecting() -> None:
            with collect:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(updates.run, update_receive)
                    tg.start_soon(_produce, poller.run, senders[0])
                    for source, send in zip(self._sources, senders[1:], strict=True):
                        tg.start_soon(_produce, source.run, send)
            # Nothing more can reach the fetch lane (or come back to the submit lane) from here.
            fetch_send.close()
            if resubmit is not None:
                resubmit.close()

        lanes.start_soon(collecting)

    def _succeeded_before(self) -> list[str]:
        """The ledger's succeeded jobs (an earlier run stopped before downloading them), counted at once as videos
        on their way to the downloads: the room they need on the disk is known before the first submit."""
        keys = [job.key for job in self.ledger.iter_jobs(None, states=[JobState.SUCCEEDED])
                if not self.config.shared or job.owner == self.ledger.owner]  # not another live runner's download
        for key in keys:
            self.state.to_store(key)
        return keys

    async def _resume_fetches(self, send: MemoryObjectSendStream[str], keys: list[str]) -> None:
        """The ledger's succeeded jobs go to the fetch lane (an expired owner's became ours at the start)."""
        with send:
            for key in keys:
                await send.send(key)

    async def _lane(self, name: str, lane: Callable[[], Awaitable[None]]) -> None:
        try:
            await lane()
        finally:
            self.state.close_lane(name)

    async def _until_finished(self, deadline: float | None, collect: anyio.CancelScope) -> None:
        """Wait for the run's end: the lanes closed, or a stop once the POSTs on the wire are recorded."""
        state = self.state
        while True:
            if state.halted:
                if state.lane_closed("submit"):
                    return
            elif state.lane_closed("submit"):
                if not self.config.collect:
                    return
                if state.followed == 0 and not collect.cancel_called and not self._others_busy():
                    collect.cancel()  # no update can move anything of this run: close the streams
                    if self._keeper is not None:
                        self._keeper.close_fetch()
                if state.lane_closed("fetch"):
                    return
            timeout = math.inf if deadline is None else deadline - self.clock()
            if self._keeper is not None:  # others' work may come to this run when their lease expires, or end:
                # look again soon (one count a few seconds) so an idle runner exits when the others are done
                timeout = min(timeout, self._keeper.interval, max(self.policy.shared_idle_max_s, 0.1))
            if timeout <= 0:
                self.request_stop(StopReason.MAX_RUNTIME)
                deadline = None
                continue
            await state.wait_change(None if math.isinf(timeout) else timeout)


async def _produce(run: Callable[[SendUpdate], Awaitable[None]], send: MemoryObjectSendStream[TaskUpdate]) -> None:
    """Run one source with its own clone of the updates stream (closed when it ends)."""
    async def deliver(update: TaskUpdate) -> None:
        await put(send, update)

    with send:
        await run(deliver)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for error in group.exceptions:
        leaves.extend(_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    return leaves
