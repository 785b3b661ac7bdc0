"""The one rich console on stderr, shared by the live display and the log handler.

While a live display runs, log lines must be printed through the same console
so that they appear above the display instead of tearing it.
"""

from __future__ import annotations

from rich.console import Console

__all__ = ["stderr_console"]

_console: Console | None = None


def stderr_console() -> Console:
    """The process's stderr console (created on first use)."""
    global _console
    if _console is None:
        _console = Console(stderr=True, highlight=False, soft_wrap=False)
    return _console
