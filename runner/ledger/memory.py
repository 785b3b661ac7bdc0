"""An in-memory ledger backend, for engine unit tests (like procrastinate's in-memory connector).

:class:`MemoryLedger` follows every rule of :mod:`runner.ledger.api` and passes the same contract
suite as the SQLite ledger, but keeps everything in dictionaries: nothing is durable, nothing is
locked (several "owners" in one process are simulated through the ``owner`` arguments). Its own
:attr:`~MemoryLedger.owner` is live while it exists, as the SQLite ledger's is while it holds the
lock. Not for production: a crash loses everything it held.

This module holds the one class; its tables and planning are :mod:`runner.ledger.memory_tables`,
the longer reads :mod:`runner.ledger.memory_reads`, owners and the rescue journal
:mod:`runner.ledger.memory_owners`, the transitions and renames :mod:`runner.ledger.memory_moves`, the review (reject, accept,
regenerate) :mod:`runner.ledger.memory_review`.
"""

from __future__ import annotations

import copy
import os
import socket
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from runner.errors import LedgerError
from runner.jobs import JobSpec, JobState
from runner.ledger import memory_history as history
from runner.ledger import memory_moves as moves
from runner.ledger import memory_owners as owners
from runner.ledger import memory_reads as reads
from runner.ledger import memory_review as review
from runner.ledger import rescue
from runner.ledger.api import LEASE_TTL_S, Budget, Clock
from runner.ledger.bucket import TokenBuckets
from runner.ledger.memory_tables import Tables, register, scope, targets
from runner.ledger.records import AttemptRecord, JobRecord, RejectionRecord, RunRecord, RunSummary

__all__ = ["MemoryLedger"]


class MemoryLedger:
    """Jobs, targets, attempts, runs and owners in memory; see :mod:`runner.ledger.api` for the rules."""

    def __init__(self, *, state_dir: Path | str = ".", clock: Clock = time.time) -> None:
        self.state_dir = Path(state_dir)
        self._clock = clock
        self._owner = f"{socket.gethostname()}:{os.getpid()}:memory-{id(self):x}"
        self._t = Tables(state_dir=self.state_dir, clock=clock, owner=self._owner)
        self._buckets = TokenBuckets()  # one process: the rate bucket needs no store

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
        found = self._t.manifests.get(name)
        return None if found is None else found.digest

    def register(self, name: str, digest: str, jobs: Iterable[JobSpec], *, batch: int = 2000,
                 salt: str | None = None) -> int:  # an in-memory ledger holds no job planned before NFC
        return register(self._t, name, digest, jobs, batch=batch)

    # ----------------------------------------------------------------- reads

    def get(self, key: str, manifest: str | None = None) -> JobRecord | None:
        return reads.get(self._t, key, manifest)

    def iter_jobs(
        self, manifest: str | None = None, states: Collection[JobState] | None = None
    ) -> Iterator[JobRecord]:
        return reads.iter_jobs(self._t, manifest, states)

    def pending_batch(
        self, manifest: str | None, *, limit: int, after_rowid: int = 0
    ) -> list[tuple[int, JobRecord]]:
        return reads.pending_batch(self._t, manifest, limit, after_rowid)

    def states_of(self, keys: Sequence[str]) -> dict[str, JobState]:
        return {k: self._t.rows[k].job.state for k in keys if k in self._t.rows}

    def stored_paths(self, keys: Sequence[str]) -> dict[str, str]:
        return reads.stored_paths(self._t, keys)

    def counts(self, manifest: str | None = None) -> dict[JobState, int]:
        counts = dict.fromkeys(JobState, 0)
        for row in scope(self._t, manifest):
            counts[row.job.state] += 1
        return counts

    def total(self, manifest: str | None = None) -> int:
        return len(self._t.rows) if manifest is None else len(targets(self._t, manifest))

    def outstanding(self, *, in_doubt_hold_s: float = 0.0) -> int:
        return reads.outstanding(self._t, self._clock() - in_doubt_hold_s if in_doubt_hold_s else None)

    def has_provider_tasks(self) -> bool:
        return any(a.kind == "submit" and a.outcome not in ("refused", "rejected") for a in self._t.attempts)

    def spent_usd(self, manifest: str | None = None) -> float:
        return reads.spent_usd(self._t, manifest)

    def dropped_spent_usd(self, manifest: str) -> float:
        return reads.spent_usd(self._t, manifest, dropped=True)

    def estimate_usd(self, manifest: str | None = None, states: Collection[JobState] | None = None) -> float:
        return reads.estimate_usd(self._t, manifest, states)

    def orphans(self, manifest: str | None = None) -> dict[JobState, int]:
        return reads.orphans(self._t, manifest)

    def orphan_home(self, key: str) -> str | None:
        return reads.orphan_home(self._t, key)

    def target_output(self, manifest: str, key: str) -> str | None:
        return targets(self._t, manifest).get(key)

    def targets_of(self, key: str) -> list[tuple[str, str]]:
        return reads.targets_of(self._t, key)

    def get_with_targets(self, key: str) -> tuple[JobRecord, list[tuple[str, str]]] | None:
        return None if (job := self.get(key)) is None else (job, self.targets_of(key))

    def misplaced(self, manifest: str, folder: str, *, limit: int | None = None) -> list[tuple[str, str, str]]:
        return reads.misplaced(self._t, manifest, folder, limit)

    def misplaced_count(self, manifest: str, folder: str) -> int:
        return len(self.misplaced(manifest, folder))

    def stored_elsewhere(self, manifest: str, folder: str) -> Iterator[tuple[str, str, str, str]]:
        return reads.stored_elsewhere(self._t, manifest, folder)

    def done_files(self, manifest: str | None) -> Iterator[tuple[str, float | None]]:
        return reads.done_files(self._t, manifest)

    def recorded_paths(self) -> Iterator[str]:
        return iter(sorted(r.job.path for r in self._t.rows.values() if r.job.path is not None))

    def paths_with_sha256(self, sha256: str) -> list[str]:
        return reads.paths_with_sha256(self._t, sha256)

    def key_at_path(self, path: str) -> str | None:
        return next((r.job.key for r in self._t.rows.values() if r.job.path == path), None)

    def debug_info(self, key: str) -> dict[str, Any]:
        row = self._t.rows.get(key)
        return {} if row is None or row.debug is None else copy.deepcopy(row.debug)

    def find_keys(self, prefix: str, *, limit: int = 10) -> list[str]:
        return sorted(k for k in self._t.rows if k.startswith(prefix))[:limit]

    def key_of_task(self, task_id: str) -> str | None:
        return reads.key_of_task(self._t, task_id)

    def not_found_keys(self) -> set[str]:
        return reads.not_found_keys(self._t)

    def attempts(self, key: str) -> list[AttemptRecord]:
        return [a for a in self._t.attempts if a.key == key]

    # ------------------------------------------------------------ meta, runs

    def meta(self, key: str) -> str | None:
        return self._t.meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        self._t.meta[key] = value

    def start_run(self, *, argv: list[str]) -> int:
        run = RunRecord(id=len(self._t.runs) + 1, pid=os.getpid(), host=socket.gethostname(), argv=list(argv),
                        started_at=self._clock(), ended_at=None, exit_code=None, counts=None)
        self._t.runs.append(run)
        self._t.run_id = run.id
        return run.id

    def finish_run(self, run_id: int, *, exit_code: int, counts: dict[str, int]) -> None:
        if not 1 <= run_id <= len(self._t.runs):
            raise LedgerError(f"unknown run {run_id}; this is a bug in runner")
        self._t.runs[run_id - 1] = replace(self._t.runs[run_id - 1], ended_at=self._clock(), exit_code=exit_code,
                                           counts=dict(counts))

    def runs(self, *, limit: int = 20) -> list[RunRecord]:
        return list(reversed(self._t.runs))[:limit]

    # ------------------------------------------------------- owners, leases

    def renew_lease(self, owner: str, *, ttl: float = LEASE_TTL_S) -> bool:
        return owners.renew(self._t, owner, ttl)

    def claim_pending(self, n: int, owner: str, *, manifest: str | None = None) -> list[JobRecord]:
        return owners.claim(self._t, n, owner, manifest)

    def release_claims(self, owner: str) -> int:
        return owners.release(self._t, owner)

    def recover_expired(self, owner: str) -> int:
        self.apply_rescue()
        return owners.recover(self._t, owner)

    def apply_rescue(self) -> int:
        return owners.apply_rescue(self._t)

    def rescue_task_id(self, key: str, attempt_id: int, task_id: str) -> bool:
        entry = rescue.RescueEntry(key=key, task_id=task_id, attempt=attempt_id, at=self._clock())
        return rescue.append_entry(self.state_dir, entry)

    # ----------------------------------------------------------- transitions

    def mark_submitting(self, key: str, *, run_id: int | None = None, owner: str | None = None,
                        max_outstanding: int | None = None, in_doubt_hold_s: float = 0.0,
                        budget: Budget | None = None) -> int | None:
        if max_outstanding is not None and self.outstanding(in_doubt_hold_s=in_doubt_hold_s) >= max_outstanding:
            return None
        if budget is not None and not reads.within_budget(self._t, key, *budget):
            return None
        return moves.mark_submitting(self._t, key, run_id, self._owner if owner is None else owner)

    def mark_submitting_many(self, keys: Sequence[str]) -> list[int | None]:
        return moves.mark_submitting_many(self._t, keys, None, self._owner)

    def take_token(self, bucket: str, *, per_minute: float) -> float:
        return self._buckets.take(bucket, per_minute)

    def adopt_task(self, key: str, task_id: str, *, detail: str) -> bool:
        return moves.adopt_task(self._t, key, task_id, detail)

    def adopt_file(self, key: str, *, path: str, sha256: str, bytes: int, detail: str) -> bool:
        return moves.adopt_file(self._t, key, path, sha256, bytes, detail)

    def reopen_lost(self, key: str, *, detail: str) -> bool:
        return moves.reopen_lost(self._t, key, detail)

    def mark_running(self, key: str, attempt_id: int, *, task_id: str, http_status: int | None) -> bool:
        return moves.mark_running(self._t, key, attempt_id, task_id, http_status)

    def mark_refused(self, key: str, attempt_id: int, *, http_status: int | None, reason: str | None, message: str,
                     permanent: bool) -> bool:
        return moves.mark_refused(self._t, key, attempt_id, http_status=http_status, reason=reason, message=message,
                                  permanent=permanent)

    def mark_in_doubt(self, key: str, attempt_id: int, *, http_status: int | None, reason: str | None,
                      message: str) -> bool:
        return moves.mark_in_doubt(self._t, key, attempt_id, http_status=http_status, reason=reason, message=message)

    def mark_succeeded(self, key: str, *, video_url: str, url_expires_at: float | None,
                       debug: dict[str, Any], task_id: str | None = None) -> bool:
        return moves.mark_succeeded(self._t, key, video_url, url_expires_at, debug, task_id)

    def mark_failed(self, key: str, *, reason: str) -> bool:
        return moves.mark_failed(self._t, key, reason)

    def mark_done(self, key: str, *, path: str, sha256: str, bytes: int) -> bool:
        return moves.mark_done(self._t, key, path, sha256, bytes)

    def mark_lost(self, key: str, *, reason: str) -> bool:
        return moves.mark_lost(self._t, key, reason)

    def note_file_problem(self, key: str, detail: str) -> bool:
        return moves.note_file_problem(self._t, key, detail)

    def record_event(self, key: str, kind: str, outcome: str, *, http_status: int | None = None,
                     detail: str | None = None, task_id: str | None = None) -> None:
        moves.record_event(self._t, key, kind, outcome, http_status=http_status, detail=detail, task_id=task_id)

    def reset(self, manifest: str | None, state: JobState, keys: Sequence[str] | None = None) -> int:
        return moves.reset(self._t, manifest, state, keys)

    def retry_failed_job(self, key: str) -> bool:
        return moves.retry_failed_job(self._t, key)


    # ---------------------------------------------------------------- review

    def reject(self, key: str, *, reason: str) -> bool:
        return review.reject(self._t, key, reason)

    def accept(self, key: str) -> bool:
        return review.accept(self._t, key)

    def requeue_rejected(self, key: str, *, kept_path: str) -> bool:
        return review.requeue_rejected(self._t, key, kept_path)

    def restore_file(self, key: str, *, path: str, sha256: str, bytes: int) -> bool:
        return moves.move(self._t, key, (JobState.DONE,), JobState.DONE, path=path, sha256=sha256, bytes=bytes)

    def review_counts(self, manifest: str | None = None) -> dict[str, int]:
        return review.review_counts(self._t, manifest)

    def rejected_keys(self, manifest: str) -> list[str]:
        return review.rejected_keys(self._t, manifest)

    def rejections(self, key: str) -> list[RejectionRecord]:
        return [r for r in self._t.rejections if r.key == key]

    # --------------------------------------------------------------- renames

    def journal_renames(self, steps: list[tuple[str, str, str]]) -> None:
        moves.journal_renames(self._t, steps)

    def journaled_renames(self) -> list[tuple[str, str, str]]:
        return [(key, src, dst) for key, (src, dst) in sorted(self._t.renames.items())]

    def finish_rename(self, key: str, *, src: str, dst: str) -> bool:
        return moves.finish_rename(self._t, key, src, dst)

    def forget_rename(self, key: str) -> None:
        self._t.renames.pop(key, None)

    # ------------------------------------------------------------ unsent work

    def fail_unsent(self, key: str, *, reason: str) -> bool:
        return moves.fail_unsent(self._t, key, reason)

    # ----------------------------------------------------- spend and history

    def spend_by_model(self, manifest: str | None = None) -> dict[str, float]:
        return history.spend_by_model(self._t, manifest)

    def run_history(self, manifest: str | None = None, *, limit: int = 20) -> list[RunSummary]:
        return history.run_history(self._t, manifest, limit)
