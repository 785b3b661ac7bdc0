"""One guarded move of a job in the PostgreSQL ledger, and the attempt rows that go with it.

:func:`move` is ``UPDATE jobs … WHERE key = … AND state IN (sources) [AND guard]``: it returns
whether the row moved; an unknown key raises (a bug whatever the race). Two runners moving one row
at once are serialised by its row lock, and the second re-checks the ``WHERE`` against the row the
first committed (PostgreSQL's READ COMMITTED update rule): exactly one of them moves it.
:func:`live` is the SQL predicate "this owner is live" (parameters ``me``, ``caller``, ``now``);
:func:`bulk` serialises the statements that move many jobs; :func:`task_holder` reads which job holds a
task id, serialised on that id.
"""

from __future__ import annotations

from typing import Any

from runner.errors import JobMovedOn, LedgerError
from runner.jobs import JobState
from runner.ledger.postgres.connection import Tx
from runner.ledger.postgres.schema import ADVISORY_LOCK

__all__ = ["BULK_LOCK", "CLEARED", "HOLDER_OF_TASK", "LIVE", "SLOTS_LOCK", "TASK_LOCK", "bulk", "close_attempt", "event", "live", "money",
           "move", "task_holder"]

BULK_LOCK = ADVISORY_LOCK + 1
SLOTS_LOCK = ADVISORY_LOCK + 2  # serialises submits under a shared concurrency limit (transitions.mark_submitting)
# (class, hashtext(task id)): serialises the transactions that record one task id (ADVISORY_LOCK + 3: limits.BUDGET_LOCK)
TASK_LOCK = ADVISORY_LOCK + 4
# The job holding a task id (``%(t)s``): its current task, else an earlier one on record; one round trip, both
# through the partial ``*_task`` indexes. Read under the id's lock (task_holder), or plainly (reads.key_of_task).
HOLDER_OF_TASK = ("(SELECT key FROM jobs WHERE task_id = %(t)s LIMIT 1) UNION ALL"
                  " (SELECT key FROM attempts WHERE task_id = %(t)s LIMIT 1) LIMIT 1")

# What goes back to its planned value when a job returns to pending.
CLEARED = (
    "task_id = NULL, error = NULL, reason = NULL, video_url = NULL, url_expires_at = NULL,"
    " debug_json = NULL, finished_at = NULL, owner = NULL"
)


def money(expr: str) -> str:
    """SQL: ``expr`` rounded to 9 decimals, as SQLite's ``round(x, 9)`` (PostgreSQL rounds numerics only)."""
    return f"round(({expr})::numeric, 9)::float8"


def live(column: str) -> str:
    """SQL: the owner named by ``column`` is live — this ledger's own owner (``me``), the caller
    (``caller``), or one whose lease runs past ``now``. Unlike SQLite there is no lock proving earlier
    processes dead: an owner on another host is live exactly while its lease is."""
    return (
        f"({column} = %(me)s OR {column} = %(caller)s OR EXISTS (SELECT 1 FROM leases l"
        f" WHERE l.owner = {column} AND l.expires_at > %(now)s))"
    )


LIVE = live("jobs.owner")


def bulk(tx: Tx) -> None:
    """Take :data:`BULK_LOCK` for the rest of the transaction: the statements that move many jobs at once
    (register, recover, reset, release) wait for each other, so two of them never lock shared rows in
    opposite orders (a deadlock PostgreSQL would break by failing one). A one-job move locks one row and
    never waits on this lock; a claim skips locked rows instead of waiting."""
    tx.execute("SELECT pg_advisory_xact_lock(%s)", (BULK_LOCK,))


def task_holder(tx: Tx, task_id: str) -> str | None:
    """The job that holds ``task_id`` (its current task, or an earlier one on record in ``attempts``), or None.

    Takes :data:`TASK_LOCK` of the id first, held until the commit: under READ COMMITTED a plain read would not see
    a transaction on another host recording the same id at this moment (both would read "no holder" and both
    record it). Every transaction that records a task id reads its holder here, so the second one waits for the
    first to end and its read (a new statement, a new snapshot) sees the first one's row. Two ids whose hashes
    collide only wait for each other."""
    tx.execute("SELECT pg_advisory_xact_lock(%s::int4, hashtext(%s))", (TASK_LOCK, task_id))
    value = tx.scalar(HOLDER_OF_TASK, {"t": task_id})
    return None if value is None else str(value)


def move(
    tx: Tx,
    key: str,
    now: float,
    sources: tuple[JobState, ...],
    target: JobState,
    sets: str = "",
    where: str = "",
    **params: Any,
) -> bool:
    """``UPDATE … WHERE key = … AND state IN sources [AND where]``; whether it moved."""
    allowed = ", ".join(f"'{state}'" for state in sources)
    cursor = tx.execute(
        f"UPDATE jobs SET state = %(target)s, updated_at = %(now)s{', ' + sets if sets else ''}"
        f" WHERE key = %(key)s AND state IN ({allowed}){' AND ' + where if where else ''}",
        {"key": key, "now": now, "target": str(target), **params},
    )
    if cursor.rowcount == 1:
        return True
    if tx.execute("SELECT 1 FROM jobs WHERE key = %s", (key,)).fetchone() is None:
        raise LedgerError(f"unknown job {key}; this is a bug in runner")
    return False


def close_attempt(
    tx: Tx,
    key: str,
    attempt_id: int,
    now: float,
    outcome: str,
    *,
    task_id: str | None = None,
    http_status: int | None = None,
    detail: str | None = None,
) -> None:
    """Close the open submit attempt ``attempt_id`` of ``key``; none open is a bug (the move rolls back)."""
    cursor = tx.execute(
        "UPDATE attempts SET ended_at = %s, outcome = %s, task_id = %s, http_status = %s, detail = %s"
        " WHERE id = %s AND key = %s AND kind = 'submit' AND ended_at IS NULL",
        (now, outcome, task_id, http_status, detail, attempt_id, key),
    )
    if cursor.rowcount != 1:
        raise JobMovedOn(
            f"attempt {attempt_id} of job {key} is no longer an open submit: the job moved on (on a shared ledger another"
            " runner held it in doubt and it was sent again; on a ledger of one runner, a bug in runner)")


def event(
    tx: Tx,
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
    tx.execute(
        "INSERT INTO attempts (key, kind, started_at, ended_at, outcome, task_id, http_status, detail, run_id)"
        " VALUES (%(key)s, %(kind)s, %(now)s, %(now)s, %(outcome)s,"
        " coalesce(%(task)s, (SELECT task_id FROM jobs WHERE key = %(key)s)), %(status)s, %(detail)s, %(run)s)",
        {"key": key, "kind": kind, "now": now, "outcome": outcome, "task": task_id, "status": http_status,
         "detail": detail, "run": run_id},
    )
