"""Where a manifest's ledger is: the state directory, found as every command finds it."""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.ledger.api import LedgerBackend

__all__ = ["STATE_DIR_NAME", "find_state_dir", "ledger_missing_warning", "ledger_url", "open_ledger_at",
           "resolve_state", "use_ledger_url"]

STATE_DIR_NAME = "state"
_CHOSEN: ContextVar[str | None] = ContextVar("runner_ledger_url", default=None)


def use_ledger_url(url: str | None) -> None:
    """The ledger URL this command was given (``--ledger``; the CLI sets it for each command)."""
    _CHOSEN.set(url or None)


def ledger_url(explicit: str | None = None) -> str | None:
    """The PostgreSQL ledger to use: ``explicit``, else ``--ledger``, else ``RUNNER_LEDGER_URL``; None: SQLite."""
    from runner.ledger.factory import LEDGER_URL_ENV

    return explicit or _CHOSEN.get() or os.environ.get(LEDGER_URL_ENV) or None


def open_ledger_at(state: Path, *, url: str | None = None, readonly: bool = False, new_ledger: bool = False,
                   create: bool = True) -> LedgerBackend:
    """The ledger a command uses (see :func:`ledger_url`): PostgreSQL at its URL, else SQLite in ``state``."""
    from runner.ledger.factory import open_backend

    return open_backend(state, url=ledger_url(url), readonly=readonly, new_ledger=new_ledger, create=create)


def resolve_state(state_dir: Path | None, manifest: Path | None = None) -> Path:
    """The state directory: ``--state`` (or RUNNER_STATE_DIR), else found from the manifest.

    Without either, a command that names a manifest uses :func:`find_state_dir`,
    so that one manifest finds its ledger from whatever directory it is run;
    a command without one (``collect`` alone, ``show``) uses ``./state``.
    Nothing is created here.
    """
    if state_dir is not None:
        return state_dir
    if manifest is None:
        return Path(STATE_DIR_NAME)
    return find_state_dir(manifest)


def find_state_dir(manifest: Path) -> Path:
    """The first ``state/`` folder in the manifest's (real) folder or one above it; else ``state/`` beside it."""
    folder = Path(os.path.realpath(manifest)).parent
    for candidate in (folder, *folder.parents):
        if (candidate / STATE_DIR_NAME).is_dir():
            return candidate / STATE_DIR_NAME
    return folder / STATE_DIR_NAME


def ledger_missing_warning(state: Path) -> str | None:
    """The warning when ``state`` has no ledger although it shows one was used there (a run would refuse)."""
    from runner.ledger import DB_NAME, ledger_traces

    if ledger_url() is not None:
        return None  # the ledger is a database; the state directory holds only videos

    if (state / DB_NAME).exists():
        return None
    traces = ledger_traces(state)
    if not traces:
        return None
    return (f"warning: {state / DB_NAME} is missing, but {state} shows a ledger was used there"
            f" ({', '.join(traces)}); what follows knows nothing of it. Restore it from a backup, or"
            " check --state.")
