"""The state transitions of the SQLite ledger, each one transaction of the form
``UPDATE … WHERE key = ? AND state IN (…)`` (:func:`~runner.ledger.sqlite.moves.move`)::

    pending            → submitting        mark_submitting (before the POST; not while a live
                                           other owner holds the job); mark_submitting_many
                                           (the same for several jobs, one durable transaction)
    submitting         → running           mark_running (task id recorded; refused, TaskIdTaken,
                                           when a job holds that id already)
    submitting         → pending | failed  mark_refused (no task was created)
    submitting         → in_doubt          mark_in_doubt, recover_expired (expired owners only)
    submitting         → running           apply_rescue (a task id from the rescue journal)
    in_doubt           → running           adopt_task (an operator's task id, verified)
    pending            → done              adopt_file (an operator's: the video already at its name)
    lost               → running           reopen_lost (the provider knows the task again)
    running, succeeded → succeeded         mark_succeeded (again: a fresh URL)
    succeeded          → succeeded         note_file_problem (the video cannot be stored locally)
    running            → failed            mark_failed (the provider said FAILED)
    succeeded          → done              mark_done
    running, succeeded → lost              mark_lost
    failed, in_doubt   → pending           reset; retry_failed_job (failed only)
    done               → done              finish_rename (the stored file got another name)

The submit path is write-ahead and durable (``synchronous=FULL``): ``mark_submitting`` commits
before the POST leaves and reserves the job's estimated price in ``spent_usd``; ``mark_refused``
gives it back (no task was created), ``mark_running`` and ``mark_in_doubt`` keep it.

Every function takes the connection and ``now`` (the ledger's clock, read once); those that
write attempt rows take the current run's id. ``recover_expired`` and ``apply_rescue`` are in
:mod:`~runner.ledger.sqlite.owners` and :mod:`~runner.ledger.sqlite.replay`, ``finish_rename``
in :mod:`~runner.ledger.sqlite.files`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from runner.boot import BootStamp, stamped, this_boot
from runner.errors import LedgerError, TaskIdTaken
from runner.jobs import JobState
from runner.ledger.api import UNSENT_REASON
from runner.ledger.connection import Connection
from runner.ledger.sqldb import Database
from runner.ledger.sqlite.moves import CLEARED, LIVE, close_attempt, event, move, task_holder

__all__ = [
    "EVENT_KINDS",
    "adopt_file",
    "adopt_task",
    "mark_done",
    "mark_failed",
    "mark_in_doubt",
    "mark_lost",
    "mark_refused",
    "mark_running",
    "mark_submitting",
    "mark_submitting_many",
    "mark_succeeded",
    "note_file_problem",
    "record_event",
    "reopen_lost",
    "reset",
    "retry_failed_job",
]

EVENT_KINDS = frozenset({"poll", "download"})


def mark_submitting(conn: Connection, live_params: dict[str, Any], key: str, run_id: int | None,
                    boot: Callable[[], BootStamp | None] = this_boot) -> int | None:
    """pending → submitting, before the POST; reserves the estimate. Returns the attempt id.

    ``None`` (nothing written) when the job is not pending or a live other
    owner (not ``live_params["caller"]``) claimed it. The open attempt's detail is ``boot``'s reading
    (:func:`runner.boot.stamped`): an in-doubt job's hold is timed from it on this boot's steady clock.
    """
    params = dict(live_params)
    now = params.pop("now")
    with conn.write(durable=True) as db:
        return _write_ahead(db, key, now, run_id, params, stamped("", boot()) or None)


def mark_submitting_many(conn: Connection, live_params: dict[str, Any], keys: Sequence[str],
                         run_id: int | None, boot: Callable[[], BootStamp | None] = this_boot) -> list[int | None]:
    """The write-aheads of ``keys`` in ONE durable transaction (one fsync for the group): each key as
    :func:`mark_submitting` moves it, in order — its attempt id or ``None``. An unknown key rolls back all."""
    if not keys:
        return []
    params = dict(live_params)
    now = params.pop("now")
    with conn.write(durable=True) as db:
        stamp = stamped("", boot()) or None
        return [_write_ahead(db, key, now, run_id, params, stamp) for key in keys]


def _write_ahead(db: Database, key: str, now: float, run_id: int | None, params: dict[str, Any],
                 stamp: str | None) -> int | None:
    """The move and the open attempt of one write-ahead, inside the caller's durable transaction."""
    if not move(db, key, now, (JobState.PENDING,), JobState.SUBMITTING,
                "attempts = attempts + 1, submitted_at = :now, owner = :caller,"
                " spent_usd = round(spent_usd + estimated_usd, 9)",
                where=f"(owner IS NULL OR owner = :caller OR NOT {LIVE})", **params):
        return None
    cursor = db.execute("INSERT INTO attempts (key, kind, started_at, run_id, detail) VALUES (?, 'submit', ?, ?, ?)",
                        (key, now, run_id, stamp))
    return int(cursor.lastrowid or 0)


def adopt_task(
    conn: Connection, now: float, key: str, task_id: str, *, detail: str, owner: str, run_id: int | None
) -> bool:
    """in_doubt → running: an operator attached ``task_id``, verified at the provider (``runner adopt``) — unless a
    job holds that id already (:class:`~runner.errors.TaskIdTaken`, nothing written)."""
    with conn.write(durable=True) as db:
        holder = task_holder(db, task_id)
        if not move(db, key, now, (JobState.IN_DOUBT,), JobState.RUNNING,
                    "task_id = :task_id, error = NULL, reason = NULL, owner = :owner",
                    task_id=task_id, owner=owner):
            return False
        if holder is not None:
            raise TaskIdTaken(task_id, holder)  # leaves the transaction: the move is rolled back
        db.execute(
            "INSERT INTO attempts (key, kind, started_at, ended_at, outcome, task_id, detail, run_id)"
            " VALUES (?, 'submit', ?, ?, 'adopted', ?, ?, ?)",
            (key, now, now, task_id, detail, run_id),
        )
    return True


def adopt_file(conn: Connection, live_params: dict[str, Any], key: str, *, path: str, sha256: str, size: int,
               detail: str, run_id: int | None) -> bool:
    """pending → done from the video already at ``path`` (``runner adopt --file``): paid for in a run this ledger
    no longer records, so its estimate is counted as spent; no task id. Refused (False, nothing written) when the
    job is not pending, a live other owner claimed it, or another job records ``path``."""
    params = dict(live_params)
    now = params.pop("now")
    with conn.write(durable=True) as db:
        if not move(db, key, now, (JobState.PENDING,), JobState.DONE,
                    "attempts = attempts + 1, path = :path, sha256 = :sha256, bytes = :bytes, finished_at = :now,"
                    " spent_usd = round(spent_usd + estimated_usd, 9), error = NULL, reason = NULL, owner = NULL",
                    where=f"(owner IS NULL OR owner = :caller OR NOT {LIVE})"
                          " AND NOT EXISTS (SELECT 1 FROM jobs other WHERE other.path = :path)",
                    path=path, sha256=sha256, bytes=size, **params):
            return False
        db.execute("INSERT INTO attempts (key, kind, started_at, ended_at, outcome, detail, run_id)"
                   " VALUES (?, 'submit', ?, ?, 'adopted', ?, ?)", (key, now, now, detail, run_id))
    return True


def reopen_lost(conn: Connection, now: float, key: str, *, detail: str, owner: str, run_id: int | None) -> bool:
    """lost → running: the provider answered for the task again (``runner retry --lost``)."""
    with conn.write(durable=True) as db:
        if not move(db, key, now, (JobState.LOST,), JobState.RUNNING,
                    "error = NULL, reason = NULL, finished_at = NULL, video_url = NULL, url_expires_at = NULL,"
                    " owner = :owner", owner=owner):
            return False
        event(db, run_id, key, "poll", "found", now, detail=detail)
    return True


def mark_running(
    conn: Connection, now: float, key: str, attempt_id: int, *, task_id: str, http_status: int | None
) -> bool:
    """submitting → running: the provider accepted the task and gave its id — unless a job holds that id already
    (:class:`~runner.errors.TaskIdTaken`, nothing written). The holder is read inside the move's own write
    transaction (``BEGIN IMMEDIATE``: no other writer between the read and the move)."""
    with conn.write(durable=True) as db:
        holder = task_holder(db, task_id)  # before the move: this job's own earlier task counts too
        if not move(db, key, now, (JobState.SUBMITTING,), JobState.RUNNING,
                    "task_id = :task_id, error = NULL, reason = NULL", task_id=task_id):
            return False
        if holder is not None:
            raise TaskIdTaken(task_id, holder)  # leaves the transaction: the move is rolled back
        close_attempt(db, key, attempt_id, now, "accepted", task_id=task_id, http_status=http_status)
    return True


def mark_refused(
    conn: Connection,
    now: float,
    key: str,
    attempt_id: int,
    *,
    http_status: int | None,
    reason: str | None,
    message: str,
    permanent: bool,
) -> bool:
    """submitting → pending (may be retried) or failed (``permanent``); no task was created."""
    target = JobState.FAILED if permanent else JobState.PENDING
    with conn.write(durable=True) as db:
        if not move(db, key, now, (JobState.SUBMITTING,), target,
                    "spent_usd = max(0, round(spent_usd - estimated_usd, 9)),"
                    " error = :message, reason = :reason, owner = NULL"
                    + (", finished_at = :now" if permanent else ""),
                    message=message, reason=reason):
            return False
        close_attempt(db, key, attempt_id, now, "rejected" if permanent else "refused",
                      http_status=http_status, detail=message)
    return True


def mark_in_doubt(
    conn: Connection,
    now: float,
    key: str,
    attempt_id: int,
    *,
    http_status: int | None,
    reason: str | None,
    message: str,
) -> bool:
    """submitting → in_doubt: a paid task may exist; the reservation stays."""
    with conn.write(durable=True) as db:
        if not move(db, key, now, (JobState.SUBMITTING,), JobState.IN_DOUBT,
                    "error = :message, reason = :reason, owner = NULL", message=message, reason=reason):
            return False
        close_attempt(db, key, attempt_id, now, "ambiguous", http_status=http_status, detail=message)
    return True


def mark_succeeded(
    conn: Connection, now: float, key: str, *, video_url: str, url_expires_at: float | None, debug: dict[str, Any],
    task_id: str | None = None,
) -> bool:
    """running → succeeded (or succeeded → succeeded with a fresh URL). With ``task_id`` (a poll's answer,
    not read first): running only, and only that task; an unknown key is then a late update (False)."""
    values: dict[str, Any] = {"url": video_url, "expires": url_expires_at, "debug": json.dumps(debug, sort_keys=True, default=str)}
    with conn.write_one() as db:  # one UPDATE (the check for an unknown key only reads)
        if task_id is not None:
            return db.execute(_SUCCEEDED_TASK, {"key": key, "now": now, "task_id": task_id, **values}).rowcount == 1
        return move(
            db, key, now, (JobState.RUNNING, JobState.SUCCEEDED), JobState.SUCCEEDED,
            "video_url = :url, url_expires_at = :expires, debug_json = :debug, error = NULL, reason = NULL", **values,
        )


_SUCCEEDED_TASK = (
    f"UPDATE jobs SET state = '{JobState.SUCCEEDED}', updated_at = :now, video_url = :url, url_expires_at = :expires,"
    f" debug_json = :debug, error = NULL, reason = NULL WHERE key = :key AND state = '{JobState.RUNNING}'"
    " AND task_id = :task_id"
)


def mark_failed(conn: Connection, now: float, key: str, *, reason: str, run_id: int | None) -> bool:
    """running → failed: the provider reported the task FAILED."""
    with conn.write() as db:
        if not move(db, key, now, (JobState.RUNNING,), JobState.FAILED,
                    "error = :reason, reason = :reason, finished_at = :now, owner = NULL", reason=reason):
            return False
        event(db, run_id, key, "poll", "failed", now, detail=reason)
    return True


def mark_done(conn: Connection, now: float, key: str, *, path: str, sha256: str, bytes: int) -> bool:
    """succeeded → done: the verified file is in place at ``path`` (relative to the state dir)."""
    with conn.write_one() as db:  # one UPDATE (the check for an unknown key only reads)
        return move(
            db, key, now, (JobState.SUCCEEDED,), JobState.DONE,
            "path = :path, sha256 = :sha256, bytes = :bytes, finished_at = :now,"
            " error = NULL, reason = NULL, owner = NULL",
            path=path, sha256=sha256, bytes=bytes,
        )


def mark_lost(conn: Connection, now: float, key: str, *, reason: str, run_id: int | None) -> bool:
    """running|succeeded → lost: paid for, but the result can no longer be fetched."""
    with conn.write() as db:
        before = db.execute("SELECT state FROM jobs WHERE key = ?", (key,)).fetchone()
        if not move(db, key, now, (JobState.RUNNING, JobState.SUCCEEDED), JobState.LOST,
                    "error = :reason, finished_at = :now, owner = NULL", reason=reason):
            return False
        event(db, run_id, key, "poll" if before[0] == JobState.RUNNING else "download", "lost", now,
              detail=reason)
    return True


def note_file_problem(conn: Connection, now: float, key: str, detail: str, *, run_id: int | None) -> bool:
    """succeeded stays succeeded: its video could not be stored locally; the reason is kept on the job."""
    with conn.write() as db:
        if not move(db, key, now, (JobState.SUCCEEDED,), JobState.SUCCEEDED,
                    "error = :detail, reason = 'FILE_ERROR'", detail=detail):
            return False
        event(db, run_id, key, "download", "file_error", now, detail=detail)
    return True


def record_event(
    conn: Connection,
    now: float,
    key: str,
    kind: str,
    outcome: str,
    *,
    run_id: int | None,
    http_status: int | None,
    detail: str | None,
    task_id: str | None,
) -> None:
    """Record a poll or download error of a job (its state does not change)."""
    if kind not in EVENT_KINDS:
        raise LedgerError(f"unknown event kind {kind!r} (expected poll or download)")
    with conn.write() as db:
        if db.execute("SELECT 1 FROM jobs WHERE key = ?", (key,)).fetchone() is None:
            raise LedgerError(f"unknown job {key}; this is a bug in runner")
        event(db, run_id, key, kind, outcome, now, http_status=http_status, detail=detail,
              task_id=task_id)


def reset(conn: Connection, now: float, manifest: str | None, state: JobState,
          keys: Sequence[str] | None = None) -> int:
    """failed or in_doubt → pending (an explicit retry); returns how many jobs moved. ``keys``: only
    those of them (``runner retry KEY…``), in one transaction; each must be a known job."""
    if state not in (JobState.FAILED, JobState.IN_DOUBT):
        raise LedgerError(f"only failed or in_doubt jobs can be reset, not {state}")
    if keys is not None:
        where = "" if manifest is None else "id IN (SELECT job_id FROM targets WHERE manifest = :manifest)"
        with conn.write() as db:
            return sum(move(db, key, now, (state,), JobState.PENDING, CLEARED, where=where, manifest=manifest)
                       for key in dict.fromkeys(keys))
    params: dict[str, Any] = {"now": now, "state": str(state), "manifest": manifest}
    scope = "" if manifest is None else " AND id IN (SELECT job_id FROM targets WHERE manifest = :manifest)"
    with conn.write() as db:
        cursor = db.execute(
            f"UPDATE jobs SET state = 'pending', {CLEARED}, updated_at = :now WHERE state = :state{scope}",
            params,
        )
        return int(cursor.rowcount)


def retry_failed_job(conn: Connection, now: float, key: str) -> bool:
    """failed → pending (the manifest's job-level retry policy asked for it)."""
    with conn.write() as db:
        return move(db, key, now, (JobState.FAILED,), JobState.PENDING, CLEARED)


def fail_unsent(conn: Connection, now: float, key: str, *, reason: str) -> bool:
    """pending → failed before anything was sent (an input file changed since the plan): nothing paid."""
    with conn.write(durable=True) as db:
        return move(db, key, now, (JobState.PENDING,), JobState.FAILED,
                    "error = :reason, reason = :unsent, finished_at = :now, owner = NULL", reason=reason,
                    unsent=UNSENT_REASON)
