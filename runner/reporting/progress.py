"""Reporters: what the engine reports its events to while ``run`` / ``collect`` work.

    make_reporter(...)  ─┬─ quiet      → QuietReporter  (nothing)
                         ├─ --log-json → JsonReporter   (one JSON object per event per line)
                         ├─ TTY        → RichReporter   (a rich live display)
                         └─ otherwise  → PlainReporter  (a status line every few seconds)

Every reporter has ``emit(event)`` (called by the engine with a typed event of
:mod:`runner.engine.events`, never blocks), ``async run()`` (started in the CLI's task group, cancelled when the
engine returns) and ``close(result)`` (the final word). All write to stderr:
stdout carries results only.

Counts and spend come from the ledger (the truth), read at a cadence that
adapts to what a read costs, and follow the events in between.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TextIO

import anyio

from runner.engine import events as ev
from runner.jobs import JobState
from runner.ledger import LedgerBackend
from runner.reporting.logs import EVENT_LOGGER, json_record, line_prefix, write_json_line
from runner.reporting.text import duration
from runner.reporting.tracker import ProgressTracker, Snapshot, describe

if TYPE_CHECKING:  # rich only for the live display on a terminal (start-up time: issue 14)
    from rich.console import Console, RenderableType
    from rich.live import Live

__all__ = [
    "FINISHED_WITH_FAILURES",
    "JsonReporter",
    "PlainReporter",
    "ProgressReporter",
    "QuietReporter",
    "RichReporter",
    "make_reporter",
    "plain_line",
]

log = logging.getLogger(EVENT_LOGGER)

DEFAULT_EVERY = 5.0  # seconds between plain status lines / JSON status records
HEARTBEAT = 60.0  # a line at least this often, even when nothing changed
EVERY_ENV = "RUNNER_PROGRESS_SECONDS"
FINISHED_WITH_FAILURES = "finished: "  # the summary's last word of a run that ends with jobs failed or lost (exit 1)
_LEVELS = {"failed": "error", "lost": "error", "fatal": "error", "input_changed": "error", "in_doubt": "warning",
           "budget_reached": "warning", "download_deferred": "warning", "stopping": "warning"}


class ProgressReporter(Protocol):
    """What the CLI drives (the engine itself only calls ``event``)."""

    def emit(self, event: ev.Event, /) -> None: ...

    async def run(self) -> None: ...

    def close(self, result: Any) -> None: ...


def plain_line(snap: Snapshot) -> str:
    """One status line: ``0:12 done 3/7 · running 2 · pending 2 · … · ETA · spend``."""
    c = snap.counts
    parts = [f"{duration(snap.elapsed):>6}", f"done {c.get(JobState.DONE, 0)}/{snap.total}"]
    for state in (JobState.RUNNING, JobState.SUCCEEDED, JobState.PENDING, JobState.FAILED, JobState.LOST):
        if c.get(state, 0):
            parts.append(f"{state} {c[state]}")
    if snap.in_doubt:
        parts.append(f"IN DOUBT {snap.in_doubt}")
    parts.append(f"{snap.submit_rate:.1f} submits/min, {snap.finish_rate:.1f} finished/min")
    eta = "-" if snap.eta == 0 else "estimating" if snap.eta is None else duration(snap.eta)
    parts.append(f"ETA {eta}")
    parts.append(f"~{snap.spent_usd:.2f} USD spent (estimate)")
    return "  ".join(parts[:2]) + "  " + " · ".join(parts[2:])


class _LedgerBacked:
    """A tracker kept in step with the ledger, re-read no more often than it is cheap to."""

    MIN_GAP = 1.0  # seconds between ledger reads, at least
    COST_FACTOR = 50.0  # ...and at least this many times what the last read took

    def __init__(self, ledger: LedgerBackend | None, scope: str | None, *, clock: Callable[[], float] = time.monotonic,
                 counts: Mapping[JobState, int] | None = None, spent_usd: float = 0.0) -> None:
        self.ledger = ledger
        self.scope = scope
        self.clock = clock
        self._next_read = 0.0
        if ledger is not None:
            counts, spent_usd = self._read()
        self.tracker = ProgressTracker(counts or {}, spent_usd, scope=scope, clock=clock)

    def _read(self) -> tuple[dict[JobState, int], float]:
        assert self.ledger is not None
        started = time.perf_counter()
        counts = self.ledger.counts(self.scope)
        spent = self.ledger.spent_usd(self.scope)
        cost = time.perf_counter() - started
        self._next_read = self.clock() + max(self.MIN_GAP, cost * self.COST_FACTOR)
        return counts, spent

    def resync(self, *, force: bool = False) -> None:
        if self.ledger is None or (not force and self.clock() < self._next_read):
            return
        self.tracker.resync(*self._read())

    def snapshot(self, *, force: bool = False) -> Snapshot:
        self.resync(force=force)
        return self.tracker.snapshot()

    def emit(self, event: ev.Event, /) -> None:
        self.tracker.take(event)
        if log.isEnabledFor(logging.DEBUG):
            fields = event.fields()
            log.debug("%s %s", event.kind, fields, extra={"event": {"event": event.kind, **fields}})


def _signature(snap: Snapshot) -> tuple[Any, ...]:
    return tuple(sorted(snap.counts.items())), snap.stopping


class _Periodic(_LedgerBacked):
    """Reports a status every ``every`` seconds when the counts changed, and a heartbeat otherwise."""

    def __init__(self, ledger: LedgerBackend | None, scope: str | None, *, every: float = DEFAULT_EVERY,
                 stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic,
                 counts: Mapping[JobState, int] | None = None, spent_usd: float = 0.0) -> None:
        super().__init__(ledger, scope, clock=clock, counts=counts, spent_usd=spent_usd)
        self.every = every
        self.stream = stream
        self._last: tuple[Any, ...] | None = None
        self._last_at = self.clock()

    def _status(self, snap: Snapshot) -> None:
        raise NotImplementedError

    def tick(self) -> bool:
        """Report if the counts changed or the heartbeat is due; returns whether it reported."""
        snap = self.snapshot()
        signature = _signature(snap)
        now = self.clock()
        if signature == self._last and now - self._last_at < HEARTBEAT:
            return False
        self._last, self._last_at = signature, now
        self._status(snap)
        return True

    async def run(self) -> None:
        while True:
            await anyio.sleep(self.every)
            self.tick()


class PlainReporter(_Periodic):
    """A status line on stderr every ``every`` seconds when something changed (and a heartbeat)."""

    def _write(self, text: str) -> None:
        out = self.stream if self.stream is not None else sys.stderr
        out.write(f"{line_prefix()}{text}\n")
        out.flush()

    def _status(self, snap: Snapshot) -> None:
        self._write(plain_line(snap))

    def close(self, result: Any) -> None:
        snap = self.snapshot(force=True)
        self._write(f"{plain_line(snap)}  [{_ending(result)}]")


class JsonReporter(_Periodic):
    """One JSON object per engine event per line on stderr, plus periodic ``status`` and a final ``summary``."""

    def __init__(self, ledger: LedgerBackend | None, scope: str | None, *, every: float = DEFAULT_EVERY,
                 stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 counts: Mapping[JobState, int] | None = None, spent_usd: float = 0.0) -> None:
        super().__init__(ledger, scope, every=every, stream=stream, clock=clock, counts=counts,
                         spent_usd=spent_usd)
        self.wall = wall

    def _emit(self, kind: str, message: str, level: str = "info", **fields: Any) -> None:
        record = json_record(message=message, level=level, ts=self.wall(),
                             fields={"event": kind, "manifest": self.scope, **fields})
        write_json_line(record, self.stream)

    def emit(self, event: ev.Event, /) -> None:
        self.tracker.take(event)
        data = event.fields()
        if "message" in data:  # the provider's message; "message" is the line's own text
            data["provider_message"] = data.pop("message")
        self._emit(event.kind, _event_message(event), _LEVELS.get(event.kind, "info"), **data)

    def _status_fields(self, snap: Snapshot) -> dict[str, Any]:
        return {
            "total": snap.total,
            "counts": {str(state): snap.counts.get(state, 0) for state in JobState},
            "estimated_spent_usd": round(snap.spent_usd, 4),
            "submits_per_min": round(snap.submit_rate, 2),
            "finished_per_min": round(snap.finish_rate, 2),
            "eta_s": None if snap.eta is None else round(snap.eta, 1),
            "elapsed_s": round(snap.elapsed, 3),
        }

    def _status(self, snap: Snapshot) -> None:
        self._emit("status", plain_line(snap), **self._status_fields(snap))

    def close(self, result: Any) -> None:
        snap = self.snapshot(force=True)
        error = getattr(result, "error", None)
        self._emit(
            "summary", f"{plain_line(snap)}  [{_ending(result)}]", "error" if error is not None else "info",
            reason=str(getattr(result, "reason", "")),
            error=None if error is None else str(error),
            run={name: getattr(result, name, 0) for name in
                 ("submitted", "in_doubt_new", "done", "failed", "lost", "rate_limited")},
            **self._status_fields(snap),
        )


class RichReporter(_LedgerBacked):
    """A rich live display on a terminal (stderr), redrawn every ``refresh`` seconds."""

    def __init__(self, ledger: LedgerBackend | None, scope: str | None, *, refresh: float = 0.5,
                 console: Console | None = None, clock: Callable[[], float] = time.monotonic,
                 counts: Mapping[JobState, int] | None = None, spent_usd: float = 0.0) -> None:
        super().__init__(ledger, scope, clock=clock, counts=counts, spent_usd=spent_usd)
        self.refresh = refresh
        if console is None:
            from runner.reporting.term import stderr_console

            console = stderr_console()
        self.console = console
        # Imported here, before the engine starts, not once it runs: a module first imported while POSTs go out could
        # be a newer version's (an upgrade under the run) and end the run; one missing now stops it before any is sent.
        from rich.live import Live

        from runner.reporting.live import render

        self._live: type[Live] = Live
        self._render: Callable[[Snapshot], RenderableType] = render

    async def run(self) -> None:
        render = self._render
        live = self._live(render(self.snapshot()), console=self.console, auto_refresh=False, transient=False,
                          redirect_stdout=False, redirect_stderr=True)
        with live:
            try:
                while True:
                    await anyio.sleep(self.refresh)
                    live.update(render(self.snapshot()), refresh=True)
            finally:
                live.update(render(self.snapshot(force=True)), refresh=True)

    def close(self, result: Any) -> None:
        snap = self.snapshot(force=True)
        style = "bold red" if snap.in_doubt or getattr(result, "error", None) is not None else "bold"
        self.console.print(f"runner: {plain_line(snap)}  [{_ending(result)}]", style=style,
                           markup=False, highlight=False, soft_wrap=True)


class QuietReporter:
    """``--quiet``: no progress, and the summary only when the run finished with jobs failed or lost (exit 1), which
    needs a person on every run until they are retried: after the run where they failed, a quiet cron job's mail (a
    wrapper's that sends a failed job's output) was empty. (Jobs held in doubt are said by every run: exit 4.)"""

    def __init__(self, ledger: LedgerBackend | None = None, scope: str | None = None) -> None:
        self.ledger = ledger
        self.scope = scope

    def emit(self, event: ev.Event, /) -> None:
        pass

    async def run(self) -> None:
        return None

    def close(self, result: Any) -> None:
        if _ending(result).startswith(FINISHED_WITH_FAILURES):
            PlainReporter(self.ledger, self.scope).close(result)


def _ending(result: Any) -> str:
    """The summary's last word: how the run ended as its exit code will say it (``ending``, set by the service), else
    why it stopped. Not the error's text: the CLI's last line says it (``runner: error: …``), and a log should not
    end on the same sentence twice."""
    return str(getattr(result, "ending", None) or getattr(result, "reason", "") or "")


def _event_message(event: ev.Event) -> str:
    match event:
        case ev.Accepted(key=key, task_id=task_id):
            return f"submitted {key} as task {task_id}"
        case ev.Succeeded(key=key, task_id=task_id):
            return f"task {task_id} of {key} succeeded"
        case ev.Stored(key=key, path=path, bytes=size):
            return f"stored {key} at {path} ({size} bytes)"
        case ev.Running(key=key, status=status, percent=percent):
            return f"{key}: {status} {percent}%"
        case ev.RetryLater(key=key, reason=reason, delay=delay):
            return f"submit of {key} refused ({reason}); again in {delay:.1f}s"
    return describe(event)


def progress_every(environ: Mapping[str, str] | None = None) -> float:
    """Seconds between status lines: ``RUNNER_PROGRESS_SECONDS`` or 5 (a value that is no positive number of
    seconds is said, not silently ignored)."""
    raw = (os.environ if environ is None else environ).get(EVERY_ENV)
    try:
        value = float(raw) if raw else DEFAULT_EVERY
    except ValueError:
        value = -1.0
    if value > 0 and math.isfinite(value):
        return value
    log.warning("%s=%r is not a number of seconds above 0; a status line every %g s instead", EVERY_ENV, raw,
                DEFAULT_EVERY)
    return DEFAULT_EVERY


def make_reporter(
    *, ledger: LedgerBackend, manifest: str | None, quiet: bool = False, json_lines: bool = False, tty: bool = False
) -> PlainReporter | JsonReporter | RichReporter | QuietReporter:
    """The reporter for these output settings (see the module docstring)."""
    if quiet:
        return QuietReporter(ledger, manifest)
    if json_lines:
        return JsonReporter(ledger, manifest, every=progress_every())
    if tty:
        return RichReporter(ledger, manifest)
    return PlainReporter(ledger, manifest, every=progress_every())
