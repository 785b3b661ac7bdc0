"""The application service: what a command of ``runner`` does, callable without the command line.

A library user runs a manifest as the CLI does::

    from runner import service

    print(service.plan(Path("m.yaml")).as_dict())
    outcome = service.run(Path("m.yaml"), service.RunOptions(simulate=True, settings={"concurrency": 8}))
    outcome.exit_code, outcome.counts  # 0, {"done": 6, …}

Each click command in :mod:`runner.cli` parses its options, calls one function here (``plan``,
``run``, ``retry``, ``adopt``, ``status``, ``jobs``, ``show``, ``to_hf``, ``gallery``) and renders
what it returns; the exit codes are :mod:`runner.service.outcome`'s. Errors a user or a provider can
cause are raised as :class:`~runner.errors.RunnerError` (their code: :func:`exit_code_for`).
"""

from __future__ import annotations

from runner.service.adopting import Adopted, adopt
from runner.service.outcome import (
    EXIT_FAILED,
    EXIT_IN_DOUBT,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_STOPPED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    Notice,
    Notify,
    Outcome,
    exit_code_for,
)
from runner.service.planning import Plan, plan
from runner.service.reading import Jobs, gallery, jobs, require_ledger, show, status, to_hf
from runner.service.retrying import Retried, retry
from runner.service.running import COLLECT, RUN, SUBMIT, Mode, RunOptions, prepare, run, settings_for
from runner.service.state import find_state_dir, resolve_state

__all__ = [
    "COLLECT",
    "EXIT_FAILED",
    "EXIT_IN_DOUBT",
    "EXIT_LOCKED",
    "EXIT_OK",
    "EXIT_STOPPED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "RUN",
    "SUBMIT",
    "Adopted",
    "Jobs",
    "Mode",
    "Notice",
    "Notify",
    "Outcome",
    "Plan",
    "Retried",
    "RunOptions",
    "adopt",
    "exit_code_for",
    "find_state_dir",
    "gallery",
    "jobs",
    "plan",
    "prepare",
    "require_ledger",
    "resolve_state",
    "retry",
    "run",
    "settings_for",
    "show",
    "status",
    "to_hf",
]
