"""An in-memory ledger backend, for engine unit tests (like procrastinate's in-memory connector).

:class:`MemoryLedger` follows every rule of :mod:`runner.ledger.api` and passes the same contract
suite as the SQLite ledger, but keeps everything in dictionaries: nothing is durable, nothing is
locked (several "owners" in one process are simulated through the ``owner`` arguments). Its own
:attr:`~MemoryLedger.owner` is live while it exists, as the SQLite ledger's is while it holds the
lock. Not for production: a crash loses everything it held.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import os
import socket
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from runner.errors import LedgerError, ManifestError
from runner.jobs import JobSpec, JobState
from runner.ledger import rescue
from runner.ledger.api import LEASE_TTL_S, PAID_STATES, Clock
from runner.ledger.records import AttemptRecord, JobRecord, RunRecord

__all__ = ["MemoryLedger"]

_EVENT_KINDS = frozenset({"poll", "download"})
_CLEARED = {"task_id": None, "error": None, "reason": None, "video_url": None, "url_expires_at": None,
            "debug": None, "finished_at": None, "owner": None}


@dataclass(slots=True)
class _Row:
    id: int
    job: JobRecord
    debug: dict[str, Any] | None = None


@dataclass(slots=True)
class _Manifest:
    digest: str
    jobs: int
    created_at: float
    targets: dict[str, str] = field(default_factory=dict)  # key → output


@dataclass(slots=True)
class _Lease:
    renewed_at: float
    expires_at: float


class MemoryLedger:
    """Jobs, targets, attempts, runs and owners in memory; see :mod:`runner.ledger.api` for the rules."""

    def __init__(self, *, state_dir: Path | str = ".", clock: Clock = time.time) -> None:
        self.state_dir = Path(state_dir)
        self._clock = clock
        self._owner = f"{socket.gethostname()}:{os.getpid()}:memory-{id(self):x}"
        self._rows: dict[str, _Row] = {}
        self._ids = itertools.count(1)
        self._manifests: dict[str, _Manifest] = {}
        self._targeted: dict[tuple[str, str], tuple[str, float | None]] = {}  # (manifest, key) → (output, dropped_at)
        self._attempts: list[AttemptRecord] = []
        self._runs: list[RunRecord] = []
        self._run_id: int | None = None
        self._meta: dict[str, str] = {}
        self._leases: dict[str, _Lease] = {}
        self._renames: dict[str, tuple[str, str]] = {}

    # ------------------------------------------------------------ life cycle

    @property
    def location(self) -> str:
        return "memory"

    @property
    def readonly(self) -> bool:
        return False

    @property
    def owner(self) -> str:
        return self._owner

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -------------------------------------------------------------- planning

    def manifest_digest(self, name: str) -> str | None:
        found = self._manifests.get(name)
        return None if found is None else found.digest

    def register(self, name: str, digest: str, jobs: Iterable[JobSpec], *, batch: int = 2000) -> int:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        specs = list(jobs)  # if this raises, nothing is planned
        now = self._clock()
        if len({s.key for s in specs}) != len(specs) or len({s.output for s in specs}) != len(specs):
            kept = min(len({s.key for s in specs}), len({s.output for s in specs}))
            raise ManifestError(
                f"manifest {name!r}: {len(specs)} jobs map to only {kept} distinct jobs and "
                "output files (two jobs share a key or an output name); nothing was planned"
            )
        for spec in specs:
            row = self._rows.get(spec.key)
            if row is None:
                self._rows[spec.key] = _Row(next(self._ids), JobRecord(
                    key=spec.key, model=spec.model, request=json.loads(json.dumps(spec.request)),
                    vars=json.loads(json.dumps(spec.vars, default=str)), repeat=spec.repeat,
                    state=JobState.PENDING, task_id=None, attempts=0, spent_usd=0.0,
                    estimated_usd=spec.estimated_usd, error=None, reason=None, video_url=None, url_expires_at=None,
                    path=None, sha256=None, bytes=None, output=None, submitted_at=None, updated_at=now,
                    created_at=now))
            elif row.job.state in (JobState.PENDING, JobState.FAILED, JobState.IN_DOUBT):
                row.job = replace(row.job, estimated_usd=spec.estimated_usd)
        old = self._manifests.get(name)
        targets = {s.key: s.output for s in sorted(specs, key=lambda s: self._rows[s.key].id)}
        for (manifest, key), (output, dropped) in list(self._targeted.items()):
            if manifest == name and dropped is None and key not in targets:
                self._targeted[(manifest, key)] = (output, now)
        for key, output in targets.items():
            self._targeted[(name, key)] = (output, None)
        self._manifests[name] = _Manifest(digest, len(targets), now if old is None else old.created_at, targets)
        return len(targets)

    # ----------------------------------------------------------------- reads

    def _record(self, row: _Row, manifest: str | None) -> JobRecord:
        output = None if manifest is None else self._manifests[manifest].targets.get(row.job.key)
        return replace(row.job, output=output, request=copy.deepcopy(row.job.request))

    def _scope(self, manifest: str | None) -> list[_Row]:
        if manifest is None:
            return sorted(self._rows.values(), key=lambda r: r.id)
        found = self._manifests.get(manifest)
        if found is None:
            return []
        return sorted((self._rows[k] for k in found.targets), key=lambda r: r.id)

    def get(self, key: str, manifest: str | None = None) -> JobRecord | None:
        row = self._rows.get(key)
        if row is None or (manifest is not None and key not in self._targets(manifest)):
            return None
        return self._record(row, manifest)

    def _targets(self, manifest: str) -> dict[str, str]:
        found = self._manifests.get(manifest)
        return {} if found is None else found.targets

    def iter_jobs(
        self, manifest: str | None = None, states: Collection[JobState] | None = None
    ) -> Iterator[JobRecord]:
        wanted = None if states is None else {JobState(s) for s in states}
        for row in self._scope(manifest):
            if wanted is None or row.job.state in wanted:
                yield self._record(row, manifest)

    def pending_batch(
        self, manifest: str | None, *, limit: int, after_rowid: int = 0
    ) -> list[tuple[int, JobRecord]]:
        rows = [r for r in self._scope(manifest) if r.id > after_rowid and r.job.state is JobState.PENDING]
        return [(r.id, self._record(r, manifest)) for r in rows[:max(limit, 0)]]

    def states_of(self, keys: Sequence[str]) -> dict[str, JobState]:
        return {k: self._rows[k].job.state for k in keys if k in self._rows}

    def stored_paths(self, keys: Sequence[str]) -> dict[str, str]:
        return {k: r.job.path for k in keys if (r := self._rows.get(k)) is not None
                and r.job.state is JobState.DONE and r.job.path is not None}

    def counts(self, manifest: str | None = None) -> dict[JobState, int]:
        counts = dict.fromkeys(JobState, 0)
        for row in self._scope(manifest):
            counts[row.job.state] += 1
        return counts

    def total(self, manifest: str | None = None) -> int:
        return len(self._rows) if manifest is None else len(self._targets(manifest))

    def outstanding(self) -> int:
        return sum(1 for r in self._rows.values() if r.job.state.outstanding)

    def has_provider_tasks(self) -> bool:
        return any(a.kind == "submit" and a.outcome not in ("refused", "rejected") for a in self._attempts)

    def _targeted_keys(self, manifest: str, *, dropped: bool = False) -> list[str]:
        return [k for (m, k), (_, at) in self._targeted.items() if m == manifest and (not dropped or at is not None)]

    def spent_usd(self, manifest: str | None = None) -> float:
        keys = list(self._rows) if manifest is None else self._targeted_keys(manifest)
        return round(sum(self._rows[k].job.spent_usd for k in keys), 9)

    def dropped_spent_usd(self, manifest: str) -> float:
        return round(sum(self._rows[k].job.spent_usd for k in self._targeted_keys(manifest, dropped=True)), 9)

    def estimate_usd(self, manifest: str | None = None, states: Collection[JobState] | None = None) -> float:
        wanted = None if states is None else {JobState(s) for s in states}
        return round(sum(r.job.estimated_usd for r in self._scope(manifest)
                         if wanted is None or r.job.state in wanted), 9)

    def _listed(self, key: str) -> bool:
        return any(key in m.targets for m in self._manifests.values())

    def orphans(self, manifest: str | None = None) -> dict[JobState, int]:
        keys = list(self._rows) if manifest is None else self._targeted_keys(manifest, dropped=True)
        found: dict[JobState, int] = {}
        for key in keys:
            state = self._rows[key].job.state
            if state in PAID_STATES and not self._listed(key):
                found[state] = found.get(state, 0) + 1
        return found

    def orphan_home(self, key: str) -> str | None:
        homes = [(at is None, at or 0.0, m) for (m, k), (_, at) in self._targeted.items() if k == key]
        if not homes:
            return None
        # Still listed first, then the latest drop, then by name (as the SQLite ledger orders them).
        homes.sort(key=lambda h: (not h[0], -h[1], h[2]))
        return homes[0][2]

    def target_output(self, manifest: str, key: str) -> str | None:
        return self._targets(manifest).get(key)

    def targets_of(self, key: str) -> list[tuple[str, str]]:
        ordered = sorted(self._manifests.items(), key=lambda item: (item[1].created_at, item[0]))
        return [(name, m.targets[key]) for name, m in ordered if key in m.targets]

    def _done_targets(self, manifest: str) -> Iterator[tuple[JobRecord, str]]:
        for row in self._scope(manifest):
            if row.job.state is JobState.DONE and row.job.path is not None:
                yield row.job, self._targets(manifest)[row.job.key]

    def misplaced(self, manifest: str, folder: str, *, limit: int | None = None) -> list[tuple[str, str, str]]:
        found = [(job.key, job.path or "", output) for job, output in self._done_targets(manifest)
                 if (job.path or "").startswith(folder) and job.path != folder + output]
        return found if limit is None else found[:limit]

    def misplaced_count(self, manifest: str, folder: str) -> int:
        return len(self.misplaced(manifest, folder))

    def stored_elsewhere(self, manifest: str, folder: str) -> Iterator[tuple[str, str, str, str]]:
        for job, output in self._done_targets(manifest):
            if not (job.path or "").startswith(folder):
                yield job.key, job.path or "", output, job.sha256 or ""

    def paths_with_sha256(self, sha256: str) -> list[str]:
        return [r.job.path for r in self._rows.values()
                if r.job.sha256 == sha256 and r.job.state is JobState.DONE and r.job.path is not None]

    def key_at_path(self, path: str) -> str | None:
        return next((r.job.key for r in self._rows.values() if r.job.path == path), None)

    def debug_info(self, key: str) -> dict[str, Any]:
        row = self._rows.get(key)
        return {} if row is None or row.debug is None else copy.deepcopy(row.debug)

    def find_keys(self, prefix: str, *, limit: int = 10) -> list[str]:
        return sorted(k for k in self._rows if k.startswith(prefix))[:limit]

    def key_of_task(self, task_id: str) -> str | None:
        found = next((r.job.key for r in self._rows.values() if r.job.task_id == task_id), None)
        return found or next((a.key for a in self._attempts if a.task_id == task_id), None)

    def not_found_keys(self) -> set[str]:
        return {a.key for a in self._attempts if a.outcome == "not_found"
                and self._rows[a.key].job.state in (JobState.RUNNING, JobState.SUCCEEDED)}

    def attempts(self, key: str) -> list[AttemptRecord]:
        return [a for a in self._attempts if a.key == key]

    # ------------------------------------------------------------ meta, runs

    def meta(self, key: str) -> str | None:
        return self._meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        self._meta[key] = value

    def start_run(self, *, argv: list[str]) -> int:
        run = RunRecord(id=len(self._runs) + 1, pid=os.getpid(), host=socket.gethostname(), argv=list(argv),
                        started_at=self._clock(), ended_at=None, exit_code=None, counts=None)
        self._runs.append(run)
        self._run_id = run.id
        return run.id

    def finish_run(self, run_id: int, *, exit_code: int, counts: dict[str, int]) -> None:
        if not 1 <= run_id <= len(self._runs):
            raise LedgerError(f"unknown run {run_id}; this is a bug in runner")
        self._runs[run_id - 1] = replace(self._runs[run_id - 1], ended_at=self._clock(), exit_code=exit_code,
                                         counts=dict(counts))

    def runs(self, *, limit: int = 20) -> list[RunRecord]:
        return list(reversed(self._runs))[:limit]

    # ------------------------------------------------------- owners, leases

    def _live(self, owner: str | None, caller: str) -> bool:
        if owner is None:
            return False
        if owner in (self._owner, caller):
            return True
        lease = self._leases.get(owner)
        return lease is not None and lease.expires_at > self._clock()

    def renew_lease(self, owner: str, *, ttl: float = LEASE_TTL_S) -> bool:
        now = self._clock()
        lease = self._leases.get(owner)
        if lease is not None and owner != self._owner and lease.expires_at <= now:
            return False
        self._leases[owner] = _Lease(now, now + ttl)
        return True

    def claim_pending(self, n: int, owner: str, *, manifest: str | None = None) -> list[JobRecord]:
        claimed: list[JobRecord] = []
        for row in self._scope(manifest):
            if len(claimed) >= n:
                break
            job = row.job
            if job.state is JobState.PENDING and (job.owner is None or (job.owner != owner
                                                                        and not self._live(job.owner, owner))):
                row.job = replace(job, owner=owner)
                claimed.append(self._record(row, None))
        return claimed

    def release_claims(self, owner: str) -> int:
        released = 0
        for row in self._rows.values():
            if row.job.owner == owner and row.job.state is JobState.PENDING:
                row.job = replace(row.job, owner=None)
                released += 1
        return released

    def recover_expired(self, owner: str) -> int:
        self.apply_rescue()
        now, doubted = self._clock(), 0
        for row in sorted(self._rows.values(), key=lambda r: r.id):
            job = row.job
            if self._live(job.owner, owner):
                continue
            if job.state is JobState.SUBMITTING:
                for i, a in enumerate(self._attempts):
                    if a.key == job.key and a.kind == "submit" and a.ended_at is None:
                        self._attempts[i] = replace(a, ended_at=now, outcome="interrupted",
                                                    detail="the runner stopped while this request may have been on the wire")
                row.job = replace(job, state=JobState.IN_DOUBT, updated_at=now, reason="INTERRUPTED", owner=None,
                                  error="interrupted while submitting: the request may have created a paid task")
                doubted += 1
            elif job.state in (JobState.RUNNING, JobState.SUCCEEDED):
                row.job = replace(job, owner=owner)
            elif job.state is JobState.PENDING and job.owner is not None:
                row.job = replace(job, owner=None)
        return doubted

    def apply_rescue(self) -> int:
        applied = 0
        for entry in rescue.pending_entries(self.state_dir):
            row = self._rows.get(entry.key)
            moved = row is not None and row.job.state is JobState.SUBMITTING
            if row is not None and moved:
                now = self._clock()
                row.job = replace(row.job, state=JobState.RUNNING, task_id=entry.task_id, error=None, reason=None,
                                  updated_at=now)
                for i, a in enumerate(self._attempts):
                    if a.key == entry.key and a.kind == "submit" and a.ended_at is None:
                        self._attempts[i] = replace(a, ended_at=now, outcome="accepted", task_id=entry.task_id,
                                                    detail=f"recorded from {rescue.RESCUE_NAME}")
            applied += int(moved)
            with contextlib.suppress(OSError):
                rescue.mark_consumed(self.state_dir, entry, at=self._clock(), outcome="running" if moved else "stale")
        return applied

    def rescue_task_id(self, key: str, attempt_id: int, task_id: str) -> bool:
        entry = rescue.RescueEntry(key=key, task_id=task_id, attempt=attempt_id, at=self._clock())
        return rescue.append_entry(self.state_dir, entry)

    # ----------------------------------------------------------- transitions

    def _row(self, key: str) -> _Row:
        row = self._rows.get(key)
        if row is None:
            raise LedgerError(f"unknown job {key}; this is a bug in runner")
        return row

    def _move(self, key: str, sources: tuple[JobState, ...], target: JobState, **changes: Any) -> bool:
        row = self._row(key)
        if row.job.state not in sources:
            return False
        debug = changes.pop("debug", row.debug) if "debug" in changes else row.debug
        row.debug = debug
        row.job = replace(row.job, state=target, updated_at=self._clock(), **changes)
        return True

    def _open_attempt(self, key: str, attempt_id: int) -> int:
        for i, a in enumerate(self._attempts):
            if a.id == attempt_id and a.key == key and a.kind == "submit" and a.ended_at is None:
                return i
        raise LedgerError(f"attempt {attempt_id} is not an open submit of job {key}; this is a bug in runner")

    def _close_attempt(self, key: str, attempt_id: int, outcome: str, **fields: Any) -> None:
        i = self._open_attempt(key, attempt_id)
        self._attempts[i] = replace(self._attempts[i], ended_at=self._clock(), outcome=outcome,
                                    task_id=fields.get("task_id"), http_status=fields.get("http_status"),
                                    detail=fields.get("detail"))

    def _add_attempt(self, key: str, kind: str, *, ended: bool, outcome: str | None = None,
                     task_id: str | None = None, http_status: int | None = None, detail: str | None = None,
                     run_id: int | None = None) -> int:
        now = self._clock()
        attempt = AttemptRecord(id=len(self._attempts) + 1, key=key, kind=kind, started_at=now,
                                ended_at=now if ended else None, outcome=outcome, task_id=task_id,
                                http_status=http_status, detail=detail,
                                run_id=run_id if run_id is not None else self._run_id)
        self._attempts.append(attempt)
        return attempt.id

    def mark_submitting(self, key: str, *, run_id: int | None = None, owner: str | None = None) -> int | None:
        owner = self._owner if owner is None else owner
        row = self._row(key)
        holder = row.job.owner
        if holder is not None and holder != owner and self._live(holder, owner):
            return None
        now = self._clock()
        if not self._move(key, (JobState.PENDING,), JobState.SUBMITTING, attempts=row.job.attempts + 1,
                          submitted_at=now, owner=owner,
                          spent_usd=round(row.job.spent_usd + row.job.estimated_usd, 9)):
            return None
        return self._add_attempt(key, "submit", ended=False, run_id=run_id)

    def adopt_task(self, key: str, task_id: str, *, detail: str) -> bool:
        if not self._move(key, (JobState.IN_DOUBT,), JobState.RUNNING, task_id=task_id, error=None, reason=None,
                          owner=self._owner):
            return False
        self._add_attempt(key, "submit", ended=True, outcome="adopted", task_id=task_id, detail=detail)
        return True

    def reopen_lost(self, key: str, *, detail: str) -> bool:
        if not self._move(key, (JobState.LOST,), JobState.RUNNING, error=None, reason=None, finished_at=None,
                          video_url=None, url_expires_at=None, owner=self._owner):
            return False
        self._add_attempt(key, "poll", ended=True, outcome="found", task_id=self._rows[key].job.task_id, detail=detail)
        return True

    def mark_running(self, key: str, attempt_id: int, *, task_id: str, http_status: int | None) -> bool:
        if self._row(key).job.state is not JobState.SUBMITTING:
            return False
        self._open_attempt(key, attempt_id)
        self._move(key, (JobState.SUBMITTING,), JobState.RUNNING, task_id=task_id, error=None, reason=None)
        self._close_attempt(key, attempt_id, "accepted", task_id=task_id, http_status=http_status)
        return True

    def mark_refused(self, key: str, attempt_id: int, *, http_status: int | None, reason: str | None, message: str,
                     permanent: bool) -> bool:
        row = self._row(key)
        if row.job.state is not JobState.SUBMITTING:
            return False
        self._open_attempt(key, attempt_id)
        extra: dict[str, Any] = {"finished_at": self._clock()} if permanent else {}
        self._move(key, (JobState.SUBMITTING,), JobState.FAILED if permanent else JobState.PENDING,
                   spent_usd=max(0.0, round(row.job.spent_usd - row.job.estimated_usd, 9)), error=message,
                   reason=reason, owner=None, **extra)
        self._close_attempt(key, attempt_id, "rejected" if permanent else "refused", http_status=http_status,
                            detail=message)
        return True

    def mark_in_doubt(self, key: str, attempt_id: int, *, http_status: int | None, reason: str | None,
                      message: str) -> bool:
        if self._row(key).job.state is not JobState.SUBMITTING:
            return False
        self._open_attempt(key, attempt_id)
        self._move(key, (JobState.SUBMITTING,), JobState.IN_DOUBT, error=message, reason=reason, owner=None)
        self._close_attempt(key, attempt_id, "ambiguous", http_status=http_status, detail=message)
        return True

    def mark_succeeded(self, key: str, *, video_url: str, url_expires_at: float | None,
                       debug: dict[str, Any]) -> bool:
        return self._move(key, (JobState.RUNNING, JobState.SUCCEEDED), JobState.SUCCEEDED, video_url=video_url,
                          url_expires_at=url_expires_at, error=None, reason=None,
                          debug=json.loads(json.dumps(debug, sort_keys=True, default=str)))

    def mark_failed(self, key: str, *, reason: str) -> bool:
        if not self._move(key, (JobState.RUNNING,), JobState.FAILED, error=reason, reason=reason,
                          finished_at=self._clock(), owner=None):
            return False
        self._add_attempt(key, "poll", ended=True, outcome="failed", task_id=self._rows[key].job.task_id, detail=reason)
        return True

    def mark_done(self, key: str, *, path: str, sha256: str, bytes: int) -> bool:
        return self._move(key, (JobState.SUCCEEDED,), JobState.DONE, path=path, sha256=sha256, bytes=bytes,
                          finished_at=self._clock(), error=None, reason=None, owner=None)

    def mark_lost(self, key: str, *, reason: str) -> bool:
        before = self._row(key).job.state
        if not self._move(key, (JobState.RUNNING, JobState.SUCCEEDED), JobState.LOST, error=reason,
                          finished_at=self._clock(), owner=None):
            return False
        self._add_attempt(key, "poll" if before is JobState.RUNNING else "download", ended=True, outcome="lost",
                          task_id=self._rows[key].job.task_id, detail=reason)
        return True

    def note_file_problem(self, key: str, detail: str) -> bool:
        if not self._move(key, (JobState.SUCCEEDED,), JobState.SUCCEEDED, error=detail, reason="FILE_ERROR"):
            return False
        self._add_attempt(key, "download", ended=True, outcome="file_error", task_id=self._rows[key].job.task_id,
                          detail=detail)
        return True

    def record_event(self, key: str, kind: str, outcome: str, *, http_status: int | None = None,
                     detail: str | None = None, task_id: str | None = None) -> None:
        if kind not in _EVENT_KINDS:
            raise LedgerError(f"unknown event kind {kind!r} (expected poll or download)")
        row = self._row(key)
        self._add_attempt(key, kind, ended=True, outcome=outcome, task_id=task_id or row.job.task_id,
                          http_status=http_status, detail=detail)

    def reset(self, manifest: str | None, state: JobState) -> int:
        if state not in (JobState.FAILED, JobState.IN_DOUBT):
            raise LedgerError(f"only failed or in_doubt jobs can be reset, not {state}")
        moved = 0
        for row in self._scope(manifest):
            moved += self._move(row.job.key, (state,), JobState.PENDING, **_CLEARED)
        return moved

    def retry_failed_job(self, key: str) -> bool:
        return self._move(key, (JobState.FAILED,), JobState.PENDING, **_CLEARED)

    # --------------------------------------------------------------- renames

    def journal_renames(self, steps: list[tuple[str, str, str]]) -> None:
        for key, src, dst in steps:
            self._row(key)
            self._renames[key] = (src, dst)

    def journaled_renames(self) -> list[tuple[str, str, str]]:
        return [(key, src, dst) for key, (src, dst) in sorted(self._renames.items())]

    def finish_rename(self, key: str, *, src: str, dst: str) -> bool:
        moved = self._row(key).job.path == src and self._move(key, (JobState.DONE,), JobState.DONE, path=dst)
        self._renames.pop(key, None)
        return moved

    def forget_rename(self, key: str) -> None:
        self._renames.pop(key, None)

    # ------------------------------------------------------------ unsent work

    def fail_unsent(self, key: str, *, reason: str) -> bool:
        return self._move(key, (JobState.PENDING,), JobState.FAILED, error=reason, reason="INPUT_CHANGED",
                          finished_at=self._clock(), owner=None)
