"""Where a PostgreSQL ledger was made (its home): a ledger copied or moved elsewhere by other tools is refused.

A DBA copies a database with the server's own tools — ``CREATE DATABASE staging TEMPLATE prod``, ``pg_dump`` piped
to ``pg_restore`` or ``psql``, a migration to a new server while the old one stays up. The copy carries every table,
meta too: the same ledger name (:data:`~.hostmarks.ID_META`) and the same ``write_marks`` rows, so the hosts' write
marks (:mod:`.hostmarks`) find nothing missing. A host whose runs were pointed at the copy read every job the
original's hosts sent since as pending, and theirs read its jobs so: each paid for the other's.

So the ledger records its home in meta (:data:`HOME_META`) at its first writable open, or whenever it has none (a
ledger an older runner made, which older runners still at work leave alone): the server's system identifier, the
database's OID and the OID of the schema that holds the ledger's tables, as PostgreSQL tells them — not the URL,
which spells one place many ways — and, for the messages, the server's address and port and the names of the
database and schema as last seen. A physical copy of the whole server keeps all three (a streaming replica must
share its primary's system identifier, and replays the primary's catalogs): a failover, a restart at another
address, a database or schema renamed are the same home. ``CREATE DATABASE … TEMPLATE`` and a dump restored make a
new database (another OID), a dump restored to another server another system identifier too (its databases' OIDs
may coincide with the original's: the first made on a new server gets the same one), a ledger's tables moved to
another schema another schema OID.

A writable open (:func:`check`) anywhere else than the home refuses (:class:`~runner.errors.LedgerCloned`, exit 2)
before anything is written or sent, naming the home; ``runner ledger reopen URL`` makes the place the ledger's home
on purpose (:func:`adopt`: the original gone, or never to run again — and not run since the copy's last commit,
whose time the refusal gives: else the jobs it sent since read pending here; :func:`went_on` refuses the adoption
while an original on this server holds later submissions). A read-only open warns. ``runner ledger copy``
writes its copy's own home (:func:`record`; the source's is not copied: a copy is another ledger). A server that will
not say its system identifier (a managed one that revokes ``pg_control_system()``) is compared on the OIDs alone:
copies within one server are still seen, a dump restored to another server may not be.

Beyond it: ``pg_upgrade`` makes a new server (a new system identifier): a ledger upgraded so is refused once, and
``runner ledger reopen URL`` adopts it; a physical copy started as a second primary while the first runs on (a
base backup promoted by hand) is the same home in both places and is not seen.
"""

from __future__ import annotations

import json
import logging
import shlex
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from runner.errors import LedgerCloned, LedgerError, LedgerNotReached, LedgerUnreachable
from runner.ledger.postgres.hostmarks import said_at

if TYPE_CHECKING:
    from runner.ledger.postgres.connection import PgConnection

__all__ = ["HOME_META", "Home", "adopt", "check", "elsewhere", "here", "record", "went_on"]

HOME_META = "home"  # meta: where this ledger was made (a JSON Home); never copied by `runner ledger copy`
log = logging.getLogger("runner.ledger")
_warned: set[str] = set()  # the read-only opens warned of, once a process (`status --watch` opens again and again)
_LAST_SENT = "SELECT max(id) FROM attempts WHERE kind = 'submit'"  # a write-ahead or an adoption: its id
_UPSERT = "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value"


@dataclass(frozen=True, slots=True)
class Home:
    """One place a ledger can be: the identities PostgreSQL gives it, and ``seen``, that place in an operator's words."""

    system: str | None  # pg_control_system()'s system_identifier; None: the server would not say
    database: int  # pg_database.oid
    schema: int  # pg_namespace.oid of the schema holding the ledger's tables
    seen: str  # "host:port/database schema name", as this connection reached it (no user, no password)

    def same_place(self, other: Home) -> bool:
        """Whether ``other`` is this place: the same OIDs, on the same server when both say which."""
        systems = None in (self.system, other.system) or self.system == other.system
        return systems and (self.database, self.schema) == (other.database, other.schema)

    def text(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def _stored(value: Any) -> Home | None:
    """The home a meta value records, or None (none yet; or not one this runner can read: it records its own)."""
    try:
        fields = json.loads(str(value))
        return Home(None if fields["system"] is None else str(fields["system"]), int(fields["database"]),
                    int(fields["schema"]), str(fields["seen"]))
    except (ValueError, TypeError, KeyError):
        return None


def _recorded(conn: PgConnection) -> Home | None:
    """The home the ledger on ``conn`` records (:func:`_stored`)."""
    return _stored(conn.scalar("SELECT value FROM meta WHERE key = %s", (HOME_META,)))


def _away(conn: PgConnection) -> tuple[Home, Home] | None:
    """(its home, where it is now) when the ledger on ``conn`` is not at the home it records; None: at home, or none
    recorded (or no ledger tables to look up)."""
    now = here(conn)
    home = None if now is None else _recorded(conn)
    return None if now is None or home is None or home.same_place(now) else (home, now)


def here(conn: PgConnection) -> Home | None:
    """The place the ledger on ``conn`` is now; None when there are no ledger tables to look up (read-only)."""
    found = conn.one(
        "SELECT d.oid::int8 AS database, d.datname AS dbname, n.oid::int8 AS schema, n.nspname AS schemaname,"
        " host(inet_server_addr()) AS address, inet_server_port() AS port,"
        " coalesce(has_function_privilege(to_regprocedure('pg_catalog.pg_control_system()'), 'EXECUTE'), false) AS can"
        " FROM pg_database d, pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE d.datname = current_database() AND c.oid = to_regclass('meta')")
    if found is None:
        return None
    system = None
    if found["can"]:
        try:
            system = str(conn.scalar("SELECT system_identifier::text FROM pg_control_system()"))
        except (LedgerUnreachable, LedgerNotReached):
            raise
        except LedgerError as exc:  # a managed server's own refusal: compared on the OIDs alone
            log.debug("the PostgreSQL server of %s does not say its system identifier: %s", conn.location, exc)
    info = conn.raw.info  # the server's own address where it says one (not over a Unix socket), else as connected
    seen = f"{found['address'] or info.host}:{found['port'] or info.port}/{found['dbname']} schema {found['schemaname']}"
    return Home(system, int(found["database"]), int(found["schema"]), seen)


def _refusal(conn: PgConnection, home: Home, now: Home, done: str = "Nothing was sent. Run") -> str:
    said = shlex.quote(conn.typed)
    last = _read(conn, "SELECT max(at) FROM write_marks")  # the last commit it holds: the original's, as copied
    since = "" if last is None else f" ({said_at(float(last))}, by the server's clock)"
    return (f"the PostgreSQL ledger {conn.location} was made at {_there(conn, home, now)}, not here ({now.seen}): it was"
            " copied or moved here by other tools than `runner ledger copy` (CREATE DATABASE … TEMPLATE, pg_dump and"
            " pg_restore, a migration to another server, pg_upgrade), and it carries the jobs of the one there. Runs on"
            f" both would each pay for the other's jobs: what one sends reads pending in the other. {done} with the URL"
            " of the ledger there; or, if that one is gone or will never be run again (stop every runner and cron line"
            f" on it first) and no run used it after the last commit this copy holds{since}, make this place its home:"
            f" `runner ledger reopen {said}`. If one did, the jobs it sent since read pending here and would be paid"
            " again: copy that ledger with `runner ledger copy` into an empty database instead")


def _there(conn: PgConnection, home: Home, now: Home) -> str:
    """Where ``home`` is, in words: as last seen, and what this server calls it now when it is on this server (a
    database renamed and a copy made in its place under the old name reads the same as last seen)."""
    if None in (home.system, now.system):  # not known to be this server: its OIDs may name another's
        return home.seen
    if home.system != now.system:
        return home.seen + (", on another PostgreSQL server than the one there now (pg_upgrade, a restore, a"
                            " migration)" if home.seen == now.seen else "")
    said_db, _, said_schema = home.seen.partition("/")[2].rpartition(" schema ")
    if home.database != now.database:
        name = _read(conn, "SELECT datname FROM pg_database WHERE oid = %s", (home.database,))
        if name is not None:
            return home.seen + ("" if name == said_db else f" (its database is named {name} now)")
        return home.seen + (", a database no longer on this server (dropped or renamed, and this one made in its"
                            " place)" if home.seen == now.seen else "")
    name = _read(conn, "SELECT nspname FROM pg_namespace WHERE oid = %s", (home.schema,))
    if name is not None:
        return home.seen + ("" if name == said_schema else f" (its schema is named {name} now)")
    return home.seen + (", a schema no longer in this database" if home.seen == now.seen else "")


def _read(conn: PgConnection, sql: str, params: tuple[Any, ...] = ()) -> Any:
    """One value for a refusal's words; None when this role may not read it (the refusal is said without it)."""
    try:
        return conn.scalar(sql, params)
    except (LedgerUnreachable, LedgerNotReached):
        raise
    except LedgerError as exc:
        log.debug("not read for the words of a refusal of %s: %s", conn.location, exc)
        return None


def check(conn: PgConnection) -> None:
    """Refuse (:class:`LedgerCloned`) the writable ledger on ``conn`` when its home is elsewhere; record it when it has
    none. Read-only, a home elsewhere is warned of (once a process) and nothing is written."""
    now = here(conn)
    if now is None:
        return
    value = conn.scalar("SELECT value FROM meta WHERE key = %s", (HOME_META,))
    home = _stored(value)
    if home is None and not conn.readonly:
        with conn.write() as tx:  # two first opens at once: one records it, both compare with what it recorded
            tx.execute("INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING"
                       if value is None else _UPSERT, (HOME_META, now.text()))
        home = _recorded(conn)
    if home is None:
        return
    if home.same_place(now):
        if not conn.readonly and (home.seen, home.system) != (now.seen, home.system or now.system):
            with conn.write() as tx:  # as last seen (a failover to another address), and the server's identifier
                record(tx, Home(home.system or now.system, now.database, now.schema, now.seen))
        return
    said = _refusal(conn, home, now)
    if conn.readonly:
        if conn.location not in _warned:
            _warned.add(conn.location)
            log.warning("%s (this command only reads it)", said)
        return
    log.critical("%s", said)
    raise LedgerCloned(said)


def elsewhere(conn: PgConnection) -> str | None:
    """Why `runner ledger copy` refuses the ledger on ``conn`` as its source: its home is elsewhere (a copy of this
    copy would pay again for what the original's runs send, as a run here would); None: at home, or none recorded."""
    if (away := _away(conn)) is None:
        return None
    home, now = away
    return _refusal(conn, home, now, "Nothing was copied. Copy")


def went_on(conn: PgConnection, url: str) -> str | None:
    """Why `runner ledger reopen URL` leaves the ledger on ``conn`` (at ``url``) refused: its home is on this server and
    holds submissions (write-aheads, adoptions: ``attempts`` of kind submit) after the last this copy holds — runs went
    on there after the copy was taken, and those jobs read pending here: runs here would pay for them again. None:
    not known to be so (its home on another server, gone, not readable with these credentials, or nothing sent
    there since)."""
    from runner.ledger.postgres.connection import PgConnection

    if (away := _away(conn)) is None:
        return None
    home, now = away
    if None in (home.system, now.system) or home.system != now.system:
        return None
    mine, there, named = int(_read(conn, _LAST_SENT) or 0), conn, ""
    if home.database != now.database:
        name = _read(conn, "SELECT datname FROM pg_database WHERE oid = %s", (home.database,))
        parts = urlsplit(url)
        if name is None or "dbname" in parts.query:  # gone; or named where the path would not change it
            return None
        try:
            there = PgConnection(parts._replace(path="/" + quote(str(name), safe="")).geturl(), readonly=True)
        except LedgerError as exc:
            log.debug("the ledger %s was made in the database %s, which could not be read: %s", conn.location, name, exc)
            return None
        named = f" {shlex.quote(there.typed)}"
    try:
        schema = _read(there, "SELECT nspname FROM pg_namespace WHERE oid = %s", (home.schema,))
        since = None if schema is None else _read(there, 'SELECT count(*) FROM "{}".attempts WHERE kind = %s AND id > %s'
                                                  .format(str(schema).replace('"', '""')), ("submit", mine))
    finally:
        if there is not conn:
            there.close()
    if not since:
        return None
    return (f"the PostgreSQL ledger {conn.location} was made at {_there(conn, home, now)}, and that one holds {since}"
            " submission(s) made after the last this copy holds: runs went on there after the copy was taken, those"
            " jobs read pending here, and runs here would pay for them again. Nothing was changed. Stop the runs on"
            f" that one and copy it with `runner ledger copy{named} URL` into an empty database instead: runs on it are"
            " refused from then on")


def adopt(conn: PgConnection) -> Home | None:
    """Make the place of the ledger on ``conn`` its home (`runner ledger reopen URL`); the home it had elsewhere, or
    None (it was home, or had none)."""
    now = here(conn)
    assert now is not None, "a ledger opened to write has its tables"
    was = _recorded(conn)
    with conn.write() as tx:
        tx.execute(_UPSERT, (HOME_META, now.text()))
    return None if was is None or was.same_place(now) else was


def record(tx: Any, place: Home | None) -> None:
    """Write ``place`` (:func:`here`, read before ``tx`` began) as the ledger's home in the transaction ``tx``
    (`runner ledger copy`'s destination: another ledger, at home where it is made)."""
    if place is not None:
        tx.execute(_UPSERT, (HOME_META, place.text()))
