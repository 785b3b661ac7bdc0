"""The ledger protocol's transitions: a job's moves from state to state, the write-ahead before a POST first
(:class:`LedgerTransitions`, part of :class:`~runner.ledger.api.LedgerBackend`). Each is one atomic step that
returns whether it moved; which moves are durable, and what a refusal means, are that module's rules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from runner.jobs import JobState

__all__ = ["Budget", "LedgerTransitions"]

Budget = tuple[str, float]  # (manifest, USD): mark_submitting's budget of every runner together


class LedgerTransitions(Protocol):
    """A job's moves: the submit and its answer, the task's result, an operator's retries and adoptions."""

    # ------------------------------------------------------------ the submit

    def mark_submitting(self, key: str, *, run_id: int | None = None, owner: str | None = None,
                        max_outstanding: int | None = None, in_doubt_hold_s: float = 0.0,
                        budget: Budget | None = None) -> int | None:
        """pending → submitting before the POST, durable; reserves the estimate; the attempt id. With
        ``max_outstanding``: refused (``None``, nothing written) while that many tasks are outstanding in
        the whole ledger (:meth:`outstanding` with ``in_doubt_hold_s``), counted atomically with the move — the concurrency limit
        of several runners together. With ``budget`` = (manifest, USD): refused while the manifest's
        spend (:meth:`spent_usd`, every runner's reservations included) plus this job's estimate would
        pass USD, checked atomically with the move — several runners together never pass a budget."""

    def mark_submitting_many(self, keys: Sequence[str]) -> list[int | None]:
        """The write-aheads of several jobs in ONE durable transaction (one fsync for a wave of submits, where
        one :meth:`mark_submitting` a job costs one each): each key moved exactly as ``mark_submitting(key)``
        moves it, in order — its attempt id, or ``None`` (nothing written for it) when it is not pending, a
        live other owner holds it, or it came earlier in ``keys``. All of it is durable before it returns (the
        POSTs leave after it); an unknown key raises and writes nothing of the group. No limits are checked:
        the caller admitted each job against its own slots and budget first (a shared ledger's limits of
        every runner together go through :meth:`mark_submitting`, one job at a time)."""

    def mark_running(self, key: str, attempt_id: int, *, task_id: str, http_status: int | None) -> bool:
        """submitting → running with the provider's ``task_id``, durable; False (nothing written) when the job is not
        submitting. A job that holds ``task_id`` already — another job's current task, any job's earlier task, this
        one's included — raises :class:`~runner.errors.TaskIdTaken` (its ``holder``) and nothing is written: checked
        in the same transaction as the move, so of several callers recording one id at once, one at most moves."""

    def mark_refused(
        self, key: str, attempt_id: int, *, http_status: int | None, reason: str | None, message: str,
        permanent: bool,
    ) -> bool:
        """submitting → pending (may be retried) or failed (``permanent``), durable; no task was created."""

    def mark_in_doubt(
        self, key: str, attempt_id: int, *, http_status: int | None, reason: str | None, message: str
    ) -> bool:
        """submitting → in_doubt, durable: a paid task may exist; the reservation stays."""

    # ------------------------------------------------------- the operator's

    def adopt_task(self, key: str, task_id: str, *, detail: str) -> bool:
        """in_doubt → running with ``task_id`` (``runner adopt``); False when the job is not in doubt, and
        :class:`~runner.errors.TaskIdTaken` (nothing written) when a job holds the id already, as ``mark_running``."""

    def adopt_file(self, key: str, *, path: str, sha256: str, bytes: int, detail: str) -> bool:
        """pending → done from a video already at ``path`` (``runner adopt --file``: paid for in a run the ledger no
        longer records), durable: its sha256 and size recorded, no task id, its estimate counted as spent, a submit
        attempt ``adopted`` with ``detail``. False (nothing written) when the job is not pending, a live other owner
        claimed it, or another job records ``path``."""

    def reopen_lost(self, key: str, *, detail: str) -> bool:
        """lost → running, durable: the provider answered for the task again (``runner retry --lost``)."""

    # ------------------------------------------------------------ the task

    def mark_succeeded(
        self, key: str, *, video_url: str, url_expires_at: float | None, debug: dict[str, Any], task_id: str | None = None
    ) -> bool:
        """running → succeeded (or succeeded → succeeded: a fresh URL). With ``task_id`` (a poll's answer, applied
        without reading the job first): only running → succeeded, only while ``task_id`` is the job's current task;
        False otherwise, an unknown key included."""

    def mark_failed(self, key: str, *, reason: str) -> bool:
        """running → failed: the provider reported the task FAILED."""

    def mark_done(self, key: str, *, path: str, sha256: str, bytes: int) -> bool:
        """succeeded → done: the verified file is in place at ``path`` (relative to the state directory)."""

    def mark_lost(self, key: str, *, reason: str) -> bool:
        """running|succeeded → lost: paid for, but the result can no longer be fetched."""

    def note_file_problem(self, key: str, detail: str) -> bool:
        """succeeded stays succeeded: its video could not be stored locally; the reason is kept on the job."""

    def record_event(
        self, key: str, kind: str, outcome: str, *, http_status: int | None = None, detail: str | None = None,
        task_id: str | None = None,
    ) -> None:
        """Record a poll or download error of a job (its state does not change)."""

    # --------------------------------------------------------------- retries

    def reset(self, manifest: str | None, state: JobState, keys: Sequence[str] | None = None) -> int:
        """failed or in_doubt → pending (an explicit retry); returns how many moved. ``keys``: only those
        of them still in ``state`` (``runner retry KEY…``), in one transaction; others are left as they are."""

    def retry_failed_job(self, key: str) -> bool:
        """failed → pending (the manifest's job-level retry policy asked for it)."""

    def fail_unsent(self, key: str, *, reason: str) -> bool:
        """pending → failed before anything was sent (e.g. a local input changed since the plan), reason
        :data:`~runner.ledger.api.UNSENT_REASON`; nothing paid."""
