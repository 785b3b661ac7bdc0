"""Reads of the PostgreSQL ledger: each function one query (or a page of one), typed answers.

The semantics are the SQLite ledger's (``SqliteLedger``'s methods of the same names); a read is one
autocommit statement, so a stream of pages may see the ledger change between pages, as there.
"""

from __future__ import annotations

import contextlib
import heapq
import json
from collections.abc import Collection, Iterator, Sequence
from typing import Any

from runner.errors import LedgerSchemaError
from runner.jobs import JobState
from runner.ledger.api import PAID_STATES
from runner.ledger.postgres.connection import PgConnection, Tx
from runner.ledger.postgres.holds import DoubtHolds
from runner.ledger.postgres.moves import HOLDER_OF_TASK
from runner.ledger.records import ATTEMPT_COLUMNS, JOB_COLUMNS, RUN_COLUMNS, AttemptRecord, JobRecord, RunRecord

__all__ = [
    "attempts", "counts", "debug_info", "done_files", "estimate", "find_keys", "get", "has_provider_tasks", "iter_jobs",
    "key_at_path", "key_of_task", "manifest_digest", "misplaced", "misplaced_count", "not_found_keys", "orphan_home",
    "orphan_keys", "orphans", "page", "paths_with_sha256", "readable", "recorded_paths", "runs", "spent", "states_of",
    "stored_elsewhere", "stored_paths", "target_output", "targets_of", "total",
]

PAGE = 1000  # rows per query when streaming
# Done jobs of a manifest recorded under its folder at another path than folder || output.
_MISPLACED = (
    "FROM targets t JOIN jobs j ON j.id = t.job_id WHERE t.manifest = %(m)s AND j.state = 'done'"
    " AND starts_with(j.path, %(folder)s) AND j.path <> %(folder)s || t.output"
)


@contextlib.contextmanager
def readable(conn: PgConnection, what: str) -> Iterator[None]:
    """A value that cannot be read back (bad JSON, an unknown state) means a damaged ledger."""
    try:
        yield
    except (ValueError, TypeError, KeyError) as exc:
        raise LedgerSchemaError(
            f"the ledger {conn.location} is damaged: {what} holds an unreadable value: {exc}. Nothing was changed"
        ) from exc


def outstanding(db: PgConnection | Tx, now: float, in_doubt_hold_s: float, holds: DoubtHolds) -> int:
    """Tasks that may exist at the provider (submitting + running), whole ledger; with ``in_doubt_hold_s``, also the
    in-doubt jobs whose hold (:class:`~runner.ledger.postgres.holds.DoubtHolds`) has not ended: the task their POST may
    have created may still run."""
    if in_doubt_hold_s:
        return holds.outstanding(db, now, in_doubt_hold_s)
    return int(db.scalar("SELECT count(*) FROM jobs WHERE state IN ('submitting', 'running')"))


def manifest_digest(conn: PgConnection, name: str) -> str | None:
    value = conn.scalar("SELECT digest FROM manifests WHERE name = %s", (name,))
    return None if value is None else str(value)


def total(conn: PgConnection, manifest: str | None) -> int:
    if manifest is None:
        return int(conn.scalar("SELECT count(*) FROM jobs"))
    return int(conn.scalar("SELECT count(*) FROM targets WHERE manifest = %s", (manifest,)))


def has_provider_tasks(conn: PgConnection) -> bool:
    return conn.scalar("SELECT 1 FROM attempts WHERE kind = 'submit'"
                       " AND (outcome IS NULL OR outcome NOT IN ('refused', 'rejected')) LIMIT 1") is not None


def get(conn: PgConnection, key: str, manifest: str | None) -> JobRecord | None:
    row = conn.one(
        f"SELECT {JOB_COLUMNS}, t.output FROM jobs j"
        " LEFT JOIN targets t ON t.job_id = j.id AND t.manifest = %s WHERE j.key = %s",
        (manifest, key),
    )
    if row is None or (manifest is not None and row["output"] is None):
        return None
    with readable(conn, f"job {key}"):
        return JobRecord.from_row(row)


def page(conn: PgConnection, manifest: str | None, state: JobState | None, *, after: int,
         limit: int) -> list[tuple[int, JobRecord]]:
    """Up to ``limit`` jobs with ``id > after`` (in ``state``), ordered by id."""
    if limit <= 0:
        return []
    params: dict[str, Any] = {"m": manifest, "after": after, "state": None if state is None else str(state),
                              "limit": limit}
    if manifest is None:
        sql = f"SELECT {JOB_COLUMNS}, NULL AS output FROM jobs j WHERE j.id > %(after)s"
    else:
        sql = (f"SELECT {JOB_COLUMNS}, t.output FROM targets t JOIN jobs j ON j.id = t.job_id"
               " WHERE t.manifest = %(m)s AND j.id > %(after)s")
    if state is not None:
        sql += " AND j.state = %(state)s"
    rows = conn.rows(sql + " ORDER BY j.id LIMIT %(limit)s", params)
    with readable(conn, "a job"):
        return [(int(row["id"]), JobRecord.from_row(row)) for row in rows]


def _stream(conn: PgConnection, manifest: str | None, state: JobState | None) -> Iterator[tuple[int, JobRecord]]:
    after = 0
    while True:
        found = page(conn, manifest, state, after=after, limit=PAGE)
        yield from found
        if len(found) < PAGE:
            return
        after = found[-1][0]


def iter_jobs(conn: PgConnection, manifest: str | None, states: Collection[JobState] | None) -> Iterator[JobRecord]:
    if states is None:
        pairs = _stream(conn, manifest, None)
    else:
        wanted = sorted({JobState(state) for state in states})
        pairs = heapq.merge(*(_stream(conn, manifest, state) for state in wanted), key=lambda pair: pair[0])
    for _, record in pairs:
        yield record


def states_of(conn: PgConnection, keys: Sequence[str]) -> dict[str, JobState]:
    found: dict[str, JobState] = {}
    for key, state in conn.tuples("SELECT key, state FROM jobs WHERE key = ANY(%s)", (list(keys),)):
        with readable(conn, f"job {key}"):
            found[str(key)] = JobState(state)
    return found


def stored_paths(conn: PgConnection, keys: Sequence[str]) -> dict[str, str]:
    rows = conn.tuples("SELECT key, path FROM jobs WHERE key = ANY(%s) AND state = 'done' AND path IS NOT NULL",
                       (list(keys),))
    return {str(key): str(path) for key, path in rows}


def targets_of(conn: PgConnection, key: str) -> list[tuple[str, str]]:
    rows = conn.tuples(
        "SELECT t.manifest, t.output FROM jobs j JOIN targets t ON t.job_id = j.id"
        " JOIN manifests m ON m.name = t.manifest WHERE j.key = %s ORDER BY m.created_at, m.name",
        (key,),
    )
    return [(str(manifest), str(output)) for manifest, output in rows]


def counts(conn: PgConnection, manifest: str | None) -> dict[JobState, int]:
    found = dict.fromkeys(JobState, 0)
    if manifest is None:
        rows = conn.tuples("SELECT state, count(*) FROM jobs GROUP BY state")
    else:
        rows = conn.tuples("SELECT j.state, count(*) FROM targets t JOIN jobs j ON j.id = t.job_id"
                           " WHERE t.manifest = %s GROUP BY j.state", (manifest,))
    for state, n in rows:
        with readable(conn, "a job"):
            found[JobState(state)] = int(n)
    return found


def _sum(conn: PgConnection, column: str, rest: str, params: dict[str, Any]) -> float:
    return float(conn.scalar(f"SELECT round(coalesce(sum(j.{column}), 0)::numeric, 9)::float8 {rest}", params))


def estimate(conn: PgConnection, column: str, manifest: str | None, states: Collection[JobState] | None) -> float:
    """Sum of ``column`` over the jobs of ``manifest`` (or all) in ``states`` (or any)."""
    wanted = None if states is None else sorted({str(JobState(s)) for s in states})
    if wanted == []:
        return 0.0
    sql = "FROM jobs j"
    if manifest is not None:
        sql += " JOIN targets t ON t.job_id = j.id AND t.manifest = %(m)s"
    if wanted is not None:
        sql += " WHERE j.state = ANY(%(states)s)"
    return _sum(conn, column, sql, {"m": manifest, "states": wanted})


def spent(conn: PgConnection, manifest: str | None, *, dropped_only: bool = False) -> float:
    """Estimated spend of every submit that may have created a paid task (a manifest: every job it ever
    targeted; ``dropped_only``: only those it no longer lists)."""
    if manifest is None:
        return estimate(conn, "spent_usd", None, None)
    sql = "FROM targeted e JOIN jobs j ON j.id = e.job_id WHERE e.manifest = %(m)s"
    return _sum(conn, "spent_usd", sql + (" AND e.dropped_at IS NOT NULL" if dropped_only else ""), {"m": manifest})


def orphans(conn: PgConnection, manifest: str | None) -> dict[JobState, int]:
    params = {"m": manifest, "paid": sorted(str(state) for state in PAID_STATES)}
    if manifest is None:
        sql = "SELECT j.state, count(*) FROM jobs j WHERE j.state = ANY(%(paid)s)"
    else:
        sql = ("SELECT j.state, count(*) FROM targeted e JOIN jobs j ON j.id = e.job_id"
               " WHERE e.manifest = %(m)s AND e.dropped_at IS NOT NULL AND j.state = ANY(%(paid)s)")
    sql += " AND NOT EXISTS (SELECT 1 FROM targets t WHERE t.job_id = j.id) GROUP BY j.state"
    with readable(conn, "a job"):
        return {JobState(state): int(n) for state, n in conn.tuples(sql, params)}


def orphan_keys(conn: PgConnection, manifest: str, state: JobState) -> list[str]:
    rows = conn.tuples(
        "SELECT j.key FROM targeted e JOIN jobs j ON j.id = e.job_id WHERE e.manifest = %s"
        " AND e.dropped_at IS NOT NULL AND j.state = %s"
        " AND NOT EXISTS (SELECT 1 FROM targets t WHERE t.job_id = j.id) ORDER BY j.id",
        (manifest, str(state)),
    )
    return [str(key) for (key,) in rows]


def target_output(conn: PgConnection, manifest: str, key: str) -> str | None:
    """The output name ``manifest`` gives ``key`` (``None`` if it does not list it)."""
    output = conn.scalar(
        "SELECT t.output FROM jobs j JOIN targets t ON t.job_id = j.id AND t.manifest = %s WHERE j.key = %s",
        (manifest, key),
    )
    return None if output is None else str(output)


def orphan_home(conn: PgConnection, key: str) -> str | None:
    home = conn.scalar(
        "SELECT e.manifest FROM jobs j JOIN targeted e ON e.job_id = j.id WHERE j.key = %s"
        " ORDER BY e.dropped_at IS NULL DESC, e.dropped_at DESC, e.manifest LIMIT 1",
        (key,),
    )
    return None if home is None else str(home)


def misplaced(conn: PgConnection, manifest: str, folder: str, limit: int | None) -> list[tuple[str, str, str]]:
    sql = f"SELECT j.key, j.path, t.output {_MISPLACED} ORDER BY t.job_id LIMIT %(limit)s"
    rows = conn.tuples(sql, {"m": manifest, "folder": folder, "limit": limit})
    return [(str(k), str(p), str(o)) for k, p, o in rows]


def misplaced_count(conn: PgConnection, manifest: str, folder: str) -> int:
    return int(conn.scalar(f"SELECT count(*) {_MISPLACED}", {"m": manifest, "folder": folder}))


def stored_elsewhere(conn: PgConnection, manifest: str, folder: str) -> Iterator[tuple[str, str, str, str]]:
    after = 0
    while True:
        rows = conn.tuples(
            "SELECT t.job_id, j.key, j.path, t.output, j.sha256 FROM targets t JOIN jobs j ON j.id = t.job_id"
            " WHERE t.manifest = %s AND t.job_id > %s AND j.state = 'done' AND NOT starts_with(j.path, %s)"
            " ORDER BY t.job_id LIMIT %s",
            (manifest, after, folder, PAGE),
        )
        for _, key, path, output, sha256 in rows:
            yield str(key), str(path), str(output), str(sha256)
        if len(rows) < PAGE:
            return
        after = int(rows[-1][0])


def done_files(conn: PgConnection, manifest: str | None, page: int = 20 * PAGE) -> Iterator[tuple[str, float | None]]:
    after = 0
    while True:
        rows = conn.tuples(
            "SELECT t.job_id, j.path, j.url_expires_at FROM targets t JOIN jobs j ON j.id = t.job_id"
            " WHERE t.manifest = %s AND t.job_id > %s AND j.state = 'done' ORDER BY t.job_id LIMIT %s",
            (manifest, after, page),
        ) if manifest is not None else conn.tuples(
            "SELECT id, path, url_expires_at FROM jobs WHERE id > %s AND state = 'done' ORDER BY id LIMIT %s",
            (after, page),
        )
        for _, path, expires in rows:
            if path is not None:
                yield str(path), None if expires is None else float(expires)
        if len(rows) < page:
            return
        after = int(rows[-1][0])


def recorded_paths(conn: PgConnection) -> Iterator[str]:
    after = ""
    while True:
        rows = conn.tuples("SELECT path FROM jobs WHERE path IS NOT NULL AND path > %s ORDER BY path LIMIT %s",
                           (after, 20 * PAGE))
        for (path,) in rows:
            yield str(path)
        if len(rows) < 20 * PAGE:
            return
        after = str(rows[-1][0])


def paths_with_sha256(conn: PgConnection, sha256: str) -> list[str]:
    rows = conn.tuples(
        "SELECT path FROM jobs WHERE sha256 = %s AND state = 'done' AND path IS NOT NULL ORDER BY id", (sha256,))
    return [str(path) for (path,) in rows]


def key_at_path(conn: PgConnection, path: str) -> str | None:
    value = conn.scalar("SELECT key FROM jobs WHERE path = %s LIMIT 1", (path,))
    return None if value is None else str(value)


def debug_info(conn: PgConnection, key: str) -> dict[str, Any]:
    raw = conn.scalar("SELECT debug_json FROM jobs WHERE key = %s", (key,))
    if not raw:
        return {}
    with readable(conn, f"job {key}"):
        value = json.loads(raw)
    return value if isinstance(value, dict) else {}


def find_keys(conn: PgConnection, prefix: str, limit: int) -> list[str]:
    rows = conn.tuples("SELECT key FROM jobs WHERE starts_with(key, %s) ORDER BY key LIMIT %s", (prefix, limit))
    return [str(key) for (key,) in rows]


def key_of_task(conn: PgConnection, task_id: str) -> str | None:
    """The job that ``task_id`` (its current or an earlier task) belongs to (`show`, `adopt`; a write that records
    an id reads its holder under the id's lock instead: moves.task_holder)."""
    value = conn.scalar(HOLDER_OF_TASK, {"t": task_id})
    return None if value is None else str(value)


def not_found_keys(conn: PgConnection) -> set[str]:
    rows = conn.tuples(
        "SELECT DISTINCT a.key FROM attempts a JOIN jobs j ON j.key = a.key"
        " WHERE a.outcome = 'not_found' AND j.state IN ('running', 'succeeded')"
    )
    return {str(row[0]) for row in rows}


def attempts(conn: PgConnection, key: str) -> list[AttemptRecord]:
    rows = conn.rows(f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE key = %s ORDER BY id", (key,))
    with readable(conn, f"the attempts of job {key}"):
        return [AttemptRecord.from_row(row) for row in rows]


def runs(conn: PgConnection, limit: int) -> list[RunRecord]:
    rows = conn.rows(f"SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT %s", (limit,))
    with readable(conn, "a run"):
        return [RunRecord.from_row(row) for row in rows]
