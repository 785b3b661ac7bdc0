"""``plan --deadline WHEN``: when the batch should be done, read against a given "now".

WHEN is an ISO time (``YYYY-MM-DDTHH:MM``; without an offset, in now's time zone — the machine's local
time for the CLI), ``HH:MM`` (the next such time: today if still ahead, else tomorrow) or a duration
from now (``8h``, ``1h30m``, ``90m``, ``2d``, ``45s``). A deadline that is not ahead is a usage error.
The forecast (:class:`runner.reporting.eta.Forecast`) then says whether the run finishes before it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any, TypeVar

import click

from runner.errors import UsageError
from runner.reporting.eta import Deadline

__all__ = ["deadline_option", "parse_deadline"]

F = TypeVar("F", bound=Callable[..., Any])

_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")
_SPAN = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_UNIT = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def _forms(now: dt.datetime) -> str:
    """The forms WHEN takes, the ISO one shown as the next 07:00 after ``now`` (a fixed date goes past)."""
    seven = now.replace(hour=7, minute=0, second=0, microsecond=0)
    seven += dt.timedelta(days=1) if seven <= now else dt.timedelta()
    return f"an ISO time ({seven.strftime('%Y-%m-%dT%H:%M')}), HH:MM (the next 07:00) or a duration (8h, 1h30m, 90m)"


def deadline_option(func: F) -> F:
    return click.option(
        "--deadline", "deadline", default=None, metavar="WHEN",
        help="Say whether the forecast finishes by WHEN, and if not how many jobs would be done by then: an ISO"
             " time (YYYY-MM-DDTHH:MM, local time unless an offset is given), HH:MM (the next one) or a duration"
             " (8h, 1h30m). A warning only: the exit code stays 0.")(func)


def parse_deadline(text: str, *, now: dt.datetime) -> Deadline:
    """``text`` as a :class:`Deadline` after the aware datetime ``now``; :class:`UsageError` when unreadable or past."""
    at = _read(text.strip(), now)
    if at is None:
        raise UsageError(f"--deadline {text!r}: give {_forms(now)}")
    seconds = (at - now).total_seconds()
    if seconds <= 0:
        raise UsageError(f"--deadline {text!r} is in the past (it is now {now.strftime('%Y-%m-%d %H:%M %Z').rstrip()});"
                         f" give a time ahead: {_forms(now)}")
    return Deadline(at=at, seconds=seconds)


def _read(text: str, now: dt.datetime) -> dt.datetime | None:
    clock = _CLOCK.match(text)
    if clock is not None:
        hour, minute = int(clock.group(1)), int(clock.group(2))
        if hour > 23 or minute > 59:
            return None
        at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        return at if at > now else at + dt.timedelta(days=1)
    if text and _SPAN.sub("", text) == "":
        return now + dt.timedelta(seconds=sum(float(n) * _UNIT[unit] for n, unit in _SPAN.findall(text)))
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if len(text) < 10 or text[4:5] != "-":  # fromisoformat also reads '20261204' or a bare date: say a time
        return None
    return at.replace(tzinfo=now.tzinfo) if at.tzinfo is None else at
