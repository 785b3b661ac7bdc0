"""Where the SQLite ledger records stored files: done jobs' paths (relative to the state directory)
as placement asks for them, and the renames journal that keeps a rename of a stored file crash-safe.

Paths are opaque strings here; :mod:`runner.layout` composes them and the caller passes a
manifest's folder as a prefix.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from runner.jobs import JobState
from runner.ledger.connection import Connection
from runner.ledger.sqlite.moves import move
from runner.ledger.sqlite.reads import PAGE, by_keys

__all__ = [
    "done_files",
    "finish_rename",
    "forget_rename",
    "journal_renames",
    "journaled_renames",
    "key_at_path",
    "misplaced",
    "misplaced_count",
    "paths_with_sha256",
    "recorded_paths",
    "stored_elsewhere",
    "stored_paths",
]

# Done jobs of a manifest (?) recorded under its folder (?, ?) at another path than folder || output (?).
_MISPLACED = (
    "FROM targets t JOIN jobs j ON j.id = t.job_id WHERE t.manifest = ? AND j.state = 'done'"
    " AND substr(j.path, 1, ?) = ? AND j.path <> ? || t.output"
)


def stored_paths(conn: Connection, keys: Sequence[str]) -> dict[str, str]:
    """The recorded path of each of ``keys`` that is done (relative to the state directory)."""
    found: dict[str, str] = {}
    # Looked up by key only, filtered here: with a condition on state in the SQL, SQLite chose the
    # state index for a long key list and read every done job per batch (quadratic: `runner plan` of
    # 1M done jobs ran for minutes; issue 14).
    sql = "SELECT key, path, state FROM jobs WHERE key IN ({marks})"
    for key, path, state in by_keys(conn, sql, keys):
        if state == "done" and path is not None:
            found[str(key)] = str(path)
    return found


def misplaced(conn: Connection, manifest: str, folder: str, limit: int | None) -> list[tuple[str, str, str]]:
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
    return [(str(k), str(p), str(o)) for k, p, o in conn.tuples(sql, params)]


def misplaced_count(conn: Connection, manifest: str, folder: str) -> int:
    """How many :func:`misplaced` jobs ``manifest`` has."""
    return int(conn.scalar(f"SELECT count(*) {_MISPLACED}", (manifest, len(folder), folder, folder)))


def stored_elsewhere(conn: Connection, manifest: str, folder: str) -> Iterator[tuple[str, str, str, str]]:
    """Done jobs of ``manifest`` recorded outside ``folder`` (another manifest's video: it gets a link).

    As (key, recorded path, output name, sha256), streamed a page at a time.
    """
    after = 0
    while True:
        rows = conn.tuples(
            "SELECT t.job_id, j.key, j.path, t.output, j.sha256 FROM targets t"
            " JOIN jobs j ON j.id = t.job_id WHERE t.manifest = ? AND t.job_id > ? AND j.state = 'done'"
            " AND substr(j.path, 1, ?) <> ? ORDER BY t.job_id LIMIT ?",
            (manifest, after, len(folder), folder, PAGE),
        )
        for _, key, path, output, sha256 in rows:
            yield str(key), str(path), str(output), str(sha256)
        if len(rows) < PAGE:
            return
        after = int(rows[-1][0])


def done_files(conn: Connection, manifest: str | None, page: int = 20 * PAGE) -> Iterator[tuple[str, float | None]]:
    """(recorded path, result URL's expiry) of each done job of ``manifest`` (None: every job), streamed a page at a
    time (two columns: what a run's end checks on disk for a million done jobs)."""
    after = 0
    while True:
        rows = conn.tuples(
            "SELECT t.job_id, j.path, j.url_expires_at FROM targets t JOIN jobs j ON j.id = t.job_id"
            " WHERE t.manifest = ? AND t.job_id > ? AND j.state = 'done' ORDER BY t.job_id LIMIT ?",
            (manifest, after, page),
        ) if manifest is not None else conn.tuples(
            "SELECT id, path, url_expires_at FROM jobs WHERE id > ? AND state = 'done' ORDER BY id LIMIT ?",
            (after, page),
        )
        for _, path, expires in rows:
            if path is not None:
                yield str(path), expires
        if len(rows) < page:
            return
        after = int(rows[-1][0])


def recorded_paths(conn: Connection) -> Iterator[str]:
    """Every job's recorded path, in path order: a scan of the ``jobs_path`` index alone (no job row read: a third of
    the time of :func:`done_files` for a million jobs)."""
    after, page = "", 20 * PAGE
    while True:  # a page at a time: the connection's lock is not held between them (a path recorded twice: once)
        rows = conn.tuples("SELECT path FROM jobs WHERE path IS NOT NULL AND path > ? ORDER BY path LIMIT ?",
                           (after, page))
        for (path,) in rows:
            yield path
        if len(rows) < page:
            return
        after = str(rows[-1][0])


def paths_with_sha256(conn: Connection, sha256: str) -> list[str]:
    """Recorded paths of done jobs whose video has this sha256 (a full scan: for rare checks)."""
    rows = conn.tuples(
        "SELECT path FROM jobs WHERE sha256 = ? AND state = 'done' AND path IS NOT NULL", (sha256,)
    )
    return [str(path) for (path,) in rows]


def key_at_path(conn: Connection, path: str) -> str | None:
    """The job whose stored file is recorded at ``path`` (relative to the state directory)."""
    value = conn.scalar("SELECT key FROM jobs WHERE path = ? LIMIT 1", (path,))
    return None if value is None else str(value)


def journal_renames(conn: Connection, steps: list[tuple[str, str, str]]) -> None:
    """Record (key, src, dst) renames of stored files before any is made (write-ahead)."""
    with conn.write(durable=True) as db:
        db.conn.executemany("INSERT OR REPLACE INTO renames (key, src, dst) VALUES (?, ?, ?)", steps)


def journaled_renames(conn: Connection) -> list[tuple[str, str, str]]:
    """The renames recorded but not yet finished (a run stopped midway), as (key, src, dst)."""
    return [
        (str(key), str(src), str(dst))
        for key, src, dst in conn.tuples("SELECT key, src, dst FROM renames ORDER BY key")
    ]


def finish_rename(conn: Connection, now: float, key: str, *, src: str, dst: str) -> bool:
    """done → done: the job's file was renamed from ``src`` to ``dst``; its journal entry goes."""
    with conn.write(durable=True) as db:
        moved = move(db, key, now, (JobState.DONE,), JobState.DONE, "path = :dst",
                     where="path = :src", dst=dst, src=src)
        db.execute("DELETE FROM renames WHERE key = ?", (key,))
    return moved


def forget_rename(conn: Connection, key: str) -> None:
    """Drop a journaled rename that was not made (its file stays where the job records it)."""
    with conn.write() as db:
        db.execute("DELETE FROM renames WHERE key = ?", (key,))
