"""Reaching the PostgreSQL server of a ledger: the driver, a new connection within a time (its session set as the
ledger needs, whatever a DBA's defaults), and whether the server dropped an idle one.

A connection is tried for at most the time it is given (:func:`connect`'s ``within``, whole seconds and at least
2 — libpq's rule — never over :data:`CONNECT_TIMEOUT_S`): the ledger's calls run on the engine's event loop, so
a try is as long as the loop stalls. One that cannot be made is one line naming the URL without its password
(:class:`~runner.errors.LedgerNotReached`: exit 5 as a command opens the ledger; mid-run the connection's reconnect
makes it a :class:`~runner.errors.LedgerUnreachable`, exit 3).

A connection made carries TCP keepalives and a user timeout (:data:`TCP`) unless the URL sets its own: on a
partition that drops packets a statement's bytes, or its answer, never come, and without them the kernel gives up
after ~15 minutes of retransmissions — the event loop, which runs the ledger's calls, stalled that long. With them
the connection ends within about 25 s as a lost one, which the ledger handles (a read read again, a COMMIT looked up
by its mark), well inside a 60 s lease.
"""

from __future__ import annotations

import math
import os
import re
import select
from typing import TYPE_CHECKING, Any

from runner.errors import LedgerError, LedgerNotReached, LedgerSetupError
from runner.ledger.postgres.urls import scrub

if TYPE_CHECKING:
    import psycopg

__all__ = ["CONNECT_TIMEOUT_S", "SESSION", "TCP", "connect", "driver", "dropped", "pooled", "refused", "setup"]

CONNECT_TIMEOUT_S = 10
#: libpq's parameters of the connection's socket, each unless the URL gives it: a probe after 10 s idle, then every
#: 5 s, 3 unanswered end it; data sent and not acknowledged for 30 s (``tcp_user_timeout``, ms; libpq 12+) too —
#: not less: a server busy with a large first registration may hold its receive window shut for many seconds.
TCP = {"keepalives": "1", "keepalives_idle": "10", "keepalives_interval": "5", "keepalives_count": "3",
       "tcp_user_timeout": "30000"}


def _tcp(pg: Any, url: str) -> dict[str, str]:
    """The :data:`TCP` parameters ``url`` does not set (and libpq knows: ``tcp_user_timeout`` came in 12)."""
    from psycopg.conninfo import conninfo_to_dict

    given = conninfo_to_dict(url)
    return {name: value for name, value in TCP.items()
            if name not in given and (name != "tcp_user_timeout" or pg.pq.version() >= 120000)}


def driver() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        raise LedgerError(
            "a PostgreSQL ledger needs the psycopg driver, which is not installed; "
            "install it with: pip install 'runner[postgres]'"
        ) from exc
    return psycopg


#: The setting that names the connection a session belongs to (a placeholder: any ``x.y`` name is one). Set as the
#: connection is made; a write's mark reads it back (:data:`~.marks.MARK`): another value there means the
#: transaction runs in another session than the one set up — a pooler in transaction mode.
SESSION = "runner.session"
#: What a session needs, whatever the server's, the database's or the role's defaults (true: set it, to :data:`_NEEDED`), and
#: the session's name: the one another connection left there (read before it is set; a pooled server connection no
#: reset query cleared), then this connection's.
_SESSION = (b"SELECT before.name AS left_behind, set_config('runner.session', %s, false) AS name,"
            b" current_setting('synchronous_commit') = 'off' AS synchronous_commit,"
            b" current_setting('default_transaction_isolation') <> 'read committed' AS default_transaction_isolation,"
            b" current_setting('statement_timeout') <> '0' AS statement_timeout,"
            b" current_setting('lock_timeout') <> '0' AS lock_timeout"
            b" FROM (SELECT current_setting('runner.session', true) AS name OFFSET 0) AS before")
_NEEDED = {"synchronous_commit": "on", "default_transaction_isolation": "'read committed'", "statement_timeout": "0",
           "lock_timeout": "0"}


def pooled(location: str, how: str) -> LedgerSetupError:
    """The refusal of a ledger reached through a pooler that hands a session's transactions to other server
    connections (``how`` says what showed it): a session's name found on a new connection (:func:`connect`), another
    name read back by a write's mark, or the driver's prepared statement missing or made already (SQLSTATE 26000,
    42P05: psycopg prepares a statement sent often, in its session; the runner prepares none by name)."""
    return LedgerSetupError(
        f"the PostgreSQL ledger {location} is reached through a connection pooler in transaction mode ({how}): the "
        "session the runner sets up (durable commits, no statement timeout, its write marks) is not the one its next "
        "transaction runs on. Point --ledger at a pool in session mode (PgBouncer pool_mode=session) or straight at "
        "the server (its own port, 5432 by default, not the pooler's 6432)")


def refused(location: str, detail: str) -> LedgerSetupError:
    """The refusal of a statement the role may not run (SQLSTATE 42501): a role without CREATE on the schema (PostgreSQL
    15 gives none on ``public`` but to its owner) making a ledger, one without the rights on the tables an owner made,
    one that may read and not write. Rolled back whole — a ledger is made in one transaction, never half — and no
    rerun helps: exit 2, not 3 (work outstanding, which a timer takes for success, run after run)."""
    return LedgerSetupError(
        f"the PostgreSQL role of the ledger {location} may not do what the ledger needs ({detail}); nothing was "
        "written. A runner needs SELECT, INSERT, UPDATE and DELETE on the ledger's tables and USAGE on its sequences "
        "(GRANT … ON ALL TABLES IN SCHEMA / ON ALL SEQUENCES IN SCHEMA …), and CREATE on the schema to make or upgrade "
        "the ledger: let a role that may (the schema's owner) run first, or give the role those rights")


def setup(location: str, sqlstate: str | None, detail: str) -> LedgerSetupError:
    """The refusal a server's error says the set-up calls for: 42501 :func:`refused`; 3F000 a ``search_path`` (the
    role's or the database's) that names no schema there, so no ledger can be made; else (26000, 42P05)
    :func:`pooled`."""
    if sqlstate == "3F000":
        return LedgerSetupError(
            f"the PostgreSQL ledger {location} has no schema to be made in ({detail}): the connection's search_path, "
            "as the role or the database sets it, names no schema this database has. Name the schema in the URL "
            "(?options=-csearch_path%3Dledger, one that exists) or create the one it names; nothing was written")
    return refused(location, detail) if sqlstate == "42501" else pooled(location, detail)


def connect(url: str, location: str, password: str | None, *, readonly: bool, session: str,
            within: float = CONNECT_TIMEOUT_S) -> psycopg.Connection[Any]:
    """A new autocommit connection (rows as dicts) to ``url``, given up after ``within`` seconds, its session set:
    every transaction READ COMMITTED, whatever the database's default_transaction_isolation (the writes that take an
    advisory lock — a task id's, the slots', the budget's — then read must see what the transaction they waited for
    committed: under REPEATABLE READ the snapshot of the lock's own statement would hide it), the statements out of a
    transaction too (the rate bucket's token, an upsert every runner makes on one row: under REPEATABLE READ or
    SERIALIZABLE one that waited for another runner's failed, 'could not serialize access', and the run stopped); every commit durable
    (``synchronous_commit`` off is raised to on: the money path needs it); no ``statement_timeout`` or
    ``lock_timeout`` a DBA set for the role or database (as pg_dump's sessions: they cut a large first registration
    or a wait for another runner's row, every run stopping alike); ``readonly``: every transaction read-only; named
    ``session`` (:data:`SESSION`). A session where another connection left its name is a pooled server connection
    that kept another client's session state (a pooler in transaction mode: no reset query runs between clients):
    refused (:func:`pooled`)."""
    pg = driver()
    from psycopg.rows import dict_row

    raw: psycopg.Connection[Any] | None = None
    try:
        raw = pg.connect(url, autocommit=True, row_factory=dict_row, application_name="runner",
                         connect_timeout=_timeout(within), **_tcp(pg, url))
        raw.isolation_level = pg.IsolationLevel.READ_COMMITTED
        settings = dict(raw.execute(_SESSION, (session,)).fetchone() or {})
        if settings.pop("left_behind") not in (None, "", session):
            raise pooled(location, "a server connection it was handed still held another client's session, which no"
                         " reset query (DISCARD ALL) cleared")
        del settings["name"]
        for name, wrong in settings.items():
            if wrong:
                raw.execute(f"SET {name} = {_NEEDED[name]}".encode())
        if readonly:
            raw.execute(b"SET default_transaction_read_only = on")
    except BaseException as exc:
        if raw is not None:
            raw.close()
        if not isinstance(exc, pg.Error):
            raise
        said = scrub(" ".join(str(exc).split()), password, url)  # one line: the driver's has a newline and a tab
        raise LedgerNotReached(
            f"cannot connect to the PostgreSQL ledger {location}: {said}{'' if said.endswith(('.', '?')) else '.'} "
            f"{_nameless(location) if _NAMELESS.search(said) else _CHECK}; nothing was read or written"
        ) from None
    return raw


_CHECK = ("Check the URL (--ledger / RUNNER_LEDGER_URL), that the server runs, and the password (the URL, PGPASSWORD or"
          " ~/.pgpass)")
#: libpq's words (15+, then older) when the URL names no role and this process's user has no name to take for one.
_NAMELESS = re.compile(r"local user with ID \d+ does not exist|could not look up local user ID \d+")


def _nameless(location: str) -> str:
    """The way on when libpq found no role to connect as: a container's user (``docker run -u 12345``, OpenShift's
    arbitrary uid) has no user name, which libpq takes for the role when the URL names none."""
    scheme, sep, rest = location.partition("://")
    url = f"{scheme}://ROLE@{rest}" if sep else f"{location} user=ROLE"
    return (f"This user (uid {os.geteuid()}) has no user name here (a container's user), which PostgreSQL would take"
            f" for the role: name the role in the URL ({url}) or in PGUSER")


def _timeout(within: float) -> int:
    """libpq's ``connect_timeout`` for a try given ``within`` seconds: whole seconds, 2 at least (libpq's shortest),
    never 0 — libpq's *wait for ever*, which a try with no time left (``within`` <= 0: the reconnect's last sleep took
    the rest of its window) got from ``ceil``: a server that accepted and answered nothing held the loop for ever."""
    return max(2, math.ceil(min(within, CONNECT_TIMEOUT_S)))


def dropped(raw: psycopg.Connection[Any]) -> bool:
    """Whether the server spoke on an idle connection: its goodbye (a terminated backend, a shutdown) waits unread
    (a connection no ``poll`` can look at is taken as dropped too). ``poll``, not ``select``: a run raises its
    open-file limit past 1024 (:mod:`runner.service.open_files`), and ``select`` refuses a descriptor past 1023 —
    read as dropped, every statement of a connection made there connected again."""
    try:
        fd = raw.pgconn.socket
        if not hasattr(select, "poll"):  # (no poll: Windows, where select takes any socket)
            return bool(select.select([fd], [], [], 0)[0])
        probe = select.poll()
        probe.register(fd, select.POLLIN)
        return bool(probe.poll(0))  # readable, or hung up / in error (reported whether asked or not)
    except Exception:  # closed, or no socket (psycopg raises its own error): made again, as a dropped one
        return True
