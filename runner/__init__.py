"""runner — a batch job runner for paid, slow, asynchronous generation APIs.

A video is paid for once and never lost: every submit is written ahead to a
SQLite ledger, so an interrupted run resumes instead of paying again.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from runner.errors import RunnerError
from runner.jobs import JobSpec, JobState

try:
    __version__ = version("runner")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = ["JobSpec", "JobState", "RunnerError", "__version__"]
