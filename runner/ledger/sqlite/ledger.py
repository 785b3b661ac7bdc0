"""The SQLite ledger: one file per state directory, one writer at a time (its lock).

:class:`SqliteLedger` implements :class:`~runner.ledger.api.LedgerBackend` (read that module for
the rules every backend follows). Jobs are keyed by their job key and shared across manifests:
two manifests asking for the same video pay once; a manifest only *targets* jobs, giving each an
output name. Nothing here ever takes the API key.

This module holds the one class: its life cycle, and one method per protocol verb delegating in one
line to a helper module (listed in :mod:`runner.ledger.sqlite`; transitions in :mod:`.transitions`). A verb's
contract is documented once, on the protocol (``runner/ledger/api_*.py``); a docstring here adds SQLite's own.

Owners: ``jobs.owner`` names who claimed a pending job or owns its in-flight work; ``leases`` holds
leases, counted only if renewed since this ledger was opened (the lock proves earlier owners dead).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from runner.boot import this_boot
from runner.jobs import JobSpec, JobState
from runner.ledger.api import LEASE_TTL_S, Budget, Clock
from runner.ledger.bucket import TokenBuckets
from runner.ledger.connection import Connection
from runner.ledger.lock import LOCK_NAME, LedgerLock
from runner.ledger.records import AttemptRecord, JobRecord, RejectionRecord, RunRecord, RunSummary
from runner.ledger.sqlite import (
    files,
    history,
    identity,
    owners,
    planning,
    reads,
    replay,
    review,
    runs,
    spend,
    transitions,
)
from runner.ledger.sqlite.identity import RESCUE_PREFIX

__all__ = ["DB_NAME", "LOCK_NAME", "PROVIDER_MARK", "RESCUE_PREFIX", "SqliteLedger"]

DB_NAME = "ledger.db"
PROVIDER_MARK = "provider"  # "simulator" or "novita": the kind of provider, beside the ledger


class SqliteLedger:
    """One state directory's ledger (get it with :func:`open_ledger`); one thread at a time; closing releases the lock."""

    def __init__(self, conn: Connection, *, state_dir: Path, lock: LedgerLock | None, clock: Clock) -> None:
        self._conn = conn
        self._lock = lock
        self._clock = clock
        self.boot = this_boot  # this boot's steady clock: it stamps each write-ahead, whence a hold in doubt is timed
        self._run_id: int | None = None
        self._closed = False
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._opened_at = clock()  # leases renewed before this belong to earlier processes: expired
        self._buckets = TokenBuckets()
        self.state_dir = state_dir
        self.path = conn.file
        self.created = conn.created  # this open made a new ledger
        self.rescued: Path | None = None  # where close() saved a copy of a ledger removed under us
        self._identity = None if conn.readonly else identity.file_id(self.path)

    # ------------------------------------------------------------ life cycle

    @property
    def readonly(self) -> bool:
        return self._conn.readonly

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def owner(self) -> str:
        return self._owner

    def check_identity(self) -> None:
        """Raise :class:`LedgerReplaced` if ``ledger.db`` is no longer the file this ledger has open."""
        identity.check(self.path, self._identity, self.state_dir)

    def close(self) -> None:
        """Close and unlock (idempotent); a ``ledger.db`` replaced meanwhile is first saved as :attr:`rescued`."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._identity is not None and identity.file_id(self.path) != self._identity:
                self.rescued = identity.save_copy(self._conn, self.path, self.state_dir, self._clock, self._identity)
            self._conn.close()
        finally:
            if self._lock is not None:
                self._lock.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "read-only" if self.readonly else "writable"
        return f"<SqliteLedger {self.path} {mode}{' closed' if self._closed else ''}>"

    # -------------------------------------------------------------- planning

    def manifest_digest(self, name: str) -> str | None:
        return reads.manifest_digest(self._conn, name)

    def register(self, name: str, digest: str, jobs: Iterable[JobSpec], *, batch: int = 2000,
                 salt: str | None = None) -> int:
        return planning.register(self._conn, name, digest, jobs, batch=batch, now=self._clock(), salt=salt)

    # ----------------------------------------------------------------- reads

    def counts(self, manifest: str | None = None) -> dict[JobState, int]:
        return reads.counts(self._conn, manifest)

    def total(self, manifest: str | None = None) -> int:
        return reads.total(self._conn, manifest)

    def iter_jobs(self, manifest: str | None = None, states: Collection[JobState] | None = None) -> Iterator[JobRecord]:
        return reads.iter_jobs(self._conn, manifest, states)

    def get(self, key: str, manifest: str | None = None) -> JobRecord | None:
        return reads.get(self._conn, key, manifest)

    def pending_batch(self, manifest: str | None, *, limit: int, after_rowid: int = 0) -> list[tuple[int, JobRecord]]:
        return reads.page(self._conn, manifest, JobState.PENDING, after=after_rowid, limit=limit)

    def states_of(self, keys: Sequence[str]) -> dict[str, JobState]:
        return reads.states_of(self._conn, keys)

    def stored_paths(self, keys: Sequence[str]) -> dict[str, str]:
        return files.stored_paths(self._conn, keys)

    def target_output(self, manifest: str, key: str) -> str | None:
        return reads.target_output(self._conn, manifest, key)

    def targets_of(self, key: str) -> list[tuple[str, str]]:
        return reads.targets_of(self._conn, key)

    def get_with_targets(self, key: str) -> tuple[JobRecord, list[tuple[str, str]]] | None:
        return reads.with_targets(self._conn, key)

    def outstanding(self, *, in_doubt_hold_s: float = 0.0) -> int:
        return reads.outstanding(self._conn, self._clock() - in_doubt_hold_s if in_doubt_hold_s else None)

    def has_provider_tasks(self) -> bool:
        return reads.has_provider_tasks(self._conn)

    def spent_usd(self, manifest: str | None = None) -> float:
        return spend.spent_usd(self._conn, manifest)

    def dropped_spent_usd(self, manifest: str) -> float:
        return spend.dropped_spent_usd(self._conn, manifest)

    def orphans(self, manifest: str | None = None) -> dict[JobState, int]:
        return spend.orphans(self._conn, manifest)

    def orphan_keys(self, manifest: str, state: JobState) -> list[str]:
        """Jobs in ``state`` that ``manifest`` once targeted and that no manifest lists any more."""
        return spend.orphan_keys(self._conn, manifest, state)

    def orphan_home(self, key: str) -> str | None:
        return spend.orphan_home(self._conn, key)

    def misplaced(self, manifest: str, folder: str, *, limit: int | None = None) -> list[tuple[str, str, str]]:
        """Done jobs of ``manifest`` recorded under ``folder`` at another path than ``folder + output``."""
        return files.misplaced(self._conn, manifest, folder, limit)

    def misplaced_count(self, manifest: str, folder: str) -> int:
        return files.misplaced_count(self._conn, manifest, folder)

    def stored_elsewhere(self, manifest: str, folder: str) -> Iterator[tuple[str, str, str, str]]:
        return files.stored_elsewhere(self._conn, manifest, folder)

    def done_files(self, manifest: str | None) -> Iterator[tuple[str, float | None]]:
        return files.done_files(self._conn, manifest)

    def recorded_paths(self) -> Iterator[str]:
        return files.recorded_paths(self._conn)

    def paths_with_sha256(self, sha256: str) -> list[str]:
        """Recorded paths of done jobs whose video has this sha256 (a full scan: for rare checks)."""
        return files.paths_with_sha256(self._conn, sha256)

    def key_at_path(self, path: str) -> str | None:
        return files.key_at_path(self._conn, path)

    def estimate_usd(self, manifest: str | None = None, states: Collection[JobState] | None = None) -> float:
        return spend.sum_of(self._conn, "estimated_usd", manifest, states)

    def debug_info(self, key: str) -> dict[str, Any]:
        return reads.debug_info(self._conn, key)

    def find_keys(self, prefix: str, *, limit: int = 10) -> list[str]:
        """Up to ``limit`` job keys starting with ``prefix``, sorted (an index range scan)."""
        return reads.find_keys(self._conn, prefix, limit)

    def key_of_task(self, task_id: str) -> str | None:
        return reads.key_of_task(self._conn, task_id)

    def not_found_keys(self) -> set[str]:
        return reads.not_found_keys(self._conn)

    def attempts(self, key: str) -> list[AttemptRecord]:
        return reads.attempts(self._conn, key)

    def spend_by_model(self, manifest: str | None = None) -> dict[str, float]:
        return history.spend_by_model(self._conn, manifest)

    def run_history(self, manifest: str | None = None, *, limit: int = 20) -> list[RunSummary]:
        return history.run_history(self._conn, manifest, limit)

    # ------------------------------------------------------------- meta, runs

    def meta(self, key: str) -> str | None:
        return runs.meta(self._conn, key)

    def set_meta(self, key: str, value: str) -> None:
        runs.set_meta(self._conn, key, value)

    def start_run(self, *, argv: list[str]) -> int:
        """Record this process as a run; later submits and events refer to it."""
        self._run_id = runs.start_run(self._conn, self._clock(), argv)
        return self._run_id

    def finish_run(self, run_id: int, *, exit_code: int, counts: dict[str, int]) -> None:
        runs.finish_run(self._conn, self._clock(), run_id, exit_code=exit_code, counts=counts)

    def runs(self, *, limit: int = 20) -> list[RunRecord]:
        return runs.runs(self._conn, limit)

    # ------------------------------------------------------- owners, leases

    def _owned(self, caller: str) -> dict[str, Any]:
        """The parameters of :data:`~runner.ledger.sqlite.moves.LIVE`."""
        return {"me": self._owner, "caller": caller, "now": self._clock(), "opened": self._opened_at}

    def renew_lease(self, owner: str, *, ttl: float = LEASE_TTL_S) -> bool:
        """Take or extend ``owner``'s lease until now + ``ttl``; False (nothing written) if it had expired."""
        return owners.renew(self._conn, self._owned(owner), owner, ttl)

    def claim_pending(self, n: int, owner: str, *, manifest: str | None = None) -> list[JobRecord]:
        """Claim up to ``n`` pending jobs no live owner holds, in planning order, atomically."""
        rows = owners.claim(self._conn, self._owned(owner), n, manifest)
        with reads.readable(self._conn, "a job"):
            return [JobRecord.from_row(row) for row in rows]

    def release_claims(self, owner: str) -> int:
        return owners.release(self._conn, owner)

    def recover_expired(self, owner: str) -> int:
        """Take over the work of expired owners (:func:`owners.recover`); returns how many became ``in_doubt``. Task
        ids of the rescue journal are recorded first (:meth:`apply_rescue`)."""
        self.apply_rescue()
        return owners.recover(self._conn, self._owned(owner))

    def apply_rescue(self) -> int:
        """Record the task ids of the rescue journal; returns how many (:func:`replay.apply_rescue`)."""
        return replay.apply_rescue(self._conn, self.state_dir, self._clock, self._run_id)

    def rescue_task_id(self, key: str, attempt_id: int, task_id: str) -> bool:
        return replay.rescue_task_id(self.state_dir, self._clock(), key, attempt_id, task_id)

    def take_token(self, bucket: str, *, per_minute: float) -> float:
        """One token of the rate bucket ``bucket``: one runner, so the bucket is this process's."""
        return self._buckets.take(bucket, per_minute)

    # ----------------------------------------------------------- transitions

    def mark_submitting(self, key: str, *, run_id: int | None = None, owner: str | None = None, max_outstanding:
                        int | None = None, in_doubt_hold_s: float = 0.0, budget: Budget | None = None) -> int | None:
        """pending → submitting, before the POST; reserves the estimate; the attempt id, or ``None`` (see the protocol)."""
        self.check_identity()
        if ((max_outstanding is not None and self.outstanding(in_doubt_hold_s=in_doubt_hold_s) >= max_outstanding)
                or (budget is not None and not spend.within_budget(self._conn, key, *budget))):
            return None
        live = self._owned(self._owner if owner is None else owner)
        return transitions.mark_submitting(self._conn, live, key, run_id if run_id is not None else self._run_id, self.boot)

    def mark_submitting_many(self, keys: Sequence[str]) -> list[int | None]:
        """Several write-aheads in one durable transaction (see the protocol)."""
        self.check_identity()
        return transitions.mark_submitting_many(self._conn, self._owned(self._owner), keys, self._run_id, self.boot)

    def adopt_task(self, key: str, task_id: str, *, detail: str) -> bool:
        """in_doubt → running: an operator attached ``task_id``, verified at the provider (``runner adopt``)."""
        return transitions.adopt_task(self._conn, self._clock(), key, task_id, detail=detail, owner=self._owner,
                                      run_id=self._run_id)

    def adopt_file(self, key: str, *, path: str, sha256: str, bytes: int, detail: str) -> bool:
        """pending → done from a video already at ``path`` (``runner adopt --file``: see the protocol)."""
        return transitions.adopt_file(self._conn, self._owned(self._owner), key, path=path, sha256=sha256, size=bytes,
                                      detail=detail, run_id=self._run_id)

    def reopen_lost(self, key: str, *, detail: str) -> bool:
        """lost → running: the provider answered for the task again (``runner retry --lost``)."""
        return transitions.reopen_lost(self._conn, self._clock(), key, detail=detail, owner=self._owner,
                                       run_id=self._run_id)

    def mark_running(self, key: str, attempt_id: int, *, task_id: str, http_status: int | None) -> bool:
        """submitting → running, or :class:`~runner.errors.TaskIdTaken` (nothing written): see the protocol."""
        return transitions.mark_running(self._conn, self._clock(), key, attempt_id, task_id=task_id, http_status=http_status)

    def mark_refused(self, key: str, attempt_id: int, *, http_status: int | None, reason: str | None, message: str,
                     permanent: bool) -> bool:
        """submitting → pending (may be retried) or failed (``permanent``); no task was created."""
        return transitions.mark_refused(self._conn, self._clock(), key, attempt_id, http_status=http_status,
                                        reason=reason, message=message, permanent=permanent)

    def mark_in_doubt(self, key: str, attempt_id: int, *, http_status: int | None, reason: str | None, message: str) -> bool:
        """submitting → in_doubt: a paid task may exist; the reservation stays."""
        return transitions.mark_in_doubt(self._conn, self._clock(), key, attempt_id, http_status=http_status,
                                         reason=reason, message=message)

    def mark_succeeded(self, key: str, *, video_url: str, url_expires_at: float | None, debug: dict[str, Any],
                       task_id: str | None = None) -> bool:
        """running → succeeded (or succeeded → succeeded with a fresh URL); ``task_id``: see the protocol."""
        return transitions.mark_succeeded(self._conn, self._clock(), key, video_url=video_url,
                                          url_expires_at=url_expires_at, debug=debug, task_id=task_id)

    def mark_failed(self, key: str, *, reason: str) -> bool:
        return transitions.mark_failed(self._conn, self._clock(), key, reason=reason, run_id=self._run_id)

    def mark_done(self, key: str, *, path: str, sha256: str, bytes: int) -> bool:
        """succeeded → done: the verified file is in place at ``path`` (relative to the state dir)."""
        return transitions.mark_done(self._conn, self._clock(), key, path=path, sha256=sha256, bytes=bytes)

    def mark_lost(self, key: str, *, reason: str) -> bool:
        return transitions.mark_lost(self._conn, self._clock(), key, reason=reason, run_id=self._run_id)

    def note_file_problem(self, key: str, detail: str) -> bool:
        return transitions.note_file_problem(self._conn, self._clock(), key, detail, run_id=self._run_id)

    def record_event(self, key: str, kind: str, outcome: str, *, http_status: int | None = None,
                     detail: str | None = None, task_id: str | None = None) -> None:
        transitions.record_event(self._conn, self._clock(), key, kind, outcome, run_id=self._run_id,
                                 http_status=http_status, detail=detail, task_id=task_id)

    def reset(self, manifest: str | None, state: JobState, keys: Sequence[str] | None = None) -> int:
        return transitions.reset(self._conn, self._clock(), manifest, state, keys)

    def retry_failed_job(self, key: str) -> bool:
        return transitions.retry_failed_job(self._conn, self._clock(), key)

    def fail_unsent(self, key: str, *, reason: str) -> bool:
        return transitions.fail_unsent(self._conn, self._clock(), key, reason=reason)

    # ---------------------------------------------------------------- review (:mod:`.review`)

    def reject(self, key: str, *, reason: str) -> bool:
        return review.reject(self._conn, self._clock(), key, reason)

    def accept(self, key: str) -> bool:
        return review.accept(self._conn, self._clock(), key)

    def requeue_rejected(self, key: str, *, kept_path: str) -> bool:
        return review.requeue_rejected(self._conn, self._clock(), key, kept_path)

    def restore_file(self, key: str, *, path: str, sha256: str, bytes: int) -> bool:
        return review.restore_file(self._conn, self._clock(), key, path, sha256, bytes)

    def rejections(self, key: str) -> list[RejectionRecord]:
        return review.rejections(self._conn, key)

    def review_counts(self, manifest: str | None = None) -> dict[str, int]:
        return review.review_counts(self._conn, manifest)

    def rejected_keys(self, manifest: str) -> list[str]:
        return review.rejected_keys(self._conn, manifest)

    # --------------------------------------------------------------- renames

    def journal_renames(self, steps: list[tuple[str, str, str]]) -> None:
        files.journal_renames(self._conn, steps)

    def journaled_renames(self) -> list[tuple[str, str, str]]:
        return files.journaled_renames(self._conn)

    def finish_rename(self, key: str, *, src: str, dst: str) -> bool:
        return files.finish_rename(self._conn, self._clock(), key, src=src, dst=dst)

    def forget_rename(self, key: str) -> None:
        files.forget_rename(self._conn, key)
