"""Progress and logs on stderr. Only this module (and the CLI) formats output.

- :func:`configure_logging` sets up the ``runner`` loggers: plain lines, or one
  JSON object per line with ``--log-json``.
- :func:`make_reporter` returns what the engine reports its events to: a
  periodic plain status line (no TTY), or nothing with ``--quiet``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import Counter
from typing import Any

import anyio

from runner.jobs import JobState
from runner.ledger import Ledger

__all__ = ["PlainReporter", "configure_logging", "make_reporter"]

log = logging.getLogger("runner")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        extra = getattr(record, "event", None)
        if isinstance(extra, dict):
            payload.update(extra)
        return json.dumps(payload, default=str)


def configure_logging(*, level: int, json_lines: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if json_lines else logging.Formatter("runner: %(message)s"))
    root = logging.getLogger("runner")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


# Engine event → the state a job moves into.
_MOVES = {
    "submitted": (JobState.PENDING, JobState.RUNNING),
    "in_doubt": (JobState.PENDING, JobState.IN_DOUBT),
    "succeeded": (JobState.RUNNING, JobState.SUCCEEDED),
    "done": (JobState.SUCCEEDED, JobState.DONE),
}


class PlainReporter:
    """Keeps counts from engine events; prints a status line every ``every`` seconds."""

    def __init__(self, counts: dict[JobState, int], *, every: float = 5.0, quiet: bool = False) -> None:
        self.counts = Counter({str(k): v for k, v in counts.items()})
        self.every = every
        self.quiet = quiet
        self.started = time.monotonic()
        self.events: Counter[str] = Counter()

    def event(self, kind: str, /, **fields: Any) -> None:
        self.events[kind] += 1
        logging.getLogger("runner.events").debug("%s %s", kind, fields, extra={"event": {"event": kind, **fields}})

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        e = self.events
        return (
            f"{elapsed:6.0f}s  submitted {e['submitted']}  done {e['done']}  failed {e['failed']}"
            f"  lost {e['lost']}  in doubt {e['in_doubt']}  429s {e['retry_later']}"
        )

    async def run(self) -> None:
        if self.quiet:
            return
        while True:
            await anyio.sleep(self.every)
            print(f"runner: {self.line()}", file=sys.stderr, flush=True)

    def close(self, result: Any) -> None:
        if not self.quiet:
            print(f"runner: {self.line()}  ({result.reason})", file=sys.stderr, flush=True)


def make_reporter(
    *, ledger: Ledger, manifest: str | None, quiet: bool = False, json_lines: bool = False, tty: bool = False
) -> PlainReporter:
    return PlainReporter(ledger.counts(manifest), quiet=quiet)
