"""The state transitions of the in-memory ledger, and its renames journal: the table of
:mod:`runner.ledger.sqlite.transitions`, on dictionaries. :func:`move` is the guarded move (the
job must be in one of the source states), the attempt helpers keep the submit rows."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from runner.errors import JobMovedOn, LedgerError, TaskIdTaken
from runner.jobs import JobState
from runner.ledger.api import UNSENT_REASON
from runner.ledger.memory_owners import live
from runner.ledger.memory_reads import key_of_task
from runner.ledger.memory_tables import Tables, row_of, scope
from runner.ledger.records import AttemptRecord

__all__ = [
    "adopt_file",
    "adopt_task",
    "finish_rename",
    "journal_renames",
    "mark_done",
    "mark_failed",
    "mark_in_doubt",
    "mark_lost",
    "mark_refused",
    "mark_running",
    "mark_submitting",
    "mark_submitting_many",
    "mark_succeeded",
    "move",
    "note_file_problem",
    "record_event",
    "reopen_lost",
    "reset",
    "retry_failed_job",
]

_EVENT_KINDS = frozenset({"poll", "download"})
_CLEARED = {"task_id": None, "error": None, "reason": None, "video_url": None, "url_expires_at": None,
            "debug": None, "finished_at": None, "owner": None}


def move(t: Tables, key: str, sources: tuple[JobState, ...], target: JobState, **changes: Any) -> bool:
    row = row_of(t, key)
    if row.job.state not in sources:
        return False
    debug = changes.pop("debug", row.debug) if "debug" in changes else row.debug
    row.debug = debug
    row.job = replace(row.job, state=target, updated_at=t.clock(), **changes)
    return True


def _open_attempt(t: Tables, key: str, attempt_id: int) -> int:
    for i, a in enumerate(t.attempts):
        if a.id == attempt_id and a.key == key and a.kind == "submit" and a.ended_at is None:
            return i
    raise JobMovedOn(
            f"attempt {attempt_id} of job {key} is no longer an open submit: the job moved on (on a shared ledger another"
            " runner held it in doubt and it was sent again; on a ledger of one runner, a bug in runner)")


def _close_attempt(t: Tables, key: str, attempt_id: int, outcome: str, **fields: Any) -> None:
    i = _open_attempt(t, key, attempt_id)
    t.attempts[i] = replace(t.attempts[i], ended_at=t.clock(), outcome=outcome,
                            task_id=fields.get("task_id"), http_status=fields.get("http_status"),
                            detail=fields.get("detail"))


def _add_attempt(t: Tables, key: str, kind: str, *, ended: bool, outcome: str | None = None,
                 task_id: str | None = None, http_status: int | None = None, detail: str | None = None,
                 run_id: int | None = None) -> int:
    now = t.clock()
    attempt = AttemptRecord(id=len(t.attempts) + 1, key=key, kind=kind, started_at=now,
                            ended_at=now if ended else None, outcome=outcome, task_id=task_id,
                            http_status=http_status, detail=detail,
                            run_id=run_id if run_id is not None else t.run_id)
    t.attempts.append(attempt)
    return attempt.id


def mark_submitting(t: Tables, key: str, run_id: int | None, owner: str) -> int | None:
    row = row_of(t, key)
    holder = row.job.owner
    if holder is not None and holder != owner and live(t, holder, owner):
        return None
    now = t.clock()
    if not move(t, key, (JobState.PENDING,), JobState.SUBMITTING, attempts=row.job.attempts + 1,
                submitted_at=now, owner=owner,
                spent_usd=round(row.job.spent_usd + row.job.estimated_usd, 9)):
        return None
    return _add_attempt(t, key, "submit", ended=False, run_id=run_id)


def mark_submitting_many(t: Tables, keys: Sequence[str], run_id: int | None, owner: str) -> list[int | None]:
    """Each key as :func:`mark_submitting`, in order; an unknown key raises before anything moves (all or none)."""
    for key in keys:
        row_of(t, key)
    return [mark_submitting(t, key, run_id, owner) for key in keys]


def adopt_task(t: Tables, key: str, task_id: str, detail: str) -> bool:
    if row_of(t, key).job.state is not JobState.IN_DOUBT:
        return False
    holder = key_of_task(t, task_id)
    if holder is not None:
        raise TaskIdTaken(task_id, holder)
    if not move(t, key, (JobState.IN_DOUBT,), JobState.RUNNING, task_id=task_id, error=None, reason=None,
                owner=t.owner):
        return False
    _add_attempt(t, key, "submit", ended=True, outcome="adopted", task_id=task_id, detail=detail)
    return True


def adopt_file(t: Tables, key: str, path: str, sha256: str, size: int, detail: str) -> bool:
    row = row_of(t, key)
    holder = row.job.owner
    if holder is not None and holder != t.owner and live(t, holder, t.owner):
        return False
    if any(other.job.path == path for other in t.rows.values()):
        return False
    if not move(t, key, (JobState.PENDING,), JobState.DONE, attempts=row.job.attempts + 1, path=path, sha256=sha256,
                bytes=size, finished_at=t.clock(), spent_usd=round(row.job.spent_usd + row.job.estimated_usd, 9),
                error=None, reason=None, owner=None):
        return False
    _add_attempt(t, key, "submit", ended=True, outcome="adopted", detail=detail)
    return True


def reopen_lost(t: Tables, key: str, detail: str) -> bool:
    if not move(t, key, (JobState.LOST,), JobState.RUNNING, error=None, reason=None, finished_at=None,
                video_url=None, url_expires_at=None, owner=t.owner):
        return False
    _add_attempt(t, key, "poll", ended=True, outcome="found", task_id=t.rows[key].job.task_id, detail=detail)
    return True


def mark_running(t: Tables, key: str, attempt_id: int, task_id: str, http_status: int | None) -> bool:
    if row_of(t, key).job.state is not JobState.SUBMITTING:
        return False
    _open_attempt(t, key, attempt_id)
    holder = key_of_task(t, task_id)  # this job's own earlier task counts too
    if holder is not None:
        raise TaskIdTaken(task_id, holder)
    move(t, key, (JobState.SUBMITTING,), JobState.RUNNING, task_id=task_id, error=None, reason=None)
    _close_attempt(t, key, attempt_id, "accepted", task_id=task_id, http_status=http_status)
    return True


def mark_refused(t: Tables, key: str, attempt_id: int, *, http_status: int | None, reason: str | None, message: str,
                 permanent: bool) -> bool:
    row = row_of(t, key)
    if row.job.state is not JobState.SUBMITTING:
        return False
    _open_attempt(t, key, attempt_id)
    extra: dict[str, Any] = {"finished_at": t.clock()} if permanent else {}
    move(t, key, (JobState.SUBMITTING,), JobState.FAILED if permanent else JobState.PENDING,
         spent_usd=max(0.0, round(row.job.spent_usd - row.job.estimated_usd, 9)), error=message,
         reason=reason, owner=None, **extra)
    _close_attempt(t, key, attempt_id, "rejected" if permanent else "refused", http_status=http_status,
                   detail=message)
    return True


def mark_in_doubt(t: Tables, key: str, attempt_id: int, *, http_status: int | None, reason: str | None,
                  message: str) -> bool:
    if row_of(t, key).job.state is not JobState.SUBMITTING:
        return False
    _open_attempt(t, key, attempt_id)
    move(t, key, (JobState.SUBMITTING,), JobState.IN_DOUBT, error=message, reason=reason, owner=None)
    _close_attempt(t, key, attempt_id, "ambiguous", http_status=http_status, detail=message)
    return True


def mark_succeeded(t: Tables, key: str, video_url: str, url_expires_at: float | None, debug: dict[str, Any],
                   task_id: str | None = None) -> bool:
    if task_id is not None:  # a poll's answer: running only, that task only; an unknown key is late
        row = t.rows.get(key)
        if row is None or row.job.state is not JobState.RUNNING or row.job.task_id != task_id:
            return False
    return move(t, key, (JobState.RUNNING, JobState.SUCCEEDED), JobState.SUCCEEDED, video_url=video_url,
                url_expires_at=url_expires_at, error=None, reason=None,
                debug=json.loads(json.dumps(debug, sort_keys=True, default=str)))


def mark_failed(t: Tables, key: str, reason: str) -> bool:
    if not move(t, key, (JobState.RUNNING,), JobState.FAILED, error=reason, reason=reason,
                finished_at=t.clock(), owner=None):
        return False
    _add_attempt(t, key, "poll", ended=True, outcome="failed", task_id=t.rows[key].job.task_id, detail=reason)
    return True


def mark_done(t: Tables, key: str, path: str, sha256: str, size: int) -> bool:
    return move(t, key, (JobState.SUCCEEDED,), JobState.DONE, path=path, sha256=sha256, bytes=size,
                finished_at=t.clock(), error=None, reason=None, owner=None)


def mark_lost(t: Tables, key: str, reason: str) -> bool:
    before = row_of(t, key).job.state
    if not move(t, key, (JobState.RUNNING, JobState.SUCCEEDED), JobState.LOST, error=reason,
                finished_at=t.clock(), owner=None):
        return False
    _add_attempt(t, key, "poll" if before is JobState.RUNNING else "download", ended=True, outcome="lost",
                 task_id=t.rows[key].job.task_id, detail=reason)
    return True


def note_file_problem(t: Tables, key: str, detail: str) -> bool:
    if not move(t, key, (JobState.SUCCEEDED,), JobState.SUCCEEDED, error=detail, reason="FILE_ERROR"):
        return False
    _add_attempt(t, key, "download", ended=True, outcome="file_error", task_id=t.rows[key].job.task_id,
                 detail=detail)
    return True


def record_event(t: Tables, key: str, kind: str, outcome: str, *, http_status: int | None,
                 detail: str | None, task_id: str | None) -> None:
    if kind not in _EVENT_KINDS:
        raise LedgerError(f"unknown event kind {kind!r} (expected poll or download)")
    row = row_of(t, key)
    _add_attempt(t, key, kind, ended=True, outcome=outcome, task_id=task_id or row.job.task_id,
                 http_status=http_status, detail=detail)


def reset(t: Tables, manifest: str | None, state: JobState, keys: Sequence[str] | None = None) -> int:
    if state not in (JobState.FAILED, JobState.IN_DOUBT):
        raise LedgerError(f"only failed or in_doubt jobs can be reset, not {state}")
    moved = 0
    chosen = None if keys is None else set(keys)
    for row in scope(t, manifest):
        if chosen is None or row.job.key in chosen:
            moved += move(t, row.job.key, (state,), JobState.PENDING, **_CLEARED)
    return moved


def retry_failed_job(t: Tables, key: str) -> bool:
    return move(t, key, (JobState.FAILED,), JobState.PENDING, **_CLEARED)


def journal_renames(t: Tables, steps: list[tuple[str, str, str]]) -> None:
    for key, src, dst in steps:
        row_of(t, key)
        t.renames[key] = (src, dst)


def finish_rename(t: Tables, key: str, src: str, dst: str) -> bool:
    moved = row_of(t, key).job.path == src and move(t, key, (JobState.DONE,), JobState.DONE, path=dst)
    t.renames.pop(key, None)
    return moved


def fail_unsent(t: Tables, key: str, reason: str) -> bool:
    """pending → failed before anything was sent (an input file changed since the plan): nothing paid."""
    return move(t, key, (JobState.PENDING,), JobState.FAILED, error=reason, reason=UNSENT_REASON,
                finished_at=t.clock(), owner=None)
