"""What `runner ledger copy` records in a SQLite source before it reads its rows: the journals beside the ledger.

A run that could not record an accepted task id (a full disk) keeps it in the rescue journal
(:mod:`runner.ledger.rescue`), and one killed before it saved the review decisions queued during it leaves them in
the review queue (:mod:`runner.ledger.review_queue`): the next writer of that state directory records both. A copy
takes the ledger's rows, never these files, and its source, marked moved, is never opened to write again: copied as
they were, the copy held each such job in doubt (its paid video never fetched, a retry offered that pays again) and
forgot each decision. So the copy, holding the source's lock, records them in the source first, as the next writer
would; nothing is sent. A journal that cannot be read whole refuses the copy (:mod:`runner.ledger.copy_journal`), and
so does a review queue that cannot be read or applied (its lock held past the wait: a ``runner reject`` stopped with
Ctrl-Z mid-append), where a writer's open logs it and leaves it for the next writer: here there is none.
"""

from __future__ import annotations

import errno
import time
from pathlib import Path

from runner.errors import LedgerDiskError, LedgerError, LedgerLocked
from runner.ledger import rescue, review_queue
from runner.ledger.api import copying_from, moved_to
from runner.ledger.connection import Connection
from runner.ledger.copy_journal import journal_for_copy, tell_recorded
from runner.ledger.review_queue import QUEUE_LOCK, QUEUE_NAME, apply_queued
from runner.ledger.sqlite.ledger import SqliteLedger
from runner.ledger.sqlite.replay import replay_entries

__all__ = ["record_before_copy"]


def record_before_copy(file: Path, state_dir: Path) -> bool:
    """Record the rescue journal's task ids and apply the review queue of ``state_dir`` in its ledger ``file``, whose
    lock the caller holds; whether anything was there to record (the caller then reads the ledger again). Raises
    :class:`~runner.errors.LedgerError` when the journal cannot be read whole (nothing changed), or the review queue
    cannot be read or applied (:func:`_apply_queue`: nothing copied, no decision lost)."""
    entries = journal_for_copy(state_dir)
    if not entries and not (state_dir / QUEUE_NAME).exists():
        return False
    conn = Connection.open_writable(file, may_create=False)
    with SqliteLedger(conn, state_dir=state_dir, lock=None, clock=time.time) as ledger:
        if entries:
            tell_recorded(replay_entries(conn, state_dir, entries, time.time, None), state_dir / rescue.RESCUE_NAME,
                          str(file))
        if copying_from(ledger) is None and moved_to(ledger) is None:  # as a writer's open applies it
            _apply_queue(ledger, state_dir)
    return True


def _apply_queue(ledger: SqliteLedger, state_dir: Path) -> None:
    """Apply the review queue, or refuse the copy: :class:`LedgerLocked` (exit 75) while another process holds its
    lock, :class:`LedgerError` (exit 2; :class:`LedgerDiskError`, exit 6, for an I/O error) when it cannot be read."""
    queue, lock = state_dir / QUEUE_NAME, state_dir / QUEUE_LOCK
    lost = ("the review decisions queued there (accepts, rejects made while a run held the ledger) would be lost with"
            " the copy (its source, marked moved, never applies them)")
    try:
        apply_queued(ledger, strict=True)
    except BlockingIOError as exc:
        raise LedgerLocked(f"not copied: another process has held {lock} for {review_queue.QUEUE_LOCK_WAIT_S:g} s"
                           " (a `runner accept` / `reject` / `review` stopped with Ctrl-Z?) while it queues a review"
                           f" decision in {queue}; {lost}. Let it finish (`fg`, or end it) and copy again. Nothing was"
                           " copied", folder=state_dir) from exc
    except OSError as exc:
        kind = LedgerError if exc.errno in (errno.EACCES, errno.EPERM) else LedgerDiskError
        raise kind(f"cannot read the review queue {exc.filename or queue} ({exc.strerror or exc}): {lost}. Make it"
                   " readable by this user (or copy as the user the runs ran as) and copy again. Nothing was"
                   " copied") from exc
