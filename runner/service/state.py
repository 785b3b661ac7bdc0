"""Where a manifest's ledger is: the state directory, found as every command finds it."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["STATE_DIR_NAME", "find_state_dir", "ledger_missing_warning", "resolve_state"]

STATE_DIR_NAME = "state"


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

    if (state / DB_NAME).exists():
        return None
    traces = ledger_traces(state)
    if not traces:
        return None
    return (f"warning: {state / DB_NAME} is missing, but {state} shows a ledger was used there"
            f" ({', '.join(traces)}); what follows knows nothing of it. Restore it from a backup, or"
            " check --state.")
