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
from typing import Any

from runner.jobs import JobState

__all__ = ["NOTABLE", "ProgressTracker", "Snapshot"]

# Events worth a line of their own in a display's "recent" list.
NOTABLE = frozenset({"in_doubt", "failed", "lost", "budget_reached", "stopping", "fatal", "retry_failed",
                     "download_deferred", "file_error"})
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


def _moves(kind: str, fields: Mapping[str, Any], counts: Mapping[JobState, int]) -> tuple[JobState, JobState] | None:
    """The state change an engine event stands for (see runner.scheduler)."""
    if kind == "submitted":
        return JobState.PENDING, JobState.RUNNING
    if kind == "in_doubt":
        return JobState.PENDING, JobState.IN_DOUBT
    if kind == "failed":  # a refused submit carries the provider's message; a failed task does not
        return (JobState.PENDING if "message" in fields else JobState.RUNNING), JobState.FAILED
    if kind == "retry_failed":
        return JobState.RUNNING, JobState.PENDING
    if kind == "succeeded":
        return JobState.RUNNING, JobState.SUCCEEDED
    if kind == "done":
        return JobState.SUCCEEDED, JobState.DONE
    if kind == "lost":
        source = JobState.SUCCEEDED if counts.get(JobState.SUCCEEDED, 0) else JobState.RUNNING
        return source, JobState.LOST
    return None


def describe(kind: str, fields: Mapping[str, Any]) -> str:
    """A short human line for a notable event."""
    key = fields.get("key")
    reason = fields.get("reason") or fields.get("message") or ""
    if kind == "in_doubt":
        return f"IN DOUBT {key}: {reason} (held; `runner retry --in-doubt` pays again)"
    if kind == "failed":
        return f"failed {key}: {reason}"
    if kind == "lost":
        return f"LOST {key}: {reason}"
    if kind == "retry_failed":
        return f"retrying {key} as a new paid task: {reason}"
    if kind == "download_deferred":
        return f"download of {key} deferred to the next run"
    if kind == "file_error":
        return f"FILE {key}: {reason} (the video stays recorded as succeeded)"
    if kind == "budget_reached":
        return f"budget reached: {fields.get('spent_usd', 0):.2f} of {fields.get('budget_usd', 0):.2f} USD (estimate)"
    if kind == "stopping":
        return f"stopping ({fields.get('reason')}): no new submits"
    if kind == "fatal":
        return f"fatal: {fields.get('message')}"
    return kind


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
        self.events: Counter[str] = Counter()
        self._submits: deque[float] = deque()
        self._finishes: deque[float] = deque()
        self._recent: deque[str] = deque(maxlen=recent)
        self.stopping: str | None = None

    def event(self, kind: str, fields: Mapping[str, Any]) -> None:
        """Take one engine event."""
        now = self.clock()
        self.events[kind] += 1
        move = _moves(kind, fields, self.counts)
        if move is not None:
            source, target = move
            if self.counts[source] > 0:
                self.counts[source] -= 1
            self.counts[target] += 1
        if kind == "submitted":
            self._submits.append(now)
            estimate = fields.get("estimated_usd")
            if isinstance(estimate, (int, float)):
                self.spent_usd += float(estimate)
        elif kind in ("done", "failed", "lost"):
            self._finishes.append(now)
        if kind == "stopping":
            self.stopping = str(fields.get("reason"))
        if kind in NOTABLE:
            self._recent.append(describe(kind, fields))

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
            submitted=e["submitted"],
            done=e["done"],
            failed=e["failed"],
            lost=e["lost"],
            in_doubt_new=e["in_doubt"],
            rate_limited=e["retry_later"],
            submit_rate=submit_rate,
            finish_rate=finish_rate,
            eta=eta,
            stopping=self.stopping,
            recent=tuple(self._recent),
        )
