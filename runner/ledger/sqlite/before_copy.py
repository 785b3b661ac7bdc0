"""What `runner ledger copy` records in a SQLite source before it reads its rows: the journals beside the ledger.

A run that could not record an accepted task id (a full disk) keeps it in the rescue journal
(:mod:`runner.ledger.rescue`), and one killed before it saved the review decisions queued during it leaves them in
the review queue (:mod:`runner.ledger.review_queue`): the next writer of that state directory records both. A copy
takes the ledger's rows, never these files, and its source, marked moved, is never opened to write again: copied as
they were, the copy held each such job in doubt (its paid video never fetched, a retry offered that pays again) and
forgot each decision. So the copy, holding the source's lock, records them in the source first, as the next writer
would; nothing is sent. A rescue journal that is there but cannot be read whole (written by root, the copy run as a
user; an I/O error) refuses the copy: a run would read it later, a copy never again. Its torn lines are skipped as a
run skips them (a write cut short, written again).
"""

from __future__ import annotations

import errno
import logging
import time
from pathlib import Path

from runner.errors import LedgerDiskError, LedgerError
from runner.ledger import rescue
from runner.ledger.api import copying_from, moved_to
from runner.ledger.connection import Connection
from runner.ledger.review_queue import QUEUE_NAME, apply_queued
from runner.ledger.sqlite.ledger import SqliteLedger
from runner.ledger.sqlite.replay import replay_entries

__all__ = ["record_before_copy"]

log = logging.getLogger("runner.ledger")
_SHOWN = 5  # task ids named in a line that says some were not recorded


def record_before_copy(file: Path, state_dir: Path) -> bool:
    """Record the rescue journal's task ids and apply the review queue of ``state_dir`` in its ledger ``file``, whose
    lock the caller holds; whether anything was there to record (the caller then reads the ledger again). Raises
    :class:`LedgerError` (:class:`LedgerDiskError` for an I/O error) when the journal cannot be read whole."""
    journal = state_dir / rescue.RESCUE_NAME
    try:
        entries = rescue.read_pending(state_dir)
    except OSError as exc:
        kind = LedgerError if exc.errno in (errno.EACCES, errno.EPERM) else LedgerDiskError
        raise kind(f"cannot read the rescue journal {journal} ({exc.strerror or exc}): it may hold task ids of paid"
                   " tasks a stopped run could not record, which the copy would hold in doubt (and `retry"
                   " --in-doubt` pay for again). Make it readable by this user (or copy as the user the runs ran as)"
                   " and copy again. Nothing was copied or changed") from exc
    if not entries and not (state_dir / QUEUE_NAME).exists():
        return False
    conn = Connection.open_writable(file, may_create=False)
    with SqliteLedger(conn, state_dir=state_dir, lock=None, clock=time.time) as ledger:
        if entries:
            _told(replay_entries(conn, state_dir, entries, time.time, None), journal, file)
        if copying_from(ledger) is None and moved_to(ledger) is None:  # as a writer's open applies it
            apply_queued(ledger)
    return True


def _told(outcomes: list[tuple[rescue.RescueEntry, str]], journal: Path, file: Path) -> None:
    """Say what became of the journal's lines: recorded, on record already, kept on the job's record, no such job."""
    by: dict[str, list[rescue.RescueEntry]] = {}
    for entry, outcome in outcomes:
        by.setdefault(outcome, []).append(entry)
    if running := by.get("running"):
        log.warning("%d task id(s) recorded from %s in %s before copying it: paid tasks a stopped run could not"
                    " record; those jobs are running in the copy (nothing sent)", len(running), journal, file)
    if stale := by.get("stale"):
        log.warning("%d line(s) of %s name task ids %s records already: nothing to record", len(stale), journal, file)
    if kept := by.get("kept"):
        log.warning("%d task id(s) of %s kept on their job's record only, not as its task: the job had moved on to"
                    " another submit (paid too; its video can be fetched from the provider's console): %s",
                    len(kept), journal, _named(kept))
    if unknown := by.get("unknown"):
        log.warning("%d task id(s) of %s not recorded: %s holds no such job, so the copy does not hold them either"
                    " (paid tasks; their videos can be fetched from the provider's console): %s", len(unknown),
                    journal, file, _named(unknown))


def _named(entries: list[rescue.RescueEntry]) -> str:
    shown = ", ".join(f"{entry.key} task {entry.task_id}" for entry in entries[:_SHOWN])
    return shown + (f" and {len(entries) - _SHOWN} more (see {rescue.RESCUE_NAME})" if len(entries) > _SHOWN else "")
