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

__all__ = ["RESCUE_PREFIX", "check", "file_id", "moved_to", "save_copy"]

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
    if (folder := moved_to(path, identity)) is not None:
        raise LedgerReplaced(
            f"the state directory {state_dir} was moved to {folder} while this run was using it; stopping: nothing"
            f" more is submitted. The ledger there is this run's own, with all it recorded: run again with --state"
            f" {folder} (or move it back to {state_dir})")
    gone = "removed" if not os.path.lexists(path) else "replaced by another file"
    raise LedgerReplaced(
        f"the ledger {path} was {gone} while this run was using it; stopping: nothing more "
        "is submitted. What this run recorded (task ids included) is saved when it stops to "
        f"{state_dir / (RESCUE_PREFIX + '<time>.db')}: move that file to {path} "
        "(setting aside whatever is there now) and run again to collect those tasks"
    )


def moved_to(path: Path, identity: tuple[int, int] | None) -> Path | None:
    """The folder the open ledger ``path`` is in now, when its state directory was moved (renamed) under the run,
    the ledger, its WAL and the videos with it: read back from the open files' names in ``/proc`` (Linux; None
    elsewhere, and when the file was removed, replaced, or moved away from its WAL)."""
    if identity is None:
        return None
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return None
    ledger: Path | None = None
    wal: Path | None = None
    for fd in fds:
        try:
            now = Path(os.readlink(f"/proc/self/fd/{fd}"))
            if now.name == path.name + "-wal":
                wal = now
            elif now.name == path.name and file_id(Path(f"/proc/self/fd/{fd}")) == identity:
                ledger = now
        except OSError:
            continue
    if ledger is None or file_id(ledger) != identity or (wal is not None and wal.parent != ledger.parent):
        return None
    return None if os.path.realpath(ledger.parent) == os.path.realpath(path.parent) else ledger.parent


def save_copy(conn: Connection, path: Path, state_dir: Path, clock: Clock, identity: tuple[int, int] | None = None,
              ) -> Path | None:
    """Save a copy of the open ledger as ``<state>/ledger.rescued-<time>.db``; its path, ``None`` if that failed.
    A state directory moved under the run needs no copy (nor its folder made again): the ledger's new path."""
    if (folder := moved_to(path, identity)) is not None:
        log.warning("the state directory %s was moved to %s; the ledger there holds all this run recorded: run again"
                    " with --state %s (or move it back)", state_dir, folder, folder)
        return folder / path.name
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
