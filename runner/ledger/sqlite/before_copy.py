"""What `runner ledger copy` records in a SQLite source before it reads its rows: the journals beside the ledger.

A run that could not record an accepted task id (a full disk) keeps it in the rescue journal
(:mod:`runner.ledger.rescue`), and one killed before it saved the review decisions queued during it leaves them in
the review queue (:mod:`runner.ledger.review_queue`): the next writer of that state directory records both. A copy
takes the ledger's rows, never these files, and its source, marked moved, is never opened to write again: copied as
they were, the copy held each such job in doubt (its paid video never fetched, a retry offered that pays again) and
forgot each decision. So the copy, holding the source's lock, records them in the source first, as the next writer
would; nothing is sent. A journal that cannot be read whole refuses the copy (:mod:`runner.ledger.copy_journal`).
"""

from __future__ import annotations

import time
from pathlib import Path

from runner.ledger import rescue
from runner.ledger.api import copying_from, moved_to
from runner.ledger.connection import Connection
from runner.ledger.copy_journal import journal_for_copy, tell_recorded
from runner.ledger.review_queue import QUEUE_NAME, apply_queued
from runner.ledger.sqlite.ledger import SqliteLedger
from runner.ledger.sqlite.replay import replay_entries

__all__ = ["record_before_copy"]


def record_before_copy(file: Path, state_dir: Path) -> bool:
    """Record the rescue journal's task ids and apply the review queue of ``state_dir`` in its ledger ``file``, whose
    lock the caller holds; whether anything was there to record (the caller then reads the ledger again). Raises
    :class:`~runner.errors.LedgerError` when the journal cannot be read whole (nothing changed)."""
    entries = journal_for_copy(state_dir)
    if not entries and not (state_dir / QUEUE_NAME).exists():
        return False
    conn = Connection.open_writable(file, may_create=False)
    with SqliteLedger(conn, state_dir=state_dir, lock=None, clock=time.time) as ledger:
        if entries:
            tell_recorded(replay_entries(conn, state_dir, entries, time.time, None), state_dir / rescue.RESCUE_NAME,
                          str(file))
        if copying_from(ledger) is None and moved_to(ledger) is None:  # as a writer's open applies it
            apply_queued(ledger)
    return True
