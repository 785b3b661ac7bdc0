"""One guarded move of a job in the SQLite ledger, and the attempt rows that go with it.

:func:`move` is ``UPDATE jobs … WHERE key = ? AND state IN (sources) [AND guard]``: it returns
whether the row moved; an unknown key raises (a bug whatever the race). :func:`close_attempt`
closes an open submit attempt and raises if there is none (a bug). :data:`LIVE` is the SQL
predicate "owner ``o`` is live" (parameters ``:me``, ``:now``, ``:opened``). :func:`task_holder` is the
job that holds a task id already, read inside the caller's transaction.
"""

from __future__ import annotations

import functools
from typing import Any

from runner.errors import JobMovedOn, LedgerError
from runner.jobs import JobState
from runner.ledger.sqldb import Database

__all__ = ["CLEARED", "HOLDER_OF_TASK", "KEEP_STAMP", "LIVE", "close_attempt", "event", "live", "move", "task_holder"]

# What goes back to its planned value when a job returns to pending.
CLEARED = (
    "task_id = NULL, error = NULL, reason = NULL, video_url = NULL, url_expires_at = NULL,"
    " debug_json = NULL, finished_at = NULL, owner = NULL"
)

#: SQL: an open submit attempt's new ``detail`` (``:detail``), its write-ahead's boot stamp kept after it
#: (:func:`runner.boot.stamped`): an in-doubt job's hold is timed from it by the steady clock of that boot.
KEEP_STAMP = "CASE WHEN detail LIKE '[boot %' THEN trim(coalesce(:detail, '') || ' ' || detail) ELSE :detail END"


def live(column: str) -> str:
    """SQL: the owner named by ``column`` is live — this process (``:me``), the caller (``:caller``),
    or one whose lease runs past ``:now`` and was renewed since the ledger was opened (``:opened``)."""
    return (
        f"({column} = :me OR {column} = :caller OR EXISTS (SELECT 1 FROM leases l WHERE l.owner = {column}"
        " AND l.expires_at > :now AND l.renewed_at >= :opened))"
    )


LIVE = live("jobs.owner")  # qualified: inside the subquery, a bare "owner" is the lease's


def move(
    db: Database,
    key: str,
    now: float,
    sources: tuple[JobState, ...],
    target: JobState,
    sets: str = "",
    where: str = "",
    **params: Any,
) -> bool:
    """``UPDATE … WHERE key = ? AND state IN sources [AND where]``; whether it moved."""
    params.update(key=key, now=now, target=target.value)
    cursor = db.execute(_update(sources, sets, where), params)
    if cursor.rowcount == 1:
        return True
    if db.execute("SELECT 1 FROM jobs WHERE key = ?", (key,)).fetchone() is None:
        raise LedgerError(f"unknown job {key}; this is a bug in runner")
    return False


@functools.cache
def _update(sources: tuple[JobState, ...], sets: str, where: str) -> str:
    """The text of a move's UPDATE, built once per call site (the statements are few and fixed)."""
    allowed = ", ".join(f"'{state}'" for state in sources)
    return (f"UPDATE jobs SET state = :target, updated_at = :now{', ' + sets if sets else ''}"
            f" WHERE key = :key AND state IN ({allowed}){' AND ' + where if where else ''}")


# The job holding a task id (``:t``): its current task, else an earlier one on record; one statement, both through
# the partial ``*_task`` indexes. Read inside a write transaction (task_holder), or plainly (reads.key_of_task).
HOLDER_OF_TASK = "SELECT key FROM jobs WHERE task_id = :t UNION ALL SELECT key FROM attempts WHERE task_id = :t LIMIT 1"


def task_holder(db: Database, task_id: str) -> str | None:
    """The job that holds ``task_id`` (its current task, or an earlier one on record in ``attempts``), or None;
    read inside the caller's write transaction."""
    row = db.execute(HOLDER_OF_TASK, {"t": task_id}).fetchone()
    return None if row is None else str(row[0])


def close_attempt(
    db: Database,
    key: str,
    attempt_id: int,
    now: float,
    outcome: str,
    *,
    task_id: str | None = None,
    http_status: int | None = None,
    detail: str | None = None,
) -> None:
    """Close the open submit attempt ``attempt_id`` of ``key``; none open is a bug. Closed ``ambiguous`` (in doubt), it
    keeps its write-ahead's boot stamp after ``detail`` (:data:`KEEP_STAMP`)."""
    cursor = db.execute(
        "UPDATE attempts SET ended_at = :now, outcome = :outcome, task_id = :task_id, http_status = :status,"
        f" detail = {KEEP_STAMP if outcome == 'ambiguous' else ':detail'}"
        " WHERE id = :id AND key = :key AND kind = 'submit' AND ended_at IS NULL",
        {"now": now, "outcome": outcome, "task_id": task_id, "status": http_status, "detail": detail,
         "id": attempt_id, "key": key},
    )
    if cursor.rowcount != 1:
        raise JobMovedOn(
            f"attempt {attempt_id} of job {key} is no longer an open submit: the job moved on (on a shared ledger another"
            " runner held it in doubt and it was sent again; on a ledger of one runner, a bug in runner)")


def open_attempt(db: Database, key: str, attempt_id: int) -> bool:
    """Whether ``attempt_id`` is an open submit of ``key`` (checked before a move that closes it)."""
    return db.execute(
        "SELECT 1 FROM attempts WHERE id = ? AND key = ? AND kind = 'submit' AND ended_at IS NULL",
        (attempt_id, key),
    ).fetchone() is not None


def event(
    db: Database,
    run_id: int | None,
    key: str,
    kind: str,
    outcome: str,
    now: float,
    *,
    http_status: int | None = None,
    detail: str | None = None,
    task_id: str | None = None,
) -> None:
    """One poll / download row; its task id defaults to the job's current one."""
    db.execute(
        "INSERT INTO attempts (key, kind, started_at, ended_at, outcome, task_id,"
        " http_status, detail, run_id) VALUES (?, ?, ?, ?, ?,"
        " coalesce(?, (SELECT task_id FROM jobs WHERE key = ?)), ?, ?, ?)",
        (key, kind, now, now, outcome, task_id, key, http_status, detail, run_id),
    )
