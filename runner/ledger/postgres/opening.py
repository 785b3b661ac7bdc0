"""Opening a PostgreSQL ledger: connect, refuse a ledger cloned by other tools or a server that lost this state
directory's commits, take the server's clock, and hand over a :class:`~runner.ledger.postgres.ledger.PostgresLedger`."""

from __future__ import annotations

from pathlib import Path

from runner.ledger.api import Clock
from runner.ledger.postgres import hostmarks
from runner.ledger.postgres.clock import ServerClock
from runner.ledger.postgres.connection import PgConnection
from runner.ledger.postgres.holds import DoubtHolds
from runner.ledger.postgres.home import check as check_home
from runner.ledger.postgres.ledger import PostgresLedger

__all__ = ["open_postgres_ledger"]


def open_postgres_ledger(
    url: str, state_dir: Path | str, *, readonly: bool = False, clock: Clock | None = None, create: bool = True,
    holds: DoubtHolds | None = None,
) -> PostgresLedger:
    """Connect to the ledger at ``url`` (``postgresql://user@host:port/dbname``), creating or migrating
    its schema unless ``readonly``; ``state_dir`` is where videos and the rescue journal live."""
    conn = PgConnection.open(url, readonly=readonly, create=create)
    try:
        check_home(conn)  # copied by other tools than `runner ledger copy` (pg_dump, TEMPLATE): refused; read-only: warned
        if not readonly:  # a server that lost commits this state directory saw: refused (hostmarks)
            hostmarks.attach(conn, Path(state_dir))
        if clock is None:
            clock = ServerClock()
            clock.sync(conn)
        return PostgresLedger(conn, state_dir=Path(state_dir), clock=clock, holds=holds)
    except BaseException:
        conn.close()
        raise
