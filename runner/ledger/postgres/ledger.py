"""The PostgreSQL ledger: one database shared by any number of runners, on any hosts.

:class:`PostgresLedger` implements :class:`~runner.ledger.api.LedgerBackend` with the semantics of the SQLite
ledger (its module docstring lists the transitions; each here is one transaction of the form
``UPDATE jobs … WHERE key = … AND state IN (…)``). What several writers change:

* no lock file: an owner is live while its lease (``leases``) runs, this ledger's own owner always in its own
  eyes. Opening takes a lease for :attr:`PostgresLedger.owner`; the caller renews it (:meth:`renew_lease`) well
  within :data:`~runner.ledger.api.LEASE_TTL_S`; closing gives back its claims and drops its lease, so another
  runner may take its remaining work over at once;
* claims use ``FOR UPDATE SKIP LOCKED`` (:mod:`runner.ledger.postgres.owners`);
* a task id is recorded (``mark_running``, the rescue replay) under an advisory lock of the id, its holder
  read after it (:func:`~runner.ledger.postgres.moves.task_holder`): two runners never both record one id;
* every commit is durable (``synchronous_commit`` at least ``on``): ``mark_submitting`` returns after its row
  is on the server's disk, so the POST always leaves after its intent is recorded;
* times come from one clock: the database server's by default (:class:`ServerClock`; an in-doubt job's slot hold, once
  counted, on this host's steady clock: :mod:`~runner.ledger.postgres.holds`), or the one the caller injects.

The rescue journal stays a file in ``state_dir`` (shared by runners that share the state directory).
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from runner.errors import LedgerError
from runner.jobs import JobSpec, JobState
from runner.ledger import rescue
from runner.ledger.api import LEASE_TTL_S, Budget, Clock
from runner.ledger.postgres import history, limits, owners, planning, reads, renames, review, transitions
from runner.ledger.postgres.clock import ServerClock, steady_now
from runner.ledger.postgres.connection import PgConnection
from runner.ledger.postgres.holds import DoubtHolds
from runner.ledger.records import AttemptRecord, JobRecord, LeaseRecord, RejectionRecord, RunRecord, RunSummary

__all__ = ["PostgresLedger"]


class PostgresLedger:
    """The jobs, targets, attempts, runs and owners of one PostgreSQL database; see the module docstring.

    Methods may be called from one thread at a time; two threads (or processes, or hosts) each use
    their own :class:`PostgresLedger`.
    """

    def __init__(self, conn: PgConnection, *, state_dir: Path, clock: Clock, holds: DoubtHolds | None = None) -> None:
        self._conn = conn
        self._clock = clock
        self._holds = holds or DoubtHolds(steady_now if isinstance(clock, ServerClock) else clock)
        self._run_id: int | None = None
        self._closed = False
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.state_dir = state_dir
        self.created = conn.created
        self._leased: set[str] = set()  # owners this ledger renewed: a row of theirs gone was pruned, expired
        if not conn.readonly:
            self.renew_lease(self._owner)
            owners.prune(conn, self._clock())  # killed runners' leases, long expired

    # ------------------------------------------------------------ life cycle

    @property
    def readonly(self) -> bool:
        return self._conn.readonly

    @property
    def location(self) -> str:
        return self._conn.location

    @property
    def owner(self) -> str:
        return self._owner

    def close(self) -> None:
        """Give back this owner's claims and lease, then disconnect (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            if not self.readonly:
                owners.give_back(self._conn, self._owner)
        finally:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "read-only" if self.readonly else "writable"
        return f"<PostgresLedger {self.location} {mode}{' closed' if self._closed else ''}>"

    # -------------------------------------------------------------- planning

    def manifest_digest(self, name: str) -> str | None:
        return reads.manifest_digest(self._conn, name)

    def register(self, name: str, digest: str, jobs: Iterable[JobSpec], *, batch: int = 2000,
                 salt: str | None = None) -> int:
        return planning.register(self._conn, name, digest, jobs, batch=batch, now=self._clock(), salt=salt)

    # ----------------------------------------------------------------- reads

    def get(self, key: str, manifest: str | None = None) -> JobRecord | None:
        return reads.get(self._conn, key, manifest)

    def iter_jobs(self, manifest: str | None = None, states: Collection[JobState] | None = None) -> Iterator[JobRecord]:
        return reads.iter_jobs(self._conn, manifest, states)

    def pending_batch(self, manifest: str | None, *, limit: int, after_rowid: int = 0) -> list[tuple[int, JobRecord]]:
        return reads.page(self._conn, manifest, JobState.PENDING, after=after_rowid, limit=limit)

    def states_of(self, keys: Sequence[str]) -> dict[str, JobState]:
        return reads.states_of(self._conn, keys)

    def stored_paths(self, keys: Sequence[str]) -> dict[str, str]:
        return reads.stored_paths(self._conn, keys)

    def counts(self, manifest: str | None = None) -> dict[JobState, int]:
        return reads.counts(self._conn, manifest)

    def total(self, manifest: str | None = None) -> int:
        return reads.total(self._conn, manifest)

    def outstanding(self, *, in_doubt_hold_s: float = 0.0) -> int:
        return reads.outstanding(self._conn, self._clock(), in_doubt_hold_s, self._holds)

    def has_provider_tasks(self) -> bool:
        return reads.has_provider_tasks(self._conn)

    def spent_usd(self, manifest: str | None = None) -> float:
        return reads.spent(self._conn, manifest)

    def dropped_spent_usd(self, manifest: str) -> float:
        return reads.spent(self._conn, manifest, dropped_only=True)

    def estimate_usd(self, manifest: str | None = None, states: Collection[JobState] | None = None) -> float:
        return reads.estimate(self._conn, "estimated_usd", manifest, states)

    def orphans(self, manifest: str | None = None) -> dict[JobState, int]:
        return reads.orphans(self._conn, manifest)

    def orphan_keys(self, manifest: str, state: JobState) -> list[str]:
        """Jobs in ``state`` that ``manifest`` once targeted and that no manifest lists any more."""
        return reads.orphan_keys(self._conn, manifest, state)

    def orphan_home(self, key: str) -> str | None:
        return reads.orphan_home(self._conn, key)

    def target_output(self, manifest: str, key: str) -> str | None:
        return reads.target_output(self._conn, manifest, key)

    def targets_of(self, key: str) -> list[tuple[str, str]]:
        return reads.targets_of(self._conn, key)

    def get_with_targets(self, key: str) -> tuple[JobRecord, list[tuple[str, str]]] | None:
        return None if (job := self.get(key)) is None else (job, self.targets_of(key))

    def misplaced(self, manifest: str, folder: str, *, limit: int | None = None) -> list[tuple[str, str, str]]:
        return reads.misplaced(self._conn, manifest, folder, limit)

    def misplaced_count(self, manifest: str, folder: str) -> int:
        return reads.misplaced_count(self._conn, manifest, folder)

    def stored_elsewhere(self, manifest: str, folder: str) -> Iterator[tuple[str, str, str, str]]:
        return reads.stored_elsewhere(self._conn, manifest, folder)

    def done_files(self, manifest: str | None) -> Iterator[tuple[str, float | None]]:
        return reads.done_files(self._conn, manifest)

    def recorded_paths(self) -> Iterator[str]:
        return reads.recorded_paths(self._conn)

    def paths_with_sha256(self, sha256: str) -> list[str]:
        return reads.paths_with_sha256(self._conn, sha256)

    def key_at_path(self, path: str) -> str | None:
        return reads.key_at_path(self._conn, path)

    def debug_info(self, key: str) -> dict[str, Any]:
        return reads.debug_info(self._conn, key)

    def find_keys(self, prefix: str, *, limit: int = 10) -> list[str]:
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

    # ----------------------------------------------------------- meta, runs

    def meta(self, key: str) -> str | None:
        return history.meta(self._conn, key)

    def set_meta(self, key: str, value: str) -> None:
        history.set_meta(self._conn, key, value)

    def start_run(self, *, argv: list[str]) -> int:
        self._run_id = history.start_run(self._conn, os.getpid(), socket.gethostname(), json.dumps(list(argv)),
                                         self._clock())
        return self._run_id

    def finish_run(self, run_id: int, *, exit_code: int, counts: dict[str, int]) -> None:
        if not history.finish_run(self._conn, run_id, self._clock(), exit_code, json.dumps(counts, sort_keys=True)):
            raise LedgerError(f"unknown run {run_id}; this is a bug in runner")

    def runs(self, *, limit: int = 20) -> list[RunRecord]:
        return reads.runs(self._conn, limit)

    # ------------------------------------------------------ owners, leases

    def _owned(self, caller: str) -> dict[str, Any]:
        """The parameters of :func:`~runner.ledger.postgres.moves.live`."""
        return {"me": self._owner, "caller": caller, "now": self._clock()}

    def renew_lease(self, owner: str, *, ttl: float = LEASE_TTL_S) -> bool:
        if isinstance(self._clock, ServerClock):
            self._clock.sync(self._conn)
        renewed = owners.renew(self._conn, self._owned(owner), owner, ttl, held=owner in self._leased)
        if renewed:
            self._leased.add(owner)
        return renewed

    def leases(self) -> list[LeaseRecord]:
        """Every runner's lease, the oldest first (``runner status`` shows them: host, pid, heartbeat)."""
        return owners.leases(self._conn, self._clock())

    def claim_pending(self, n: int, owner: str, *, manifest: str | None = None) -> list[JobRecord]:
        rows = owners.claim(self._conn, self._owned(owner), n, manifest)
        with reads.readable(self._conn, "a job"):
            return [JobRecord.from_row(row) for row in rows]

    def release_claims(self, owner: str) -> int:
        return owners.release(self._conn, owner)

    def recover_expired(self, owner: str) -> int:
        self.apply_rescue()
        return owners.recover(self._conn, self._owned(owner))

    def apply_rescue(self) -> int:
        outcomes = owners.replay_entries(self._conn, self.state_dir, rescue.to_record(self.state_dir), self._clock,
                                         self._run_id)
        return sum(outcome == "running" for _, outcome in outcomes)

    def rescue_task_id(self, key: str, attempt_id: int, task_id: str) -> bool:
        """Journal an accepted task id the ledger could not record; never raises (see the protocol)."""
        return owners.rescue_task_id(self.state_dir, self._clock(), key, attempt_id, task_id)

    def take_token(self, bucket: str, *, per_minute: float) -> float:
        return limits.take_token(self._conn, bucket, per_minute)

    # ----------------------------------------------------------- transitions (:mod:`.transitions`)

    def mark_submitting(self, key: str, *, run_id: int | None = None, owner: str | None = None, max_outstanding:
                        int | None = None, in_doubt_hold_s: float = 0.0, budget: Budget | None = None) -> int | None:
        """pending → submitting before the POST, committed durably; ``None``: see the protocol."""
        params = self._owned(self._owner if owner is None else owner)
        return transitions.mark_submitting(self._conn, key, params, self._run_id if run_id is None else run_id,
                                           max_outstanding, budget, in_doubt_hold_s, self._holds)

    def mark_submitting_many(self, keys: Sequence[str]) -> list[int | None]:
        """Several write-aheads in one durable transaction (see the protocol)."""
        return transitions.mark_submitting_many(self._conn, keys, self._owned(self._owner), self._run_id)

    def adopt_task(self, key: str, task_id: str, *, detail: str) -> bool:
        return transitions.adopt_task(self._conn, key, self._clock(), self._run_id, self._owner, task_id, detail)

    def adopt_file(self, key: str, *, path: str, sha256: str, bytes: int, detail: str) -> bool:
        return transitions.adopt_file(self._conn, key, self._owned(self._owner), self._run_id, path, sha256, bytes, detail)

    def reopen_lost(self, key: str, *, detail: str) -> bool:
        return transitions.reopen_lost(self._conn, key, self._clock(), self._run_id, self._owner, detail)

    def mark_running(self, key: str, attempt_id: int, *, task_id: str, http_status: int | None) -> bool:
        return transitions.mark_running(self._conn, key, self._clock(), attempt_id, task_id, http_status)

    def mark_refused(self, key: str, attempt_id: int, *, http_status: int | None, reason: str | None, message: str,
                     permanent: bool) -> bool:
        return transitions.mark_refused(self._conn, key, self._clock(), attempt_id, http_status, reason, message, permanent)

    def mark_in_doubt(self, key: str, attempt_id: int, *, http_status: int | None, reason: str | None,
                      message: str) -> bool:
        return transitions.mark_in_doubt(self._conn, key, self._clock(), attempt_id, http_status, reason, message)

    def mark_succeeded(self, key: str, *, video_url: str, url_expires_at: float | None, debug: dict[str, Any], task_id: str | None = None) -> bool:
        return transitions.mark_succeeded(self._conn, key, self._clock(), video_url, url_expires_at, debug, task_id)

    def mark_failed(self, key: str, *, reason: str) -> bool:
        return transitions.mark_failed(self._conn, key, self._clock(), self._run_id, reason)

    def mark_done(self, key: str, *, path: str, sha256: str, bytes: int) -> bool:
        return transitions.mark_done(self._conn, key, self._clock(), path, sha256, bytes)

    def mark_lost(self, key: str, *, reason: str) -> bool:
        return transitions.mark_lost(self._conn, key, self._clock(), self._run_id, reason)

    def note_file_problem(self, key: str, detail: str) -> bool:
        return transitions.note_file_problem(self._conn, key, self._clock(), self._run_id, detail)

    def record_event(self, key: str, kind: str, outcome: str, *, http_status: int | None = None,
                     detail: str | None = None, task_id: str | None = None) -> None:
        transitions.record_event(self._conn, key, self._clock(), self._run_id, kind, outcome, http_status=http_status,
                                 detail=detail, task_id=task_id)

    def reset(self, manifest: str | None, state: JobState, keys: Sequence[str] | None = None) -> int:
        return transitions.reset(self._conn, manifest, state, self._clock(), keys)

    def retry_failed_job(self, key: str) -> bool:
        return transitions.retry_failed(self._conn, key, self._clock())

    def fail_unsent(self, key: str, *, reason: str) -> bool:
        return transitions.fail_unsent(self._conn, key, self._clock(), reason)

    # ---------------------------------------------------------------- review

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
        renames.journal_renames(self._conn, steps)

    def journaled_renames(self) -> list[tuple[str, str, str]]:
        return renames.journaled_renames(self._conn)

    def finish_rename(self, key: str, *, src: str, dst: str) -> bool:
        return renames.finish_rename(self._conn, self._clock(), key, src, dst)

    def forget_rename(self, key: str) -> None:
        renames.forget_rename(self._conn, key)
