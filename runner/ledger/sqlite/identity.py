"""The SQLite ledger file's identity: noticing ``ledger.db`` removed or replaced under a run, and
saving a copy of the open ledger when that happened (it may hold the only record of paid tasks)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from runner.errors import LedgerError, LedgerReplaced
from runner.ledger.api import Clock
from runner.ledger.connection import Connection

__all__ = ["RESCUE_PREFIX", "check", "file_id", "save_copy"]

RESCUE_PREFIX = "ledger.rescued-"  # a copy saved when the ledger was removed under a run
log = logging.getLogger("runner.ledger.store")


def file_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of ``path`` (links followed), or ``None`` when there is no such file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def check(path: Path, identity: tuple[int, int] | None, state_dir: Path) -> None:
    """Raise :class:`LedgerReplaced` if ``path`` is no longer the file ``identity`` names.

    Someone removed it, or put another file in its place: whatever this
    run records from now on goes into a file nobody will read. One
    ``stat`` call; the engine's submits call it first.
    """
    if identity is None or file_id(path) == identity:
        return
    gone = "removed" if not os.path.lexists(path) else "replaced by another file"
    raise LedgerReplaced(
        f"the ledger {path} was {gone} while this run was using it; stopping: nothing more "
        "is submitted. What this run recorded (task ids included) is saved when it stops to "
        f"{state_dir / (RESCUE_PREFIX + '<time>.db')}: move that file to {path} "
        "(setting aside whatever is there now) and run again to collect those tasks"
    )


def save_copy(conn: Connection, path: Path, state_dir: Path, clock: Clock) -> Path | None:
    """Save a copy of the open ledger as ``<state>/ledger.rescued-<time>.db``; its path, ``None`` if that failed."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock()))
    target = state_dir / f"{RESCUE_PREFIX}{stamp}-{os.getpid()}.db"
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        conn.backup_to(target)
    except (OSError, LedgerError) as exc:
        log.error("could not save a copy of the removed ledger %s to %s: %s", path, target, exc)
        return None
    log.warning("the ledger %s was removed or replaced; this run's copy is saved as %s", path, target)
    return target
