"""Typed records the ledger hands out: callers never see SQLite rows."""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from runner.jobs import JobState

__all__ = ["AttemptRecord", "JobRecord", "LeaseRecord", "RejectionRecord", "RunRecord", "RunSummary", "finished_by_run",
           "run_summaries"]


def _constant_text(constant: str) -> str:
    """NaN, Infinity, -Infinity as the text the value rendered ("nan", "inf", "-inf"): what quoting it in the
    manifest gives, and valid JSON in every output."""
    return str(float(constant)).lower()


#: A job's variables as stored. A ledger planned before NaN/±Infinity values were refused (runner.manifest.values)
#: may hold ``{"x":NaN}``: read as text, or every JSON output (exports, --json, reports) was invalid JSON.
_vars_of = json.JSONDecoder(parse_constant=_constant_text).decode

# The columns of ``jobs`` (aliased ``j``) that make a JobRecord, in one place (:meth:`JobRecord.from_tuple`
# reads them by position: keep the two in step).
JOB_COLUMNS = (
    "j.id, j.key, j.model, j.request_json, j.vars_json, j.repeat, j.state, j.task_id, "
    "j.attempts, j.spent_usd, j.estimated_usd, j.error, j.reason, j.video_url, "
    "j.url_expires_at, j.path, j.sha256, j.bytes, j.submitted_at, j.updated_at, "
    "j.created_at, j.finished_at, j.owner, j.sample, j.review"
)
REJECTION_COLUMNS = (
    "id, key, sample, reason, rejected_at, task_id, path, sha256, bytes, kept_path, closed_at, outcome"
)
ATTEMPT_COLUMNS = (
    "id, key, kind, started_at, ended_at, outcome, task_id, http_status, detail, run_id"
)
#: A run's columns, named (never ``*``: on PostgreSQL a prepared ``SELECT *`` fails once a newer runner adds a column).
RUN_COLUMNS = "id, pid, host, argv, started_at, ended_at, exit_code, counts_json"


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job as the ledger knows it.

    ``request`` is the exact body sent (or to be sent); ``attempts`` counts
    the submits sent; ``spent_usd`` is the estimated spend of every submit
    that may have created a paid task; ``path`` is the stored file, relative
    to the state directory; ``output`` is the file name this job has in the
    manifest it was read through (``None`` when read from the whole ledger);
    ``owner`` the runner that claimed it (pending) or owns its in-flight work; ``sample`` how
    many times a rejected video of it was regenerated (0: the first sample); ``review`` the
    operator's verdict on the current video (``None``, ``"accepted"`` or ``"rejected"``).
    """

    key: str
    model: str
    request: dict[str, Any]
    vars: dict[str, Any]
    repeat: int
    state: JobState
    task_id: str | None
    attempts: int
    spent_usd: float
    estimated_usd: float
    error: str | None
    reason: str | None
    video_url: str | None
    url_expires_at: float | None
    path: str | None
    sha256: str | None
    bytes: int | None
    output: str | None
    submitted_at: float | None
    updated_at: float
    created_at: float = 0.0
    finished_at: float | None = None
    owner: str | None = None
    sample: int = 0
    review: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> JobRecord:
        return cls(
            key=row["key"],
            model=row["model"],
            request=json.loads(row["request_json"]),
            vars=_vars_of(row["vars_json"]),
            repeat=row["repeat"],
            state=JobState(row["state"]),
            task_id=row["task_id"],
            attempts=row["attempts"],
            spent_usd=row["spent_usd"],
            estimated_usd=row["estimated_usd"],
            error=row["error"],
            reason=row["reason"],
            video_url=row["video_url"],
            url_expires_at=row["url_expires_at"],
            path=row["path"],
            sha256=row["sha256"],
            bytes=row["bytes"],
            output=row.get("output"),
            submitted_at=row["submitted_at"],
            updated_at=row["updated_at"],
            created_at=row["created_at"],
            finished_at=row["finished_at"],
            owner=row.get("owner"),
            sample=row.get("sample") or 0,
            review=row.get("review"),
        )

    @classmethod
    def from_tuple(cls, row: Sequence[Any]) -> JobRecord:
        """A record from a plain row: :data:`JOB_COLUMNS` then the output name (the hot reads' shape: no dict
        per row, no keyword look-ups). An unknown state raises KeyError, bad JSON ValueError."""
        (_, key, model, request_json, vars_json, repeat, state, task_id, attempts, spent_usd, estimated_usd, error,
         reason, video_url, url_expires_at, path, sha256, size, submitted_at, updated_at, created_at, finished_at,
         owner, sample, review, output) = row
        return cls(key, model, json.loads(request_json), _vars_of(vars_json), repeat, _STATES[state], task_id,
                   attempts, spent_usd, estimated_usd, error, reason, video_url, url_expires_at, path, sha256, size,
                   output, submitted_at, updated_at, created_at, finished_at, owner, sample or 0, review)


_STATES = {str(state): state for state in JobState}


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One submit POST, or one poll / download error, of a job.

    ``outcome`` of a submit: ``None`` while on the wire, then ``accepted``,
    ``refused`` (back to pending), ``rejected`` (failed for good),
    ``ambiguous`` (in doubt) or ``interrupted`` (the process died mid-POST).
    """

    id: int
    key: str
    kind: str
    started_at: float
    ended_at: float | None
    outcome: str | None
    task_id: str | None
    http_status: int | None
    detail: str | None
    run_id: int | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AttemptRecord:
        return cls(**{field.name: row[field.name] for field in fields(cls)})


@dataclass(frozen=True, slots=True)
class RejectionRecord:
    """One rejection of a job's video (``runner reject``, the review page).

    ``sample`` is the job's sample the video was (0: the first); ``path``, ``sha256``, ``bytes``
    and ``task_id`` describe that video as it was when rejected; ``kept_path`` is where it was
    moved aside when the job was regenerated. ``outcome``: ``None`` while open, ``regenerated``
    (the job went back to pending for a fresh sample) or ``withdrawn`` (accepted after all).
    """

    id: int
    key: str
    sample: int
    reason: str
    rejected_at: float
    task_id: str | None
    path: str | None
    sha256: str | None
    bytes: int | None
    kept_path: str | None
    closed_at: float | None
    outcome: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RejectionRecord:
        return cls(**{field.name: row[field.name] for field in fields(cls)})


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One ``runner`` process that wrote to the ledger."""

    id: int
    pid: int
    host: str
    argv: list[str]
    started_at: float
    ended_at: float | None
    exit_code: int | None
    counts: dict[str, int] | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RunRecord:
        return cls(
            id=row["id"],
            pid=row["pid"],
            host=row["host"],
            argv=json.loads(row["argv"]),
            started_at=row["started_at"],
            ended_at=row["ended_at"],
            exit_code=row["exit_code"],
            counts=json.loads(row["counts_json"]) if row["counts_json"] else None,
        )


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What one run did (to one manifest's jobs, or to all): ``submitted`` submits that may have
    created a paid task, their estimated spend, and the jobs that became done / failed or lost while
    it ran (by their finish time: with one writer at a time, exactly that run's)."""

    run: RunRecord
    submitted: int
    estimated_usd: float
    done: int
    failed: int


def finished_by_run(windows: dict[int, tuple[float, float]], rows: Iterable[tuple[Any, Any]]) -> dict[tuple[int, str], int]:
    """(run id, state) → how many of ``rows`` ((state, finish time) of the finished jobs) fall inside each run's
    window ([start, end] of ``windows``: run id → window; windows may overlap). The rows are read once, whatever the
    number of runs: a join of each run with the jobs by finish time read every job once a run (``runner runs``: 2.2 s
    for 20 runs at 200k jobs, growing with runs × jobs)."""
    times: dict[str, list[float]] = {}
    for state, at in rows:
        times.setdefault(str(state), []).append(float(at))
    for found in times.values():
        found.sort()
    counted: dict[tuple[int, str], int] = {}
    for run_id, (start, end) in windows.items():
        for state, found in times.items():
            if n := bisect.bisect_right(found, end) - bisect.bisect_left(found, start):
                counted[(run_id, state)] = n
    return counted


def run_summaries(latest: list[RunRecord], submits: dict[int, tuple[int, float]],
                  finished: dict[tuple[int, str], int]) -> list[RunSummary]:
    """Each run of ``latest`` with its paid submits and spend (``submits``: run id → (count, USD)) and
    the jobs it finished (``finished``: (run id, state) → count; failed and lost count as failed)."""
    return [RunSummary(run=run, submitted=submits.get(run.id, (0, 0.0))[0],
                       estimated_usd=submits.get(run.id, (0, 0.0))[1],
                       done=finished.get((run.id, str(JobState.DONE)), 0),
                       failed=finished.get((run.id, str(JobState.FAILED)), 0)
                       + finished.get((run.id, str(JobState.LOST)), 0))
            for run in latest]


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """A runner working on a shared ledger: its owner name, host, pid, when it started, its last
    heartbeat (renewal) and when its lease expires (times by the ledger's clock); ``live`` until then.
    ``heartbeat_age``: seconds since that renewal by the ledger's clock too (the reader's own may be off)."""

    owner: str
    host: str
    pid: int
    started_at: float
    renewed_at: float
    expires_at: float
    live: bool
    heartbeat_age: float
