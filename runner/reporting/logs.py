"""Logging set-up for the CLI: plain lines, rich lines on a TTY, or JSON lines.

Library code only calls ``logging.getLogger("runner…")``; :func:`configure_logging`
(called once by the CLI) decides where the records go. The CLI's own lines (errors,
notices, signals) go through the same loggers, so one choice holds for every line:

* ``--log-json``: every record — and every engine event the reporter forwards — is one JSON
  object per line on stderr, shaped by :func:`json_record` (U+2028, U+2029 and U+0085 ``\\u``-escaped:
  :mod:`runner.reporting.json_lines`);
* plain lines (no terminal, or ``--no-progress``): ``runner: …``, with ``stamps`` a wall-clock
  timestamp first (ISO 8601, local time with its UTC offset: :func:`line_prefix`), identical
  warnings collapsed (:mod:`runner.reporting.repeats`);
* a terminal: through the rich console, above the live display.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import datetime
from typing import Any, ClassVar, TextIO

from runner.reporting.json_lines import json_line
from runner.reporting.repeats import RepeatCollapser
from runner.reporting.text import visible

__all__ = ["NOTICE", "configure_logging", "flush_repeats", "json_record", "line_prefix", "stamps_on", "timestamp",
           "visible", "write_json_line"]

EVENT_LOGGER = "runner.events"
NOTICE = 25  # between INFO and WARNING: shown with -q (a signal, why the exit code is what it is)
logging.addLevelName(NOTICE, "NOTICE")


def timestamp(ts: float | None = None) -> str:
    """``ts`` (default now) as ISO 8601 in local time with its UTC offset: ``2026-12-03T14:05:09+01:00``."""
    return datetime.fromtimestamp(time.time() if ts is None else ts).astimezone().isoformat(timespec="seconds")


def line_prefix(ts: float | None = None, *, stamps: bool | None = None) -> str:
    """What every plain line starts with: ``runner: ``, after a timestamp when stamps are on (by default:
    when the ``runner`` logger's plain lines have them, see :func:`configure_logging`)."""
    return f"{timestamp(ts)} runner: " if (stamps_on() if stamps is None else stamps) else "runner: "


def stamps_on() -> bool:
    """Whether the plain lines the ``runner`` logger writes start with a timestamp (a cron log)."""
    for handler in logging.getLogger("runner").handlers:
        inner = handler.inner if isinstance(handler, RepeatCollapser) else handler
        if isinstance(inner.formatter, PlainFormatter):
            return inner.formatter.stamps
    return False


def json_record(
    *, message: str, level: str = "info", logger: str = EVENT_LOGGER, ts: float | None = None,
    fields: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The shape of every JSON line: ``ts``, ``level``, ``logger``, ``message``, then the fields.

    A field named like one of the four keeps its value under ``<name>_``.
    """
    payload: dict[str, Any] = {
        "ts": round(time.time() if ts is None else ts, 3),
        "level": level,
        "logger": logger,
        "message": message,
    }
    for name, value in (fields or {}).items():
        payload[f"{name}_" if name in ("ts", "level", "logger", "message") else name] = value
    return payload


def write_json_line(payload: dict[str, Any], stream: TextIO | None = None) -> None:
    """Write one JSON object and a newline, flushed (log shippers read line by line): U+2028, U+2029 and U+0085 in
    a text escaped (:func:`~runner.reporting.json_lines.json_line`), a line break to some readers."""
    out = sys.stderr if stream is None else stream
    out.write(json_line(payload, default=str) + "\n")
    out.flush()


class JsonFormatter(logging.Formatter):
    """One JSON object per record; ``extra={"event": {...}}`` fields are merged in."""

    def format(self, record: logging.LogRecord) -> str:
        extra = getattr(record, "event", None)
        fields = dict(extra) if isinstance(extra, dict) else {}
        if record.exc_info and record.exc_info[1] is not None:
            fields["error"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        payload = json_record(
            message=record.getMessage(), level=record.levelname.lower(), logger=record.name,
            ts=record.created, fields=fields,
        )
        return json_line(payload, default=str)  # one line to every reader, as write_json_line's


class PlainFormatter(logging.Formatter):
    """``runner: message`` (after a timestamp when stamps are on); a record's ``lead`` (blank lines) first."""

    def __init__(self, *, keep_lead: bool = False, stamps: bool = False) -> None:
        super().__init__()
        self.keep_lead = keep_lead
        self.stamps = stamps

    def format(self, record: logging.LogRecord) -> str:
        lead = str(getattr(record, "lead", "") or "") if self.keep_lead else ""
        return f"{lead}{line_prefix(record.created, stamps=self.stamps)}{visible(record.getMessage())}"


class ConsoleHandler(logging.Handler):
    """Prints records through the shared rich console (above a live display, if any)."""

    STYLES: ClassVar[dict[int, str]] = {logging.WARNING: "yellow", logging.ERROR: "red", logging.CRITICAL: "bold red"}

    def emit(self, record: logging.LogRecord) -> None:
        from runner.reporting.term import stderr_console  # rich only on a terminal (start-up time: issue 14)

        try:
            message = self.format(record)
            style = self.STYLES.get(record.levelno, "")
            stderr_console().print(message, style=style, markup=False, highlight=False, soft_wrap=True)
        except Exception:  # logging must never raise (the stdlib handlers' rule)
            self.handleError(record)


def configure_logging(*, level: int, json_lines: bool, tty: bool | None = None, stamps: bool = False) -> None:
    """Set up the ``runner`` loggers on stderr; only the CLI calls this.

    ``tty`` defaults to whether stderr is a terminal: then lines go through the
    rich console, so they do not tear the live progress display. ``stamps``: plain
    lines start with a wall-clock timestamp (a cron log). Plain and terminal lines
    collapse repeated identical warnings; JSON lines are each written.
    """
    if tty is None:
        tty = sys.stderr.isatty()
    handler: logging.Handler
    if json_lines:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    else:
        inner: logging.Handler = ConsoleHandler() if tty else logging.StreamHandler(sys.stderr)
        inner.setFormatter(PlainFormatter(keep_lead=tty, stamps=stamps))
        handler = RepeatCollapser(inner)
    root = logging.getLogger("runner")
    for old in root.handlers:
        if isinstance(old, RepeatCollapser):
            old.flush_repeats()
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def flush_repeats() -> None:
    """Write the counts of repeated warnings not written yet (the run is ending: before its last line)."""
    for handler in logging.getLogger("runner").handlers:
        if isinstance(handler, RepeatCollapser):
            handler.flush_repeats()
