"""Moving a ledger between SQLite and PostgreSQL, both ways (``runner ledger copy SRC DST``).

:func:`copy_ledger` copies every row of every table as it is — ids (so planning order, attempt and run
ids stay), states, owners, spend, attempts, runs, meta, the rename journal — from a source that no
runner holds into a destination that holds no ledger yet. A location is a PostgreSQL URL
(``postgresql://…``) or a state directory (its ``ledger.db``). Leases are not copied: they belong to
runners of the source.

* A SQLite source is held by taking its single-writer lock for the whole copy (a runner holding it
  makes the copy fail with :class:`~runner.errors.LedgerLocked`; none can start meanwhile).
* A PostgreSQL source is read in one ``REPEATABLE READ`` snapshot; it counts as held while any runner's
  lease runs (by the server's clock), checked before the copy and again before the destination
  commits — a runner that started meanwhile makes the copy fail, nothing written.
* The destination is written in one transaction: a failed copy leaves no rows behind (PostgreSQL:
  at most the empty schema; SQLite: the new file is removed). Before it, the destination is marked an
  unfinished copy (meta ``copy_from``: the source), in a commit of its own, and the rows' transaction
  removes the mark: a copy killed mid-way (``kill -9``, the OOM killer, a power cut) leaves a ledger that
  every run refuses — empty, it would take every job for new and pay for each again — and that the next
  copy into it starts over.
* Once the destination has committed, the source is marked moved (meta ``moved_to``: where, when), still
  held: a run refuses it from then on (its jobs go on in the copy), until ``runner ledger reopen``.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runner.errors import LedgerError, LedgerLocked
from runner.ledger.api import COPYING_META, MOVED_META, moved_mark
from runner.ledger.connection import Connection
from runner.ledger.lock import LedgerLock
from runner.ledger.postgres.connection import PgConnection, is_postgres_url
from runner.ledger.rescue import crash_point
from runner.ledger.sqlite import DB_NAME, lock_path

__all__ = ["TABLES", "CopyReport", "copy_ledger"]

# Every table of both schemas, parents before children; (table, order of the rows).
TABLES = (("runs", "id"), ("jobs", "id"), ("manifests", "name"), ("targets", "manifest, job_id"),
          ("targeted", "manifest, job_id"), ("attempts", "id"), ("meta", "key"), ("renames", "key"),
          ("rejections", "id"))
_IDENTITIES = ("runs", "jobs", "attempts", "rejections")
_CHUNK = 5000
Rows = Iterator[tuple[Any, ...]]


@dataclass
class CopyReport:
    """What :func:`copy_ledger` copied: rows per table."""

    source: str
    destination: str
    rows: dict[str, int] = field(default_factory=dict)


def copy_ledger(src: str, dst: str) -> CopyReport:
    """Copy the ledger at ``src`` into ``dst`` (see the module docstring); raises
    :class:`~runner.errors.LedgerLocked` while a runner holds the source, :class:`LedgerError` when the
    destination already holds a ledger or either side fails (nothing then written to the destination)."""
    with _source(src) as (columns, read, still_free, source):
        origin = source if is_postgres_url(src) else str(Path(src).absolute())  # as `ledger copy` takes it again
        with _destination(dst, origin) as (write, destination):
            report = CopyReport(source=source, destination=destination)
            for table, order in TABLES:
                cols = columns(table)  # the source's; the destination must have every one (or the copy fails)
                report.rows[table] = write(table, cols, read(table, cols, order))
            still_free()
            crash_point("ledger-copy-rows")  # tests: killed with every row written, none committed
        # Committed: the source now says where its jobs went, and a run refuses it (an old cron line, a host
        # without RUNNER_LEDGER_URL would pay again for what the copy's runs send). Still held: no run started.
        _mark_moved(src, moved_mark(destination, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")))
    return report


_MARK = "INSERT INTO meta (key, value) VALUES ({0}, {0}) ON CONFLICT (key) DO UPDATE SET value = excluded.value"


def _mark_moved(src: str, where: str) -> None:
    sql = _MARK
    if is_postgres_url(src):
        conn = PgConnection.open(src, create=False)
        try:
            with conn.write() as tx:
                tx.execute(sql.format("%s"), (MOVED_META, where))
        finally:
            conn.close()
        return
    sqlite = Connection.open_writable(Path(src) / DB_NAME, may_create=False)
    try:
        with sqlite.write(durable=True) as db:
            db.execute(sql.format("?"), (MOVED_META, where))
    finally:
        sqlite.close()


# ------------------------------------------------------------------ sources


@contextlib.contextmanager
def _source(src: str) -> Iterator[tuple[Callable[[str], list[str]], Callable[[str, list[str], str], Rows],
                                          Callable[[], None], str]]:
    """(columns of a table, rows of a table, check that no runner took the source meanwhile, location)."""
    if is_postgres_url(src):
        conn = PgConnection.open(src, readonly=True, create=False)
        try:
            _refuse_held(conn)
            from psycopg import IsolationLevel

            conn.raw.isolation_level = IsolationLevel.REPEATABLE_READ
            with conn.errors(), conn.raw.transaction():

                def read(table: str, cols: list[str], order: str) -> Rows:
                    with conn.errors(), conn.raw.cursor(name=f"copy_{table}") as cursor:
                        cursor.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY {order}".encode())
                        while chunk := cursor.fetchmany(_CHUNK):
                            yield from (tuple(row.values()) for row in chunk)

                def columns(table: str) -> list[str]:
                    return [str(row["column_name"]) for row in conn.rows(
                        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
                        " AND table_name = %s ORDER BY ordinal_position", (table,))]

                def still_free() -> None:
                    fresh = PgConnection.open(src, readonly=True, create=False)  # outside the snapshot
                    try:
                        _refuse_held(fresh)
                    finally:
                        fresh.close()

                yield columns, read, still_free, conn.location
        finally:
            conn.close()
        return
    state = Path(src)
    if not (state / DB_NAME).is_file():
        raise LedgerError(f"there is no ledger at {state / DB_NAME}; check the source (nothing was changed)")
    lock = LedgerLock.acquire(lock_path(state), started_at=time.time())
    try:
        sqlite = Connection.open_readonly(state / DB_NAME)
        try:

            def read_sqlite(table: str, cols: list[str], order: str) -> Rows:
                cursor = sqlite.db.conn.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY {order}")
                while chunk := cursor.fetchmany(_CHUNK):
                    yield from chunk

            def columns_sqlite(table: str) -> list[str]:
                return [str(row[1]) for row in sqlite.db.conn.execute(f"PRAGMA table_info({table})")]

            yield columns_sqlite, read_sqlite, lambda: None, str(state / DB_NAME)
        finally:
            sqlite.close()
    finally:
        lock.release()


def _refuse_held(conn: PgConnection) -> None:
    holders = conn.rows("SELECT owner, host, pid FROM leases WHERE expires_at > extract(epoch FROM clock_timestamp())"
                        " ORDER BY owner")
    if holders:
        who = ", ".join(f"{row['owner']} (host {row['host']}, pid {row['pid']})" for row in holders[:3])
        raise LedgerLocked(f"runners hold the ledger {conn.location} ({who}); stop them (or wait until their "
                           "leases expire) and copy again. Nothing was changed", holder=who)


# ------------------------------------------------------------- destinations


@contextlib.contextmanager
def _destination(dst: str, origin: str) -> Iterator[tuple[Callable[[str, list[str], Rows], int], str]]:
    """The destination, marked an unfinished copy of ``origin`` until its rows commit (see the module docstring)."""
    if is_postgres_url(dst):
        conn = PgConnection.open(dst, create=True)
        try:
            if any(conn.scalar(f"SELECT count(*) FROM {table}") for table in ("jobs", "runs", "manifests")) or \
                    conn.scalar("SELECT count(*) FROM meta WHERE key <> %s", (COPYING_META,)):
                raise LedgerError(f"{conn.location} already holds a ledger; copy into an empty database. "
                                  "Nothing was changed")
            with conn.write() as tx:
                tx.execute(_MARK.format("%s"), (COPYING_META, origin))
            with conn.write() as tx:
                tx.execute("DELETE FROM meta WHERE key = %s", (COPYING_META,))

                def write(table: str, cols: list[str], rows: Rows) -> int:
                    count = 0
                    with tx.raw.cursor() as cursor, cursor.copy(
                            f"COPY {table} ({', '.join(cols)}) FROM STDIN".encode()) as copy:
                        for row in rows:
                            copy.write_row(row)
                            count += 1
                    if table in _IDENTITIES:
                        tx.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                                   f" coalesce((SELECT max(id) FROM {table}), 0) + 1, false)")
                    return count

                yield write, conn.location
        finally:
            conn.close()
        return
    state = Path(dst)
    file = state / DB_NAME
    if file.exists() and not _unfinished_copy(file):
        raise LedgerError(f"{file} already exists; copy into a state directory without a ledger. Nothing was changed")
    state.mkdir(parents=True, exist_ok=True)
    lock = LedgerLock.acquire(lock_path(state), started_at=time.time(), creating=True)
    done = False
    try:
        if file.exists():
            if not _unfinished_copy(file):  # again, under the lock
                raise LedgerError(f"{file} already exists; copy into a state directory without a ledger. Nothing"
                                  " was changed")
            _remove(file)  # a copy killed mid-way: it starts over
        Connection.create(file)
        sqlite = Connection.open_writable(file, may_create=False)
        try:
            with sqlite.write(durable=True) as db:
                db.execute(_MARK.format("?"), (COPYING_META, origin))
            with sqlite.write(durable=True) as db:
                db.execute("DELETE FROM meta WHERE key = ?", (COPYING_META,))

                def write_sqlite(table: str, cols: list[str], rows: Rows) -> int:
                    count = 0
                    sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
                    while chunk := [row for _, row in zip(range(_CHUNK), rows, strict=False)]:
                        db.conn.executemany(sql, chunk)
                        count += len(chunk)
                    return count

                yield write_sqlite, str(file)
            done = True
        finally:
            sqlite.close()
    finally:
        if done:
            lock.created()
        else:
            _remove(file)
        lock.release()


def _remove(file: Path) -> None:
    for leftover in (file, file.with_name(f"{DB_NAME}-wal"), file.with_name(f"{DB_NAME}-shm")):
        leftover.unlink(missing_ok=True)


def _unfinished_copy(file: Path) -> bool:
    """Whether the SQLite ledger ``file`` is only what a copy killed mid-way left: its mark, no job, no run."""
    try:
        sqlite = Connection.open_readonly(file)
    except LedgerError:
        return False
    try:
        conn = sqlite.db.conn
        marked = conn.execute("SELECT count(*) FROM meta WHERE key = ?", (COPYING_META,)).fetchone()[0]
        return bool(marked) and not any(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                                        for table in ("jobs", "runs", "manifests"))
    except sqlite3.DatabaseError:  # not a ledger this runner can read: never removed
        return False
    finally:
        sqlite.close()
