"""Open whichever ledger a command names: PostgreSQL at a URL, else SQLite in the state directory.

    ledger = open_backend(Path("state"), url=os.environ.get(LEDGER_URL_ENV))

The URL (``--ledger`` / ``RUNNER_LEDGER_URL``) is ``postgresql://user@host:port/dbname``; its
password comes from the URL, ``PGPASSWORD`` or ``~/.pgpass`` and never appears in a message
(:attr:`LedgerBackend.location` is the URL without it). With a PostgreSQL ledger the state
directory is where the videos (and the rescue journal) live; runners sharing a ledger share it.
Without a URL, the SQLite ledger ``<state>/ledger.db`` as always.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from runner.errors import UsageError
from runner.ledger.api import IN_DOUBT_HOLD_S, LEASE_TTL_S, LedgerBackend

__all__ = ["IN_DOUBT_HOLD_ENV", "LEASE_TTL_ENV", "LEDGER_URL_ENV", "check_url", "in_doubt_hold", "is_shared", "lease_ttl",
           "ledger_exists", "open_backend", "seconds_setting"]

LEDGER_URL_ENV = "RUNNER_LEDGER_URL"
LEASE_TTL_ENV = "RUNNER_LEASE_TTL"  # seconds; the default is LEASE_TTL_S (tests shorten it)
IN_DOUBT_HOLD_ENV = "RUNNER_IN_DOUBT_HOLD"  # seconds; the default is IN_DOUBT_HOLD_S (tests with short tasks shorten it)


def check_url(url: str) -> str:
    """``url`` if it names a PostgreSQL ledger; a usage error (without the password) otherwise."""
    from runner.ledger.postgres.urls import is_postgres_url

    if not is_postgres_url(url):
        shown = url.split("@")[-1].split("?")[0]  # no user:password@, no ?password=…
        # a libpq conninfo (host=… password=…), which --ledger does not take, is not shown at all
        said = "a conninfo string (not shown: it holds a password)" if "password" in shown.lower() else repr(shown)
        raise UsageError(f"--ledger / {LEDGER_URL_ENV} must be a postgresql://user@host:port/dbname URL, not"
                         f" {said}; without it the ledger is the SQLite file in --state")
    return url


def open_backend(state_dir: Path, *, url: str | None = None, readonly: bool = False, new_ledger: bool = False,
                 create: bool = True) -> LedgerBackend:
    """The ledger at ``url`` (PostgreSQL) or in ``state_dir`` (SQLite), opened as asked.

    ``create=False`` refuses to make a new one; ``new_ledger`` (SQLite) allows a new one where traces of
    an old one remain. A read-only SQLite ledger that does not exist reads as empty; a read-only
    PostgreSQL database without a ledger is a :class:`~runner.errors.LedgerSchemaError`.
    """
    if url:
        from runner.ledger.postgres import open_postgres_ledger

        return open_postgres_ledger(check_url(url), state_dir, readonly=readonly, create=create)
    from runner.ledger.sqlite import open_ledger

    return open_ledger(state_dir, readonly=readonly, new_ledger=new_ledger, create=create)


def ledger_exists(state_dir: Path, url: str | None) -> bool:
    """Whether there is a ledger to read (SQLite: its file; PostgreSQL: its schema in the database)."""
    if url:
        from runner.ledger.postgres.connection import PgConnection

        conn = PgConnection(check_url(url), readonly=True)
        try:
            return conn.has_ledger()
        finally:
            conn.close()
    from runner.ledger.sqlite import DB_NAME

    return (state_dir / DB_NAME).exists()


def is_shared(ledger: LedgerBackend) -> bool:
    """Whether several runners may write ``ledger`` at once (PostgreSQL), so that runs claim, renew
    their lease and take over expired work; SQLite has one writer (its lock).

    A PostgreSQL ledger's class was imported to make it: while its module is not imported, no ledger is one,
    and a SQLite run does not import the PostgreSQL backend to learn that (start-up: issue 14)."""
    module = sys.modules.get("runner.ledger.postgres.ledger")
    return module is not None and isinstance(ledger, module.PostgresLedger)


def lease_ttl(environ: Mapping[str, str]) -> float:
    """The lease TTL a runner uses on a shared ledger: ``RUNNER_LEASE_TTL`` seconds, else LEASE_TTL_S."""
    return seconds_setting(environ, LEASE_TTL_ENV, LEASE_TTL_S, low=0.1)


def in_doubt_hold(environ: Mapping[str, str]) -> float:
    """How long an in-doubt submit keeps its concurrency slot: ``RUNNER_IN_DOUBT_HOLD`` seconds, else IN_DOUBT_HOLD_S."""
    return seconds_setting(environ, IN_DOUBT_HOLD_ENV, IN_DOUBT_HOLD_S, low=0.0)


def seconds_setting(environ: Mapping[str, str], name: str, default: float, *, low: float) -> float:
    said = environ.get(name, "").strip()
    if not said:
        return default
    try:
        value = float(said)
    except ValueError:
        value = -1.0
    if not low <= value <= 86400:
        raise UsageError(f"{name}={said!r}: say a number of seconds between {low:g} and 86400 (default {default:g})")
    return value
