"""Reaching the PostgreSQL server of a ledger: the driver, a new connection within a time, and whether the server
dropped an idle one.

A connection is tried for at most the time it is given (:func:`connect`'s ``within``, whole seconds and at least
2 — libpq's rule — never over :data:`CONNECT_TIMEOUT_S`): the ledger's calls run on the engine's event loop, so
a try is as long as the loop stalls. One that cannot be made is one line naming the URL without its password
(:class:`~runner.errors.LedgerNotReached`: exit 5 as a command opens the ledger; mid-run the connection's reconnect
makes it a :class:`~runner.errors.LedgerUnreachable`, exit 3).
"""

from __future__ import annotations

import math
import select
from typing import TYPE_CHECKING, Any

from runner.errors import LedgerError, LedgerNotReached
from runner.ledger.postgres.urls import scrub

if TYPE_CHECKING:
    import psycopg

__all__ = ["CONNECT_TIMEOUT_S", "connect", "driver", "dropped"]

CONNECT_TIMEOUT_S = 10


def driver() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        raise LedgerError(
            "a PostgreSQL ledger needs the psycopg driver, which is not installed; "
            "install it with: pip install 'runner[postgres]'"
        ) from exc
    return psycopg


def connect(url: str, location: str, password: str | None, *, within: float = CONNECT_TIMEOUT_S
            ) -> psycopg.Connection[Any]:
    """A new autocommit connection (rows as dicts) to ``url``, given up after ``within`` seconds."""
    pg = driver()
    from psycopg.rows import dict_row

    try:
        raw: psycopg.Connection[Any] = pg.connect(
            url, autocommit=True, row_factory=dict_row, application_name="runner",
            connect_timeout=math.ceil(min(within, CONNECT_TIMEOUT_S)))
    except pg.Error as exc:
        said = scrub(" ".join(str(exc).split()), password, url)  # one line: the driver's has a newline and a tab
        raise LedgerNotReached(
            f"cannot connect to the PostgreSQL ledger {location}: "
            f"{said}{'' if said.endswith(('.', '?')) else '.'} Check the URL (--ledger / "
            "RUNNER_LEDGER_URL), that the server runs, and the password (the URL, PGPASSWORD or ~/.pgpass);"
            " nothing was read or written"
        ) from None
    return raw


def dropped(raw: psycopg.Connection[Any]) -> bool:
    """Whether the server spoke on an idle connection: its goodbye (a terminated backend, a shutdown) waits unread
    (a connection no ``select`` can look at is taken as dropped too)."""
    try:
        return bool(select.select([raw.pgconn.socket], [], [], 0)[0])
    except Exception:  # closed, or no socket (psycopg raises its own error): made again, as a dropped one
        return True
