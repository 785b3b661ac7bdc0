"""The :class:`Ledger`: the single source of truth of every job's state.

One ledger per state directory (``<state>/ledger.db``). Jobs are keyed by
their job key and shared across manifests: two manifests asking for the same
video pay once. A manifest only *targets* jobs, giving each an output file
name under ``<state>/outputs/<manifest>/``. This module holds opening,
planning (:meth:`Ledger.register`), the reads and the runs; the state
transitions live in :mod:`runner.ledger.transitions`. Nothing here ever
takes the API key.
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
import socket
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from runner.errors import LedgerError, ManifestError
from runner.jobs import JobSpec, JobState, canonical_json
from runner.ledger import rescue
from runner.ledger.connection import Connection
from runner.ledger.lock import LedgerLock
from runner.ledger.records import (
    ATTEMPT_COLUMNS,
    JOB_COLUMNS,
    AttemptRecord,
    JobRecord,
    RunRecord,
)
from runner.ledger.transitions import Transitions

__all__ = ["DB_NAME", "LOCK_NAME", "OUTPUTS_DIR", "Ledger", "open_ledger"]

DB_NAME = "ledger.db"
LOCK_NAME = "ledger.lock"
OUTPUTS_DIR = "outputs"
_PAGE = 1000  # rows per query when streaming
_IN_CHUNK = 500  # keys per ``IN (…)`` list
_STATES = {str(state): state for state in JobState}

Clock = Callable[[], float]


def open_ledger(
    state_dir: Path | str, *, readonly: bool = False, clock: Clock = time.time
) -> Ledger:
    """Open ``<state_dir>/ledger.db``.

    Writable (the default): create the directory and the ledger as needed,
    take the single-writer lock (:class:`~runner.errors.LedgerLocked` when
    another live runner holds it) and migrate the schema. Read-only (plan,
    status, export): no lock, nothing created or migrated; a ledger that does
    not exist reads as empty.
    """
    state = Path(state_dir)
    file = state / DB_NAME
    if readonly:
        return Ledger(Connection.open_readonly(file), state_dir=state, lock=None, clock=clock)
    try:
        state.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LedgerError(
            f"cannot create the state directory {state} ({exc.strerror}); "
            "choose a writable directory with --state"
        ) from exc
    lock = LedgerLock.acquire(state / LOCK_NAME, started_at=clock())
    try:
        conn = Connection.open_writable(file)
    except BaseException:
        lock.release()
        raise
    return Ledger(conn, state_dir=state, lock=lock, clock=clock)


class Ledger(Transitions):
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
        self.state_dir = state_dir
        self.path = conn.file

    # ------------------------------------------------------------ life cycle

    @property
    def readonly(self) -> bool:
        return self._conn.readonly

    def close(self) -> None:
        """Close the database and release the lock (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._conn.close()
        finally:
            if self._lock is not None:
                self._lock.release()

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
        return f"<Ledger {self.path} {mode}{' closed' if self._closed else ''}>"

    # -------------------------------------------------------------- planning

    def manifest_digest(self, name: str) -> str | None:
        """The digest recorded by the last :meth:`register` of ``name``."""
        value = self._conn.scalar("SELECT digest FROM manifests WHERE name = ?", (name,))
        return None if value is None else str(value)

    def register(
        self, name: str, digest: str, jobs: Iterable[JobSpec], *, batch: int = 2000
    ) -> int:
        """Plan a manifest's jobs in one transaction; returns how many jobs it has.

        New jobs are added as pending, jobs already known (from this or any
        other manifest) keep their state; the manifest's targets are set to
        exactly the jobs given, so targets it no longer lists are dropped
        (their jobs stay). Jobs are consumed in batches, never all held.
        If ``jobs`` raises midway, nothing is planned and the error propagates.
        """
        if batch < 1:
            raise ValueError("batch must be at least 1")
        now = self._clock()
        with self._conn.bulk(), self._conn.write() as db:
            conn = db.conn
            gen = int(
                conn.execute(
                    "SELECT coalesce(max(gen), 0) + 1 FROM manifests WHERE name = ?", (name,)
                ).fetchone()[0]
            )
            given = 0
            iterator = iter(jobs)
            while chunk := list(itertools.islice(iterator, batch)):
                conn.executemany(
                    "INSERT INTO jobs (key, model, request_json, vars_json, repeat,"
                    " estimated_usd, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (key) DO NOTHING",
                    [
                        (
                            spec.key,
                            spec.model,
                            canonical_json(spec.request),
                            _vars_json(spec.vars),
                            spec.repeat,
                            spec.estimated_usd,
                            now,
                            now,
                        )
                        for spec in chunk
                    ],
                )
                # REPLACE also evicts an older target that used the same output name.
                conn.executemany(
                    "INSERT OR REPLACE INTO targets (manifest, job_id, output, gen)"
                    " SELECT ?, id, ?, ? FROM jobs WHERE key = ?",
                    [(name, spec.output, gen, spec.key) for spec in chunk],
                )
                given += len(chunk)
            conn.execute("DELETE FROM targets WHERE manifest = ? AND gen <> ?", (name, gen))
            kept = int(
                conn.execute("SELECT count(*) FROM targets WHERE manifest = ?", (name,)).fetchone()[
                    0
                ]
            )
            if kept != given:
                raise ManifestError(
                    f"manifest {name!r}: {given} jobs map to only {kept} distinct jobs and "
                    "output files (two jobs share a key or an output name); nothing was planned"
                )
            conn.execute(
                "INSERT INTO manifests (name, digest, jobs, gen, created_at, registered_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " digest = excluded.digest, jobs = excluded.jobs, gen = excluded.gen,"
                " registered_at = excluded.registered_at",
                (name, digest, kept, gen, now, now),
            )
        return kept

    def states_of(self, keys: Sequence[str]) -> dict[str, JobState]:
        """The state of each of ``keys`` the ledger knows (unknown keys are absent)."""
        found: dict[str, JobState] = {}
        for start in range(0, len(keys), _IN_CHUNK):
            chunk = list(keys[start : start + _IN_CHUNK])
            marks = ", ".join("?" * len(chunk))
            for key, state in self._conn.tuples(
                f"SELECT key, state FROM jobs WHERE key IN ({marks})", chunk
            ):
                found[key] = _STATES[state]
        return found

    def target_path(self, manifest: str, key: str) -> str | None:
        """Where ``manifest`` wants ``key``'s video, relative to the state directory."""
        output = self._conn.scalar(
            "SELECT t.output FROM jobs j JOIN targets t ON t.job_id = j.id AND t.manifest = ?"
            " WHERE j.key = ?",
            (manifest, key),
        )
        return None if output is None else _output_path(manifest, str(output))

    def target_paths(self, key: str) -> list[str]:
        """Every path a manifest wants ``key``'s video at (relative to the state directory).

        The manifest registered first comes first: that is where the one
        paid-for file is downloaded; the others get a link or a copy.
        """
        rows = self._conn.rows(
            "SELECT t.manifest, t.output FROM jobs j JOIN targets t ON t.job_id = j.id"
            " JOIN manifests m ON m.name = t.manifest WHERE j.key = ?"
            " ORDER BY m.created_at, m.name",
            (key,),
        )
        return [_output_path(row["manifest"], row["output"]) for row in rows]

    def primary_output(self, key: str) -> str | None:
        """Where the video of ``key`` is downloaded to (first of :meth:`target_paths`)."""
        paths = self.target_paths(key)
        return paths[0] if paths else None

    def other_outputs(self, key: str) -> list[str]:
        """The other manifests' paths for ``key``'s video (to link or copy once done)."""
        return self.target_paths(key)[1:]

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

    def spent_usd(self, manifest: str | None = None) -> float:
        """Estimated spend of every submit that may have created a paid task."""
        return self._sum("spent_usd", manifest, None)

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
        return [
            AttemptRecord.from_row(row)
            for row in self._conn.rows(
                f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE key = ? ORDER BY id", (key,)
            )
        ]

    def rescue_task_id(self, key: str, attempt_id: int, task_id: str) -> bool:
        """Journal an accepted task id the ledger could not record (see :mod:`runner.ledger.rescue`).

        Never raises; False when the journal could not be written either.
        """
        entry = rescue.RescueEntry(key=key, task_id=task_id, attempt=attempt_id, at=self._clock())
        return rescue.append_entry(self.state_dir, entry)

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
        return [
            RunRecord.from_row(row)
            for row in self._conn.rows("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,))
        ]

    # --------------------------------------------------------------- helpers

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
        return [(int(row["id"]), JobRecord.from_row(row)) for row in self._conn.rows(sql, params)]

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


def _output_path(manifest: str, output: str) -> str:
    return f"{OUTPUTS_DIR}/{manifest}/{output}"


# Template variables: YAML dates and the like become strings rather than failing.
_vars_json = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
).encode
