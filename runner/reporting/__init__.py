"""Everything the operator sees: progress, logs, tables, the dataset export and the gallery.

Only this package imports rich. Modules:

- ``logs``: :func:`configure_logging` (plain, rich on a TTY, or JSON lines);
- ``repeats``: identical log lines within a minute written once, then counted;
- ``tracker`` / ``live`` / ``progress``: progress while ``run`` and ``collect``
  work (:func:`make_reporter`);
- ``text``: plain formatting helpers; ``inspect``: ``status`` / ``show`` / ``ls``;
- ``dataset``: the Hugging Face folder export; ``gallery``: the static HTML report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.lazy import lazy_exports

if TYPE_CHECKING:  # the names below are imported on first use (start-up time: issue 14)
    from runner.reporting.logs import configure_logging
    from runner.reporting.progress import (
        JsonReporter,
        PlainReporter,
        ProgressReporter,
        QuietReporter,
        RichReporter,
        make_reporter,
    )

# name -> the module that defines it; a command imports only what it shows
_WHERE: dict[str, str] = {
    "configure_logging": "runner.reporting.logs",
    "JsonReporter": "runner.reporting.progress",
    "PlainReporter": "runner.reporting.progress",
    "ProgressReporter": "runner.reporting.progress",
    "QuietReporter": "runner.reporting.progress",
    "RichReporter": "runner.reporting.progress",
    "make_reporter": "runner.reporting.progress",
}

__all__ = [
    "JsonReporter",
    "PlainReporter",
    "ProgressReporter",
    "QuietReporter",
    "RichReporter",
    "configure_logging",
    "make_reporter",
]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, __all__, globals())
