"""What a progress display shows, kept from engine events and ledger reads.

:class:`ProgressTracker` is pure: it takes the engine's events, an occasional
authoritative read of the ledger (counts by state, estimated spend) and a
clock, and produces an immutable :class:`Snapshot` for a renderer. Between two
ledger reads the counts follow the events, so a display moves at once even
when the ledger is too big to count often.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from runner.engine import events as ev
from runner.jobs import JobState

__all__ = ["NOTABLE", "ProgressTracker", "Snapshot"]

# Events worth a line of their own in a display's "recent" list.
NOTABLE: tuple[type[ev.Event], ...] = (
    ev.InDoubt, ev.Refused, ev.Failed, ev.InputRejected, ev.Lost, ev.BudgetReached, ev.Stopping, ev.Fatal,
    ev.RetryFailed, ev.DownloadDeferred, ev.FileProblem, ev.CopyFailed,
)
_FINISHING = (ev.Stored, ev.Failed, ev.Refused, ev.InputRejected, ev.Lost)
# States whose jobs this run may still finish.
_OPEN = (JobState.PENDING, JobState.SUBMITTING, JobState.RUNNING, JobState.SUCCEEDED)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a progress renderer needs, at one instant."""

    scope: str | None
    elapsed: float
    counts: Mapping[JobState, int]
    spent_usd: float
    submitted: int = 0
    done: int = 0
    failed: int = 0
    lost: int = 0
    in_doubt_new: int = 0
    rate_limited: int = 0
    submit_rate: float = 0.0  # submits per minute, recent window
    finish_rate: float = 0.0  # jobs finished (done, failed, lost) per minute, recent window
    eta: float | None = None  # seconds until every open job is finished, at the recent rate
    stopping: str | None = None
    recent: tuple[str, ...] = field(default_factory=tuple)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def open(self) -> int:
        """Jobs not finished and not held: pending, submitting, running, succeeded."""
        return sum(self.counts.get(state, 0) for state in _OPEN)

    @property
    def finished(self) -> int:
        return sum(self.counts.get(s, 0) for s in (JobState.DONE, JobState.FAILED, JobState.LOST))

    @property
    def in_doubt(self) -> int:
        return self.counts.get(JobState.IN_DOUBT, 0)


def describe(event: ev.Event) -> str:
    """A short human line for a notable event."""
    match event:
        case ev.InDoubt(key=key, reason=reason, message=message):
            return f"IN DOUBT {key}: {reason or message or ''} (held; `runner retry --in-doubt` pays again)"
        case ev.Refused(key=key, reason=reason, message=message):
            return f"failed {key}: {reason or message or ''}"
        case ev.Failed(key=key, reason=reason) | ev.InputRejected(key=key, reason=reason):
            return f"failed {key}: {reason}"
        case ev.Lost(key=key, reason=reason):
            return f"LOST {key}: {reason}"
        case ev.RetryFailed(key=key, reason=reason):
            return f"retrying {key} as a new paid task: {reason}"
        case ev.DownloadDeferred(key=key):
            return f"download of {key} deferred to the next run"
        case ev.FileProblem(key=key, message=message) | ev.CopyFailed(key=key, message=message):
            return f"FILE {key}: {message} (the video stays recorded as succeeded)"
        case ev.BudgetReached(spent_usd=spent, budget_usd=budget):
            return f"budget reached: {spent:.2f} of {budget:.2f} USD (estimate)"
        case ev.Stopping(reason=reason):
            return f"stopping ({reason}): no new submits"
        case ev.Fatal(message=message):
            return f"fatal: {message}"
    return event.kind


class ProgressTracker:
    """Counts, rates and ETA from engine events plus occasional ledger reads."""

    def __init__(
        self,
        counts: Mapping[JobState, int],
        spent_usd: float,
        *,
        scope: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        window: float = 120.0,
        recent: int = 5,
    ) -> None:
        self.scope = scope
        self.clock = clock
        self.window = window
        self.started = clock()
        self.counts: dict[JobState, int] = {state: int(counts.get(state, 0)) for state in JobState}
        self.spent_usd = spent_usd
        self.events: Counter[type[ev.Event]] = Counter()
        self._submits: deque[float] = deque()
        self._finishes: deque[float] = deque()
        self._recent: deque[str] = deque(maxlen=recent)
        self.stopping: str | None = None

    def take(self, event: ev.Event) -> None:
        """Take one engine event: the state change it names, its rate, its line."""
        now = self.clock()
        self.events[type(event)] += 1
        move = event.moves()
        if move is not None:
            source, target = move
            if self.counts[source] > 0:
                self.counts[source] -= 1
            self.counts[target] += 1
        if isinstance(event, ev.Accepted):
            self._submits.append(now)
            self.spent_usd += event.estimated_usd
        elif isinstance(event, _FINISHING):
            self._finishes.append(now)
        elif isinstance(event, ev.Stopping):
            self.stopping = event.reason
        if isinstance(event, NOTABLE):
            self._recent.append(describe(event))

    def resync(self, counts: Mapping[JobState, int], spent_usd: float) -> None:
        """Replace the event-driven counts and spend with the ledger's (the truth)."""
        self.counts = {state: int(counts.get(state, 0)) for state in JobState}
        self.spent_usd = spent_usd

    def _rate(self, stamps: deque[float], now: float) -> float:
        while stamps and stamps[0] < now - self.window:
            stamps.popleft()
        span = max(1.0, min(self.window, now - self.started))
        return len(stamps) * 60.0 / span

    def snapshot(self) -> Snapshot:
        now = self.clock()
        submit_rate = self._rate(self._submits, now)
        finish_rate = self._rate(self._finishes, now)
        open_jobs = sum(self.counts[state] for state in _OPEN)
        eta: float | None
        if open_jobs == 0:
            eta = 0.0
        elif finish_rate > 0:
            eta = open_jobs / finish_rate * 60.0
        else:
            eta = None
        e = self.events
        return Snapshot(
            scope=self.scope,
            elapsed=now - self.started,
            counts=dict(self.counts),
            spent_usd=self.spent_usd,
            submitted=e[ev.Accepted],
            done=e[ev.Stored],
            failed=e[ev.Failed] + e[ev.Refused] + e[ev.InputRejected],
            lost=e[ev.Lost],
            in_doubt_new=e[ev.InDoubt],
            rate_limited=e[ev.RetryLater],
            submit_rate=submit_rate,
            finish_rate=finish_rate,
            eta=eta,
            stopping=self.stopping,
            recent=tuple(self._recent),
        )
