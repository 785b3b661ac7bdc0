"""The ledger backend protocol: what the engine, the CLI and reporting ask of a ledger.

A backend is the single source of truth of every job's state. Two implement it:
:class:`~runner.ledger.sqlite.SqliteLedger` (one file per state directory, one writer at a time)
and :class:`~runner.ledger.memory.MemoryLedger` (for engine unit tests). The contract suite
``tests/contract/test_ledger_backends.py`` runs against each; a new backend (PostgreSQL) is one
module that passes it. Callers only ever see typed records (:mod:`runner.ledger.records`).

**Several writers.** The protocol is shaped for several runners on one ledger:

* :meth:`LedgerBackend.claim_pending` hands pending jobs to one *owner* atomically; a job is
  never claimed by two live owners. A claim is not a submit: it costs nothing and lapses with
  its owner's lease.
* In-flight work (``submitting``, ``running``, ``succeeded``) is *owned*: ``mark_submitting``
  records the owner, and the owner keeps its lease alive with :meth:`LedgerBackend.renew_lease`.
  A job claimed (or owned) by another *live* owner is never moved by ``mark_submitting``.
* :meth:`LedgerBackend.recover_expired` takes over the work of owners whose lease has expired
  only: their ``submitting`` rows become ``in_doubt`` (never resubmitted automatically), their
  ``running`` / ``succeeded`` rows become the caller's, their claims lapse. An owner that has
  never taken a lease, or rows without an owner (older ledgers), count as expired.
* SQLite has one writer (its lock): an owner from an earlier process is expired by definition
  once the lock is taken, so at start-up ``recover_expired`` turns every row left
  ``submitting`` into ``in_doubt``, as ``recover_submitting`` always did. The process holding
  the lock (its :attr:`LedgerBackend.owner`) is live for as long as the ledger is open.

**Transitions and refusals.** Every transition checks, in one atomic step, that the job is in
one of its source states (and, for work a live owner holds, that the caller is that owner):

* it returns whether it moved anything (``mark_submitting``: the attempt id, or ``None``); a
  refused transition writes nothing. Refusal is how a lost race shows (another owner got there
  first, a late or duplicate task update arrives for a job that moved on), so it is not an error;
* it raises :class:`~runner.errors.LedgerError` only for what is a bug whatever the race: an
  unknown job key, an attempt id that is not an open submit of that job, a write to a read-only
  ledger, an unknown event kind — and for storage failures (disk full, I/O), rolled back whole;
* a caller for which a refusal means a paid task could go unrecorded — the engine recording a
  POST's answer (``mark_running``) — must treat ``False`` as a failed write: keep the task id
  (rescue journal) and never turn the job in doubt or resubmit it because of it;
* ``mark_running`` refuses one more way, with a reason: a task id that a job holds already (another
  job's current task, or any job's earlier task, this one's included: an answer replayed by a
  middlebox, the provider's mistake) raises :class:`~runner.errors.TaskIdTaken` and writes nothing.
  The check is part of the transition's own transaction, so two runners recording one id at once
  never both succeed (PostgreSQL serialises the check on the id: see its ``mark_running``); the
  caller holds the job in doubt (``TASK_ID_TAKEN``).

**The money path** is the backends' first duty: ``mark_submitting`` (and ``mark_submitting_many``,
several at once) is durable before it returns (the POST leaves after it), and so are ``mark_running``, ``mark_refused``,
``mark_in_doubt``, ``adopt_task``, ``adopt_file``, ``reopen_lost``, ``recover_expired``, ``finish_rename`` and
the review's ``reject``, ``accept``, ``requeue_rejected`` and ``restore_file``.

**Paths.** The ledger stores a manifest's output *names* and a done job's path relative to the
state directory as opaque strings; :mod:`runner.layout` composes them. Where a query needs a
manifest's folder (``misplaced``, ``stored_elsewhere``), the caller passes the prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from runner.jobs import JobSpec, JobState
from runner.ledger.path_text import as_text, from_text
from runner.ledger.records import AttemptRecord, JobRecord, RejectionRecord, RunRecord, RunSummary

__all__ = ["IN_DOUBT_HOLD_S", "LEASE_TTL_S", "PAID_STATES", "UNPAID_SUBMITS", "UNSENT_REASON", "Budget", "Clock",
           "LedgerBackend"]

Clock = Callable[[], float]
Budget = tuple[str, float]  # (manifest, USD): mark_submitting's budget of every runner together

LEASE_TTL_S = 60.0  # how long an owner's lease lasts after a renewal
# meta key: where `runner ledger copy` copied this ledger (:func:`moved_mark`), or a run from a ``cp -a`` copy of its
# folder went on (:mod:`runner.ledger.sqlite.copied`); runs refuse it until `runner ledger reopen` clears it
MOVED_META = "moved_to"
BY_RUN = "+run"  # how a MOVED_META time ends when a run from a ``cp -a`` copy marked it, not `runner ledger copy`


def moved_mark(where: str, when: str, *, by_run: bool = False) -> str:
    """The :data:`MOVED_META` value: copied to ``where`` at ``when`` (no space in it); ``by_run``: a run went on from a
    copy of its folder made by other tools (:data:`BY_RUN`)."""
    return f"{as_text(where)} {when}{BY_RUN if by_run else ''}"  # (a folder name's byte not UTF-8: escaped)


# meta key: the ledger is a copy `runner ledger copy` has not finished (its value: the source), written in its own
# commit before the copy's rows, removed in theirs. A run refuses it: a copy killed mid-way would pay for all again.
COPYING_META = "copy_from"


def copying_from(ledger: LedgerBackend) -> str | None:
    """The source of the unfinished copy ``ledger`` is (:data:`COPYING_META`), or None."""
    return ledger.meta(COPYING_META) or None


def moved_to(ledger: LedgerBackend) -> tuple[str, str, bool] | None:
    """Where and when ``ledger`` was copied, and whether by a run from a ``cp -a`` copy (:func:`read_moved`), or None."""
    return read_moved(ledger.meta(MOVED_META))


def read_moved(mark: str | None) -> tuple[str, str, bool] | None:
    """A :func:`moved_mark` read: (where, when, whether a run marked it: :data:`BY_RUN`), None for none."""
    if not mark:
        return None
    where, _, when = mark.rpartition(" ")
    return from_text(where), when.removesuffix(BY_RUN), when.endswith(BY_RUN)
# A submit held in doubt may have created a task, which then runs at the provider: it counts against the
# concurrency limit for this long after its POST (a Kling task ends well within it).
IN_DOUBT_HOLD_S = 900.0
# A task may exist (and be billed) for a job in these states.
PAID_STATES = frozenset({JobState.SUBMITTING, JobState.IN_DOUBT, JobState.RUNNING, JobState.SUCCEEDED,
                         JobState.DONE, JobState.LOST})
# Submit attempt outcomes that created no new paid task (every other one, open or closed, may have).
UNPAID_SUBMITS = ("refused", "rejected", "adopted", "rescued")
#: The reason :meth:`LedgerBackend.fail_unsent` records: failed before anything was sent (an input changed).
UNSENT_REASON = "INPUT_CHANGED"


@runtime_checkable
class LedgerBackend(Protocol):
    """Jobs, targets, attempts, runs and owners of one batch; see the module docstring for the rules."""

    state_dir: Path
    """Where the run's files live (outputs, the rescue journal); recorded paths are relative to it."""

    @property
    def location(self) -> str:
        """Where the ledger is, for messages (a file path, or a URL without its password)."""

    @property
    def readonly(self) -> bool: ...

    @property
    def owner(self) -> str:
        """This process's owner name (what it claims and owns work under)."""

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    # ------------------------------------------------------------ planning

    def manifest_digest(self, name: str) -> str | None:
        """The digest recorded by the last :meth:`register` of ``name``."""

    def register(self, name: str, digest: str, jobs: Iterable[JobSpec], *, batch: int = 2000,
                 salt: str | None = None) -> int:
        """Plan a manifest's jobs atomically; returns how many it has (see the SQLite backend).

        ``salt``: the manifest's, as typed (jobs planned before text was put in NFC are found by it)."""

    # ---------------------------------------------------------------- reads

    def get(self, key: str, manifest: str | None = None) -> JobRecord | None:
        """One job; through a manifest, ``None`` unless that manifest targets it."""

    def iter_jobs(self, manifest: str | None = None, states: Collection[JobState] | None = None) -> Iterator[JobRecord]:
        """Jobs in planning order (the order :meth:`register` first saw them), streamed."""

    def pending_batch(self, manifest: str | None, *, limit: int, after_rowid: int = 0) -> list[tuple[int, JobRecord]]:
        """Up to ``limit`` pending jobs after the cursor ``after_rowid``, in planning order."""

    def states_of(self, keys: Sequence[str]) -> dict[str, JobState]: ...

    def stored_paths(self, keys: Sequence[str]) -> dict[str, str]:
        """The recorded path of each of ``keys`` that is done."""

    def counts(self, manifest: str | None = None) -> dict[JobState, int]:
        """Jobs per state, every state present."""

    def total(self, manifest: str | None = None) -> int: ...

    def outstanding(self, *, in_doubt_hold_s: float = 0.0) -> int:
        """Tasks that may exist at the provider (submitting + running), whole ledger; with
        ``in_doubt_hold_s``, also the in-doubt jobs sent within that many seconds (their task may still run)."""

    def has_provider_tasks(self) -> bool:
        """Whether any submit may have created a task at the provider."""

    def spent_usd(self, manifest: str | None = None) -> float:
        """Estimated spend of every submit that may have created a paid task (a manifest: every
        job it ever targeted)."""

    def dropped_spent_usd(self, manifest: str) -> float: ...

    def estimate_usd(self, manifest: str | None = None, states: Collection[JobState] | None = None) -> float: ...

    def orphans(self, manifest: str | None = None) -> dict[JobState, int]:
        """Paid jobs no manifest lists any more, by state (only states present)."""

    def orphan_home(self, key: str) -> str | None:
        """The manifest that dropped ``key`` last (where its orphan is kept), ``None`` if none did."""

    def target_output(self, manifest: str, key: str) -> str | None:
        """The output name ``manifest`` gives ``key``."""

    def targets_of(self, key: str) -> list[tuple[str, str]]:
        """(manifest, output name) of every manifest listing ``key``, the first registered first."""

    def get_with_targets(self, key: str) -> tuple[JobRecord, list[tuple[str, str]]] | None:
        """``get(key)`` and ``targets_of(key)`` in one read (what a download needs); ``None`` for an unknown key."""

    def misplaced(self, manifest: str, folder: str, *, limit: int | None = None) -> list[tuple[str, str, str]]:
        """Done jobs of ``manifest`` recorded under ``folder`` (its folder prefix) at another path than
        ``folder + output``, as (key, recorded path, output name), in planning order."""

    def misplaced_count(self, manifest: str, folder: str) -> int: ...

    def stored_elsewhere(self, manifest: str, folder: str) -> Iterator[tuple[str, str, str, str]]:
        """Done jobs of ``manifest`` recorded outside ``folder``, as (key, path, output name, sha256)."""

    def done_files(self, manifest: str | None) -> Iterator[tuple[str, float | None]]:
        """(recorded path, result URL's expiry or None) of each done job of ``manifest`` (None: all), streamed."""

    def recorded_paths(self) -> Iterator[str]:
        """Every job's recorded path (of any state, any manifest), streamed: an index's scan, no job row read."""

    def paths_with_sha256(self, sha256: str) -> list[str]: ...
    def key_at_path(self, path: str) -> str | None: ...
    def debug_info(self, key: str) -> dict[str, Any]: ...

    def find_keys(self, prefix: str, *, limit: int = 10) -> list[str]: ...
    def key_of_task(self, task_id: str) -> str | None: ...

    def not_found_keys(self) -> set[str]: ...

    def attempts(self, key: str) -> list[AttemptRecord]:
        """Every submit and every poll / download error of a job, oldest first."""

    # ----------------------------------------------------------- meta, runs

    def meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...

    def start_run(self, *, argv: list[str]) -> int: ...
    def finish_run(self, run_id: int, *, exit_code: int, counts: dict[str, int]) -> None: ...
    def runs(self, *, limit: int = 20) -> list[RunRecord]: ...

    # ------------------------------------------------------ owners, leases

    def renew_lease(self, owner: str, *, ttl: float = LEASE_TTL_S) -> bool:
        """Take or extend ``owner``'s lease until now + ``ttl``. False (nothing renewed) when its
        lease had expired: its work may have been taken over; the owner must stop submitting."""

    def claim_pending(self, n: int, owner: str, *, manifest: str | None = None) -> list[JobRecord]:
        """Atomically claim up to ``n`` pending jobs no live owner holds, in planning order."""

    def release_claims(self, owner: str) -> int:
        """Give back ``owner``'s claims on jobs still pending; returns how many."""

    def recover_expired(self, owner: str) -> int:
        """Take over expired owners' work (see the module docstring); returns how many jobs became
        in doubt. Journaled task ids are recorded first (:meth:`apply_rescue`)."""

    def apply_rescue(self) -> int:
        """Record the task ids of the rescue journal (submitting → running); returns how many."""

    def rescue_task_id(self, key: str, attempt_id: int, task_id: str) -> bool:
        """Journal an accepted task id the ledger could not record; never raises."""

    def take_token(self, bucket: str, *, per_minute: float) -> float:
        """Take one token of the rate bucket ``bucket`` (it holds at most one and refills at ``per_minute``
        a minute); the seconds the caller must wait before using it (0: at once). A token taken is never
        given back: every caller of the ledger together uses at most 1 + ``per_minute`` × T / 60 tokens
        in any T seconds. PostgreSQL keeps the bucket in the database on the server's clock (the submit
        rate of several runners together); SQLite and memory keep it in the process (one runner)."""

    # ---------------------------------------------------------- transitions

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
    ) -> bool: ...

    def mark_in_doubt(
        self, key: str, attempt_id: int, *, http_status: int | None, reason: str | None, message: str
    ) -> bool: ...

    def adopt_task(self, key: str, task_id: str, *, detail: str) -> bool:
        """in_doubt → running with ``task_id`` (``runner adopt``); False when the job is not in doubt, and
        :class:`~runner.errors.TaskIdTaken` (nothing written) when a job holds the id already, as ``mark_running``."""

    def adopt_file(self, key: str, *, path: str, sha256: str, bytes: int, detail: str) -> bool:
        """pending → done from a video already at ``path`` (``runner adopt --file``: paid for in a run the ledger no
        longer records), durable: its sha256 and size recorded, no task id, its estimate counted as spent, a submit
        attempt ``adopted`` with ``detail``. False (nothing written) when the job is not pending, a live other owner
        claimed it, or another job records ``path``."""

    def reopen_lost(self, key: str, *, detail: str) -> bool: ...

    def mark_succeeded(
        self, key: str, *, video_url: str, url_expires_at: float | None, debug: dict[str, Any], task_id: str | None = None
    ) -> bool:
        """running → succeeded (or succeeded → succeeded: a fresh URL). With ``task_id`` (a poll's answer, applied
        without reading the job first): only running → succeeded, only while ``task_id`` is the job's current task;
        False otherwise, an unknown key included."""

    def mark_failed(self, key: str, *, reason: str) -> bool: ...

    def mark_done(self, key: str, *, path: str, sha256: str, bytes: int) -> bool: ...

    def mark_lost(self, key: str, *, reason: str) -> bool: ...

    def note_file_problem(self, key: str, detail: str) -> bool: ...

    def record_event(
        self, key: str, kind: str, outcome: str, *, http_status: int | None = None, detail: str | None = None,
        task_id: str | None = None,
    ) -> None: ...

    def reset(self, manifest: str | None, state: JobState, keys: Sequence[str] | None = None) -> int:
        """failed or in_doubt → pending (an explicit retry); returns how many moved. ``keys``: only those
        of them still in ``state`` (``runner retry KEY…``), in one transaction; others are left as they are."""

    def retry_failed_job(self, key: str) -> bool: ...

    # ------------------------------------------------------------- review

    def reject(self, key: str, *, reason: str) -> bool:
        """done → done with ``review = "rejected"``, durable: the operator rejected the video; a
        rejection records its path, sha256, size and task. Refused (False): not done, or already
        rejected. Exports and the gallery's default view leave a rejected video out."""

    def accept(self, key: str) -> bool:
        """done → done with ``review = "accepted"``, durable; an open rejection is withdrawn."""

    def requeue_rejected(self, key: str, *, kept_path: str) -> bool:
        """done (rejected) → pending, durable: the job gets a fresh sample (``sample + 1``) on its next
        submit, a new paid task through the same write-ahead path. Its key, attempts and spend stay;
        its stored-file fields are cleared; the rejection records ``kept_path``, where the rejected
        video was moved aside (the caller moves it first). Refused (False) unless done and rejected."""

    def restore_file(self, key: str, *, path: str, sha256: str, bytes: int) -> bool:
        """done → done: the job's video was downloaded again (``runner verify``) and is at ``path``."""

    def rejections(self, key: str) -> list[RejectionRecord]:
        """Every rejection of ``key``, oldest first."""

    def review_counts(self, manifest: str | None = None) -> dict[str, int]:
        """Done jobs of ``manifest`` (or all) by review decision: ``{"rejected": n, "accepted": m}`` (a
        regenerated job is pending again: no longer counted)."""

    def rejected_keys(self, manifest: str) -> list[str]:
        """Keys of ``manifest``'s done jobs rejected in review (not regenerated yet), in planning order."""

    # -------------------------------------------------------------- renames

    def journal_renames(self, steps: list[tuple[str, str, str]]) -> None: ...

    def journaled_renames(self) -> list[tuple[str, str, str]]: ...

    def finish_rename(self, key: str, *, src: str, dst: str) -> bool: ...

    def forget_rename(self, key: str) -> None: ...

    # ---------------------------------------------------------- unsent work

    def fail_unsent(self, key: str, *, reason: str) -> bool:
        """pending → failed before anything was sent (e.g. a local input changed since the plan), reason
        :data:`UNSENT_REASON`; nothing paid."""

    # ------------------------------------------------------ spend and history

    def spend_by_model(self, manifest: str | None = None) -> dict[str, float]:
        """Estimated spend (as :meth:`spent_usd`) by model, models with a spend only; of every job
        ``manifest`` ever targeted, or of the whole ledger."""

    def run_history(self, manifest: str | None = None, *, limit: int = 20) -> list[RunSummary]:
        """The latest ``limit`` runs, newest first, each with what it did to ``manifest``'s jobs (every
        job it ever targeted) or to all: submits that may have created a paid task (not refused,
        rejected, adopted or rescued) and their estimated spend; jobs finished done, or failed or
        lost, between the run's start and end (still running: up to now)."""
