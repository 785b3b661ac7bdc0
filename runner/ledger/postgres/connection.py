"""The PostgreSQL ledger's connection: opening a URL, transactions, errors (the schema check: :mod:`.version`).

Everything that touches :mod:`psycopg` directly lives here (imported lazily: the SQLite ledger needs no driver;
install ``runner[postgres]``), and no psycopg exception escapes the ledger: each becomes a
:class:`~runner.errors.LedgerError` naming the ledger's :attr:`PgConnection.location` — the URL *without its
password*, which appears in no message, log line or ``location`` (it comes from the URL, ``PGPASSWORD`` or
``~/.pgpass``, and is scrubbed from the server's messages too). A server whose disk is full or failing (SQLSTATE
53100, 58030) gives a :class:`~runner.errors.LedgerDiskError` (exit 6), as SQLite's FULL and IOERR do.

One connection per ledger, in autocommit mode: a read is one statement; a write is one explicit
transaction (:meth:`PgConnection.write`), rolled back whole on any error. Every commit is durable:
the session's ``synchronous_commit`` is raised to ``on`` when the server's default is ``off``, and each write's own
(:data:`.marks.MARK`). A write that ran in another session than the one set up (a pooler in transaction mode) is
refused and rolled back (:func:`.reach.pooled`), as is one the role may not make (:func:`.reach.refused`, exit 2).

**A connection the server dropped** (a restart, a failover, ``pg_terminate_backend``, an idle timeout) is seen
before the next statement is sent: on an idle connection the server's goodbye waits unread on the socket (one
``select`` with no wait). The connection is then made again, trying for up to :data:`RECONNECT_S` (the run waits
meanwhile; a write lost twice over can wait several times that), and the statement goes to the new one: nothing was
sent on the old, so nothing is in doubt — unless the server lost commits this runner saw (a failover to a replica
that lagged, a restore): its own last write mark is missing (:mod:`.marks`), and it raises
:class:`~runner.errors.LedgerLostCommits` and sends nothing more. **A drop during a statement** (the server died
as it ran) is one of three cases: a read is read once more on a new connection; a write lost before its COMMIT was
sent was rolled back by the server, and the write functions marked :func:`once_more` are done once more; a write
lost *during* its COMMIT may or may not be committed: its connection's mark, set just before the COMMIT, is read on a
new connection under its row lock (:mod:`.marks`): there, the write is done; not there, it was rolled back (or lost
in a crash of the server) and is done once more as above. Not known (no server within :data:`RECONNECT_S`, the lock
not free within 15 s), it raises :class:`~runner.errors.LedgerUnreachable` and is never done again (the run stops,
exit 3, and the next start resumes from what was recorded). A loss the second time raises too. (A transaction id
is no such mark: a server that crashed hands the ids of the transactions it lost out again.) **A statement the
server cancelled** (SQLSTATE 57014, ``pg_cancel_backend``) is the same, on the connection still open.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from runner.errors import (
    LedgerCancelled,
    LedgerDiskError,
    LedgerError,
    LedgerLostCommits,
    LedgerNotReached,
    LedgerRolledBack,
    LedgerUnreachable,
)
from runner.ledger.postgres.clock import stamp
from runner.ledger.postgres.marks import LOOK, MARK, PRUNE, PRUNE_AFTER_S, lost, marked, stale
from runner.ledger.postgres.reach import CONNECT_TIMEOUT_S, connect, driver, dropped, setup
from runner.ledger.postgres.urls import is_postgres_url, redacted, scrub, without_password
from runner.ledger.postgres.version import check_schema, schema_version

if TYPE_CHECKING:
    import psycopg

__all__ = ["PgConnection", "Row", "Tx", "once_more"]

Row = dict[str, Any]
#: How long a dropped connection is made again before the run stops (a PostgreSQL restart takes seconds).
RECONNECT_S = 15.0

log = logging.getLogger("runner.ledger")
P = ParamSpec("P")
T = TypeVar("T")


def once_more(write: Callable[Concatenate[PgConnection, P], T]) -> Callable[Concatenate[PgConnection, P], T]:
    """``write`` — one :meth:`PgConnection.write` block of a connection and plain values, nothing changed outside
    it — done once more when the connection was lost before its COMMIT was sent: the server rolled it back, so
    the second time (on a new connection) is the only one that happened."""

    @functools.wraps(write)
    def again(conn: PgConnection, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return write(conn, *args, **kwargs)
        except LedgerRolledBack as exc:  # a connection lost, or a statement the server cancelled (57014)
            log.warning("a change to the PostgreSQL ledger %s was rolled back before it was committed (%s); writing it"
                        " again", conn.location, exc.detail)
        return write(conn, *args, **kwargs)

    return again


class Tx:
    """The statements of one write transaction (:meth:`PgConnection.write`)."""

    def __init__(self, raw: psycopg.Connection[Any], conn: PgConnection | None = None) -> None:
        self.raw = raw
        self._conn = conn  # counts the statements

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> psycopg.Cursor[Any]:
        if self._conn is not None:
            self._conn.statements += 1
        return self.raw.execute(sql.encode(), params)

    def executemany(self, sql: str, params: Sequence[Sequence[Any] | dict[str, Any]]) -> None:
        if self._conn is not None:
            self._conn.statements += 1
        with self.raw.cursor() as cursor:
            cursor.executemany(sql.encode(), params)

    def scalar(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        row = self.execute(sql, params).fetchone()
        return None if row is None else next(iter(row.values()))


class PgConnection:
    """One psycopg connection to a ledger database; a connection lost is made again (the module docstring)."""

    def __init__(self, url: str, *, readonly: bool) -> None:
        self.location, self._password = redacted(url)
        self.readonly = readonly
        self.created = False
        self.statements = 0  # statements sent (a write's BEGIN and COMMIT included): what a runner costs the server
        self._id, self._mark = uuid.uuid4().hex, 0  # this connection's row of write_marks, its last mark
        self._committed = 0  # the mark of its last COMMIT known to have landed (marks.lost)
        self._committed_at = self._sent_at = stamp()  # when that COMMIT, and the last one, were sent
        self._lost: str | None = None  # set once a server connected to again lost commits: nothing more is sent
        # after each COMMIT acknowledged: its mark and the time its row holds, by the server's clock (hostmarks)
        self.on_commit: Callable[[int, float], None] = lambda mark, at: None
        self._url = url
        self.raw = self._connect()

    @classmethod
    def open(cls, url: str, *, readonly: bool = False, create: bool = True,
             mark: tuple[str, str] | None = None) -> PgConnection:
        """Connect, check the schema and (writable, ``create``) create or migrate it; ``mark``, a meta (key,
        value) written in the transaction that creates the schema (`runner ledger copy`'s: never without it)."""
        conn = cls(url, readonly=readonly)
        try:
            check_schema(conn, url, migrate=not readonly, create=create, mark=mark)
            if not readonly:  # the rows killed runners left (marks.PRUNE_AFTER_S)
                with conn.write() as tx:
                    tx.execute(PRUNE, (PRUNE_AFTER_S,))
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect(self, within: float = CONNECT_TIMEOUT_S) -> psycopg.Connection[Any]:
        return connect(self._url, self.location, self._password, readonly=self.readonly, session=self._id, within=within)

    def _ready(self) -> psycopg.Connection[Any]:
        """The connection, made again if the server dropped it (a restart, a failover, an idle timeout): seen
        before a statement is sent, so nothing is lost (see the module's docstring)."""
        if self._lost is None and (self.raw.closed or self.raw.broken or dropped(self.raw)):
            self.raw.close()
            self.raw = self._connect_again()
            with self.errors():
                self._lost = lost(self.raw, self._id, self._committed, self.location,
                                  stale=stale(self._committed_at))  # logged there
        if self._lost is not None:
            raise LedgerLostCommits(self._lost)
        return self.raw

    def _connect_again(self) -> psycopg.Connection[Any]:
        """A new connection, tried for :data:`RECONNECT_S` in all, each try's timeout the time left (the event loop
        waits meanwhile: a server that accepts and never answers holds it no longer); LedgerUnreachable after."""
        deadline, delay = time.monotonic() + RECONNECT_S, 0.25
        while True:
            try:
                raw = self._connect(within=deadline - time.monotonic())
            except LedgerNotReached as exc:  # (not one reached and refused, LedgerSetupError: a try again is no better)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LedgerUnreachable(f"{exc} (tried for {RECONNECT_S:g} s)") from None
                if delay == 0.25:
                    log.warning("lost the connection to the PostgreSQL ledger %s; connecting again for up to %g s",
                                self.location, RECONNECT_S)
                time.sleep(min(delay, left))
                delay = min(delay * 2, 2.0)
                continue
            log.info("connected to the PostgreSQL ledger %s again", self.location)
            return raw

    def has_ledger(self) -> bool:
        """Whether the database holds a runner ledger (refusing a foreign or newer one)."""
        return schema_version(self) is not None

    # ------------------------------------------------------------- statements

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """Turn any psycopg error into a :class:`LedgerError` naming the ledger (never its password)."""
        psycopg = driver()
        try:
            yield
        except psycopg.errors.ReadOnlySqlTransaction as exc:  # a hot standby, default_transaction_read_only
            if self.readonly:
                raise LedgerError(f"the ledger {self.location} was opened read-only; this is a bug in runner") from exc
            raise LedgerDiskError(  # exit 6, as a read-only file system: someone must act (3 reads as done to a timer)
                f"the PostgreSQL server of the ledger {self.location} refuses writes: a hot standby (the URL leads to a"
                " replica, or a failover moved the primary) or a database set default_transaction_read_only; point"
                " --ledger at the primary. Nothing was written") from exc
        except (psycopg.errors.DiskFull, psycopg.errors.IoError) as exc:  # before OperationalError, their base
            raise self._disk_error(exc) from None
        except (psycopg.errors.InvalidSqlStatementName, psycopg.errors.DuplicatePreparedStatement,  # a pooler (26000,
                psycopg.errors.InsufficientPrivilege, psycopg.errors.InvalidSchemaName) as exc:  # 42P05), reach.setup
            raise setup(self.location, exc.sqlstate, exc.diag.message_primary or self._clean(exc)) from None
        except psycopg.errors.QueryCanceled as exc:  # 57014, an OperationalError too: pg_cancel_backend
            raise LedgerCancelled(f"PostgreSQL ledger {self.location}: {self._clean(exc)}") from None
        except psycopg.OperationalError as exc:  # a connection lost: no SQLSTATE, class 08, or the server's shutdown
            if exc.sqlstate is not None and not exc.sqlstate.startswith(("08", "57P")):  # a timeout, a deadlock…
                raise LedgerError(f"PostgreSQL ledger {self.location}: {self._clean(exc)}") from None
            detail = self._clean(exc)
            raise LedgerUnreachable(
                f"lost the connection to the PostgreSQL ledger {self.location} ({detail}); a change being committed "
                "was rolled back, or committed if the server got the commit (the next call connects again; a run "
                "started again picks up from what the ledger recorded)", detail=detail) from None
        except psycopg.Error as exc:
            raise LedgerError(f"PostgreSQL ledger {self.location}: {self._clean(exc)}") from None

    def _disk_error(self, exc: psycopg.Error) -> LedgerDiskError:
        """The server's disk refused a write (exit 6, as SQLite's FULL and IOERR: someone must act). Only SQLSTATE
        53100 ``disk_full`` and 58030 ``io_error`` are a disk: the rest of class 53 (open files, memory, connections,
        a configuration limit) has no disk to free and stays a plain LedgerError (exit 3). Rolled back whole."""
        detail = self._clean(exc)
        if exc.sqlstate == "53100":
            return LedgerDiskError(
                f"the PostgreSQL server of the ledger {self.location} has no disk space left ({detail}); nothing "
                "recorded was lost (the change being written was rolled back). Free space on the PostgreSQL "
                "server's disk (its data directory, or the tablespace the message names) and run again.")
        return LedgerDiskError(
            f"I/O error on the disk of the PostgreSQL server of the ledger {self.location} ({detail}); the change "
            "being written was rolled back and nothing recorded before it was lost. Check the PostgreSQL server's "
            "disk (its log says more) and run again.")

    def _clean(self, exc: Exception) -> str:
        return scrub(" ".join(str(exc).split()), self._password)

    @contextlib.contextmanager
    def write(self) -> Iterator[Tx]:
        """One transaction, committed (durably) at the end of the block, rolled back on any exception."""
        if self.readonly:
            raise LedgerError(f"the ledger {self.location} was opened read-only; this is a bug in runner")
        raw = self._ready()
        committing, marked_at = False, None
        try:
            with self.errors(), raw.transaction():
                self.statements += 3  # BEGIN, the mark, COMMIT
                yield Tx(raw, self)
                self._mark += 1  # set only by a transaction that wrote (one with an id): a no-op stays free
                marked_at = marked(raw.execute(MARK, (self._id, self._mark)).fetchone(), self._id, self.location)
                committing, self._sent_at = True, stamp()
        except (LedgerUnreachable, LedgerCancelled) as exc:  # cancelled (57014): as a connection lost, the mark says
            cancelled = isinstance(exc, LedgerCancelled)
            detail = f"cancelled by the server, SQLSTATE 57014: {exc}" if cancelled else getattr(exc, "detail", "")
            outcome = self._marked() if committing and marked_at is not None else False  # not sent / no write: rolled back
            if outcome and marked_at is not None:
                self._committed, self._committed_at = self._mark, self._sent_at
                self.on_commit(self._mark, marked_at)
                log.warning("%s the PostgreSQL ledger %s as a change was committed (%s); the ledger holds it", "a"
                            " statement was cancelled on" if cancelled else "lost the connection to", self.location, detail)
                return
            if outcome is None:
                raise
            raise LedgerRolledBack(
                f"{'the server cancelled a change to' if cancelled else 'lost the connection to'} the PostgreSQL ledger"
                f" {self.location} ({detail}) before it was committed: it was rolled back (a run started again picks up"
                " from what the ledger recorded)", detail=detail) from None
        else:
            if marked_at is not None:  # acknowledged: a new connection finds it
                self._committed, self._committed_at = self._mark, self._sent_at
                self.on_commit(self._mark, marked_at)

    def _marked(self) -> bool | None:
        """Whether the write whose COMMIT's answer was lost is in the ledger: its mark in this connection's row, read
        on a new connection once a COMMIT still in progress ended (:data:`_LOOK`); None: not known — so too when the
        row is gone (LOOK's mark 0) and the COMMIT was sent so long ago that it may have been pruned since."""
        try:
            raw = self._ready()
            with self.errors(), raw.transaction():
                raw.execute(b"SET LOCAL lock_timeout = '15s'")
                row = raw.execute(LOOK, (self._id,)).fetchone()
        except LedgerLostCommits:
            raise  # said as itself, not as a commit whose fate is unknown
        except LedgerError:
            return None
        if row is not None and row["mark"] == 0 and stale(self._sent_at):
            return None
        return row is not None and row["mark"] == self._mark

    def _read(self, sql: str, params: Sequence[Any] | dict[str, Any], fetch: Callable[[Any], T]) -> T:
        """One statement out of a transaction (a read; or :func:`~runner.ledger.postgres.limits.take_token`, whose
        second time only takes one more token: the bucket waits longer, never less), sent once more on a new
        connection when the connection was lost during it — not when none could be made first (a second window) —
        and once more when the server cancelled it (``pg_cancel_backend``: an autocommit statement, rolled back)."""
        raw = self._ready()
        try:
            return self._statement(sql, params, fetch, raw)
        except LedgerCancelled:  # changed nothing (the token's statement took none)
            log.warning("a read of the PostgreSQL ledger %s was cancelled by the server (SQLSTATE 57014: pg_cancel_backend,"
                        " by an administrator or a monitoring script?); reading it again", self.location)
        except LedgerUnreachable as exc:
            log.warning("lost the connection to the PostgreSQL ledger %s during a read (%s); reading again on a new"
                        " connection", self.location, exc.detail)
        return self._statement(sql, params, fetch)

    def _statement(self, sql: str, params: Sequence[Any] | dict[str, Any], fetch: Callable[[Any], T],
                   raw: psycopg.Connection[Any] | None = None) -> T:
        raw = self._ready() if raw is None else raw
        self.statements += 1
        with self.errors():
            return fetch(raw.execute(sql.encode(), params))

    def rows(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
        return self._read(sql, params, lambda cursor: list(cursor.fetchall()))

    def tuples(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(row.values()) for row in self.rows(sql, params)]

    def one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Row | None:
        row: Row | None = self._read(sql, params, lambda cursor: cursor.fetchone())
        return row

    def scalar(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        row = self.one(sql, params)
        return None if row is None else next(iter(row.values()))

    @property
    def typed(self) -> str:
        """The URL as given, its password left out (its parameters kept: a command printed for pasting finds this
        ledger, in its schema); :attr:`location` when it is not a URL."""
        return without_password(self._url) if is_postgres_url(self._url) else self.location

    @property
    def mark_id(self) -> str:
        """This connection's row of ``write_marks`` (kept after its close: a later open checks it, :mod:`.hostmarks`)."""
        return self._id

    def close(self) -> None:
        self._committed = 0  # a use after this (a bug) is no server that lost commits
        with contextlib.suppress(Exception):
            self.raw.close()
