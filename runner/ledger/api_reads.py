"""The ledger protocol's reads: jobs, their targets, files, spend and history, as the CLI, reporting and the engine
ask for them (:class:`LedgerReads`, part of :class:`~runner.ledger.api.LedgerBackend`; the rules are that module's).
A read changes nothing; what it streams, it reads a page at a time."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Any, Protocol

from runner.jobs import JobState
from runner.ledger.records import AttemptRecord, JobRecord, RunSummary

__all__ = ["LedgerReads"]


class LedgerReads(Protocol):
    """What a ledger answers about its jobs without changing them."""

    # ------------------------------------------------------------------ jobs

    def get(self, key: str, manifest: str | None = None) -> JobRecord | None:
        """One job; through a manifest, ``None`` unless that manifest targets it."""

    def iter_jobs(self, manifest: str | None = None, states: Collection[JobState] | None = None) -> Iterator[JobRecord]:
        """Jobs in planning order (the order :meth:`register` first saw them), streamed."""

    def pending_batch(self, manifest: str | None, *, limit: int, after_rowid: int = 0) -> list[tuple[int, JobRecord]]:
        """Up to ``limit`` pending jobs after the cursor ``after_rowid``, in planning order."""

    def states_of(self, keys: Sequence[str]) -> dict[str, JobState]:
        """The state of each of ``keys`` the ledger knows (unknown keys are absent)."""

    def stored_paths(self, keys: Sequence[str]) -> dict[str, str]:
        """The recorded path of each of ``keys`` that is done."""

    def counts(self, manifest: str | None = None) -> dict[JobState, int]:
        """Jobs per state, every state present."""

    def total(self, manifest: str | None = None) -> int:
        """How many jobs the manifest (or the whole ledger) has."""

    def outstanding(self, *, in_doubt_hold_s: float = 0.0) -> int:
        """Tasks that may exist at the provider (submitting + running), whole ledger; with
        ``in_doubt_hold_s``, also the in-doubt jobs sent within that many seconds (their task may still run)."""

    def has_provider_tasks(self) -> bool:
        """Whether any submit may have created a task at the provider."""

    # ----------------------------------------------------------------- spend

    def spent_usd(self, manifest: str | None = None) -> float:
        """Estimated spend of every submit that may have created a paid task (a manifest: every
        job it ever targeted)."""

    def dropped_spent_usd(self, manifest: str) -> float:
        """The part of :meth:`spent_usd` spent on jobs ``manifest`` no longer lists."""

    def estimate_usd(self, manifest: str | None = None, states: Collection[JobState] | None = None) -> float:
        """Sum of the estimated price of one more task of each job (e.g. what a retry costs)."""

    def orphans(self, manifest: str | None = None) -> dict[JobState, int]:
        """Paid jobs no manifest lists any more, by state (only states present)."""

    def orphan_home(self, key: str) -> str | None:
        """The manifest that dropped ``key`` last (where its orphan is kept), ``None`` if none did."""

    # --------------------------------------------------------------- targets

    def target_output(self, manifest: str, key: str) -> str | None:
        """The output name ``manifest`` gives ``key``."""

    def targets_of(self, key: str) -> list[tuple[str, str]]:
        """(manifest, output name) of every manifest listing ``key``, the first registered first."""

    def get_with_targets(self, key: str) -> tuple[JobRecord, list[tuple[str, str]]] | None:
        """``get(key)`` and ``targets_of(key)`` in one read (what a download needs); ``None`` for an unknown key."""

    # ----------------------------------------------------------------- files

    def misplaced(self, manifest: str, folder: str, *, limit: int | None = None) -> list[tuple[str, str, str]]:
        """Done jobs of ``manifest`` recorded under ``folder`` (its folder prefix) at another path than
        ``folder + output``, as (key, recorded path, output name), in planning order."""

    def misplaced_count(self, manifest: str, folder: str) -> int:
        """How many :meth:`misplaced` jobs ``manifest`` has."""

    def stored_elsewhere(self, manifest: str, folder: str) -> Iterator[tuple[str, str, str, str]]:
        """Done jobs of ``manifest`` recorded outside ``folder``, as (key, path, output name, sha256)."""

    def done_files(self, manifest: str | None) -> Iterator[tuple[str, float | None]]:
        """(recorded path, result URL's expiry or None) of each done job of ``manifest`` (None: all), streamed."""

    def recorded_paths(self) -> Iterator[str]:
        """Every job's recorded path (of any state, any manifest), streamed: an index's scan, no job row read."""

    def paths_with_sha256(self, sha256: str) -> list[str]:
        """Recorded paths of done jobs whose video has this sha256 (for rare checks)."""

    def key_at_path(self, path: str) -> str | None:
        """The job whose stored file is recorded at ``path`` (relative to the state directory)."""

    # ---------------------------------------------------------- task, detail

    def debug_info(self, key: str) -> dict[str, Any]:
        """The provider's ``extra.debug_info`` from the job's last task result (``{}`` if none)."""

    def find_keys(self, prefix: str, *, limit: int = 10) -> list[str]:
        """Up to ``limit`` job keys starting with ``prefix``, sorted."""

    def key_of_task(self, task_id: str) -> str | None:
        """The job that ``task_id`` (its current or an earlier task) belongs to."""

    def not_found_keys(self) -> set[str]:
        """Running or succeeded jobs that have TASK_NOT_FOUND answers on record (read once per run)."""

    def attempts(self, key: str) -> list[AttemptRecord]:
        """Every submit and every poll / download error of a job, oldest first."""

    # ------------------------------------------------------ spend and history

    def spend_by_model(self, manifest: str | None = None) -> dict[str, float]:
        """Estimated spend (as :meth:`spent_usd`) by model, models with a spend only; of every job
        ``manifest`` ever targeted, or of the whole ledger."""

    def run_history(self, manifest: str | None = None, *, limit: int = 20) -> list[RunSummary]:
        """The latest ``limit`` runs, newest first, each with what it did to ``manifest``'s jobs (every
        job it ever targeted) or to all: submits that may have created a paid task (not refused,
        rejected, adopted or rescued) and their estimated spend; jobs finished done, or failed or
        lost, between the run's start and end (still running: up to now)."""
