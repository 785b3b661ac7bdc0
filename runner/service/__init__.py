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

from typing import TYPE_CHECKING

from runner.lazy import lazy_exports

if TYPE_CHECKING:  # the names below are imported on first use (start-up time: issue 14)
    from runner.service.adopting import Adopted, adopt
    from runner.service.outcome import (
        EXIT_FAILED,
        EXIT_IN_DOUBT,
        EXIT_LOCAL,
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
    from runner.service.running import COLLECT, RUN, SUBMIT, Mode, RunOptions, prepare, run
    from runner.service.settings import settings_for
    from runner.service.state import find_state_dir, resolve_state

# name -> the module that defines it; a command imports only what it uses
_WHERE: dict[str, str] = {
    "Adopted": "runner.service.adopting",
    "adopt": "runner.service.adopting",
    "EXIT_FAILED": "runner.service.outcome",
    "EXIT_IN_DOUBT": "runner.service.outcome",
    "EXIT_LOCAL": "runner.service.outcome",
    "EXIT_LOCKED": "runner.service.outcome",
    "EXIT_OK": "runner.service.outcome",
    "EXIT_STOPPED": "runner.service.outcome",
    "EXIT_UNREACHABLE": "runner.service.outcome",
    "EXIT_USAGE": "runner.service.outcome",
    "Notice": "runner.service.outcome",
    "Notify": "runner.service.outcome",
    "Outcome": "runner.service.outcome",
    "exit_code_for": "runner.service.outcome",
    "Plan": "runner.service.planning",
    "plan": "runner.service.planning",
    "Jobs": "runner.service.reading",
    "gallery": "runner.service.reading",
    "jobs": "runner.service.reading",
    "require_ledger": "runner.service.reading",
    "show": "runner.service.reading",
    "status": "runner.service.reading",
    "to_hf": "runner.service.reading",
    "Retried": "runner.service.retrying",
    "retry": "runner.service.retrying",
    "COLLECT": "runner.service.running",
    "RUN": "runner.service.running",
    "SUBMIT": "runner.service.running",
    "Mode": "runner.service.running",
    "RunOptions": "runner.service.running",
    "prepare": "runner.service.running",
    "run": "runner.service.running",
    "settings_for": "runner.service.settings",
    "find_state_dir": "runner.service.state",
    "resolve_state": "runner.service.state",
}

__all__ = [
    "COLLECT",
    "EXIT_FAILED",
    "EXIT_IN_DOUBT",
    "EXIT_LOCAL",
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


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, __all__, globals())
