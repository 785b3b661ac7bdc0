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
  at most the empty schema; SQLite: the new file is removed, but for a copy stopped by a signal, or one into a state
  directory an earlier killed copy had left its trace in: see below; a ledger found there is never removed).
* From the moment it exists the destination is marked an unfinished copy (meta ``copy_from``: the source):
  PostgreSQL's schema is created with the mark in one transaction; a SQLite ledger is built as
  ``ledger.db.copying-<random>`` (a trace that makes runs refuse the state directory) and marked, and only then is
  what an earlier killed copy left removed; then it is renamed into place. The mark comes off last, after the source
  is marked moved. A copy killed anywhere (``kill -9``, the OOM killer, a power cut) or stopped (Ctrl-C, SIGTERM)
  leaves a destination every run refuses — empty, it would take every job for new and pay for each again — and that
  the next copy into it starts over.
* Once the destination has committed, the source is marked moved (meta ``moved_to``: where, when), still held: a run
  refuses it from then on (its jobs go on in the copy), until ``runner ledger reopen``. Neither mark is copied, nor
  the source's names and home (a copy is another ledger, a PostgreSQL one at its own :mod:`.home`), but its lineage.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runner.errors import LedgerError, LedgerLocked, LedgerOutdated
from runner.ledger.api import COPYING_META, MOVED_META, moved_mark
from runner.ledger.checks import SCHEMA_WRITTEN_BY
from runner.ledger.connection import Connection
from runner.ledger.lock import LedgerLock
from runner.ledger.postgres import home
from runner.ledger.postgres.before_copy import record_journals
from runner.ledger.postgres.connection import PgConnection
from runner.ledger.postgres.hostmarks import COPIED_META, ID_META, lineage
from runner.ledger.postgres.urls import is_postgres_url
from runner.ledger.rescue import crash_point
from runner.ledger.sqlite import COPYING_NAME, DB_NAME, copied, copy_note, lock_path
from runner.ledger.sqlite import mark as sqlite_mark
from runner.ledger.sqlite.before_copy import record_before_copy
from runner.ledger.sqlite.mark import behind, mark_path
from runner.ledger.sqlite.moved import set_moved
from runner.ledger.sqlite.opening import stale_path
from runner.storage.folder_sync import fsync_path

__all__ = ["TABLES", "CopyReport", "copy_ledger"]

# Every table of both schemas, parents before children; (table, order of the rows).
TABLES = (("runs", "id"), ("jobs", "id"), ("manifests", "name"), ("targets", "manifest, job_id"),
          ("targeted", "manifest, job_id"), ("attempts", "id"), ("meta", "key"), ("renames", "key"), ("rejections", "id"))
_IDENTITIES = ("runs", "jobs", "attempts", "rejections")
# The source's marks, names, count of durable commits, home and cp -a note, never copied (a copy is another ledger).
_MARKS = (MOVED_META, COPYING_META, ID_META, sqlite_mark.ID_META, sqlite_mark.COMMITS_META, home.HOME_META, copy_note.COPY_OF_META)
_CHUNK = 5000
Rows = Iterator[tuple[Any, ...]]


@dataclass
class CopyReport:
    """What :func:`copy_ledger` copied: rows per table."""

    source: str
    destination: str
    rows: dict[str, int] = field(default_factory=dict)


def copy_ledger(src: str, dst: str, journals: tuple[Path, ...] = (), nearby: Path | None = None, *,
                progress: Callable[[int], Callable[[], None]] | None = None) -> CopyReport:
    """Copy the ledger at ``src`` into ``dst`` (see the module docstring), a PostgreSQL source once the rescue
    journals of the state directories ``journals`` (and ``nearby``'s, if it ran on it) are recorded in it
    (:mod:`.before_copy`); raises :class:`~runner.errors.LedgerLocked` while a runner holds the source,
    :class:`LedgerError` when the destination already holds a ledger or either side fails (nothing then written to
    the destination); a SQLite source copied by other tools first marks its original moved (:mod:`.copied`).
    ``progress``, given the number of rows to copy, returns what is called once a row read (a ticker's ``of``)."""
    with _source(src, journals, nearby) as (columns, read, still_free, source, named):
        tick = progress(sum(int(row[0]) for t, _ in TABLES for row in read(t, ["count(*)"], "1"))) if progress else None
        origin = source if is_postgres_url(src) else str(Path(src).absolute())  # as `ledger copy` takes it again
        with _destination(dst, origin) as (write, commit, publish, destination):
            report = CopyReport(source=source, destination=destination)
            for table, order in TABLES:
                cols = columns(table)  # the source's; the destination must have every one (or the copy fails)
                rows = read(table, cols, order) if tick is None else _ticked(read(table, cols, order), tick)
                if table == "meta":  # the source's own marks are not the copy's; its name goes into the copy's lineage
                    rows = _meta_rows(rows, cols, named)
                report.rows[table] = write(table, cols, rows)
            still_free()
            crash_point("ledger-copy-rows")  # tests: killed with every row written, none committed
            commit()
            # Committed, still marked an unfinished copy: the source now says where its jobs went, and a run refuses
            # it (an old cron line, a host without RUNNER_LEDGER_URL would pay again for what the copy's runs send).
            # Still held: no run started. Only then is the copy's mark taken off: never both usable at once.
            _mark_moved(src, moved_mark(destination, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")))
            crash_point("ledger-copy-moved")  # tests: killed with the source marked moved, the copy still marked
            publish()
    return report


def _ticked(rows: Rows, tick: Callable[[], None]) -> Rows:
    for row in rows:
        tick()
        yield row


def _meta_rows(rows: Rows, cols: list[str], named: tuple[str, float] | None) -> Rows:
    """The source's meta but its marks, names and count of commits; :data:`COPIED_META` with the source added
    (``named``: its name and when the copy was taken, by its server's clock), so that the marks of the source, where
    the copy is put back in its place, are not taken for a ledger dropped and made again (:mod:`.hostmarks`); and
    the SQLite ledger's alike (its name and count of durable commits: :mod:`runner.ledger.sqlite.mark`), so that its
    commit mark takes a copy put in its place for what it is — one holding every commit the mark saw until then, or
    not: a copy, even of a copy, is never taken for its source by name (two ledgers run apart, one moved over the
    other, would pay again for what the other sent)."""
    key, value = cols.index("key"), cols.index("value")
    carried = None
    meta: dict[object, object] = {}
    for row in rows:
        if row[key] == COPIED_META:
            carried = row[value]
        elif row[key] in (sqlite_mark.COPIED_META, sqlite_mark.ID_META, sqlite_mark.COMMITS_META):
            meta[row[key]] = row[value]
        elif row[key] not in _MARKS and row[key] != SCHEMA_WRITTEN_BY:  # (the copy's schema is the copier's)
            yield row
    if (text := lineage(carried, named)) is not None:
        yield tuple(COPIED_META if i == key else text if i == value else None for i in range(len(cols)))
    name = meta.get(sqlite_mark.ID_META)
    source = None if name is None else (str(name), sqlite_mark.commits_of(meta.get(sqlite_mark.COMMITS_META)))
    if (text := sqlite_mark.lineage(meta.get(sqlite_mark.COPIED_META), source)) is not None:
        yield tuple(sqlite_mark.COPIED_META if i == key else text if i == value else None for i in range(len(cols)))


_MARK = "INSERT INTO meta (key, value) VALUES ({0}, {0}) ON CONFLICT (key) DO UPDATE SET value = excluded.value"


def _mark_moved(src: str, where: str) -> None:
    if is_postgres_url(src):
        conn = PgConnection.open(src, create=False)
        try:
            with conn.write() as tx:
                tx.execute(_MARK.format("%s"), (MOVED_META, where))
        finally:
            conn.close()
        return
    sqlite = Connection.open_writable(Path(src) / DB_NAME, may_create=False)
    try:
        set_moved(sqlite, where)
    finally:
        sqlite.close()


# ------------------------------------------------------------------ sources


@contextlib.contextmanager
def _source(src: str, journals: tuple[Path, ...], nearby: Path | None) -> Iterator[
        tuple[Callable[[str], list[str]], Callable[[str, list[str], str], Rows], Callable[[], None], str,
              tuple[str, float] | None]]:
    """(columns of a table, rows of a table, check that no runner took the source meanwhile, location, the name of a
    PostgreSQL source and its server's time as its snapshot is taken)."""
    if is_postgres_url(src):
        conn = PgConnection.open(src, readonly=True, create=False)
        try:
            _refuse_held(conn)
            record_journals(src, conn.location, journals, nearby)  # the hosts' paid ids go with the rows
            from psycopg import IsolationLevel

            conn.raw.isolation_level = IsolationLevel.REPEATABLE_READ
            with conn.errors(), conn.raw.transaction():
                first = conn.one("SELECT extract(epoch FROM clock_timestamp())::float8 AS now,"  # takes the snapshot
                                 " (SELECT value FROM meta WHERE key = %s) AS name", (ID_META,))
                named = None if first is None or first["name"] is None else (str(first["name"]), float(first["now"]))

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

                yield columns, read, still_free, conn.location, named
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
            if (lost := behind(sqlite, state)) is not None:  # a copy would run it elsewhere with no mark: paid again
                raise LedgerOutdated(f"not copied: {lost}")
            copied.check(sqlite, state)  # a cp -a copy: its original marked moved (a run there would pay again)
            if record_before_copy(state / DB_NAME, state):  # the journals' paid ids and decisions go with the rows
                sqlite.close()
                sqlite = Connection.open_readonly(state / DB_NAME)

            def read_sqlite(table: str, cols: list[str], order: str) -> Rows:
                cursor = sqlite.db.conn.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY {order}")
                while chunk := cursor.fetchmany(_CHUNK):
                    yield from chunk

            def columns_sqlite(table: str) -> list[str]:
                return [str(row[1]) for row in sqlite.db.conn.execute(f"PRAGMA table_info({table})")]

            yield columns_sqlite, read_sqlite, lambda: None, str(state / DB_NAME), None
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
def _destination(dst: str, origin: str) -> Iterator[tuple[Callable[[str, list[str], Rows], int], Callable[[], None],
                                                          Callable[[], None], str]]:
    """The destination, marked an unfinished copy of ``origin`` (meta ``copy_from``) from the moment it exists until
    ``publish()`` takes the mark off: (write a table's rows, commit them, publish, the destination's location). A
    destination still marked is what a killed copy left: a run refuses it, and a copy starts it over."""
    if is_postgres_url(dst):
        conn = PgConnection.open(dst, create=True, mark=(COPYING_META, origin))  # the schema made with its mark
        try:
            _empty_or_unfinished(conn, origin)
            place = home.here(conn)
            with contextlib.ExitStack() as rows_tx:
                tx = rows_tx.enter_context(conn.write())
                home.record(tx, place)  # the copy's own home (the source's is not copied)

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

                def publish() -> None:
                    with conn.write() as done:
                        done.execute("DELETE FROM meta WHERE key = %s", (COPYING_META,))

                yield write, rows_tx.close, publish, conn.location
        finally:
            conn.close()
        return
    state = Path(dst)
    file = state / DB_NAME
    if file.exists() and not _unfinished_copy(file):
        raise LedgerError(f"{file} already exists; copy into a state directory without a ledger. Nothing was changed")
    state.mkdir(parents=True, exist_ok=True)
    lock = LedgerLock.acquire(lock_path(state), started_at=time.time(), creating=True)
    committed = stopped = False
    earlier = False  # an earlier copy, killed, left its marked ledger or its building here (a trace runs refuse)
    try:
        earlier = file.exists() or any(state.glob(f"{COPYING_NAME}*"))
        if file.exists() and not _unfinished_copy(file):  # again, under the lock
            raise LedgerError(f"{file} already exists; copy into a state directory without a ledger. Nothing"
                              " was changed")
        # Made under a name of its own (a trace that runs refuse: see ledger_traces) and marked, before anything an
        # earlier killed copy left (its marked ledger.db, its building: traces too) is removed, then renamed into
        # place: a stop at any point leaves one of them, and a ledger.db of the copy's is never without its mark
        # until published. (Removed first, a stop in between left nothing: a run made a new ledger, paid again.)
        building = state / f"{COPYING_NAME}-{uuid.uuid4().hex[:12]}"
        Connection.create(building)
        sqlite = Connection.open_writable(building, may_create=False)
        try:
            with sqlite.write(durable=True) as db:
                db.execute(_MARK.format("?"), (COPYING_META, origin))
        finally:
            sqlite.close()
        crash_point("ledger-copy-made")  # tests: killed with the new ledger built and marked, not yet in place
        _remove(file)  # what a killed copy left (a run refuses it: nothing in it is anyone's record)
        _remove_building(state, keep=building)  # what a copy killed before its rename left
        crash_point("ledger-copy-cleared")  # tests: killed with an earlier killed copy's leftovers removed
        _set_mark_aside(file)
        os.rename(building, file)
        fsync_path(state)
        sqlite = Connection.open_writable(file, may_create=False)
        try:
            with contextlib.ExitStack() as rows_tx:
                db = rows_tx.enter_context(sqlite.write(durable=True))

                def write_sqlite(table: str, cols: list[str], rows: Rows) -> int:
                    count = 0
                    sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
                    while chunk := [row for _, row in zip(range(_CHUNK), rows, strict=False)]:
                        db.conn.executemany(sql, chunk)
                        count += len(chunk)
                    return count

                def commit_sqlite() -> None:
                    nonlocal committed
                    rows_tx.close()
                    committed = True

                def publish_sqlite() -> None:
                    with sqlite.write(durable=True) as published:
                        published.execute("DELETE FROM meta WHERE key = ?", (COPYING_META,))

                yield write_sqlite, commit_sqlite, publish_sqlite, str(file)
        finally:
            sqlite.close()
    except BaseException as exc:
        # A copy that failed (an error, said as such) leaves nothing — but where an earlier killed copy left a trace:
        # then, as a copy stopped by a signal (Ctrl-C, SIGTERM), it leaves what a kill leaves, its marked ledger or its
        # trace, which runs refuse: removed, it left a state directory without a ledger, where a run (the operator was
        # moving the batch there) paid for every job again.
        stopped = not isinstance(exc, Exception) or earlier
        raise
    finally:
        if committed:
            lock.created()  # published, or still marked (a copy stopped after its commit: a run refuses it)
        elif not stopped:
            _remove(file)
            _remove_building(state)
        lock.release()


def _empty_or_unfinished(conn: PgConnection, origin: str) -> None:
    """A PostgreSQL destination must hold no ledger, or only what a killed copy left (still marked: a run refuses
    it, so nothing in it is anyone's record), which is emptied to start over; either way it leaves marked."""
    marked = conn.scalar("SELECT count(*) FROM meta WHERE key = %s", (COPYING_META,))
    if not marked and any(conn.scalar(f"SELECT count(*) FROM {t}") for t in ("jobs", "runs", "manifests", "meta")):
        raise LedgerError(f"{conn.location} already holds a ledger; copy into an empty database. Nothing was changed")
    with conn.write() as tx:  # emptied and marked in one transaction: never empty and unmarked
        tx.execute(f"TRUNCATE {', '.join(table for table, _ in TABLES)} RESTART IDENTITY")
        tx.execute(_MARK.format("%s"), (COPYING_META, origin))


def _set_mark_aside(file: Path) -> None:
    """The commit mark of a ledger no longer here (none, or a killed copy's, which a refused run marked) would refuse
    the copy about to take its place: kept as ``ledger.mark.stale-<time>``; the copy gets its own at its first open."""
    mark = mark_path(file)
    if os.path.lexists(mark):
        os.replace(mark, stale_path(mark, time.time()))


def _remove(file: Path) -> None:
    for leftover in (file, file.with_name(f"{DB_NAME}-wal"), file.with_name(f"{DB_NAME}-shm")):
        leftover.unlink(missing_ok=True)


def _remove_building(state: Path, *, keep: Path | None = None) -> None:
    """The ledgers copies build under their temporary names (and what creating one leaves), but ``keep``'s."""
    for stale in state.glob(f"{COPYING_NAME}*"):
        if keep is None or not stale.name.startswith(keep.name):
            stale.unlink(missing_ok=True)


def _unfinished_copy(file: Path) -> bool:
    """Whether the SQLite ledger ``file`` is what a copy killed mid-way left: still marked (a run refuses it, so
    nothing in it is anyone's record)."""
    try:
        sqlite = Connection.open_readonly(file)
    except LedgerError:
        return False
    try:
        return bool(sqlite.db.conn.execute("SELECT count(*) FROM meta WHERE key = ?", (COPYING_META,)).fetchone()[0])
    except sqlite3.DatabaseError:  # not a ledger this runner can read: never removed
        return False
    finally:
        sqlite.close()
