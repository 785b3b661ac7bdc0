"""runner — a batch job runner for paid, slow, asynchronous generation APIs.

A video is paid for once and never lost: every submit is written ahead to a
SQLite ledger, so an interrupted run resumes instead of paying again.

The names below are imported on first use (PEP 562): ``import runner`` stays cheap, so
``runner --version`` and ``runner --help`` start fast (issue 14).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.errors import RunnerError
    from runner.jobs import JobSpec, JobState

__all__ = ["JobSpec", "JobState", "RunnerError", "__version__"]


def _version() -> str:
    from runner.distribution import installed_version

    return installed_version()


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value: Any = _version()
    elif name == "RunnerError":
        from runner.errors import RunnerError as value
    elif name in ("JobSpec", "JobState"):
        import runner.jobs

        value = getattr(runner.jobs, name)
    else:
        raise AttributeError(f"module 'runner' has no attribute {name!r}")
    globals()[name] = value
    return value
