"""The run's state, in one object the lanes share instead of counters: :class:`RunState`.

It holds what the run must know across lanes — which jobs hold a provider slot (submits on the
wire and running tasks), the estimated spend, why the run stops — and it changes only when a
ledger transition says it moved: every method below is called by a lane right after the ledger
answered ``True`` (or returned an attempt). Waiters (:meth:`RunState.wait_change`) wake on each
change. :class:`Tally` turns the engine's events into the run's :class:`RunResult`.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Callable, Iterable, Mapping

import anyio

from runner.engine import events as ev
from runner.errors import RunnerError

__all__ = ["RunResult", "RunState", "StopReason", "Tally"]

log = logging.getLogger("runner.engine")


class StopReason(enum.StrEnum):
    COMPLETE = "complete"  # nothing left to do in scope
    SIGNAL = "signal"
    MAX_RUNTIME = "max_runtime"
    BUDGET = "budget"
    SUBMITTED = "submitted"  # `runner submit`: capacity full or nothing pending
    FATAL = "fatal"  # auth / balance / unreachable provider
    EDITED = "edited"  # the manifest (or a file it reads) changed during the run: no more submits; the next run plans it
    UNSTORABLE = "unstorable"  # the disk is full or read-only: no more submits (nothing was paid for the job that found it)
    REFUSING = "refusing"  # the provider refused every submit for a while (CREATE_TASK_FAILED): no more submits


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
    ending: str | None = None  # the summary's last word when the caller knows better than ``reason`` (the exit code's)


class RunState:
    """Slots, spend and the stop: the only run state more than one lane reads."""

    def __init__(self, *, concurrency: int, running: Iterable[str] = (), foreign: int = 0, spent_usd: float = 0.0,
                 budget_usd: float | None = None, clock: Callable[[], float] = anyio.current_time) -> None:
        self.concurrency = concurrency
        self._clock = clock
        self._holding: set[str] = set(running)  # jobs of this run holding a slot: submitting or running
        self._doubts: dict[str, float] = {}  # in-doubt jobs whose task may still run: the clock time they free it
        self._given_up: set[str] = set()  # ... whose task this run no longer follows (it stays running)
        self._unstored: set[str] = set()  # succeeded jobs handed to the downloads, their video not stored yet
        self._foreign = foreign  # slots held by submits this run does not own (another owner's)
        self.spent_usd = spent_usd
        self.budget_usd = budget_usd
        self.stop_reason: StopReason | None = None
        self.stopping = False  # no new submits; end once POSTs on the wire are recorded
        self.fatal: RunnerError | None = None
        self.end_error: RunnerError | None = None  # what a run that went on collecting ends with (:meth:`end_with`)
        self._closed: set[str] = set()  # lanes that have returned
        self._changed = anyio.Event()

    def resume(self, *, running: Iterable[str], foreign: int, spent_usd: float,
               doubts: Mapping[str, float] | None = None) -> None:
        """What the ledger says when the run starts: running tasks, other owners' submits, the spend, and
        in-doubt jobs whose task may still run (``doubts``: key → clock time it no longer can)."""
        self._holding.update(running)
        self._doubts.update(doubts or {})
        self._foreign = foreign
        self.spent_usd = spent_usd
        self._notify()

    def close_lane(self, name: str) -> None:
        """A lane has returned (the submit lane: no more submits; the fetch lane: its stream closed)."""
        self._closed.add(name)
        self._notify()

    def lane_closed(self, name: str) -> bool:
        return name in self._closed

    # ------------------------------------------------------------------ reads
    @property
    def has_slot(self) -> bool:
        return len(self._holding) + self._foreign + self._doubted() < self.concurrency

    @property
    def free_slots(self) -> int:
        """How many more jobs may take a slot now (the submit lane's group of write-aheads takes up to this many)."""
        return self.concurrency - len(self._holding) - self._foreign - self._doubted()

    def _doubted(self) -> int:
        """In-doubt jobs still holding a slot (their task, if any, may still run at the provider)."""
        if not self._doubts:
            return 0  # the usual case, asked at every turn of the submit lane: no clock read
        now = self._clock()
        for key in [key for key, until in self._doubts.items() if until <= now]:
            del self._doubts[key]
        return len(self._doubts)

    def next_release(self) -> float | None:
        """Seconds until an in-doubt job's slot frees (None: none is held)."""
        if not self._doubts:
            return None
        return max(0.0, min(self._doubts.values()) - self._clock())

    @property
    def followed(self) -> int:
        """Jobs holding a slot whose outcome this run still waits for."""
        return len(self._holding) - len(self._given_up)

    def within_budget(self, cost: float) -> bool:
        return self.budget_usd is None or self.spent_usd + cost <= self.budget_usd + 1e-9

    # ------------------------------------------------ changes (ledger moved)
    def submitting(self, key: str, cost: float) -> None:
        """pending → submitting (the write-ahead): the job takes a slot and its estimate is spent."""
        self._holding.add(key)
        self.spent_usd += cost
        self._notify()

    def accepted(self, key: str) -> None:
        """submitting → running: the job keeps its slot; the submit lane learns its POST is answered."""
        self._notify()

    def refused(self, key: str, cost: float) -> None:
        """submitting → pending|failed: nothing was created; the slot and the estimate come back."""
        self._release(key)
        self.spent_usd -= cost
        self._notify()

    def settled(self, key: str) -> None:
        """submitting → in doubt, running → succeeded|failed|lost: the slot frees (a no-op for a job
        that held none, e.g. one lost at download)."""
        if key in self._holding:
            self._release(key)
            self._notify()

    def doubted(self, key: str, until: float) -> None:
        """submitting → in doubt: the POST may have created a task, which counts against the provider's
        limit as long as it may run; the slot frees at clock time ``until`` (see Policy.in_doubt_hold_s)."""
        self._release(key)
        self._doubts[key] = until
        self._notify()

    def adopted(self, key: str) -> None:
        """A running task this run took over from an owner whose lease expired: it holds a slot, followed."""
        if key not in self._holding:
            self._holding.add(key)
            self._notify()

    def to_store(self, key: str) -> None:
        """A succeeded job's video is on its way to the downloads (its bytes will need room on the disk)."""
        self._unstored.add(key)

    def download_ended(self, key: str) -> None:
        """The download of ``key`` ended, its video stored or not (a job waiting for room on the disk looks again)."""
        if key in self._unstored:
            self._unstored.discard(key)
            self._notify()

    @property
    def unstored(self) -> int:
        """Videos paid for and handed to the downloads, not stored yet (the room they need is not taken yet)."""
        return len(self._unstored)

    @property
    def held(self) -> int:
        """Jobs of this run holding a slot (followed or given up)."""
        return len(self._holding)

    def holds(self, key: str) -> bool:
        return key in self._holding

    def given_up(self, key: str) -> None:
        """This run stops following a running task (polling kept failing); it keeps its slot."""
        if key in self._holding and key not in self._given_up:
            self._given_up.add(key)
            self._notify()

    def _release(self, key: str) -> None:
        self._holding.discard(key)
        self._given_up.discard(key)

    # ------------------------------------------------------------------ stops
    def stop(self, reason: StopReason, *, submitting_only: bool = False) -> bool:
        """Record why the run stops; True the first time. ``submitting_only``: stop submitting but keep
        collecting (the budget)."""
        first = self.stop_reason is None
        if first:
            self.stop_reason = reason
        if not submitting_only:
            self.stopping = True
        self._notify()
        return first

    def end_with(self, error: RunnerError) -> None:
        """The run, once it has collected what was paid, ends with ``error`` (the first one said)."""
        if self.end_error is None:
            self.end_error = error

    def fail(self, error: RunnerError) -> bool:
        """Stop the run with ``error``; True the first time."""
        first = self.fatal is None
        if first:
            self.fatal = error
            log.error("stopping the run: %s", error)
        self.stopping = True
        self._notify()
        return first

    @property
    def halted(self) -> bool:
        return self.stopping or self.fatal is not None

    # ------------------------------------------------------------------ waits
    def _notify(self) -> None:
        self._changed.set()

    async def wait_change(self, timeout: float | None = None) -> None:
        """Until the next change (or ``timeout`` seconds)."""
        event = self._changed
        if not event.is_set():
            if timeout is None:
                await event.wait()
            else:
                with anyio.move_on_after(max(0.0, timeout)):
                    await event.wait()
        if self._changed is event and event.is_set():
            self._changed = anyio.Event()


class Tally:
    """The run's result, counted from the events the engine emits (nothing else keeps counters)."""

    def __init__(self, reporter: ev.Reporter) -> None:
        self.reporter = reporter
        self.result = RunResult(reason=StopReason.COMPLETE)

    def emit(self, event: ev.Event, /) -> None:
        result = self.result
        match event:
            case ev.Accepted():
                result.submitted += 1
            case ev.InDoubt():
                result.in_doubt_new += 1
            case ev.Stored():
                result.done += 1
            case ev.Refused() | ev.Failed() | ev.InputRejected():
                result.failed += 1
            case ev.Lost():
                result.lost += 1
            case ev.FileProblem():
                result.file_errors += 1
        self.reporter.emit(event)
