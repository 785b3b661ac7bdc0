"""The source of ``runner ledger copy`` (:mod:`.transfer`), held for the whole copy: a SQLite ledger under its
single-writer lock, a PostgreSQL one read in one ``REPEATABLE READ`` snapshot while no runner's lease runs (checked
before the copy and again before the destination commits). What it yields reads each table's columns and rows."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from runner.errors import LedgerError, LedgerLocked, LedgerOutdated
from runner.ledger.connection import Connection
from runner.ledger.lock import LedgerLock
from runner.ledger.postgres.before_copy import record_journals
from runner.ledger.postgres.connection import PgConnection
from runner.ledger.postgres.copy_tables import CHUNK, Rows
from runner.ledger.postgres.hostmarks import ID_META
from runner.ledger.postgres.urls import is_postgres_url
from runner.ledger.sqlite import DB_NAME, copied, lock_path
from runner.ledger.sqlite.before_copy import record_before_copy
from runner.ledger.sqlite.mark import behind

__all__ = ["open_source", "refuse_held"]


@contextlib.contextmanager
def open_source(src: str, journals: tuple[Path, ...], nearby: Path | None) -> Iterator[
        tuple[Callable[[str], list[str]], Callable[[str, list[str], str], Rows], Callable[[], None], str,
              tuple[str, float] | None]]:
    """(columns of a table, rows of a table, check that no runner took the source meanwhile, location, the name of a
    PostgreSQL source and its server's time as its snapshot is taken)."""
    if is_postgres_url(src):
        conn = PgConnection.open(src, readonly=True, create=False)
        try:
            refuse_held(conn)
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
                        while chunk := cursor.fetchmany(CHUNK):
                            yield from (tuple(row.values()) for row in chunk)

                def columns(table: str) -> list[str]:
                    return [str(row["column_name"]) for row in conn.rows(
                        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
                        " AND table_name = %s ORDER BY ordinal_position", (table,))]

                def still_free() -> None:
                    fresh = PgConnection.open(src, readonly=True, create=False)  # outside the snapshot
                    try:
                        refuse_held(fresh)
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
                while chunk := cursor.fetchmany(CHUNK):
                    yield from chunk

            def columns_sqlite(table: str) -> list[str]:
                return [str(row[1]) for row in sqlite.db.conn.execute(f"PRAGMA table_info({table})")]

            yield columns_sqlite, read_sqlite, lambda: None, str(state / DB_NAME), None
        finally:
            sqlite.close()
    finally:
        lock.release()


def refuse_held(conn: PgConnection) -> None:
    holders = conn.rows("SELECT owner, host, pid FROM leases WHERE expires_at > extract(epoch FROM clock_timestamp())"
                        " ORDER BY owner")
    if holders:
        who = ", ".join(f"{row['owner']} (host {row['host']}, pid {row['pid']})" for row in holders[:3])
        raise LedgerLocked(f"runners hold the ledger {conn.location} ({who}); stop them (or wait until their "
                           "leases expire) and copy again. Nothing was changed", holder=who)
