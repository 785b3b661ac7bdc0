"""The PostgreSQL ledger's schema version, checked as a connection opens: read from ``runner_schema``, a foreign or
newer database refused (:class:`~runner.errors.LedgerSchemaError`), and — writable — a missing ledger created or an
older one migrated, in one transaction under :data:`~.schema.ADVISORY_LOCK` (the version read again under it, so
runners opening one database at once create or migrate it once). The scripts are :mod:`.schema`'s."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.errors import LedgerSchemaError
from runner.ledger.postgres.schema import (
    ADVISORY_LOCK,
    APPLICATION,
    MIGRATIONS,
    SCHEMA_VERSION,
    elsewhere,
    read_as_empty,
)

if TYPE_CHECKING:
    from runner.ledger.postgres.connection import PgConnection

__all__ = ["check_schema", "schema_version"]


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
        raise LedgerSchemaError(
            f"{conn.location} was written by a newer runner (schema {version} > {SCHEMA_VERSION}); "
            "upgrade runner. Nothing was changed.")
    return version


def _tables(conn: PgConnection, *names: str) -> set[str]:
    """Which of ``names`` the current schema has, read from the catalog in ONE statement (one snapshot:
    two lookups could straddle another runner's commit of a new ledger and see its ``jobs`` without its
    ``runner_schema``); ``to_regclass`` may answer from a cache that predates such a commit."""
    rows = conn.raw.execute(
        "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = current_schema()"
        " AND tablename = ANY(%s)", (list(names),)).fetchall()
    return {row["tablename"] for row in rows}
