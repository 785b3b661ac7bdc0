"""The destination of ``runner ledger copy`` (:mod:`.transfer`): a PostgreSQL database or a state directory that holds
no ledger, or only what a killed copy left, written in one transaction and marked an unfinished copy (meta
``copy_from``) from the moment it exists until the copy publishes it; a copy that fails leaves nothing, but where an
earlier killed copy left its trace, which runs refuse."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from runner.errors import LedgerError
from runner.ledger.api import COPYING_META
from runner.ledger.connection import Connection
from runner.ledger.lock import LedgerLock
from runner.ledger.postgres import home
from runner.ledger.postgres.connection import PgConnection
from runner.ledger.postgres.copy_tables import CHUNK, IDENTITIES, MARK, TABLES, Rows
from runner.ledger.postgres.urls import is_postgres_url
from runner.ledger.rescue import crash_point
from runner.ledger.sqlite import COPYING_NAME, DB_NAME, lock_path
from runner.ledger.sqlite.mark import mark_path
from runner.ledger.sqlite.opening import stale_path
from runner.storage.folder_sync import fsync_path

__all__ = ["open_destination"]


@contextlib.contextmanager
def open_destination(dst: str, origin: str) -> Iterator[tuple[Callable[[str, list[str], Rows], int], Callable[[], None],
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
                    if table in IDENTITIES:
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
                db.execute(MARK.format("?"), (COPYING_META, origin))
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
                    while chunk := [row for _, row in zip(range(CHUNK), rows, strict=False)]:
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
        tx.execute(MARK.format("%s"), (COPYING_META, origin))


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
