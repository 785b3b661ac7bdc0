"""The PostgreSQL ledger's schema version, checked as a connection opens: read from ``runner_schema``, a foreign or
newer database refused (:class:`~runner.errors.LedgerSchemaError`), and — writable — a missing ledger created or an
older one migrated, in one transaction under :data:`~.schema.ADVISORY_LOCK` (the version read again under it, so
runners opening one database at once create or migrate it once). The scripts are :mod:`.schema`'s."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.distribution import installed_version
from runner.errors import LedgerSchemaError, LedgerSchemaMoved
from runner.ledger.checks import SCHEMA_WRITTEN_BY, newer_runner
from runner.ledger.postgres.schema import (
    ADVISORY_LOCK,
    APPLICATION,
    MIGRATIONS,
    SCHEMA_VERSION,
    elsewhere,
    read_as_empty,
)

if TYPE_CHECKING:
    from runner.ledger.postgres.connection import PgConnection, Tx

__all__ = ["check_schema", "schema_version", "still_current"]

_WRITTEN_BY = "SELECT value FROM meta WHERE key = %s"


def check_schema(conn: PgConnection, url: str, *, migrate: bool, create: bool,
                 mark: tuple[str, str] | None = None) -> None:
    """Check the schema of ``conn`` (opened on ``url``) and, ``migrate``, create (``create``) or migrate it; ``mark``,
    a meta (key, value) written in the transaction that creates it. Read-only, a database without a ledger reads as
    an empty one (:func:`~.schema.read_as_empty`)."""
    version = schema_version(conn)
    if version == SCHEMA_VERSION or (not migrate and version is not None):
        return
    if not migrate:
        with conn.errors():
            read_as_empty(conn.raw)
        return
    if version is None and not create:
        raise LedgerSchemaError(f"there is no runner ledger at {conn.location}; nothing was changed")
    with conn.write() as tx:
        tx.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK,))
        version = schema_version(conn)  # again, under the lock: another runner may have created it meanwhile
        refused = elsewhere(tx, url) if version is None else None
        if refused is not None:
            raise LedgerSchemaError(f"{conn.location}: {refused}")
        for script in MIGRATIONS[version or 0:]:
            tx.execute(script)
        if version is None:
            tx.execute("INSERT INTO runner_schema (application, version) VALUES (%s, %s)",
                       (APPLICATION, SCHEMA_VERSION))
            if mark is not None:
                tx.execute("INSERT INTO meta (key, value) VALUES (%s, %s)", mark)
            conn.created = True
        else:
            tx.execute("UPDATE runner_schema SET version = %s", (SCHEMA_VERSION,))
        tx.execute("INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                   (SCHEMA_WRITTEN_BY, installed_version()))  # named by an older runner's refusal


def schema_version(conn: PgConnection) -> int | None:
    """The schema version, ``None`` for a database without a ledger; refuses foreign or newer ones."""
    with conn.errors():
        found = _tables(conn, "runner_schema", "jobs")  # one statement: one snapshot of the catalog
        if "runner_schema" not in found:
            if "jobs" in found:
                raise LedgerSchemaError(
                    f"{conn.location} holds tables of something else than a runner ledger; nothing was changed. "
                    "Use another database (or schema) for the ledger")
            return None
        row = conn.raw.execute("SELECT application, version FROM runner_schema").fetchone()
        if row is None or row["application"] != APPLICATION:
            raise LedgerSchemaError(f"{conn.location} is not a runner ledger (runner_schema says otherwise); "
                                    "nothing was changed")
        version = int(row["version"])
        if version > SCHEMA_VERSION:
            theirs = conn.raw.execute(_WRITTEN_BY, (SCHEMA_WRITTEN_BY,)).fetchone()
            raise LedgerSchemaError(
                f"{conn.location} {newer_runner(version, SCHEMA_VERSION, None if theirs is None else theirs['value'])}")
    return version


def still_current(tx: Tx, location: str) -> None:
    """Refuse (:class:`LedgerSchemaMoved`, the transaction rolled back) a write-ahead once a newer runner on another
    host migrated the schema under this run (a rolling upgrade): the statements of this runner may no longer be what
    the newer schema means, so nothing more is sent. First in the write-ahead's transaction: one that began after the
    migration's commit sees it; one that began before it is as one committed just before it, its POST's record then
    written by this runner's statements on the newer schema, which a migration therefore keeps working (:mod:`.schema`)."""
    version = int(tx.scalar("SELECT version FROM runner_schema"))
    if version > SCHEMA_VERSION:
        theirs = tx.scalar(_WRITTEN_BY, (SCHEMA_WRITTEN_BY,))
        raise LedgerSchemaMoved(f"the PostgreSQL ledger {location} "
                                f"{newer_runner(version, SCHEMA_VERSION, theirs, under_run=True)}")


def _tables(conn: PgConnection, *names: str) -> set[str]:
    """Which of ``names`` the current schema has, read from the catalog in ONE statement (one snapshot:
    two lookups could straddle another runner's commit of a new ledger and see its ``jobs`` without its
    ``runner_schema``); ``to_regclass`` may answer from a cache that predates such a commit."""
    rows = conn.raw.execute(
        "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = current_schema()"
        " AND tablename = ANY(%s)", (list(names),)).fetchall()
    return {row["tablename"] for row in rows}
