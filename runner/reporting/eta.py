"""How long a batch takes, and how many clips a night makes: the arithmetic behind ``plan``'s forecast.

Three settings bound the pace of a run: the concurrency cap ``C`` (tasks outstanding at the
provider at once), the submit rate ``R`` (requests per minute; None: no cap) and the typical task
time ``T`` (submit to result; a slot is busy that long). With ``N`` jobs to submit (and ``O`` tasks
already outstanding, which hold slots):

* concurrency bound: the slots turn over every ``T``: ``ceil((N + O) / C) · T``;
* rate bound: the last submit leaves ``(N - 1) · 60 / R`` after the first, and ends ``T`` later;

* any other pace (``plan`` passes the downloads' and a ``--poll-rpm``'s, in jobs a minute ``P``): the jobs
  leave one every ``60 / P`` from the first task time: ``T + (N + O) · 60 / P``;

and the wall time is the largest (retries add a little; failures that are retried add a task time each). In a window ``W`` the clips finished are
``min(C · floor(W / T), floor((W - T) · R / 60) + 1)``.

A deadline (``plan --deadline``) is such a window, from now: the run finishes before it when the wall time
fits in it, and otherwise that many clips are done by then.

``T`` is learnt from this ledger: the median submit-to-done time of up to :data:`SAMPLE` done jobs
(the whole ledger: every model it ran). With none done it is :data:`DEFAULT_TASK_SECONDS`, 300 s:
a guess for Kling v3.0 (Novita documents no task time; its own clients wait minutes), replaced by
the ledger's figure as soon as one job is done.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any

from runner.jobs import JobState
from runner.ledger import LedgerBackend
from runner.reporting.text import duration

__all__ = ["DEFAULT_TASK_SECONDS", "SAMPLE", "Deadline", "Forecast", "clips_within", "forecast", "forecast_dict",
           "forecast_lines", "typical_task_seconds", "wall_seconds"]

DEFAULT_TASK_SECONDS = 300.0
SAMPLE = 1000


def wall_seconds(jobs: int, *, concurrency: int, rpm: float | None, task_seconds: float, outstanding: int = 0,
                 paces: Mapping[str, float] | None = None) -> float:
    """Seconds to submit ``jobs`` and see every one (and the ``outstanding`` tasks) finish; ``paces``: other
    limits, in jobs a minute."""
    if jobs + outstanding <= 0:
        return 0.0
    slots = math.ceil((jobs + outstanding) / concurrency) * task_seconds
    paced = (jobs - 1) * 60.0 / rpm + task_seconds if rpm and jobs > 0 else 0.0
    others = [task_seconds + (jobs + outstanding) * 60.0 / rate for rate in (paces or {}).values() if rate > 0]
    return max(slots, paced, *others)


def clips_within(window: float, *, concurrency: int, rpm: float | None, task_seconds: float,
                 paces: Mapping[str, float] | None = None) -> int:
    """How many clips a run finishes in ``window`` seconds (from an idle start)."""
    if window < task_seconds:
        return 0
    counts = [concurrency * math.floor(window / task_seconds)]
    if rpm:
        counts.append(math.floor((window - task_seconds) * rpm / 60.0) + 1)
    counts += [math.floor((window - task_seconds) * rate / 60.0) for rate in (paces or {}).values() if rate > 0]
    return min(counts)


def typical_task_seconds(ledger: LedgerBackend, *, sample: int = SAMPLE) -> tuple[float, int]:
    """The median submit-to-done seconds of up to ``sample`` done jobs, and how many it read;
    ``(DEFAULT_TASK_SECONDS, 0)`` when the ledger has none."""
    spans = [job.finished_at - job.submitted_at
             for job in islice(ledger.iter_jobs(None, states=[JobState.DONE]), sample)
             if job.finished_at is not None and job.submitted_at is not None and job.finished_at >= job.submitted_at]
    if not spans:
        return DEFAULT_TASK_SECONDS, 0
    import statistics  # here, not at the top: `runner plan` of a new ledger never needs it (start-up, issue 14)

    return float(statistics.median(spans)), len(spans)


@dataclass(frozen=True, slots=True)
class Deadline:
    """When the batch should be done (``plan --deadline``): the moment, and the seconds from now until it."""

    at: dt.datetime  # time-zone aware
    seconds: float

    @property
    def text(self) -> str:
        return self.at.strftime("%Y-%m-%d %H:%M %Z").rstrip()


@dataclass(frozen=True, slots=True)
class Forecast:
    """What ``plan`` says about time: the settings it assumed, the wall time, and whether it fits."""

    jobs: int
    outstanding: int
    concurrency: int
    rpm: float | None
    task_seconds: float
    learnt_from: int  # done jobs the task time is the median of; 0: the default
    max_runtime: float | None
    deadline: Deadline | None = None
    paces: Mapping[str, float] | None = None  # other limits (downloads, poll_rpm): jobs a minute each allows

    @property
    def wall_seconds(self) -> float:
        return wall_seconds(self.jobs, concurrency=self.concurrency, rpm=self.rpm, task_seconds=self.task_seconds,
                            outstanding=self.outstanding, paces=self.paces)

    @property
    def bound(self) -> str:
        """What sets the pace: ``concurrency``, ``rpm`` or one of ``paces`` (the smallest rate, as ``plan``'s
        throughput line names it)."""
        rates = {"concurrency": self.concurrency * 60.0 / max(self.task_seconds, 1e-9)}
        if self.rpm:
            rates["rpm"] = self.rpm
        rates.update({name: rate for name, rate in (self.paces or {}).items() if rate > 0})
        return min(rates, key=lambda name: rates[name])

    @property
    def fits(self) -> bool | None:
        """Whether it finishes within ``max_runtime`` (None: no limit set)."""
        return None if self.max_runtime is None else self.wall_seconds <= self.max_runtime

    @property
    def within_max_runtime(self) -> int | None:
        if self.max_runtime is None:
            return None
        return min(self.jobs, clips_within(self.max_runtime, concurrency=self.concurrency, rpm=self.rpm,
                                           task_seconds=self.task_seconds, paces=self.paces))


    @property
    def fits_deadline(self) -> bool | None:
        """Whether it finishes before the deadline (None: no deadline given)."""
        return None if self.deadline is None else self.wall_seconds <= self.deadline.seconds

    @property
    def within_deadline(self) -> int | None:
        """Jobs done by the deadline (None: no deadline given)."""
        if self.deadline is None:
            return None
        return min(self.jobs, clips_within(self.deadline.seconds, concurrency=self.concurrency, rpm=self.rpm,
                                           task_seconds=self.task_seconds, paces=self.paces))


def forecast(ledger: LedgerBackend, *, jobs: int, outstanding: int, concurrency: int, rpm: float | None,
             max_runtime: float | None, deadline: Deadline | None = None,
             paces: Mapping[str, float] | None = None) -> Forecast:
    """The forecast of a run of ``jobs`` submits with these settings, its task time learnt from ``ledger``."""
    task, n = typical_task_seconds(ledger)
    return Forecast(jobs=jobs, outstanding=outstanding, concurrency=concurrency, rpm=rpm, task_seconds=task,
                    learnt_from=n, max_runtime=max_runtime, deadline=deadline, paces=paces)


def _assumed(f: Forecast) -> str:
    source = f"median of {f.learnt_from} done job(s) in this ledger" if f.learnt_from else "default: no job done yet"
    rate = "no rpm cap" if not f.rpm else f"rpm {f.rpm:g}"
    return f"concurrency {f.concurrency}, {rate}, task time {duration(f.task_seconds)} ({source})"


def forecast_dict(f: Forecast) -> dict[str, Any]:
    """``plan --json``'s ``forecast``."""
    return {"wall_seconds": round(f.wall_seconds, 1), "bound": f.bound, "jobs": f.jobs, "outstanding": f.outstanding,
            "concurrency": f.concurrency, "rpm": f.rpm, "task_seconds": round(f.task_seconds, 1),
            "task_seconds_learnt_from": f.learnt_from, "max_runtime": f.max_runtime, "fits": f.fits,
            "jobs_within_max_runtime": f.within_max_runtime, "deadline": _deadline_dict(f)}


def _deadline_dict(f: Forecast) -> dict[str, Any] | None:
    if f.deadline is None:
        return None
    return {"at": f.deadline.at.isoformat(), "seconds": round(f.deadline.seconds, 1), "fits": f.fits_deadline,
            "jobs_by_deadline": f.within_deadline, "bound": f.bound}


def forecast_lines(f: Forecast) -> list[str]:
    """``plan``'s lines about time (a warning when the settings cannot finish within --max-runtime)."""
    if f.jobs + f.outstanding == 0:
        return []
    lines = [f"would take about {duration(f.wall_seconds)} ({f.bound} bound; {_assumed(f)})"]
    if f.fits is False and f.max_runtime is not None:
        lines.append(f"warning: that does not fit in --max-runtime {duration(f.max_runtime)}: about"
                     f" {f.within_max_runtime} of {f.jobs} job(s) would finish; raise --concurrency (if the account"
                     f" allows it){' or --rpm' if f.bound == 'rpm' else ''}, or let the next run resume the rest")
    if f.deadline is not None:
        lines.append(_deadline_line(f, f.deadline))
    return lines


def _deadline_line(f: Forecast, deadline: Deadline) -> str:
    when = f"the deadline {deadline.text} (in {duration(deadline.seconds)})"
    if f.fits_deadline:
        return f"deadline {deadline.text} (in {duration(deadline.seconds)}): the estimate finishes before it, with about" \
               f" {duration(deadline.seconds - f.wall_seconds)} to spare"
    paces = f.paces or {}
    value = (f.concurrency if f.bound == "concurrency" else f"~{paces[f.bound]:g} jobs/min" if f.bound in paces
             else f"{f.rpm:g}")
    return (f"warning: that does not finish by {when}: about {f.within_deadline} of {f.jobs} job(s) would be done by"
            f" then; {f.bound} ({value}) binds: raise --{f.bound.replace('_', '-')} (if the account allows it), or"
            " start earlier")
