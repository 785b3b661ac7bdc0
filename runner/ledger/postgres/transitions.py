"""The state transitions of the PostgreSQL ledger, each one transaction (``PostgresLedger``'s methods).

The table of transitions is the SQLite ledger's (``runner/ledger/sqlite/ledger.py``); each function
here is one ``with conn.write()`` block around :func:`~runner.ledger.postgres.moves.move`, plus the
attempt row that goes with it. Every commit is durable (see :mod:`runner.ledger.postgres.connection`),
the money path's — ``mark_submitting`` before the POST, then ``mark_running`` / ``mark_refused`` /
``mark_in_doubt`` — included. ``mark_submitting`` refuses a job that another *live* owner holds, and every
write-ahead a schema a newer runner migrated under this run (:func:`~.version.still_current`). Each is
:func:`~runner.ledger.postgres.connection.once_more`: a function of its arguments alone, written once more
when the connection was lost before its COMMIT took (the server rolled it back).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from runner.errors import LedgerError, TaskIdTaken
from runner.jobs import JobState
from runner.ledger.api import UNSENT_REASON, Budget
from runner.ledger.postgres import limits, reads
from runner.ledger.postgres.connection import PgConnection, Tx, once_more
from runner.ledger.postgres.holds import DoubtHolds
from runner.ledger.postgres.moves import CLEARED, LIVE, SLOTS_LOCK, bulk, close_attempt, event, money, move, task_holder
from runner.ledger.postgres.version import still_current

__all__ = [
    "adopt_file", "adopt_task", "mark_done", "mark_failed", "mark_in_doubt", "mark_lost", "mark_refused", "mark_running",
    "mark_submitting", "mark_submitting_many", "mark_succeeded", "note_file_problem", "record_event", "reopen_lost", "reset",
    "retry_failed",
]

_EVENT_KINDS = frozenset({"poll", "download"})


@once_more
def mark_submitting(conn: PgConnection, key: str, live_params: dict[str, Any], run_id: int | None,
                    max_outstanding: int | None = None, budget: Budget | None = None,
                    in_doubt_hold_s: float = 0.0, holds: DoubtHolds | None = None) -> int | None:
    """pending → submitting (owner: ``caller``) unless a live other owner holds the job; the attempt id.

    ``max_outstanding``: every runner's submits take :data:`SLOTS_LOCK` first, so the count of outstanding
    tasks and the move are one step across runners — together they never pass the limit. ``budget``: the
    manifest's budget lock next (always in this order), then the spend check (:func:`limits.within_budget`)."""
    params = dict(live_params)
    now = params.pop("now")
    with conn.write() as tx:
        still_current(tx, conn.location)  # a host upgraded under this run: nothing more sent
        if max_outstanding is not None:
            tx.execute("SELECT pg_advisory_xact_lock(%s)", (SLOTS_LOCK,))
            # an in-doubt job's task may still run: it holds its slot a while
            if reads.outstanding(tx, now, in_doubt_hold_s, holds or DoubtHolds()) >= max_outstanding:
                return None
        if budget is not None and not limits.within_budget(tx, key, *budget):
            return None
        return _write_ahead(tx, key, now, run_id, params)


@once_more
def mark_submitting_many(conn: PgConnection, keys: Sequence[str], live_params: dict[str, Any],
                         run_id: int | None) -> list[int | None]:
    """The write-aheads of ``keys`` in ONE transaction (one durable commit): each key as :func:`mark_submitting`
    without limits moves it, in order — its attempt id or ``None``. An unknown key rolls back all."""
    if not keys:
        return []
    params = dict(live_params)
    now = params.pop("now")
    with conn.write() as tx:
        still_current(tx, conn.location)
        return [_write_ahead(tx, key, now, run_id, params) for key in keys]


def _write_ahead(tx: Tx, key: str, now: float, run_id: int | None, params: dict[str, Any]) -> int | None:
    """The move and the open attempt of one write-ahead, inside the caller's transaction."""
    if not move(tx, key, now, (JobState.PENDING,), JobState.SUBMITTING,
                "attempts = attempts + 1, submitted_at = %(now)s, owner = %(caller)s,"
                f" spent_usd = {money('spent_usd + estimated_usd')}",
                where=f"(owner IS NULL OR owner = %(caller)s OR NOT {LIVE})", **params):
        return None
    return int(tx.scalar(
        "INSERT INTO attempts (key, kind, started_at, run_id) VALUES (%s, 'submit', %s, %s) RETURNING id",
        (key, now, run_id)))


@once_more
def adopt_task(conn: PgConnection, key: str, now: float, run_id: int | None, owner: str, task_id: str,
               detail: str) -> bool:
    """in_doubt → running: an operator attached ``task_id``, verified at the provider — unless a job holds that id
    already (:class:`~runner.errors.TaskIdTaken`, nothing written; read under the id's lock, as ``mark_running``)."""
    with conn.write() as tx:
        holder = task_holder(tx, task_id)
        if not move(tx, key, now, (JobState.IN_DOUBT,), JobState.RUNNING,
                    "task_id = %(task_id)s, error = NULL, reason = NULL, owner = %(owner)s",
                    task_id=task_id, owner=owner):
            return False
        if holder is not None:
            raise TaskIdTaken(task_id, holder)  # leaves the transaction: the move is rolled back
        tx.execute("INSERT INTO attempts (key, kind, started_at, ended_at, outcome, task_id, detail, run_id)"
                   " VALUES (%s, 'submit', %s, %s, 'adopted', %s, %s, %s)", (key, now, now, task_id, detail, run_id))
    return True


@once_more
def adopt_file(conn: PgConnection, key: str, live_params: dict[str, Any], run_id: int | None, path: str, sha256: str,
               size: int, detail: str) -> bool:
    """pending → done from the video already at ``path`` (``runner adopt --file``): paid for in a run this ledger
    no longer records, so its estimate is counted as spent; no task id. Refused (False, nothing written) when the
    job is not pending, a live other owner claimed it, or another job records ``path``."""
    params = dict(live_params)
    now = params.pop("now")
    with conn.write() as tx:
        if not move(tx, key, now, (JobState.PENDING,), JobState.DONE,
                    "attempts = attempts + 1, path = %(path)s, sha256 = %(sha256)s, bytes = %(bytes)s,"
                    f" finished_at = %(now)s, spent_usd = {money('spent_usd + estimated_usd')}, error = NULL,"
                    " reason = NULL, owner = NULL",
                    where=f"(owner IS NULL OR owner = %(caller)s OR NOT {LIVE})"
                          " AND NOT EXISTS (SELECT 1 FROM jobs other WHERE other.path = %(path)s)",
                    path=path, sha256=sha256, bytes=size, **params):
            return False
        tx.execute("INSERT INTO attempts (key, kind, started_at, ended_at, outcome, detail, run_id)"
                   " VALUES (%s, 'submit', %s, %s, 'adopted', %s, %s)", (key, now, now, detail, run_id))
    return True


@once_more
def reopen_lost(conn: PgConnection, key: str, now: float, run_id: int | None, owner: str, detail: str) -> bool:
    """lost → running: the provider answered for the task again."""
    with conn.write() as tx:
        if not move(tx, key, now, (JobState.LOST,), JobState.RUNNING,
                    "error = NULL, reason = NULL, finished_at = NULL, video_url = NULL, url_expires_at = NULL,"
                    " owner = %(owner)s", owner=owner):
            return False
        event(tx, run_id, key, "poll", "found", now, detail=detail)
    return True


@once_more
def mark_running(conn: PgConnection, key: str, now: float, attempt_id: int, task_id: str,
                 http_status: int | None) -> bool:
    """submitting → running: the provider accepted the task and gave its id — unless a job holds that id already
    (:class:`~runner.errors.TaskIdTaken`, nothing written). The holder is read under the id's lock
    (:func:`~runner.ledger.postgres.moves.task_holder`), taken before the job's row: of two runners recording one
    id at once, the second sees the first one's commit and is refused."""
    with conn.write() as tx:
        holder = task_holder(tx, task_id)  # before the move: this job's own earlier task counts too
        if not move(tx, key, now, (JobState.SUBMITTING,), JobState.RUNNING,
                    "task_id = %(task_id)s, error = NULL, reason = NULL", task_id=task_id):
            return False
        if holder is not None:
            raise TaskIdTaken(task_id, holder)  # leaves the transaction: the move is rolled back
        close_attempt(tx, key, attempt_id, now, "accepted", task_id=task_id, http_status=http_status)
    return True


@once_more
def mark_refused(conn: PgConnection, key: str, now: float, attempt_id: int, http_status: int | None,
                 reason: str | None, message: str, permanent: bool) -> bool:
    """submitting → pending (may be retried) or failed (``permanent``); no task was created."""
    with conn.write() as tx:
        if not move(tx, key, now, (JobState.SUBMITTING,), JobState.FAILED if permanent else JobState.PENDING,
                    f"spent_usd = greatest(0, {money('spent_usd - estimated_usd')}),"
                    " error = %(message)s, reason = %(reason)s, owner = NULL"
                    + (", finished_at = %(now)s" if permanent else ""), message=message, reason=reason):
            return False
        close_attempt(tx, key, attempt_id, now, "rejected" if permanent else "refused",
                      http_status=http_status, detail=message)
    return True


@once_more
def mark_in_doubt(conn: PgConnection, key: str, now: float, attempt_id: int, http_status: int | None,
                  reason: str | None, message: str) -> bool:
    """submitting → in_doubt: a paid task may exist; the reservation stays."""
    with conn.write() as tx:
        if not move(tx, key, now, (JobState.SUBMITTING,), JobState.IN_DOUBT,
                    "error = %(message)s, reason = %(reason)s, owner = NULL", message=message, reason=reason):
            return False
        close_attempt(tx, key, attempt_id, now, "ambiguous", http_status=http_status, detail=message)
    return True


@once_more
def mark_succeeded(conn: PgConnection, key: str, now: float, video_url: str, url_expires_at: float | None,
                   debug: dict[str, Any], task_id: str | None = None) -> bool:
    """running → succeeded (or succeeded → succeeded with a fresh URL). With ``task_id`` (a poll's answer,
    not read first): running only, and only that task; an unknown key is then a late update (False)."""
    values: dict[str, Any] = {"url": video_url, "expires": url_expires_at, "debug": json.dumps(debug, sort_keys=True, default=str)}
    with conn.write() as tx:
        if task_id is not None:
            return int(tx.execute(
                "UPDATE jobs SET state = %(target)s, updated_at = %(now)s, video_url = %(url)s, url_expires_at ="
                " %(expires)s, debug_json = %(debug)s, error = NULL, reason = NULL WHERE key = %(key)s"
                " AND state = %(running)s AND task_id = %(task_id)s",
                {"key": key, "now": now, "target": str(JobState.SUCCEEDED), "running": str(JobState.RUNNING),
                 "task_id": task_id, **values}).rowcount) == 1
        return move(tx, key, now, (JobState.RUNNING, JobState.SUCCEEDED), JobState.SUCCEEDED,
                    "video_url = %(url)s, url_expires_at = %(expires)s, debug_json = %(debug)s, error = NULL,"
                    " reason = NULL", **values)


@once_more
def mark_failed(conn: PgConnection, key: str, now: float, run_id: int | None, reason: str) -> bool:
    """running → failed: the provider reported the task FAILED."""
    with conn.write() as tx:
        if not move(tx, key, now, (JobState.RUNNING,), JobState.FAILED,
                    "error = %(reason)s, reason = %(reason)s, finished_at = %(now)s, owner = NULL", reason=reason):
            return False
        event(tx, run_id, key, "poll", "failed", now, detail=reason)
    return True


@once_more
def mark_done(conn: PgConnection, key: str, now: float, path: str, sha256: str, size: int) -> bool:
    """succeeded → done: the verified file is in place at ``path`` (relative to the state dir)."""
    with conn.write() as tx:
        return move(tx, key, now, (JobState.SUCCEEDED,), JobState.DONE,
                    "path = %(path)s, sha256 = %(sha256)s, bytes = %(bytes)s, finished_at = %(now)s,"
                    " error = NULL, reason = NULL, owner = NULL", path=path, sha256=sha256, bytes=size)


@once_more
def mark_lost(conn: PgConnection, key: str, now: float, run_id: int | None, reason: str) -> bool:
    """running|succeeded → lost: paid for, but the result can no longer be fetched."""
    with conn.write() as tx:
        before = tx.scalar("SELECT state FROM jobs WHERE key = %s FOR UPDATE", (key,))
        if not move(tx, key, now, (JobState.RUNNING, JobState.SUCCEEDED), JobState.LOST,
                    "error = %(reason)s, finished_at = %(now)s, owner = NULL", reason=reason):
            return False
        event(tx, run_id, key, "poll" if before == JobState.RUNNING else "download", "lost", now, detail=reason)
    return True


@once_more
def note_file_problem(conn: PgConnection, key: str, now: float, run_id: int | None, detail: str) -> bool:
    """succeeded stays succeeded: its video could not be stored locally; the reason is kept on the job."""
    with conn.write() as tx:
        if not move(tx, key, now, (JobState.SUCCEEDED,), JobState.SUCCEEDED,
                    "error = %(detail)s, reason = 'FILE_ERROR'", detail=detail):
            return False
        event(tx, run_id, key, "download", "file_error", now, detail=detail)
    return True


@once_more
def record_event(conn: PgConnection, key: str, now: float, run_id: int | None, kind: str, outcome: str, *,
                 http_status: int | None, detail: str | None, task_id: str | None) -> None:
    """Record a poll or download error of a job (its state does not change)."""
    if kind not in _EVENT_KINDS:
        raise LedgerError(f"unknown event kind {kind!r} (expected poll or download)")
    with conn.write() as tx:
        if tx.execute("SELECT 1 FROM jobs WHERE key = %s", (key,)).fetchone() is None:
            raise LedgerError(f"unknown job {key}; this is a bug in runner")
        event(tx, run_id, key, kind, outcome, now, http_status=http_status, detail=detail, task_id=task_id)


@once_more
def reset(conn: PgConnection, manifest: str | None, state: JobState, now: float,
          keys: Sequence[str] | None = None) -> int:
    """failed or in_doubt → pending (an explicit retry); how many jobs moved. ``keys``: only those of them
    (``runner retry KEY…``), in one transaction; each must be a known job."""
    if state not in (JobState.FAILED, JobState.IN_DOUBT):
        raise LedgerError(f"only failed or in_doubt jobs can be reset, not {state}")
    scope = "" if manifest is None else " AND id IN (SELECT job_id FROM targets WHERE manifest = %(m)s)"
    with conn.write() as tx:
        bulk(tx)  # several rows: in the order every bulk move takes them (no deadlock)
        if keys is not None:
            return sum(move(tx, key, now, (state,), JobState.PENDING, CLEARED, where=scope[5:], m=manifest)
                       for key in dict.fromkeys(keys))
        return int(tx.execute(
            f"UPDATE jobs SET state = 'pending', {CLEARED}, updated_at = %(now)s WHERE state = %(state)s{scope}",
            {"now": now, "state": str(state), "m": manifest}).rowcount)


@once_more
def retry_failed(conn: PgConnection, key: str, now: float) -> bool:
    """failed → pending (``runner retry KEY``)."""
    with conn.write() as tx:
        return move(tx, key, now, (JobState.FAILED,), JobState.PENDING, CLEARED)


@once_more
def fail_unsent(conn: PgConnection, key: str, now: float, reason: str) -> bool:
    """pending → failed before anything was sent (an input file changed since the plan): nothing paid."""
    with conn.write() as tx:
        return move(tx, key, now, (JobState.PENDING,), JobState.FAILED,
                    "error = %(reason)s, reason = %(unsent)s, finished_at = %(now)s, owner = NULL", reason=reason,
                    unsent=UNSENT_REASON)
