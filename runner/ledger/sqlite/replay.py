"""The rescue journal and the SQLite ledger: journalling a task id the ledger could not record, and
replaying the journal's lines into the ledger (see :mod:`runner.ledger.rescue` for the journal)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from runner.jobs import JobState
from runner.ledger import rescue
from runner.ledger.api import Clock
from runner.ledger.connection import Connection
from runner.ledger.sqlite.moves import event, task_holder

if TYPE_CHECKING:
    from runner.ledger.sqldb import Database

__all__ = ["apply_rescue", "replay_entries", "rescue_task_id"]


def apply_rescue(conn: Connection, state_dir: Path, clock: Clock, run_id: int | None) -> int:
    """Record the task ids of the rescue journal (see :mod:`runner.ledger.rescue`); returns how many.

    A line names the submit attempt the provider answered. When that attempt
    is still the job's last submit, the job takes the task: from
    ``submitting`` (the usual case: the run died before it could record it),
    or from ``in_doubt`` / ``pending`` (the journal could not be read when
    the job was put in doubt, and perhaps the operator reset it since) —
    the task exists and was paid for, so recording it is cheaper than
    paying again. A line for an older attempt is never attached to a newer
    submit (that submit's own task would be forgotten instead of held in
    doubt); if the ledger does not know its task id yet (the job was
    resubmitted meanwhile: both tasks were paid), the id is kept on the
    job's record (a submit row, outcome ``rescued``: paid, not the job's task). Every
    line is then marked consumed.
    """
    outcomes = replay_entries(conn, state_dir, rescue.to_record(state_dir), clock, run_id)
    return sum(outcome == "running" for _, outcome in outcomes)


def replay_entries(conn: Connection, state_dir: Path, entries: list[rescue.RescueEntry], clock: Clock,
                   run_id: int | None) -> list[tuple[rescue.RescueEntry, str]]:
    """Apply ``entries`` (the journal's, read by the caller) as :func:`apply_rescue` does; each with what became of
    it (``running``, ``stale``: on record already, ``kept``: on its job's record only, ``unknown``: no such job)."""
    outcomes = []
    for entry in entries:
        now = clock()
        with conn.write(durable=True) as db:
            outcome = _replay(db, entry, now, run_id)
        rescue.crash_point("rescue-applied")
        outcomes.append((entry, outcome))
        with contextlib.suppress(OSError):  # applying again is harmless: the line's task id is on record now
            rescue.mark_consumed(state_dir, entry, at=now, outcome=outcome)
    return outcomes


def _replay(db: Database, entry: rescue.RescueEntry, now: float, run_id: int | None) -> str:
    """Apply one journal line; returns what became of it (``running``, ``stale``, ``kept``, ``unknown``)."""
    row = db.execute("SELECT state FROM jobs WHERE key = ?", (entry.key,)).fetchone()
    if row is None:
        return "unknown"
    if task_holder(db, entry.task_id) is not None:
        return "stale"  # recorded another way (or by an earlier replay), or another job holds it: never attached here
    last = db.execute(
        "SELECT max(id) FROM attempts WHERE key = ? AND kind = 'submit' AND outcome IS NOT 'rescued'", (entry.key,)
    ).fetchone()[0]
    detail = f"recorded from {rescue.RESCUE_NAME} (the ledger write failed when the answer arrived)"
    if last == entry.attempt and row[0] in (JobState.SUBMITTING, JobState.IN_DOUBT, JobState.PENDING):
        db.execute(
            "UPDATE jobs SET state = 'running', task_id = ?, error = NULL, reason = NULL, updated_at = ?"
            " WHERE key = ?",
            (entry.task_id, now, entry.key),
        )
        db.execute(
            "UPDATE attempts SET ended_at = ?, outcome = 'accepted', task_id = ?, detail = ? WHERE id = ?",
            (now, entry.task_id, detail, entry.attempt),
        )
        return "running"
    event(db, run_id, entry.key, "submit", "rescued", now, task_id=entry.task_id,
          detail=(f"{detail}; not attached: the job had moved on to another submit. This task was"
                  " paid for too; its video can be fetched from the provider's console"))
    return "kept"


def rescue_task_id(state_dir: Path, now: float, key: str, attempt_id: int, task_id: str) -> bool:
    """Journal an accepted task id the ledger could not record (see :mod:`runner.ledger.rescue`).

    Never raises; False when the journal could not be written either.
    """
    entry = rescue.RescueEntry(key=key, task_id=task_id, attempt=attempt_id, at=now)
    written = rescue.append_entry(state_dir, entry)
    rescue.crash_point("rescue-journalled")
    return written
