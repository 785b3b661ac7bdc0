"""Logging set-up for the CLI: plain lines, rich lines on a TTY, or JSON lines.

Library code only calls ``logging.getLogger("runner…")``; :func:`configure_logging`
(called once by the CLI) decides where the records go. With ``--log-json``
every record — and every engine event the reporter forwards — is one JSON
object per line on stderr, shaped by :func:`json_record`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, ClassVar, TextIO

__all__ = ["configure_logging", "json_record", "write_json_line"]

EVENT_LOGGER = "runner.events"


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
    """Write one JSON object and a newline, flushed (log shippers read line by line)."""
    out = sys.stderr if stream is None else stream
    out.write(json.dumps(payload, default=str, ensure_ascii=False) + "\n")
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
        return json.dumps(payload, default=str, ensure_ascii=False)


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


def configure_logging(*, level: int, json_lines: bool, tty: bool | None = None) -> None:
    """Set up the ``runner`` loggers on stderr; only the CLI calls this.

    ``tty`` defaults to whether stderr is a terminal: then lines go through the
    rich console, so they do not tear the live progress display.
    """
    if tty is None:
        tty = sys.stderr.isatty()
    handler: logging.Handler
    if json_lines:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    elif tty:
        handler = ConsoleHandler()
        handler.setFormatter(logging.Formatter("runner: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("runner: %(message)s"))
    root = logging.getLogger("runner")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
