"""The poller: the task-update source that asks the provider (GET task-result), each task when due.

Tasks to follow arrive on a stream (:class:`Watch`: from the submit lane once a task id is
recorded, and the ledger's running jobs when a run resumes). A poll's answer that the task is done
becomes a :class:`TaskUpdate` sent to the updates lane; the poller keeps its own schedule: a task still
queued or processing is asked again after the provider's eta (never before it, within
``poll_interval`` .. ``poll_max_interval``); a finished one is not asked again. TASK_NOT_FOUND
and errors are not updates: they stay here (backoff, the F3 rules of :mod:`runner.engine.gone`,
giving a task up for this run after ``max_poll_errors``).

The first poll of a new task goes just after tasks of this run have been taking to finish (the
provider's own timings of recent tasks): most are then found done in one request. Until a task has
finished, a few *scouts* (the first tasks submitted) are polled at once; the first eta they bring
back estimates the task time, and every first poll still waiting is moved to it, earlier or later
(tasks of 1 s are not all first polled at ``poll_interval``, tasks of 3 s not before they are done).
An eta is coarse (whole seconds: the estimate may be up to a second late, 10 % of a task of 1 s), so
the scout that gave it *probes*: it is asked again at its eta less a second, then every
``probe_step`` until it is done; the provider's timing of that first finished task moves the
waiting first polls again, within that second. The other scouts are asked again at their eta.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import logging
import random
import statistics
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream

from runner.client import NovitaClient
from runner.engine import events as ev
from runner.engine.gone import GoneRules
from runner.engine.policy import EngineConfig
from runner.engine.ratelimit import RateLimiter
from runner.engine.sources import SendUpdate, Watch
from runner.engine.state import RunState
from runner.engine.updates import update_from_result
from runner.errors import (
    AuthError,
    EndpointNotFound,
    ProviderError,
    RateLimited,
    RunnerError,
    TaskNotFound,
    TransientError,
)
from runner.jobs import JobState
from runner.ledger import LedgerBackend
from runner.novita_wire import TaskStatus

__all__ = ["Poller"]

_TIMED = 3  # tasks finished (with the provider's timings) before their median places first polls

log = logging.getLogger("runner.engine")


@dataclasses.dataclass(order=True, slots=True)
class _Due:
    at: float
    seq: int
    key: str = dataclasses.field(compare=False)
    task_id: str = dataclasses.field(compare=False)
    errors: int = dataclasses.field(default=0, compare=False)
    born: float | None = dataclasses.field(default=None, compare=False)  # a first poll placed with no task time known
    scout: bool = dataclasses.field(default=False, compare=False)
    probes: int = dataclasses.field(default=0, compare=False)  # the probing scout's polls so far


class Poller:
    def __init__(
        self, ledger: LedgerBackend, client: NovitaClient, config: EngineConfig, state: RunState,
        reporter: ev.Reporter, gone: GoneRules, watch: MemoryObjectReceiveStream[Watch], *,
        limiter: RateLimiter, clock: Callable[[], float], wall: Callable[[], float], rng: random.Random,
    ) -> None:
        self.ledger = ledger
        self.client = client
        self.config = config
        self.policy = config.policy
        self.state = state
        self.reporter = reporter
        self.gone = gone
        self.limiter = limiter
        self.clock = clock
        self.wall = wall
        self.rng = rng
        self._watch = watch
        self._due: list[_Due] = []
        self._seq = itertools.count()
        self._wake = anyio.Event()
        self._durations: deque[float] = deque(maxlen=self.policy.duration_samples)
        self._estimate: float | None = None  # the task time a scout's eta gave, until tasks have finished
        self._scouts = 0  # scouts sent so far

    def follow(self, watch: Watch) -> None:
        """Follow a task before the run starts (a resumed running job)."""
        assert watch.at is not None
        self._schedule(watch.key, watch.task_id, watch.at)

    async def run(self, send: SendUpdate) -> None:
        limit = anyio.Semaphore(max(1, self.config.polls_in_flight), fast_acquire=True)  # the limiter yields
        async with anyio.create_task_group() as polls:
            polls.start_soon(self._take_watches)
            while True:
                if not self._due:
                    await self._sleep(None)
                    continue
                wait = self._due[0].at - self.clock()
                if wait > 0:
                    await self._sleep(wait)
                    continue
                item = heapq.heappop(self._due)
                await limit.acquire()
                await self.limiter.acquire()
                polls.start_soon(self._poll_one, item, limit, send)
                self._start_due(polls, limit, send)

    def _start_due(self, polls: TaskGroup, limit: anyio.Semaphore, send: SendUpdate) -> None:
        """Every other poll already due goes now, with no yield apiece, while both limits allow it at once.

        One loop round a poll spaced polls due together by everything else the loop had to do: the first polls of
        a wave of 40 tasks of 1 s, due within 26 ms, went out over 100 ms (measured, bench/saturation.py). Not once
        the provider has answered a poll 429 this run: then each poll waits its turn, one at a time, so an answer
        (another 429) can pause the rest before they are sent."""
        if self.limiter.rate_limited:
            return
        now = self.clock()
        while self._due and self._due[0].at <= now and limit.value > 0 and self.limiter.take_now():
            limit.acquire_nowait()
            polls.start_soon(self._poll_one, heapq.heappop(self._due), limit, send)

    async def _take_watches(self) -> None:
        with self._watch:
            async for watch in self._watch:
                if watch.at is not None:
                    self._schedule(watch.key, watch.task_id, watch.at)
                    continue
                # The task was running when the provider answered its submit: its first poll counts from then,
                # not from now (the loop may be busy with the rest of a wave of submits: 40 ms at C = 40).
                now = self.clock() if watch.answered is None else min(self.clock(), watch.answered)
                if self._learned() is None and self._scouts < self.policy.scouts:
                    self._scouts += 1
                    item = _Due(now + self.policy.scout_delay, next(self._seq), watch.key, watch.task_id, born=now,
                                scout=True)
                else:  # placed on a guess or a scout's estimate until tasks have finished: ``born`` lets it move
                    timed = len(self._durations) >= _TIMED
                    item = _Due(now + self._first_poll_delay(), next(self._seq), watch.key, watch.task_id,
                                born=None if timed else now)
                heapq.heappush(self._due, item)
                self._wake.set()

    def _schedule(self, key: str, task_id: str, at: float, errors: int = 0, *, born: float | None = None) -> None:
        """``born``: a poll placed with no task time known, moved with the first polls (:meth:`_place_first_polls`)."""
        heapq.heappush(self._due, _Due(at, next(self._seq), key, task_id, errors, born=born))
        self._wake.set()

    async def _sleep(self, timeout: float | None) -> None:
        """Until a task is scheduled (or ``timeout`` seconds)."""
        wake = self._wake
        if not wake.is_set():
            if timeout is None:
                await wake.wait()
            else:
                with anyio.move_on_after(timeout):
                    await wake.wait()
        if self._wake is wake and wake.is_set():
            self._wake = anyio.Event()

    async def _poll_one(self, item: _Due, limit: anyio.Semaphore, send: SendUpdate) -> None:
        try:
            await self._poll(item, send)
        finally:
            limit.release()

    async def _poll(self, item: _Due, send: SendUpdate) -> None:
        """Poll one task: its answer becomes a task update (TASK_NOT_FOUND and errors stay here)."""
        key, task_id, policy = item.key, item.task_id, self.policy
        try:
            result = await self.client.task_result(task_id)
        except TaskNotFound as exc:
            self.limiter.on_success()  # an answer, not a 429: the provider admitted the request
            self.gone.record(key, "poll", task_id, str(exc))
            if self.gone.confirmed_gone(key, task_id):
                self.gone.lose(key, f"the provider no longer knows task {task_id} (TASK_NOT_FOUND)", was=JobState.RUNNING)
                return
            self._again_after_error(item, exc)  # said when it persists, and when given up for this run
            return
        except (AuthError, EndpointNotFound) as exc:
            if self.state.fail(exc):
                self.reporter.emit(ev.Fatal(message=str(exc)))
            return
        except ProviderError as exc:  # TransientError, RateLimited, …
            self.ledger.record_event(key, "poll", "error", http_status=exc.status, detail=str(exc), task_id=task_id)
            if isinstance(exc, RateLimited):
                self.limiter.on_rate_limited(exc.retry_after)
            self._again_after_error(item, exc)
            return
        self.limiter.on_success()  # the rate climbs back after 429s (and learns what the provider admits)
        self.gone.found(key, task_id)
        status = result.task.status
        if status is TaskStatus.SUCCEED and not result.videos:
            # Not an update: nothing to record; ask again (a few times) before leaving it for the next run.
            self.ledger.record_event(key, "poll", "succeeded_without_video", task_id=task_id)
            if item.errors + 1 >= policy.max_poll_errors:
                log.error("task %s says SUCCEED but lists no video; it stays running for the next run", task_id)
                self.state.given_up(key)
                return
            self._schedule(key, task_id, self.clock() + self.config.poll_interval, item.errors + 1)
            return
        if status is TaskStatus.UNKNOWN:
            # The provider cannot say (or says a status this runner does not know): neither an ending nor progress.
            # Asked again with the error backoff and given up for this run after max_poll_errors in a row (it stays
            # running), not every poll_interval for ever with not a line said.
            self.ledger.record_event(key, "poll", "status_unknown", task_id=task_id)
            self._again_after_error(item, TransientError(
                f"task-result says {status} (or a status this runner does not know) for task {task_id}"))
            return
        update = update_from_result(key, task_id, result, received_at=self.wall(), source="poll")
        if status is TaskStatus.SUCCEED:
            self._learn_duration(update.debug)
        elif not status.terminal:
            eta = float(update.eta) if update.eta is not None and update.eta > 0 else None
            estimated = item.scout and eta is not None and self._estimated(item, eta)
            if (estimated or item.probes) and not self._durations and item.probes < policy.probes:
                self._probe(item, eta)
            else:
                eta = self.config.poll_interval if eta is None else eta
                # A scout is asked again at its eta (one more poll, that is all): held to ``poll_interval`` its slot
                # would idle for the difference (2 s of every scout's slot for tasks of 1 s).
                delay = min(policy.poll_max_interval, eta if item.scout else max(self.config.poll_interval, eta))
                # Never before the provider's own estimate: a poll at 0.9 x eta finds the task still running
                # and costs a whole extra interval (measured: +30 % per job at T = 1 s, bench/saturation.py).
                # A scout, until a task of this run has finished, waits like a first poll (``born`` kept): the first
                # finished task's timing moves it with them, within the eta's rounding (its slot ran up to a
                # second late, the wave's last, to the end of the batch: 120 ms of 10 s at T = 1 s).
                self._schedule(key, task_id, self.clock() + delay * (1.0 + policy.eta_margin * self.rng.random()),
                               born=item.born if item.scout and not self._durations else None)
            self.reporter.emit(ev.Running(key=key, status=str(status), percent=update.progress_percent))
            return  # a task still running moves nothing in the ledger: not an update (the lane would read the job)
        await send(update)

    def _again_after_error(self, item: _Due, exc: RunnerError | None = None) -> None:
        policy = self.policy
        errors = item.errors + 1
        if errors >= policy.max_poll_errors:
            if exc is not None:
                log.error("giving up polling task %s this run after %d errors (the last: %s); it stays running",
                          item.task_id, errors, exc)
            self.state.given_up(item.key)
            return
        if exc is not None and errors == max(1, policy.max_poll_errors // 4):  # once, long before giving up
            log.warning("polling task %s keeps failing (%d errors, the last: %s); trying again", item.task_id, errors,
                        exc)
        delay = min(policy.poll_max_interval,
                    self.config.poll_interval * 2 ** min(item.errors, policy.poll_backoff_steps))
        self._schedule(item.key, item.task_id, self.clock() + delay, errors)

    def _probe(self, item: _Due, eta: float | None) -> None:
        """The scout whose eta placed the first polls is asked again at that eta less a second (an eta in whole
        seconds rounds up: the task may be done a second sooner), then every ``probe_step``, until a task of this
        run is done (its timings then place the first polls: :meth:`_learn_duration`) or ``probes`` are spent."""
        delay = self.policy.probe_step if eta is None else max(self.policy.probe_step, eta - 1.0)
        heapq.heappush(self._due, _Due(self.clock() + min(self.policy.poll_max_interval, delay), next(self._seq),
                                       item.key, item.task_id, item.errors, probes=item.probes + 1))
        self._wake.set()

    def _learned(self) -> float | None:
        """The task time of this run: the median the provider's timings give once 3 tasks finished, else a
        scout's estimate (its age when polled + its eta), else None."""
        if len(self._durations) >= _TIMED:
            return statistics.median(self._durations)
        return self._estimate

    def _first_poll_delay(self) -> float:
        """Just after tasks of this run have been taking to finish; until one is known, ``poll_interval``.

        ``poll_interval`` spaces the polls *of one task*; the first poll has none before it, so a learned task
        time shorter than the interval is not rounded up to it (tasks of 1 s polled at 3 s cost 3× the wall time).
        """
        typical = self._learned()
        if typical is not None:
            # The task started before its submit was answered (``born`` is later still), so a poll at ``typical``
            # after ``born`` finds it done; a few ms (and 0.2 % of jitter) cover the provider's whole-ms timings.
            # A margin in per cent of the task time cost every slot 15 to 45 ms of a 3 s task (~1 % of a batch).
            return min(self.policy.poll_max_interval, typical * (1.0 + 0.002 * self.rng.random()) + 0.004)
        return self.config.poll_interval * (0.9 + 0.2 * self.rng.random())

    def _estimated(self, scout: _Due, eta: float) -> bool:
        """A scout's eta: the task time is about its age at the poll plus the eta. The first one moves every
        first poll placed without a task time to it, earlier or later: a first poll placed at ``poll_interval``
        before the task is done is answered "processing" and asked again a whole ``poll_interval`` later, and its
        slot runs that late to the end of the batch (tasks of 3 s at the default interval: 24 of 200 slots).
        True for that first one (it probes: :meth:`_probe`)."""
        if self._estimate is not None:
            return False
        assert scout.born is not None
        self._estimate = (self.clock() - scout.born) + eta
        self._place_first_polls()
        return True

    def _refine(self, seconds: float) -> None:
        """The first task of this run done (the probing scout, usually) took ``seconds`` by the provider's
        timings: the first polls placed at the scouts' estimate move to it, earlier only within the eta's
        rounding (a second: the first task done is the quickest so far, not a typical one), later freely."""
        if self._estimate is None:
            return
        refined = max(seconds, self._estimate - 1.0)
        if refined != self._estimate:
            self._estimate = refined
            self._place_first_polls()

    def _place_first_polls(self) -> None:
        """Every waiting first poll placed without the tasks' timings goes where the task time now says."""
        moved = False
        for item in self._due:
            if item.born is not None and not item.scout:  # another scout still goes at once, for its own eta
                item.at, moved = item.born + self._first_poll_delay(), True
        if moved:
            heapq.heapify(self._due)
            self._wake.set()

    def _learn_duration(self, info: Mapping[str, Any]) -> None:
        """Record how long the provider says this task took (submit → complete), when it says."""
        try:
            seconds = (float(info["complete_time_ms"]) - float(info["submit_time_ms"])) / 1000.0
        except (KeyError, TypeError, ValueError):
            return
        if 0 < seconds < 86400:
            self._durations.append(seconds)
            if len(self._durations) == 1:
                self._refine(seconds)
