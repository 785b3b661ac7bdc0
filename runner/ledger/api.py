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

**Modules.** The protocol's verbs are grouped by concept, one module each, which :class:`LedgerBackend` joins:
:mod:`~runner.ledger.api_reads` (jobs, targets, files, spend, history), :mod:`~runner.ledger.api_owners` (claims,
leases, the rescue journal, the rate bucket), :mod:`~runner.ledger.api_transitions` (a job's moves, the write-ahead
first) and :mod:`~runner.ledger.api_review` (review decisions, renamed files); planning, the ledger's meta and its
runs are here. The marks a moved or copied ledger bears are :mod:`~runner.ledger.moved_marks`'.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from runner.jobs import JobSpec, JobState
from runner.ledger.api_owners import LEASE_TTL_S, LedgerOwners
from runner.ledger.api_reads import LedgerReads
from runner.ledger.api_review import LedgerReview
from runner.ledger.api_transitions import Budget, LedgerTransitions
from runner.ledger.moved_marks import BY_RUN, COPYING_META, MOVED_META, copying_from, moved_mark, moved_to, read_moved
from runner.ledger.records import RunRecord

__all__ = ["BY_RUN", "COPYING_META", "IN_DOUBT_HOLD_S", "LEASE_TTL_S", "MOVED_META", "PAID_STATES", "UNPAID_SUBMITS",
           "UNSENT_REASON", "Budget", "Clock", "LedgerBackend", "copying_from", "moved_mark", "moved_to", "read_moved"]

Clock = Callable[[], float]

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
class LedgerBackend(LedgerReads, LedgerOwners, LedgerTransitions, LedgerReview, Protocol):
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

    # ----------------------------------------------------------- meta, runs

    def meta(self, key: str) -> str | None:
        """A fact about the ledger itself (``provider``: what it was made with), or ``None``."""

    def set_meta(self, key: str, value: str) -> None:
        """Record a fact about the ledger itself (durably: it guards what may be paid)."""

    def start_run(self, *, argv: list[str]) -> int:
        """Record this process as a run; its id (later submits and events refer to it)."""

    def finish_run(self, run_id: int, *, exit_code: int, counts: dict[str, int]) -> None:
        """Close a run with its exit code and final counts."""

    def runs(self, *, limit: int = 20) -> list[RunRecord]:
        """The latest runs, newest first."""
