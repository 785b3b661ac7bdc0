"""The SQLite ledger: one file per state directory, one writer at a time (its lock).

:class:`SqliteLedger` implements :class:`~runner.ledger.api.LedgerBackend` (read that module for
the rules every backend follows). Jobs are keyed by their job key and shared across manifests:
two manifests asking for the same video pay once; a manifest only *targets* jobs, giving each an
output name. This module holds the class: life cycle, planning (:meth:`SqliteLedger.register`),
reads, runs, owners and the state transitions; :mod:`runner.ledger.sqlite.moves` holds the SQL
of one guarded move; opening the file is :mod:`runner.ledger.sqlite.opening`. Nothing here ever
takes the API key.

The transitions, each one transaction of the form ``UPDATE … WHERE key = ? AND state IN (…)``::

    pending            → submitting        mark_submitting (before the POST; not while a live
                                           other owner holds the job)
    submitting         → running           mark_running (task id recorded)
    submitting         → pending | failed  mark_refused (no task was created)
    submitting         → in_doubt          mark_in_doubt, recover_expired (expired owners only)
    submitting         → running           apply_rescue (a task id from the rescue journal)
    in_doubt           → running           adopt_task (an operator's task id, verified)
    lost               → running           reopen_lost (the provider knows the task again)
    running, succeeded → succeeded         mark_succeeded (again: a fresh URL)
    succeeded          → succeeded         note_file_problem (the video cannot be stored locally)
    running            → failed            mark_failed (the provider said FAILED)
    succeeded          → done              mark_done
    running, succeeded → lost              mark_lost
    failed, in_doubt   → pending           reset; retry_failed_job (failed only)
    done               → done              finish_rename (the stored file got another name)

The submit path is write-ahead and durable (``synchronous=FULL``): ``mark_submitting`` commits
before the POST leaves and reserves the job's estimated price in ``spent_usd``; ``mark_refused``
gives it back (no task was created), ``mark_running`` and ``mark_in_doubt`` keep it.

Owners: ``jobs.owner`` names who claimed a pending job or owns its in-flight work; ``leases``
holds each owner's lease. A lease counts only if it was renewed since this ledger was opened:
the single-writer lock proves every earlier process's owner dead.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from runner.errors import LedgerError, LedgerReplaced, LedgerSchemaError
from runner.jobs import JobSpec, JobState
from runner.ledger import rescue
from runner.ledger.api import LEASE_TTL_S, PAID_STATES, Clock
from runner.ledger.connection import Connection, corrupt_message
from runner.ledger.lock import LedgerLock
from runner.ledger.records import (
    ATTEMPT_COLUMNS,
    JOB_COLUMNS,
    AttemptRecord,
    JobRecord,
    RunRecord,
)
from runner.ledger.sqlite import owners, planning
from runner.ledger.sqlite.moves import CLEARED, LIVE, close_attempt, event, move

if TYPE_CHECKING:
    from sqlite_utils import Database

__all__ = ["DB_NAME", "LOCK_NAME", "PROVIDER_MARK", "RESCUE_PREFIX", "SqliteLedger"]

DB_NAME = "ledger.db"
LOCK_NAME = "ledger.lock"
PROVIDER_MARK = "provider"  # "simulator" or "novita": the kind of provider, beside the ledger
RESCUE_PREFIX = "ledger.rescued-"  # a copy saved when the ledger was removed under a run
log = logging.getLogger("runner.ledger.store")
_PAGE = 1000  # rows per query when streaming
_IN_CHUNK = 500  # keys per ``IN (…)`` list
_STATES = {str(state): state for state in JobState}
_EVENT_KINDS = frozenset({"poll", "download"})
# Done jobs of a manifest (?) recorded under its folder (?, ?) at another path than folder || output (?).
_MISPLACED = (
    "FROM targets t JOIN jobs j ON j.id = t.job_id WHERE t.manifest = ? AND j.state = 'done'"
    " AND substr(j.path, 1, ?) = ? AND j.path <> ? || t.output"
)


class SqliteLedger:
    """The jobs, targets, attempts and runs of one state directory.

    Use :func:`open_ledger` to get one. A context manager; :meth:`close`
    releases the lock. Methods may be called from any one thread at a time.
    """

    def __init__(
        self, conn: Connection, *, state_dir: Path, lock: LedgerLock | None, clock: Clock
    ) -> None:
        self._conn = conn
        self._lock = lock
        self._clock = clock
        self._run_id: int | None = None
        self._closed = False
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._opened_at = clock()  # leases renewed before this belong to earlier processes: expired
        self.state_dir = state_dir
        self.path = conn.file
        self.created = conn.created  # this open made a new ledger
        self.rescued: Path | None = None  # where close() saved a copy of a ledger removed under us
        self._identity = None if conn.readonly else _file_id(self.path)

    # ------------------------------------------------------------ life cycle

    @property
    def readonly(self) -> bool:
        return self._conn.readonly

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def owner(self) -> str:
        """This process's owner name; live for as long as this ledger is open (it holds the lock)."""
        return self._owner

    def check_identity(self) -> None:
        """Raise :class:`LedgerReplaced` if ``ledger.db`` is no longer the file this ledger has open.

        Someone removed it, or put another file in its place: whatever this
        run records from now on goes into a file nobody will read. One
        ``stat`` call; the engine's submits call it first.
        """
        if self._identity is None or _file_id(self.path) == self._identity:
            return
        gone = "removed" if not os.path.lexists(self.path) else "replaced by another file"
        raise LedgerReplaced(
            f"the ledger {self.path} was {gone} while this run was using it; stopping: nothing more "
            "is submitted. What this run recorded (task ids included) is saved when it stops to "
            f"{self.state_dir / (RESCUE_PREFIX + '<time>.db')}: move that file to {self.path} "
            "(setting aside whatever is there now) and run again to collect those tasks"
        )

    def close(self) -> None:
        """Close the database and release the lock (idempotent).

        If ``ledger.db`` was removed or replaced meanwhile, a copy of the open
        ledger is saved first as ``<state>/ledger.rescued-<time>.db``
        (:attr:`rescued`): it may hold the only record of paid tasks.
        """
        if self._closed:
            return
        self._closed = True
        try:
            if self._identity is not None and _file_id(self.path) != self._identity:
                self.rescued = self._rescue()
            self._conn.close()
        finally:
            if self._lock is not None:
                self._lock.release()

    def _rescue(self) -> Path | None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock()))
        target = self.state_dir / f"{RESCUE_PREFIX}{stamp}-{os.getpid()}.db"
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self._conn.backup_to(target)
        except (OSError, LedgerError) as exc:
            log.error("could not save a copy of the removed ledger %s to %s: %s", self.path, target, exc)
            return None
        log.warning("the ledger %s was removed or replaced; this run's copy is saved as %s", self.path, target)
        return target

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "read-only" if self.readonly else "writable"
        return f"<SqliteLedger {self.path} {mode}{' closed' if self._closed else ''}>"

    # -------------------------------------------------------------- planning

    def manifest_digest(self, name: str) -> str | None:
        """The digest recorded by the last :meth:`register` of ``name``."""
        value = self._conn.scalar("SELECT digest FROM manifests WHERE name = ?", (name,))
        return None if value is None else str(value)

    def register(self, name: str, digest: str, jobs: Iterable[JobSpec], *, batch: int = 2000) -> int:
        """Plan a manifest's jobs in one transaction; returns how many it has (:func:`planning.register`)."""
        return planning.register(self._conn, name, digest, jobs, batch=batch, now=self._clock())

    def _by_keys(self, sql: str, keys: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """Rows of ``sql`` (its ``{marks}`` the placeholders of a key list), ``_IN_CHUNK`` keys a query."""
        for start in range(0, len(keys), _IN_CHUNK):
            chunk = list(keys[start : start + _IN_CHUNK])
            yield from self._conn.tuples(sql.format(marks=", ".join("?" * len(chunk))), chunk)

    def states_of(self, keys: Sequence[str]) -> dict[str, JobState]:
        """The state of each of ``keys`` the ledger knows (unknown keys are absent)."""
        found: dict[str, JobState] = {}
        for key, state in self._by_keys("SELECT key, state FROM jobs WHERE key IN ({marks})", keys):
            with self._readable(f"job {key}"):
                found[key] = _STATES[state]
        return found

    def stored_paths(self, keys: Sequence[str]) -> dict[str, str]:
        """The recorded path of each of ``keys`` that is done (relative to the state directory)."""
        found: dict[str, str] = {}
        sql = "SELECT key, path FROM jobs WHERE key IN ({marks}) AND state = 'done' AND path IS NOT NULL"
        for key, path in self._by_keys(sql, keys):
            found[str(key)] = str(path)
        return found

    def target_output(self, manifest: str, key: str) -> str | None:
        """The output name ``manifest`` gives ``key`` (``None`` if it does not list it)."""
        output = self._conn.scalar(
            "SELECT t.output FROM jobs j JOIN targets t ON t.job_id = j.id AND t.manifest = ?"
            " WHERE j.key = ?",
            (manifest, key),
        )
        return None if output is None else str(output)

    def targets_of(self, key: str) -> list[tuple[str, str]]:
        """(manifest, output name) of every manifest listing ``key``.

        The manifest registered first comes first: that is where the one
        paid-for file is downloaded; the others get a link or a copy.
        """
        rows = self._conn.tuples(
            "SELECT t.manifest, t.output FROM jobs j JOIN targets t ON t.job_id = j.id"
            " JOIN manifests m ON m.name = t.manifest WHERE j.key = ?"
            " ORDER BY m.created_at, m.name",
            (key,),
        )
        return [(str(manifest), str(output)) for manifest, output in rows]

    # ----------------------------------------------------------------- reads

    def counts(self, manifest: str | None = None) -> dict[JobState, int]:
        """How many jobs are in each state; every state is present, zeros included."""
        counts = dict.fromkeys(JobState, 0)
        if manifest is None or self._covers_every_job(manifest):
            # The state index alone answers it: ~10x faster than the join at a million jobs.
            rows = self._conn.rows("SELECT state, count(*) AS n FROM jobs GROUP BY state")
        else:
            rows = self._conn.rows(
                "SELECT j.state, count(*) AS n FROM targets t JOIN jobs j ON j.id = t.job_id"
                " WHERE t.manifest = ? GROUP BY j.state",
                (manifest,),
            )
        for row in rows:
            counts[JobState(row["state"])] = int(row["n"])
        return counts

    def _covers_every_job(self, manifest: str) -> bool:
        """Whether ``manifest`` targets every job of the ledger (one manifest per ledger, the usual case).

        A manifest's targets name distinct jobs, so it covers them all exactly
        when it has as many targets as the ledger has jobs.
        """
        targets = self._conn.scalar("SELECT jobs FROM manifests WHERE name = ?", (manifest,))
        return targets is not None and int(targets) > 0 and int(targets) == self.total(None)

    def total(self, manifest: str | None = None) -> int:
        """How many jobs the manifest (or the whole ledger) has."""
        if manifest is None:
            return int(self._conn.scalar("SELECT count(*) FROM jobs"))
        return int(
            self._conn.scalar("SELECT count(*) FROM targets WHERE manifest = ?", (manifest,))
        )

    def iter_jobs(
        self, manifest: str | None = None, states: Collection[JobState] | None = None
    ) -> Iterator[JobRecord]:
        """Stream jobs in planning order, a page at a time (memory stays flat).

        Each page is its own query, so the ledger can be written between
        pages; a job that changes state meanwhile may be missed or seen again.
        """
        if states is None:
            pairs = self._stream(manifest, None)
        else:
            wanted = sorted({JobState(state) for state in states})
            # One ordered index walk per state, merged: no page ever needs a sort.
            pairs = heapq.merge(
                *(self._stream(manifest, state) for state in wanted), key=lambda pair: pair[0]
            )
        for _, record in pairs:
            yield record

    def get(self, key: str, manifest: str | None = None) -> JobRecord | None:
        """One job; through a manifest, ``None`` unless that manifest targets it."""
        row = self._conn.one(
            f"SELECT {JOB_COLUMNS}, t.output FROM jobs j"
            " LEFT JOIN targets t ON t.job_id = j.id AND t.manifest = ? WHERE j.key = ?",
            (manifest, key),
        )
        if row is None or (manifest is not None and row["output"] is None):
            return None
        with self._readable(f"job {key}"):
            return JobRecord.from_row(row)

    def pending_batch(
        self, manifest: str | None, *, limit: int, after_rowid: int = 0
    ) -> list[tuple[int, JobRecord]]:
        """Up to ``limit`` pending jobs after ``after_rowid``, in planning order."""
        return self._page(manifest, JobState.PENDING, after=after_rowid, limit=limit)

    def outstanding(self) -> int:
        """Tasks that may exist at the provider (submitting + running), whole ledger."""
        return int(
            self._conn.scalar(
                "SELECT count(*) FROM jobs WHERE state IN (?, ?)",
                (JobState.SUBMITTING, JobState.RUNNING),
            )
        )

    def has_provider_tasks(self) -> bool:
        """Whether any submit may have created a task at the provider (accepted, ambiguous or cut off).

        A ledger whose submits were all refused holds nothing a provider knows: it may move freely.
        """
        row = self._conn.scalar(
            "SELECT 1 FROM attempts WHERE kind = 'submit'"
            " AND (outcome IS NULL OR outcome NOT IN ('refused', 'rejected')) LIMIT 1"
        )
        return row is not None

    def spent_usd(self, manifest: str | None = None) -> float:
        """Estimated spend of every submit that may have created a paid task.

        For a manifest: of every job it *ever* targeted, including those an
        edit has dropped since (its budget counts them; see :meth:`dropped_spent_usd`).
        """
        if manifest is None:
            return self._sum("spent_usd", None, None)
        return float(
            self._conn.scalar(
                "SELECT round(coalesce(sum(j.spent_usd), 0), 9) FROM targeted e"
                " JOIN jobs j ON j.id = e.job_id WHERE e.manifest = ?",
                (manifest,),
            )
        )

    def dropped_spent_usd(self, manifest: str) -> float:
        """The part of :meth:`spent_usd` spent on jobs ``manifest`` no longer lists."""
        return float(
            self._conn.scalar(
                "SELECT round(coalesce(sum(j.spent_usd), 0), 9) FROM targeted e"
                " JOIN jobs j ON j.id = e.job_id WHERE e.manifest = ? AND e.dropped_at IS NOT NULL",
                (manifest,),
            )
        )

    def orphans(self, manifest: str | None = None) -> dict[JobState, int]:
        """Paid jobs (submitted, in any state since) that no manifest lists any more, by state.

        With ``manifest``: those that manifest once targeted. They are still
        polled and stored (see :meth:`orphan_home`); only states present
        are in the answer.
        """
        paid = sorted(str(state) for state in PAID_STATES)
        marks = ", ".join("?" * len(paid))
        params: list[Any] = []
        if manifest is None:
            sql = f"SELECT j.state, count(*) FROM jobs j WHERE j.state IN ({marks})"
        else:
            sql = (
                "SELECT j.state, count(*) FROM targeted e JOIN jobs j ON j.id = e.job_id"
                f" WHERE e.manifest = ? AND e.dropped_at IS NOT NULL AND j.state IN ({marks})"
            )
            params.append(manifest)
        sql += " AND NOT EXISTS (SELECT 1 FROM targets t WHERE t.job_id = j.id) GROUP BY j.state"
        return {_STATES[state]: int(n) for state, n in self._conn.tuples(sql, [*params, *paid])}

    def orphan_keys(self, manifest: str, state: JobState) -> list[str]:
        """Jobs in ``state`` that ``manifest`` once targeted and that no manifest lists any more."""
        rows = self._conn.tuples(
            "SELECT j.key FROM targeted e JOIN jobs j ON j.id = e.job_id WHERE e.manifest = ?"
            " AND e.dropped_at IS NOT NULL AND j.state = ?"
            " AND NOT EXISTS (SELECT 1 FROM targets t WHERE t.job_id = j.id) ORDER BY j.id",
            (manifest, str(state)),
        )
        return [str(key) for (key,) in rows]

    def orphan_home(self, key: str) -> str | None:
        """The manifest that dropped ``key`` last (where its orphan is stored), ``None`` if no record says."""
        home = self._conn.scalar(
            "SELECT e.manifest FROM jobs j JOIN targeted e ON e.job_id = j.id WHERE j.key = ?"
            " ORDER BY e.dropped_at IS NULL DESC, e.dropped_at DESC, e.manifest LIMIT 1",
            (key,),
        )
        return None if home is None else str(home)

    def misplaced(self, manifest: str, folder: str, *, limit: int | None = None) -> list[tuple[str, str, str]]:
        """Done jobs of ``manifest`` recorded under ``folder`` at another path than ``folder + output``.

        As (key, recorded path, output name), in planning order. A job stored
        outside ``folder`` (shared, paid for by another manifest) is not
        misplaced: this manifest gets a link to it.
        """
        sql = f"SELECT j.key, j.path, t.output {_MISPLACED} ORDER BY t.job_id"
        params: list[Any] = [manifest, len(folder), folder, folder]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [(str(k), str(p), str(o)) for k, p, o in self._conn.tuples(sql, params)]

    def misplaced_count(self, manifest: str, folder: str) -> int:
        """How many :meth:`misplaced` jobs ``manifest`` has."""
        return int(self._conn.scalar(f"SELECT count(*) {_MISPLACED}", (manifest, len(folder), folder, folder)))

    def stored_elsewhere(self, manifest: str, folder: str) -> Iterator[tuple[str, str, str, str]]:
        """Done jobs of ``manifest`` recorded outside ``folder`` (another manifest's video: it gets a link).

        As (key, recorded path, output name, sha256), streamed a page at a time.
        """
        after = 0
        while True:
            rows = self._conn.tuples(
                "SELECT t.job_id, j.key, j.path, t.output, j.sha256 FROM targets t"
                " JOIN jobs j ON j.id = t.job_id WHERE t.manifest = ? AND t.job_id > ? AND j.state = 'done'"
                " AND substr(j.path, 1, ?) <> ? ORDER BY t.job_id LIMIT ?",
                (manifest, after, len(folder), folder, _PAGE),
            )
            for _, key, path, output, sha256 in rows:
                yield str(key), str(path), str(output), str(sha256)
            if len(rows) < _PAGE:
                return
            after = int(rows[-1][0])

    def paths_with_sha256(self, sha256: str) -> list[str]:
        """Recorded paths of done jobs whose video has this sha256 (a full scan: for rare checks)."""
        rows = self._conn.tuples(
            "SELECT path FROM jobs WHERE sha256 = ? AND state = 'done' AND path IS NOT NULL", (sha256,)
        )
        return [str(path) for (path,) in rows]

    def key_at_path(self, path: str) -> str | None:
        """The job whose stored file is recorded at ``path`` (relative to the state directory)."""
        value = self._conn.scalar("SELECT key FROM jobs WHERE path = ? LIMIT 1", (path,))
        return None if value is None else str(value)

    def estimate_usd(
        self, manifest: str | None = None, states: Collection[JobState] | None = None
    ) -> float:
        """Sum of the estimated price of one more task of each job (e.g. what a retry costs)."""
        return self._sum("estimated_usd", manifest, states)

    def debug_info(self, key: str) -> dict[str, Any]:
        """The provider's ``extra.debug_info`` from the job's last task result (``{}`` if none)."""
        raw = self._conn.scalar("SELECT debug_json FROM jobs WHERE key = ?", (key,))
        if not raw:
            return {}
        with self._readable(f"job {key}"):
            value = json.loads(raw)
        return value if isinstance(value, dict) else {}

    def find_keys(self, prefix: str, *, limit: int = 10) -> list[str]:
        """Up to ``limit`` job keys starting with ``prefix``, sorted (an index range scan)."""
        rows = self._conn.rows(
            "SELECT key FROM jobs WHERE key >= ? AND key < ? ORDER BY key LIMIT ?",
            (prefix, prefix + "\U0010ffff", limit),
        )
        return [str(row["key"]) for row in rows]

    def key_of_task(self, task_id: str) -> str | None:
        """The job that ``task_id`` (its current or an earlier task) belongs to; a full scan."""
        value = self._conn.scalar("SELECT key FROM jobs WHERE task_id = ?", (task_id,))
        if value is None:
            value = self._conn.scalar("SELECT key FROM attempts WHERE task_id = ? LIMIT 1", (task_id,))
        return None if value is None else str(value)

    def not_found_keys(self) -> set[str]:
        """Running or succeeded jobs that have TASK_NOT_FOUND answers on record (read once per run)."""
        rows = self._conn.tuples(
            "SELECT DISTINCT a.key FROM attempts a JOIN jobs j ON j.key = a.key"
            " WHERE a.outcome = 'not_found' AND j.state IN (?, ?)",
            (JobState.RUNNING, JobState.SUCCEEDED),
        )
        return {str(row[0]) for row in rows}

    def attempts(self, key: str) -> list[AttemptRecord]:
        """Every submit and every poll / download error of a job, oldest first."""
        rows = self._conn.rows(
            f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE key = ? ORDER BY id", (key,)
        )
        with self._readable(f"the attempts of job {key}"):
            return [AttemptRecord.from_row(row) for row in rows]

    # ------------------------------------------------------------------ meta

    def meta(self, key: str) -> str | None:
        """A fact about the ledger itself (``provider``: what it was made with), or ``None``."""
        value = self._conn.scalar("SELECT value FROM meta WHERE key = ?", (key,))
        return None if value is None else str(value)

    def set_meta(self, key: str, value: str) -> None:
        """Record a fact about the ledger itself (durably: it guards what may be paid)."""
        with self._conn.write(durable=True) as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # ------------------------------------------------------------------ runs

    def start_run(self, *, argv: list[str]) -> int:
        """Record this process as a run; later submits and events refer to it."""
        with self._conn.write() as db:
            cursor = db.execute(
                "INSERT INTO runs (pid, host, argv, started_at) VALUES (?, ?, ?, ?)",
                (os.getpid(), socket.gethostname(), json.dumps(list(argv)), self._clock()),
            )
            self._run_id = int(cursor.lastrowid or 0)
        return self._run_id

    def finish_run(self, run_id: int, *, exit_code: int, counts: dict[str, int]) -> None:
        """Close a run with its exit code and final counts."""
        with self._conn.write() as db:
            cursor = db.execute(
                "UPDATE runs SET ended_at = ?, exit_code = ?, counts_json = ? WHERE id = ?",
                (self._clock(), exit_code, json.dumps(counts, sort_keys=True), run_id),
            )
            if cursor.rowcount != 1:
                raise LedgerError(f"unknown run {run_id}; this is a bug in runner")

    def runs(self, *, limit: int = 20) -> list[RunRecord]:
        """The latest runs, newest first."""
        rows = self._conn.rows("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,))
        with self._readable("a run"):
            return [RunRecord.from_row(row) for row in rows]

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
        with self._readable("a job"):
            return [JobRecord.from_row(row) for row in rows]

    def release_claims(self, owner: str) -> int:
        """Give back ``owner``'s claims on jobs still pending; returns how many."""
        return owners.release(self._conn, owner)

    def recover_expired(self, owner: str) -> int:
        """Take over the work of expired owners; returns how many jobs became ``in_doubt``.

        Their ``submitting`` rows become ``in_doubt`` (the POST may have created a paid task whose
        id was never recorded: held for the operator, never resubmitted here), their ``running`` /
        ``succeeded`` rows become ``owner``'s, their claims lapse. Rows without an owner count as
        expired; so does every owner of an earlier process (the lock proves it dead). Task ids of
        the rescue journal are recorded first (:meth:`apply_rescue`).
        """
        self.apply_rescue()
        return owners.recover(self._conn, self._owned(owner))

    def apply_rescue(self) -> int:
        """Record the task ids of the rescue journal (see :mod:`runner.ledger.rescue`); returns how many.

        A line names the submit attempt the provider answered. When that attempt
        is still the job's last submit, the job takes the task: from
        ``submitting`` (the usual case: the run died before it could record it),
        or from ``in_doubt`` / ``pending`` (the journal could not be read when
        the job was put in doubt, and perhaps the operator reset it since) —
        the task exists and was paid for, so recording it is cheaper than
        paying again. A line for an older attempt is never attached to a newer
        submit (that submit's own task would be forgotten instead of held in
        doubt); if the ledger does not know its task id yet (the job was
        resubmitted meanwhile: both tasks were paid), the id is kept on the
        job's record (a submit row, outcome ``rescued``: paid, not the job's task). Every
        line is then marked consumed.
        """
        applied = 0
        for entry in rescue.pending_entries(self.state_dir):
            now = self._clock()
            with self._conn.write(durable=True) as db:
                outcome = self._replay_rescue(db, entry, now)
            rescue.crash_point("rescue-applied")
            applied += int(outcome == "running")
            with contextlib.suppress(OSError):  # applying again is harmless: the line's task id is on record now
                rescue.mark_consumed(self.state_dir, entry, at=now, outcome=outcome)
        return applied

    def _replay_rescue(self, db: Database, entry: rescue.RescueEntry, now: float) -> str:
        """Apply one journal line; returns what became of it (``running``, ``stale``, ``kept``, ``unknown``)."""
        row = db.execute("SELECT state FROM jobs WHERE key = ?", (entry.key,)).fetchone()
        if row is None:
            return "unknown"
        known = db.execute(
            "SELECT 1 FROM jobs WHERE task_id = :t UNION ALL SELECT 1 FROM attempts WHERE task_id = :t LIMIT 1",
            {"t": entry.task_id},
        ).fetchone()
        if known is not None:
            return "stale"  # recorded another way (or by an earlier replay)
        last = db.execute(
            "SELECT max(id) FROM attempts WHERE key = ? AND kind = 'submit' AND outcome IS NOT 'rescued'", (entry.key,)
        ).fetchone()[0]
        detail = f"recorded from {rescue.RESCUE_NAME} (the ledger write failed when the answer arrived)"
        if last == entry.attempt and row[0] in (JobState.SUBMITTING, JobState.IN_DOUBT, JobState.PENDING):
            db.execute(
                "UPDATE jobs SET state = 'running', task_id = ?, error = NULL, reason = NULL, updated_at = ?"
                " WHERE key = ?",
                (entry.task_id, now, entry.key),
            )
            db.execute(
                "UPDATE attempts SET ended_at = ?, outcome = 'accepted', task_id = ?, detail = ? WHERE id = ?",
                (now, entry.task_id, detail, entry.attempt),
            )
            return "running"
        event(db, self._run_id, entry.key, "submit", "rescued", now, task_id=entry.task_id,
              detail=(f"{detail}; not attached: the job had moved on to another submit. This task was"
                      " paid for too; its video can be fetched from the provider's console"))
        return "kept"

    def rescue_task_id(self, key: str, attempt_id: int, task_id: str) -> bool:
        """Journal an accepted task id the ledger could not record (see :mod:`runner.ledger.rescue`).

        Never raises; False when the journal could not be written either.
        """
        entry = rescue.RescueEntry(key=key, task_id=task_id, attempt=attempt_id, at=self._clock())
        written = rescue.append_entry(self.state_dir, entry)
        rescue.crash_point("rescue-journalled")
        return written

    # ----------------------------------------------------------- transitions

    def mark_submitting(self, key: str, *, run_id: int | None = None, owner: str | None = None) -> int | None:
        """pending → submitting, before the POST; reserves the estimate. Returns the attempt id.

        ``None`` (nothing written) when the job is not pending or a live other
        owner claimed it. Raises :class:`~runner.errors.LedgerReplaced`
        (nothing written) when the ledger file was removed or replaced under
        this run.
        """
        self.check_identity()
        owner = self._owner if owner is None else owner
        params = self._owned(owner)
        now = params.pop("now")
        with self._conn.write(durable=True) as db:
            if not move(db, key, now, (JobState.PENDING,), JobState.SUBMITTING,
                        "attempts = attempts + 1, submitted_at = :now, owner = :caller,"
                        " spent_usd = round(spent_usd + estimated_usd, 9)",
                        where=f"(owner IS NULL OR owner = :caller OR NOT {LIVE})", **params):
                return None
            cursor = db.execute(
                "INSERT INTO attempts (key, kind, started_at, run_id) VALUES (?, 'submit', ?, ?)",
                (key, now, run_id if run_id is not None else self._run_id),
            )
            return int(cursor.lastrowid or 0)

    def adopt_task(self, key: str, task_id: str, *, detail: str) -> bool:
        """in_doubt → running: an operator attached ``task_id``, verified at the provider (``runner adopt``)."""
        now = self._clock()
        with self._conn.write(durable=True) as db:
            if not move(db, key, now, (JobState.IN_DOUBT,), JobState.RUNNING,
                        "task_id = :task_id, error = NULL, reason = NULL, owner = :owner",
                        task_id=task_id, owner=self._owner):
                return False
            db.execute(
                "INSERT INTO attempts (key, kind, started_at, ended_at, outcome, task_id, detail, run_id)"
                " VALUES (?, 'submit', ?, ?, 'adopted', ?, ?, ?)",
                (key, now, now, task_id, detail, self._run_id),
            )
        return True

    def reopen_lost(self, key: str, *, detail: str) -> bool:
        """lost → running: the provider answered for the task again (``runner retry --lost``)."""
        now = self._clock()
        with self._conn.write(durable=True) as db:
            if not move(db, key, now, (JobState.LOST,), JobState.RUNNING,
                        "error = NULL, reason = NULL, finished_at = NULL, video_url = NULL, url_expires_at = NULL,"
                        " owner = :owner", owner=self._owner):
                return False
            event(db, self._run_id, key, "poll", "found", now, detail=detail)
        return True

    def mark_running(
        self, key: str, attempt_id: int, *, task_id: str, http_status: int | None
    ) -> bool:
        """submitting → running: the provider accepted the task and gave its id."""
        now = self._clock()
        with self._conn.write(durable=True) as db:
            if not move(db, key, now, (JobState.SUBMITTING,), JobState.RUNNING,
                        "task_id = :task_id, error = NULL, reason = NULL", task_id=task_id):
                return False
            close_attempt(db, key, attempt_id, now, "accepted", task_id=task_id, http_status=http_status)
        return True

    def mark_refused(
        self,
        key: str,
        attempt_id: int,
        *,
        http_status: int | None,
        reason: str | None,
        message: str,
        permanent: bool,
    ) -> bool:
        """submitting → pending (may be retried) or failed (``permanent``); no task was created."""
        now = self._clock()
        target = JobState.FAILED if permanent else JobState.PENDING
        with self._conn.write(durable=True) as db:
            if not move(db, key, now, (JobState.SUBMITTING,), target,
                        "spent_usd = max(0, round(spent_usd - estimated_usd, 9)),"
                        " error = :message, reason = :reason, owner = NULL"
                        + (", finished_at = :now" if permanent else ""),
                        message=message, reason=reason):
                return False
            close_attempt(db, key, attempt_id, now, "rejected" if permanent else "refused",
                          http_status=http_status, detail=message)
        return True

    def mark_in_doubt(
        self,
        key: str,
        attempt_id: int,
        *,
        http_status: int | None,
        reason: str | None,
        message: str,
    ) -> bool:
        """submitting → in_doubt: a paid task may exist; the reservation stays."""
        now = self._clock()
        with self._conn.write(durable=True) as db:
            if not move(db, key, now, (JobState.SUBMITTING,), JobState.IN_DOUBT,
                        "error = :message, reason = :reason, owner = NULL", message=message, reason=reason):
                return False
            close_attempt(db, key, attempt_id, now, "ambiguous", http_status=http_status, detail=message)
        return True

    def mark_succeeded(
        self, key: str, *, video_url: str, url_expires_at: float | None, debug: dict[str, Any]
    ) -> bool:
        """running → succeeded (or succeeded → succeeded with a fresh URL)."""
        with self._conn.write() as db:
            return move(
                db, key, self._clock(), (JobState.RUNNING, JobState.SUCCEEDED), JobState.SUCCEEDED,
                "video_url = :url, url_expires_at = :expires, debug_json = :debug, error = NULL, reason = NULL",
                url=video_url, expires=url_expires_at, debug=json.dumps(debug, sort_keys=True, default=str),
            )

    def mark_failed(self, key: str, *, reason: str) -> bool:
        """running → failed: the provider reported the task FAILED."""
        now = self._clock()
        with self._conn.write() as db:
            if not move(db, key, now, (JobState.RUNNING,), JobState.FAILED,
                        "error = :reason, reason = :reason, finished_at = :now, owner = NULL", reason=reason):
                return False
            event(db, self._run_id, key, "poll", "failed", now, detail=reason)
        return True

    def mark_done(self, key: str, *, path: str, sha256: str, bytes: int) -> bool:
        """succeeded → done: the verified file is in place at ``path`` (relative to the state dir)."""
        with self._conn.write() as db:
            return move(
                db, key, self._clock(), (JobState.SUCCEEDED,), JobState.DONE,
                "path = :path, sha256 = :sha256, bytes = :bytes, finished_at = :now,"
                " error = NULL, reason = NULL, owner = NULL",
                path=path, sha256=sha256, bytes=bytes,
            )

    def mark_lost(self, key: str, *, reason: str) -> bool:
        """running|succeeded → lost: paid for, but the result can no longer be fetched."""
        now = self._clock()
        with self._conn.write() as db:
            before = db.execute("SELECT state FROM jobs WHERE key = ?", (key,)).fetchone()
            if not move(db, key, now, (JobState.RUNNING, JobState.SUCCEEDED), JobState.LOST,
                        "error = :reason, finished_at = :now, owner = NULL", reason=reason):
                return False
            event(db, self._run_id, key, "poll" if before[0] == JobState.RUNNING else "download", "lost", now,
                  detail=reason)
        return True

    def note_file_problem(self, key: str, detail: str) -> bool:
        """succeeded stays succeeded: its video could not be stored locally; the reason is kept on the job."""
        now = self._clock()
        with self._conn.write() as db:
            if not move(db, key, now, (JobState.SUCCEEDED,), JobState.SUCCEEDED,
                        "error = :detail, reason = 'FILE_ERROR'", detail=detail):
                return False
            event(db, self._run_id, key, "download", "file_error", now, detail=detail)
        return True

    def record_event(
        self,
        key: str,
        kind: str,
        outcome: str,
        *,
        http_status: int | None = None,
        detail: str | None = None,
        task_id: str | None = None,
    ) -> None:
        """Record a poll or download error of a job (its state does not change)."""
        if kind not in _EVENT_KINDS:
            raise LedgerError(f"unknown event kind {kind!r} (expected poll or download)")
        with self._conn.write() as db:
            if db.execute("SELECT 1 FROM jobs WHERE key = ?", (key,)).fetchone() is None:
                raise LedgerError(f"unknown job {key}; this is a bug in runner")
            event(db, self._run_id, key, kind, outcome, self._clock(), http_status=http_status, detail=detail,
                  task_id=task_id)

    def reset(self, manifest: str | None, state: JobState) -> int:
        """failed or in_doubt → pending (an explicit retry); returns how many jobs moved."""
        if state not in (JobState.FAILED, JobState.IN_DOUBT):
            raise LedgerError(f"only failed or in_doubt jobs can be reset, not {state}")
        params: dict[str, Any] = {"now": self._clock(), "state": str(state), "manifest": manifest}
        scope = "" if manifest is None else " AND id IN (SELECT job_id FROM targets WHERE manifest = :manifest)"
        with self._conn.write() as db:
            cursor = db.execute(
                f"UPDATE jobs SET state = 'pending', {CLEARED}, updated_at = :now WHERE state = :state{scope}",
                params,
            )
            return int(cursor.rowcount)

    def retry_failed_job(self, key: str) -> bool:
        """failed → pending (the manifest's job-level retry policy asked for it)."""
        with self._conn.write() as db:
            return move(db, key, self._clock(), (JobState.FAILED,), JobState.PENDING, CLEARED)

    # --------------------------------------------------------------- renames

    def journal_renames(self, steps: list[tuple[str, str, str]]) -> None:
        """Record (key, src, dst) renames of stored files before any is made (write-ahead)."""
        with self._conn.write(durable=True) as db:
            db.conn.executemany("INSERT OR REPLACE INTO renames (key, src, dst) VALUES (?, ?, ?)", steps)

    def journaled_renames(self) -> list[tuple[str, str, str]]:
        """The renames recorded but not yet finished (a run stopped midway), as (key, src, dst)."""
        return [
            (str(key), str(src), str(dst))
            for key, src, dst in self._conn.tuples("SELECT key, src, dst FROM renames ORDER BY key")
        ]

    def finish_rename(self, key: str, *, src: str, dst: str) -> bool:
        """done → done: the job's file was renamed from ``src`` to ``dst``; its journal entry goes."""
        with self._conn.write(durable=True) as db:
            moved = move(db, key, self._clock(), (JobState.DONE,), JobState.DONE, "path = :dst",
                         where="path = :src", dst=dst, src=src)
            db.execute("DELETE FROM renames WHERE key = ?", (key,))
        return moved

    def forget_rename(self, key: str) -> None:
        """Drop a journaled rename that was not made (its file stays where the job records it)."""
        with self._conn.write() as db:
            db.execute("DELETE FROM renames WHERE key = ?", (key,))

    # --------------------------------------------------------------- helpers

    @contextlib.contextmanager
    def _readable(self, what: str) -> Iterator[None]:
        """A value that cannot be read back (bad JSON, an unknown state) means a damaged ledger."""
        try:
            yield
        except (ValueError, TypeError, KeyError) as exc:
            raise LedgerSchemaError(corrupt_message(self.path, f"{what} holds an unreadable value: {exc}")) from exc

    def _stream(
        self, manifest: str | None, state: JobState | None
    ) -> Iterator[tuple[int, JobRecord]]:
        after = 0
        while True:
            page = self._page(manifest, state, after=after, limit=_PAGE)
            yield from page
            if len(page) < _PAGE:
                return
            after = page[-1][0]

    def _page(
        self, manifest: str | None, state: JobState | None, *, after: int, limit: int
    ) -> list[tuple[int, JobRecord]]:
        """Up to ``limit`` jobs with ``id > after`` (in ``state``), ordered by id.

        Each shape walks an index in id order, so a page costs O(limit).
        """
        if limit <= 0:
            return []
        params: list[Any] = []
        if manifest is None:
            sql = f"SELECT {JOB_COLUMNS}, NULL AS output FROM jobs j WHERE j.id > ?"
            order = "j.id"
        elif state is None:
            # All of one manifest: its targets' primary key is in job id order.
            sql = (
                f"SELECT {JOB_COLUMNS}, t.output FROM targets t JOIN jobs j ON j.id = t.job_id"
                " WHERE t.manifest = ? AND t.job_id > ?"
            )
            params.append(manifest)
            order = "t.job_id"
        else:
            # One state of one manifest: walk the state index, look the target up.
            sql = (
                f"SELECT {JOB_COLUMNS}, t.output FROM jobs j CROSS JOIN targets t"
                " ON t.manifest = ? AND t.job_id = j.id WHERE j.id > ?"
            )
            params.append(manifest)
            order = "j.id"
        params.append(after)
        if state is not None:
            sql += " AND j.state = ?"
            params.append(str(state))
        sql += f" ORDER BY {order} LIMIT ?"
        params.append(limit)
        rows = self._conn.rows(sql, params)
        with self._readable("a job"):
            return [(int(row["id"]), JobRecord.from_row(row)) for row in rows]

    def _sum(self, column: str, manifest: str | None, states: Collection[JobState] | None) -> float:
        params: list[Any] = []
        sql = f"SELECT round(coalesce(sum(j.{column}), 0), 9) FROM jobs j"
        where: list[str] = []
        if manifest is not None:
            sql += " JOIN targets t ON t.job_id = j.id AND t.manifest = ?"
            params.append(manifest)
        if states is not None:
            wanted = sorted({str(JobState(s)) for s in states})
            if not wanted:
                return 0.0
            where.append(f"j.state IN ({', '.join('?' * len(wanted))})")
            params.extend(wanted)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return float(self._conn.scalar(sql, params))

    # ------------------------------------------------------------ unsent work

    def fail_unsent(self, key: str, *, reason: str) -> bool:
        """pending → failed before anything was sent (an input file changed since the plan): nothing paid."""
        with self._conn.write(durable=True) as db:
            return move(db, key, self._clock(), (JobState.PENDING,), JobState.FAILED,
                        "error = :reason, reason = 'INPUT_CHANGED', finished_at = :now, owner = NULL", reason=reason)


def _file_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of ``path`` (links followed), or ``None`` when there is no such file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)
