"""Small plain-text formatting helpers: durations, money, times, aligned tables, foreign text made visible."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["duration", "local_time", "money", "seconds", "short", "table", "vars_text", "visible"]


def duration(seconds: float | None) -> str:
    """``42s``, ``3m05s``, ``2h07m``, ``3d04h``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    s = round(abs(seconds))
    sign = "-" if seconds < 0 and s else ""
    if s < 60:
        return f"{sign}{s}s"
    if s < 3600:
        return f"{sign}{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{sign}{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{sign}{s // 86400}d{s % 86400 // 3600:02d}h"


def seconds(value: float | None) -> str:
    """A span measured, not waited for: ``0.42s``, ``3.1s``, then as :func:`duration`."""
    if value is None:
        return "?"
    if abs(value) < 1:
        return f"{value:.2f}s"
    if abs(value) < 10:
        return f"{value:.1f}s"
    return duration(value)


def money(usd: float) -> str:
    return f"{usd:.2f} USD"


def local_time(epoch: float | None) -> str:
    """Local wall time of an epoch timestamp, to the second; ``-`` when unknown."""
    if epoch is None:
        return "-"
    return dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def short(text: str | None, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    if not text:
        return ""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: max(0, width - 1)] + "…"


def vars_text(variables: Mapping[str, Any]) -> str:
    """``city=Tokyo time=dawn``."""
    return " ".join(f"{k}={v}" for k, v in variables.items())


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, right: Sequence[int] = ()) -> list[str]:
    """Rows as aligned columns under a header; columns in ``right`` are right-aligned."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(parts).rstrip())
    return lines


def visible(text: str) -> str:
    """``text`` with every character a terminal would act on instead of showing (controls: an escape sequence
    that recolours or clears the screen, a bell; format characters: a bidi override that reorders the line) as its
    escape, ``\\x1b``; line breaks stay. Log lines, ``show`` and ``ls`` quote the provider's own words (a refusal's
    reason, a failed task's), which the runner does not control."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == "\n" else ch.encode("unicode_escape").decode("ascii") for ch in text)
