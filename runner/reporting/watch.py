"""What ``runner status --watch`` (``runner top``) shows at each refresh, read from the ledger only.

:class:`Rates` keeps the done and finished counts seen at each refresh and makes a :class:`WatchFrame`
of a :class:`~runner.reporting.inspect.StatusSummary`: the counts, done per minute over the last
minutes, outstanding tasks, spend, the ETA and (PostgreSQL) the runners. Until the watch has seen a
span worth measuring, the rate is the one of the run in progress (its done jobs since it started).
Rendered three ways: one plain line (:func:`frame_line`), one JSON object (:func:`frame_dict`), a
rich table for a terminal (:func:`frame_table`). Pure: ``now`` comes with the summary. A frame shown again while
the ledger cannot be read (a PostgreSQL server gone mid-watch) says so: ``stale``.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from dataclasses import dataclass
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from runner.jobs import JobState
from runner.reporting.inspect import StatusSummary, status_dict
from runner.reporting.text import duration, money

__all__ = ["WINDOW_S", "Rates", "WatchFrame", "frame_dict", "frame_line", "frame_table"]

WINDOW_S = 300.0  # done per minute is measured over the last five minutes
MIN_SPAN_S = 10.0  # below this span of refreshes, the run's own rate (when one is running) is used
_OPEN = (JobState.PENDING, JobState.SUBMITTING, JobState.RUNNING, JobState.SUCCEEDED)
_FINISHED = (JobState.DONE, JobState.FAILED, JobState.LOST)


@dataclass(frozen=True, slots=True)
class WatchFrame:
    """One refresh: the status and the rates measured so far."""

    summary: StatusSummary
    done_per_minute: float | None  # None: not measured yet
    finished_per_minute: float | None
    stale: str | None = None  # the last frame shown again: why the ledger could not be read since (its server down)

    def count(self, *states: JobState) -> int:
        return sum(self.summary.counts.get(state, 0) for state in states)

    @property
    def outstanding(self) -> int:
        """Tasks that may be at the provider now (submitting + running)."""
        return self.count(JobState.SUBMITTING, JobState.RUNNING)

    @property
    def eta_s(self) -> float | None:
        """Seconds until every open job is finished at the recent rate (0: none open; None: unknown)."""
        left = self.count(*_OPEN)
        if not left:
            return 0.0
        rate = self.finished_per_minute
        return None if not rate else 60.0 * left / rate


class Rates:
    """The done / finished counts of each refresh in the last :data:`WINDOW_S` seconds."""

    def __init__(self, window: float = WINDOW_S) -> None:
        self.window = window
        self._seen: deque[tuple[float, int, int]] = deque()

    def frame(self, summary: StatusSummary) -> WatchFrame:
        now = summary.now
        done = summary.counts.get(JobState.DONE, 0)
        finished = sum(summary.counts.get(state, 0) for state in _FINISHED)
        self._seen.append((now, done, finished))
        while len(self._seen) > 2 and now - self._seen[0][0] > self.window:
            self._seen.popleft()
        first_at, first_done, first_finished = self._seen[0]
        span = now - first_at
        seed = _run_rate(summary)
        if (span >= MIN_SPAN_S or seed is None) and span > 0:
            return WatchFrame(summary, 60.0 * max(0, done - first_done) / span,
                              60.0 * max(0, finished - first_finished) / span)
        if seed is not None:
            return WatchFrame(summary, *seed)
        return WatchFrame(summary, None, None)


def _run_rate(summary: StatusSummary) -> tuple[float, float] | None:
    """Done and finished per minute of the run in progress (the ledger's latest run, not ended)."""
    if not summary.runs or summary.runs[0].run.ended_at is not None:
        return None
    latest = summary.runs[0]
    elapsed = summary.now - latest.run.started_at
    if elapsed <= 0:
        return None
    return 60.0 * latest.done / elapsed, 60.0 * (latest.done + latest.failed) / elapsed


def frame_dict(frame: WatchFrame) -> dict[str, Any]:
    """``status --watch --json``: ``status --json``'s object plus ``at``, the rates, outstanding and the ETA."""
    eta = frame.eta_s
    return {
        "at": round(frame.summary.now, 3),
        **status_dict(frame.summary),
        "done_per_minute": None if frame.done_per_minute is None else round(frame.done_per_minute, 3),
        "finished_per_minute": None if frame.finished_per_minute is None else round(frame.finished_per_minute, 3),
        "outstanding": frame.outstanding,
        "eta_s": None if eta is None else round(eta, 1),
        "stale": frame.stale,
    }


def _facts(frame: WatchFrame) -> list[tuple[str, str]]:
    s = frame.summary
    rate = "?" if frame.done_per_minute is None else f"{frame.done_per_minute:.1f}"
    facts = [("done/min", rate), ("outstanding", str(frame.outstanding)), ("spent", money(s.spent_usd)),
             ("ETA", duration(frame.eta_s))]
    if s.runners:
        live = sum(1 for r in s.runners if r.live)
        facts.append(("runners", f"{live} live" + (f", {len(s.runners) - live} lapsed" if len(s.runners) > live
                                                     else "")))
    return facts


def frame_line(frame: WatchFrame) -> str:
    """One plain line per refresh (not a terminal): ``12:00:05 demo: 12/40 done, 3 running, …``."""
    s = frame.summary
    at = dt.datetime.fromtimestamp(s.now).strftime("%H:%M:%S")
    rejected = s.review.get("rejected", 0)
    parts = [f"{frame.count(JobState.DONE)}/{s.total} done" + (f" ({rejected} rejected)" if rejected else "")]
    parts += [f"{n} {state}" for state in JobState if state is not JobState.DONE and (n := frame.count(state))]
    parts += [f"{label} {value}" for label, value in _facts(frame)]
    return f"{at} {s.scope}: " + ", ".join(parts) + (f" [stale: {frame.stale}]" if frame.stale else "")


def frame_table(frame: WatchFrame) -> RenderableType:
    """The view on a terminal, redrawn in place."""
    s = frame.summary
    at = dt.datetime.fromtimestamp(s.now).strftime("%H:%M:%S")
    states = Table(box=None, padding=(0, 2), pad_edge=False, show_header=True, header_style="bold")
    states.add_column("state")
    states.add_column("jobs", justify="right")
    states.add_column("")
    rejected = s.review.get("rejected", 0)
    for state in JobState:
        n = frame.count(state)
        note = f"{rejected} rejected" if state is JobState.DONE and rejected else ""
        style = "bold white on red" if state is JobState.IN_DOUBT and n else ("" if n else "dim")
        states.add_row(Text(str(state), style=style), Text(str(n), style=style), note)
    facts = Table.grid(padding=(0, 2))
    for label, value in _facts(frame):
        facts.add_row(Text(label, style="bold"), value)
    head = Text(f"{s.scope}: {s.total} job(s) at {at} (Ctrl-C to stop watching; the run goes on)")
    if frame.stale:
        head.append(f"\nstale: {frame.stale}", style="bold white on red")
    return Group(head, states, Text(""), facts)
