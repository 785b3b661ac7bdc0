"""Everything the operator sees: progress, logs, tables, the dataset export and the gallery.

Only this package imports rich. Modules:

- ``logs``: :func:`configure_logging` (plain, rich on a TTY, or JSON lines);
- ``tracker`` / ``live`` / ``progress``: progress while ``run`` and ``collect``
  work (:func:`make_reporter`);
- ``text``: plain formatting helpers; ``inspect``: ``status`` / ``show`` / ``ls``;
- ``dataset``: the Hugging Face folder export; ``gallery``: the static HTML report.
"""

from __future__ import annotations

from runner.reporting.logs import configure_logging
from runner.reporting.progress import (
    JsonReporter,
    PlainReporter,
    ProgressReporter,
    QuietReporter,
    RichReporter,
    make_reporter,
)

__all__ = [
    "JsonReporter",
    "PlainReporter",
    "ProgressReporter",
    "QuietReporter",
    "RichReporter",
    "configure_logging",
    "make_reporter",
]
