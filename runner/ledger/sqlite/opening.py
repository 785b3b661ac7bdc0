"""Opening a SQLite ledger: ``<state>/ledger.db``, its single-writer lock, and the guard against a
ledger silently created again where one was used (which would pay for every job again)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from runner.errors import LedgerDiskError, LedgerError, LedgerMissing
from runner.layout import OUTPUTS_DIR
from runner.ledger import rescue
from runner.ledger.api import Clock, copying_from, moved_to
from runner.ledger.connection import Connection
from runner.ledger.lock import LedgerLock, is_creation_lock
from runner.ledger.review_queue import QUEUE_NAME, apply_queued
from runner.ledger.sqlite import copied, mark
from runner.ledger.sqlite.ledger import (
    DB_NAME,
    LOCK_NAME,
    PROVIDER_MARK,
    RESCUE_PREFIX,
    SqliteLedger,
)
from runner.storage import OutputStore
from runner.storage.local import LocalStore
from runner.storage.ownership import chown_fix, not_writable

log = logging.getLogger("runner.ledger")

__all__ = ["COPYING_NAME", "ledger_traces", "lock_path", "open_ledger", "stale_path"]

_WARNED: set[str] = set()  # the older ledgers a read-only open of this process warned of
COPYING_NAME = "ledger.db.copying"  # where `runner ledger copy` builds a SQLite destination, before its rename


def open_ledger(
    state_dir: Path | str,
    *,
    readonly: bool = False,
    clock: Clock = time.time,
    new_ledger: bool = False,
    create: bool = True,
    store: OutputStore | None = None,
    quiet: bool = False,
) -> SqliteLedger:
    """Open ``<state_dir>/ledger.db``.

    Writable (the default): create the directory and the ledger as needed,
    take the single-writer lock (:class:`~runner.errors.LedgerLocked` when
    another live runner holds it) and migrate the schema. Read-only (plan,
    status, export): no lock, nothing created or migrated; a ledger that does
    not exist reads as empty.

    A ledger is never silently created again: when ``ledger.db`` is missing
    or empty but the state directory shows that one was used there (see
    :func:`ledger_traces`), :class:`~runner.errors.LedgerMissing` is raised
    unless ``new_ledger`` says the operator wants a new one. ``create=False``
    refuses to create one at all. The lock is taken on the real file: a
    ``ledger.db`` that is a symbolic link is locked beside its target.
    ``store`` is where the run's videos are stored (by default the local
    store of the state directory): videos there are a trace too. ``quiet``
    (read-only): another ledger read on a run's behalf (the book of this
    host's ledgers), whose warnings are its own runs' to give, not this one's.
    """
    state = Path(state_dir)
    file = state / DB_NAME
    if readonly:
        reader = Connection.open_readonly(file)
        if not quiet and file.exists() and (lost := mark.behind(reader, state)) is not None and lost not in _WARNED:
            _WARNED.add(lost)  # shown once a process (`status --watch` opens it at each refresh), never refused
            log.warning("%s", lost.replace(" Nothing was sent or changed.", " What follows reads that older ledger."))
        return SqliteLedger(reader, state_dir=state, lock=None, clock=clock)
    if not create and not file.exists():
        raise LedgerMissing(f"there is no ledger at {file}; check --state (nothing was changed)")
    traces = ledger_traces(state, store=store)  # before the lock: its file is one of them
    try:
        state.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LedgerError(
            f"cannot create the state directory {state} ({exc.strerror}); "
            "choose a writable directory with --state"
        ) from exc
    creating = not file.exists() and (new_ledger or not traces)
    lock = LedgerLock.acquire(lock_path(state), started_at=clock(), creating=creating)
    try:
        _refuse_journals_of_another_user(state)
        missing = not file.exists()  # now that no other writer can create it
        if new_ledger and (missing or _is_empty(file)):
            _set_aside_rescue_journal(state, clock())
            if (aside := _set_aside(state / QUEUE_NAME, clock(), "review queue")) is not None:  # the old clips'
                log.warning("review decisions queued for the former ledger are kept as %s, not applied", aside)
            _set_aside(mark.mark_path(file), clock(), "commit mark")
        if missing and traces and not new_ledger:
            raise LedgerMissing(_refusal(state, "is missing", traces))
        if missing:
            if new_ledger:
                _set_aside_stale_journals(file, clock())
            Connection.create(file)
        if creating:
            lock.created()
        try:
            conn = Connection.open_writable(file, may_create=create and (new_ledger or not traces))
        except LedgerMissing as exc:
            if not create:
                raise LedgerMissing(f"there is no ledger at {file}; check --state (nothing was changed)") from exc
            raise LedgerMissing(_refusal(state, "is empty", traces)) from exc
        try:
            copied.check(conn, state)  # a copy of a ledger a run is using, or that went on since: refused
            mark.attach(conn, state)  # a ledger older than its mark is refused here, nothing written
        except BaseException:
            conn.close()
            raise
    except BaseException:
        lock.release()
        raise
    if missing:
        conn.created = True
    ledger = SqliteLedger(conn, state_dir=state, lock=lock, clock=clock)
    if not missing and copying_from(ledger) is None and moved_to(ledger) is None:
        apply_queued(ledger)  # review decisions made while a run held the lock (none on a copy: not its jobs)
    return ledger


def _refuse_journals_of_another_user(state: Path) -> None:
    """A rescue journal or review queue this user may not read and write (a `sudo runner run` made it, 600): its task
    ids would not be recorded, nor a new one kept there when the ledger cannot take it, and the decisions queued
    would not be applied. Refused before anything is read or sent (exit 6)."""
    for name, holds in ((rescue.RESCUE_NAME, "task ids of paid videos the ledger could not record"),
                        (QUEUE_NAME, "review decisions made while a run held the ledger")):
        if (whose := not_writable([state / name])) is not None:
            raise LedgerDiskError(f"{whose.what}: it holds {holds}, and this run could neither apply them nor add to"
                                  f" them. Nothing was sent and nothing recorded was lost; {chown_fix(state, whose)}")


def lock_path(state_dir: Path) -> Path:
    """The lock file of ``<state_dir>/ledger.db``: beside the real file, symbolic links resolved.

    Two state directories whose ``ledger.db`` is one file (one links to the
    other) thus take the same lock.
    """
    return Path(os.path.realpath(state_dir / DB_NAME)).with_name(LOCK_NAME)


def ledger_traces(state_dir: Path, *, store: OutputStore | None = None) -> list[str]:
    """What in ``state_dir`` shows that a ledger was used there (``ledger.db`` itself aside).

    The provider mark, files under ``outputs/`` of the output ``store`` (by
    default the local store of ``state_dir``), the lock file (unless left
    by a process killed while it created the first ledger), SQLite's
    journals, a rescued copy, a ``ledger.db`` link to a missing file, what an unfinished copy builds.
    """
    traces: list[str] = []
    db = state_dir / DB_NAME
    if db.is_symlink() and not db.exists():
        traces.append(f"{DB_NAME} is a symbolic link to the missing {os.readlink(db)}")
    for name in (PROVIDER_MARK, mark.MARK_NAME, LOCK_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal"):
        if os.path.lexists(state_dir / name) and not (name == LOCK_NAME and is_creation_lock(state_dir / name)):
            traces.append(name)
    try:
        rescued = sorted(p.name for p in state_dir.glob(f"{RESCUE_PREFIX}*"))
    except OSError:
        rescued = []
    traces.extend(rescued[:1])
    try:
        copying = sorted(p.name for p in state_dir.glob(f"{COPYING_NAME}*"))
    except OSError:
        copying = []
    traces.extend(f"{name} (a `runner ledger copy` into here that did not finish: copy again)" for name in copying[:1])
    if (store if store is not None else LocalStore(state_dir)).holds_files(OUTPUTS_DIR):
        traces.append(f"files under {OUTPUTS_DIR}/")
    return traces


def _refusal(state: Path, what: str, traces: list[str]) -> str:
    file = state / DB_NAME
    return (
        f"{file} {what}, but {state} shows a ledger was used there ({', '.join(traces)}). "
        "A new ledger would not know the tasks already paid for and could pay for every job again. "
        f"Restore {DB_NAME} from a backup (or a {RESCUE_PREFIX}*.db copy), check --state, or pass "
        "--new-ledger to start a new ledger here on purpose. Nothing was changed."
    )


def _set_aside_stale_journals(file: Path, now: float) -> None:
    """Rename the WAL / journal of a ledger that is gone: SQLite would replay it into the new one."""
    for suffix in ("-wal", "-shm", "-journal"):
        stale = file.with_name(file.name + suffix)
        if os.path.lexists(stale):
            try:
                stale.rename(stale_path(stale, now))
            except OSError as exc:
                raise LedgerError(
                    f"cannot set the stale {stale} aside ({exc.strerror}); move it away and run again"
                ) from exc


def stale_path(file: Path, now: float) -> Path:
    """Where ``file`` is set aside: ``<name>.stale-<time>`` (UTC, to the second), ``-2``, ``-3``… after it when that
    name is taken — a second used before (a wall clock set back since, or two set-asides in one second): a rename
    onto it would replace a file kept for the operator (a rescue journal's paid task ids). Under the ledger's lock."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    aside, n = file.with_name(f"{file.name}.stale-{stamp}"), 1
    while os.path.lexists(aside):
        n += 1
        aside = file.with_name(f"{file.name}.stale-{stamp}-{n}")
    return aside


def _is_empty(file: Path) -> bool:
    try:
        return file.stat().st_size == 0
    except OSError:
        return False


def _set_aside_rescue_journal(state: Path, now: float) -> None:
    """A new ledger starts without the old one's rescue journal: its lines name the old ledger's
    attempts, and replayed into the new ledger they could attach an old task to a new submit. The
    file is renamed, not removed: its task ids were paid for and the operator may still want them."""
    if (aside := _set_aside(state / rescue.RESCUE_NAME, now, "rescue journal")) is not None:
        log.warning("the rescue journal of the former ledger is kept as %s (its task ids are not in the new"
                    " ledger)", aside)


def _set_aside(file: Path, now: float, what: str) -> Path | None:
    """Rename ``file`` (the former ledger's) to ``<name>.stale-<time>``; where it went, None if there was none."""
    if not os.path.lexists(file):
        return None
    aside = stale_path(file, now)
    try:
        file.rename(aside)
    except OSError as exc:
        raise LedgerError(
            f"cannot set the old {what} {file} aside ({exc.strerror}); move it away and run again"
        ) from exc
    return aside
