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

import contextlib
import heapq
import itertools
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from runner.errors import (
    LedgerError,
    LedgerMissing,
    LedgerReplaced,
    LedgerSchemaError,
    ManifestError,
)
from runner.jobs import JobSpec, JobState, canonical_json
from runner.ledger import rescue
from runner.ledger.connection import Connection, corrupt_message
from runner.ledger.lock import LedgerLock, is_creation_lock
from runner.ledger.records import (
    ATTEMPT_COLUMNS,
    JOB_COLUMNS,
    AttemptRecord,
    JobRecord,
    RunRecord,
)
from runner.ledger.transitions import Transitions

__all__ = [
    "DB_NAME",
    "LOCK_NAME",
    "ORPHANS_DIR",
    "OUTPUTS_DIR",
    "PROVIDER_MARK",
    "RESCUE_PREFIX",
    "Ledger",
    "ledger_traces",
    "lock_path",
    "open_ledger",
]

DB_NAME = "ledger.db"
LOCK_NAME = "ledger.lock"
OUTPUTS_DIR = "outputs"
PROVIDER_MARK = "provider"  # "simulator" or "novita": the kind of provider, beside the ledger
RESCUE_PREFIX = "ledger.rescued-"  # a copy saved when the ledger was removed under a run
log = logging.getLogger(__name__)
_PAGE = 1000  # rows per query when streaming
_IN_CHUNK = 500  # keys per ``IN (…)`` list
_STATES = {str(state): state for state in JobState}
# A task may exist (and be billed) for a job in these states.
_PAID = frozenset({JobState.SUBMITTING, JobState.IN_DOUBT, JobState.RUNNING, JobState.SUCCEEDED,
                   JobState.DONE, JobState.LOST})
ORPHANS_DIR = "_orphans"
# Done jobs of a manifest (?) stored in its folder (?, ?) under another name than it gives them (?).
_MISPLACED = (
    "FROM targets t JOIN jobs j ON j.id = t.job_id WHERE t.manifest = ? AND j.state = 'done'"
    " AND substr(j.path, 1, ?) = ? AND j.path <> ? || t.output"
)

Clock = Callable[[], float]


def open_ledger(
    state_dir: Path | str,
    *,
    readonly: bool = False,
    clock: Clock = time.time,
    new_ledger: bool = False,
    create: bool = True,
) -> Ledger:
    """Open ``<state_dir>/ledger.db``.

    Writable (the default): create the directory and the ledger as needed,
    take the single-writer lock (:class:`~runner.errors.LedgerLocked` when
    another live runner holds it) and migrate the schema. Read-only (plan,
    status, export): no lock, nothing created or migrated; a ledger that does
    not exist reads as empty.

    A ledger is never silently created again: when ``ledger.db`` is missing
    or empty but the state directory shows that one was used there (see
    :func:`ledger_traces`), :class:`~runner.errors.LedgerMissing` is raised
    unless ``new_ledger`` says the operator wants a new one. ``create=False``
    refuses to create one at all. The lock is taken on the real file: a
    ``ledger.db`` that is a symbolic link is locked beside its target.
    """
    state = Path(state_dir)
    file = state / DB_NAME
    if readonly:
        return Ledger(Connection.open_readonly(file), state_dir=state, lock=None, clock=clock)
    if not create and not file.exists():
        raise LedgerMissing(f"there is no ledger at {file}; check --state (nothing was changed)")
    traces = ledger_traces(state)  # before the lock: its file is one of them
    try:
        state.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LedgerError(
            f"cannot create the state directory {state} ({exc.strerror}); "
            "choose a writable directory with --state"
        ) from exc
    creating = not file.exists() and (new_ledger or not traces)
    lock = LedgerLock.acquire(lock_path(state), started_at=clock(), creating=creating)
    try:
        missing = not file.exists()  # now that no other writer can create it
        if new_ledger and (missing or _is_empty(file)):
            _set_aside_rescue_journal(state, clock())
        if missing and traces and not new_ledger:
            raise LedgerMissing(_refusal(state, "is missing", traces))
        if missing:
            if new_ledger:
                _set_aside_stale_journals(file, clock())
            Connection.create(file)
        if creating:
            lock.created()
        try:
            conn = Connection.open_writable(file, may_create=create and (new_ledger or not traces))
        except LedgerMissing as exc:
            if not create:
                raise LedgerMissing(f"there is no ledger at {file}; check --state (nothing was changed)") from exc
            raise LedgerMissing(_refusal(state, "is empty", traces)) from exc
    except BaseException:
        lock.release()
        raise
    if missing:
        conn.created = True
    return Ledger(conn, state_dir=state, lock=lock, clock=clock)


def lock_path(state_dir: Path) -> Path:
    """The lock file of ``<state_dir>/ledger.db``: beside the real file, symbolic links resolved.

    Two state directories whose ``ledger.db`` is one file (one links to the
    other) thus take the same lock.
    """
    return Path(os.path.realpath(state_dir / DB_NAME)).with_name(LOCK_NAME)


def ledger_traces(state_dir: Path) -> list[str]:
    """What in ``state_dir`` shows that a ledger was used there (``ledger.db`` itself aside).

    The provider mark, files under ``outputs/``, the lock file (unless left
    by a process killed while it created the first ledger), SQLite's
    journals, a rescued copy, a ``ledger.db`` link to a missing file.
    """
    traces: list[str] = []
    db = state_dir / DB_NAME
    if db.is_symlink() and not db.exists():
        traces.append(f"{DB_NAME} is a symbolic link to the missing {os.readlink(db)}")
    for name in (PROVIDER_MARK, LOCK_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal"):
        if os.path.lexists(state_dir / name) and not (name == LOCK_NAME and is_creation_lock(state_dir / name)):
            traces.append(name)
    try:
        rescued = sorted(p.name for p in state_dir.glob(f"{RESCUE_PREFIX}*"))
    except OSError:
        rescued = []
    traces.extend(rescued[:1])
    if _has_files(state_dir / OUTPUTS_DIR):
        traces.append(f"files under {OUTPUTS_DIR}/")
    return traces


def _has_files(folder: Path) -> bool:
    """Whether ``folder`` holds a file anywhere below it (stops at the first one)."""
    for _root, _dirs, files in os.walk(folder):
        if files:
            return True
    return False


def _refusal(state: Path, what: str, traces: list[str]) -> str:
    file = state / DB_NAME
    return (
        f"{file} {what}, but {state} shows a ledger was used there ({', '.join(traces)}). "
        "A new ledger would not know the tasks already paid for and could pay for every job again. "
        f"Restore {DB_NAME} from a backup (or a {RESCUE_PREFIX}*.db copy), check --state, or pass "
        "--new-ledger to start a new ledger here on purpose. Nothing was changed."
    )


def _is_empty(file: Path) -> bool:
    try:
        return file.stat().st_size == 0
    except OSError:
        return False


def _set_aside_rescue_journal(state: Path, now: float) -> None:
    """A new ledger starts without the old one's rescue journal: its lines name the old ledger's
    attempts, and replayed into the new ledger they could attach an old task to a new submit. The
    file is renamed, not removed: its task ids were paid for and the operator may still want them."""
    journal = state / rescue.RESCUE_NAME
    if not os.path.lexists(journal):
        return
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    aside = journal.with_name(f"{journal.name}.stale-{stamp}")
    try:
        journal.rename(aside)
    except OSError as exc:
        raise LedgerError(
            f"cannot set the old rescue journal {journal} aside ({exc.strerror}); move it away and run again"
        ) from exc
    log.warning("the rescue journal of the former ledger is kept as %s (its task ids are not in the new"
                " ledger)", aside)


def _set_aside_stale_journals(file: Path, now: float) -> None:
    """Rename the WAL / journal of a ledger that is gone: SQLite would replay it into the new one."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    for suffix in ("-wal", "-shm", "-journal"):
        stale = file.with_name(file.name + suffix)
        if os.path.lexists(stale):
            try:
                stale.rename(stale.with_name(f"{stale.name}.stale-{stamp}"))
            except OSError as exc:
                raise LedgerError(
                    f"cannot set the stale {stale} aside ({exc.strerror}); move it away and run again"
                ) from exc


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
        self.created = conn.created  # this open made a new ledger
        self.rescued: Path | None = None  # where close() saved a copy of a ledger removed under us
        self._identity = None if conn.readonly else _file_id(self.path)

    # ------------------------------------------------------------ life cycle

    @property
    def readonly(self) -> bool:
        return self._conn.readonly

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

    def _before_submit(self) -> None:
        self.check_identity()

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
        (their jobs stay, and so does the record that the manifest once
        targeted them: its spend keeps counting them). A known job not yet
        submitted (pending, or failed / in doubt, whose retry would be a new
        task) takes the price estimated now; a submitted job keeps the spend
        it committed. Jobs are consumed in batches, never all held.
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
                    " ON CONFLICT (key) DO UPDATE SET estimated_usd = excluded.estimated_usd"
                    " WHERE jobs.state IN ('pending', 'failed', 'in_doubt')"
                    " AND jobs.estimated_usd IS NOT excluded.estimated_usd",
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
            # Remember what the manifest dropped (its spend and orphans are counted from here) …
            conn.execute(
                "UPDATE targeted SET dropped_at = ? WHERE manifest = ? AND dropped_at IS NULL"
                " AND job_id NOT IN (SELECT job_id FROM targets WHERE manifest = ?)",
                (now, name, name),
            )
            # … and what it lists now, for good (rows that did not change are not rewritten).
            conn.execute(
                "INSERT INTO targeted (manifest, job_id, output, first_at, dropped_at)"
                " SELECT manifest, job_id, output, ?, NULL FROM targets WHERE manifest = ? AND true"
                " ON CONFLICT (manifest, job_id) DO UPDATE SET output = excluded.output, dropped_at = NULL"
                " WHERE targeted.dropped_at IS NOT NULL OR targeted.output <> excluded.output",
                (now, name),
            )
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
                with self._readable(f"job {key}"):
                    found[key] = _STATES[state]
        return found

    def stored_paths(self, keys: Sequence[str]) -> dict[str, str]:
        """The recorded path of each of ``keys`` that is done (relative to the state directory)."""
        found: dict[str, str] = {}
        for start in range(0, len(keys), _IN_CHUNK):
            chunk = list(keys[start : start + _IN_CHUNK])
            marks = ", ".join("?" * len(chunk))
            for key, path in self._conn.tuples(
                f"SELECT key, path FROM jobs WHERE key IN ({marks}) AND state = 'done'"
                " AND path IS NOT NULL",
                chunk,
            ):
                found[str(key)] = str(path)
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
        polled and stored (see :meth:`orphan_output`); only states present
        are in the answer.
        """
        paid = sorted(str(state) for state in _PAID)
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

    def orphan_output(self, key: str) -> str:
        """Where a paid job that no manifest lists is stored (relative to the state directory).

        ``outputs/<manifest>/_orphans/<key>.mp4``, in the folder of the manifest
        that dropped it last (``outputs/_orphans/`` if no record says which).
        """
        home = self._conn.scalar(
            "SELECT e.manifest FROM jobs j JOIN targeted e ON e.job_id = j.id WHERE j.key = ?"
            " ORDER BY e.dropped_at IS NULL DESC, e.dropped_at DESC, e.manifest LIMIT 1",
            (key,),
        )
        folder = OUTPUTS_DIR if home is None else f"{OUTPUTS_DIR}/{home}"
        return f"{folder}/{ORPHANS_DIR}/{key}.mp4"

    def misplaced(self, manifest: str, *, limit: int | None = None) -> list[tuple[str, str, str]]:
        """Done jobs of ``manifest`` stored in its folder under another name than it gives them now.

        As (key, recorded path, the manifest's path), in planning order. A job
        stored in another manifest's folder (shared, paid for there) is not
        misplaced: this manifest gets a link to it.
        """
        folder = f"{OUTPUTS_DIR}/{manifest}/"
        sql = f"SELECT j.key, j.path, ? || t.output {_MISPLACED} ORDER BY t.job_id"
        params: list[Any] = [folder, manifest, len(folder), folder, folder]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [(str(k), str(p), str(d)) for k, p, d in self._conn.tuples(sql, params)]

    def misplaced_count(self, manifest: str) -> int:
        """How many :meth:`misplaced` jobs ``manifest`` has."""
        folder = f"{OUTPUTS_DIR}/{manifest}/"
        return int(self._conn.scalar(f"SELECT count(*) {_MISPLACED}", (manifest, len(folder), folder, folder)))

    def stored_elsewhere(self, manifest: str) -> Iterator[tuple[str, str, str, str]]:
        """Done jobs of ``manifest`` whose video is stored in another manifest's folder (it gets a link).

        As (key, recorded path, the manifest's path, sha256), streamed a page at a time.
        """
        folder = f"{OUTPUTS_DIR}/{manifest}/"
        after = 0
        while True:
            rows = self._conn.tuples(
                "SELECT t.job_id, j.key, j.path, ? || t.output, j.sha256 FROM targets t"
                " JOIN jobs j ON j.id = t.job_id WHERE t.manifest = ? AND t.job_id > ? AND j.state = 'done'"
                " AND substr(j.path, 1, ?) <> ? ORDER BY t.job_id LIMIT ?",
                (folder, manifest, after, len(folder), folder, _PAGE),
            )
            for _, key, path, dest, sha256 in rows:
                yield str(key), str(path), str(dest), str(sha256)
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

    def rescue_task_id(self, key: str, attempt_id: int, task_id: str) -> bool:
        """Journal an accepted task id the ledger could not record (see :mod:`runner.ledger.rescue`).

        Never raises; False when the journal could not be written either.
        """
        entry = rescue.RescueEntry(key=key, task_id=task_id, attempt=attempt_id, at=self._clock())
        written = rescue.append_entry(self.state_dir, entry)
        rescue.crash_point("rescue-journalled")
        return written

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


def _file_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of ``path`` (links followed), or ``None`` when there is no such file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _output_path(manifest: str, output: str) -> str:
    return f"{OUTPUTS_DIR}/{manifest}/{output}"


# Template variables: YAML dates and the like become strings rather than failing.
_vars_json = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
).encode
