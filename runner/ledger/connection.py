"""The ledger's SQLite connection: opening, pragmas, transactions, errors.

Everything that touches :mod:`sqlite3` directly lives here, so that no ``sqlite3`` exception escapes the ledger
package: :func:`translate` (in :mod:`runner.ledger.sqlerrors`) turns each one into a
:class:`~runner.errors.LedgerError` that says what happened, to which file, and whether anything recorded was lost
(never: a failed write is rolled back as a whole).

A writable connection runs in WAL mode with foreign keys on, and every write is one explicit ``BEGIN IMMEDIATE …
COMMIT`` transaction, but for a write of a single statement (:meth:`Connection.write_one`), which commits on its own.
``durable=True`` raises ``PRAGMA synchronous`` to FULL for that commit (the money transitions): in WAL mode a FULL
commit also syncs every NORMAL commit before it; the connection's :class:`CommitHook` (the SQLite ledger's commit
mark) is told of each durable commit.

A read-only connection opens the file with ``mode=ro`` and never creates or migrates anything; a missing, empty or
older ledger is served from a private in-memory copy instead.

One write leaves WAL mode: the first registration into a ledger with no job (:mod:`runner.ledger.journal`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from runner.distribution import installed_version
from runner.errors import LedgerBusy, LedgerError, LedgerMissing, LedgerSchemaError
from runner.ledger.checks import SCHEMA_WRITTEN_BY, check_header, check_integrity, check_regular
from runner.ledger.journal import journal_left_behind, rolled_back_copy, truncate_wal, wal_left_behind
from runner.ledger.schema import APPLICATION_ID, MIGRATIONS, READS_AS_CURRENT_FROM, SCHEMA_VERSION, pending, statements
from runner.ledger.scratch import temporaries_kept
from runner.ledger.sqldb import Database
from runner.ledger.sqlerrors import BUSY_TIMEOUT_S, READONLY_DIRECTORY, READONLY_ROLLBACK, corrupt_message, translate
from runner.storage.folder_sync import fsync_path

__all__ = ["BUSY_TIMEOUT_S", "FULL_CHECK_MAX_BYTES", "CommitHook", "Connection", "corrupt_message", "translate"]

# Up to this size a writable open runs a full ``PRAGMA quick_check`` (about 0.5 s per 50 MB,
# i.e. per 100k jobs); a larger ledger gets it only after an unclean close (a WAL left behind),
# otherwise a check of its schema and small tables. Damage found later is still called corrupt.
FULL_CHECK_MAX_BYTES = 128 * 1024 * 1024
_SMALL_TABLES = ("manifests", "runs", "meta")
_CREATING_SUFFIX = ".creating-"  # a new ledger's name until it is complete
_JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024
_BULK_CACHE_KIB = 64 * 1024  # page cache while registering a large manifest
_JOURNAL_BUSY_S = 0.25  # how long a read-only open waits for a first registration's lock before saying so

Row = dict[str, Any]


class CommitHook(Protocol):
    """Told of each durable transaction: ``stamp`` inside it before its COMMIT (may write; an error rolls it back),
    ``committed`` once the COMMIT returned (never raises); closed with the connection (:mod:`runner.ledger.sqlite.mark`)."""

    def stamp(self, db: Database) -> None: ...
    def committed(self) -> None: ...
    def close(self) -> None: ...


class Connection:
    """One SQLite connection to ``<state>/ledger.db``, safe to use from several threads.

    Calls are serialised by a re-entrant lock: the engine already funnels its writes through one place, this only
    makes a mistake harmless."""

    def __init__(self, conn: sqlite3.Connection, *, file: Path, readonly: bool) -> None:
        self.file = file
        self.readonly = readonly
        self.lock = threading.RLock()
        with _translating(file):
            self.db = Database(conn)
        self._synchronous: str | None = None
        self.created = False  # set by open_writable: this open made a new ledger
        self.hook: CommitHook | None = None  # told of each durable commit (the SQLite ledger's commit mark)

    # ---------------------------------------------------------------- opening

    @classmethod
    def open_writable(cls, file: Path, *, may_create: bool = True) -> Connection:
        """Open (creating and migrating as needed) the ledger for writing.

        The caller holds the ledger lock, so no other writer can migrate at the same time. A file that is not ours,
        corrupt or newer is refused before anything is written to it. Without ``may_create``, a missing or empty
        ledger (no schema yet) raises :class:`LedgerMissing`, nothing created.
        """
        unclean = wal_left_behind(file) or journal_left_behind(file)
        access = "rwc" if may_create else "rw"
        raw = _connect(f"{file.absolute().as_uri()}?mode={access}", file=file, uri=True, missing_ok=may_create)
        try:
            with _translating(file):
                version = check_header(raw, file)
                if not version and not may_create:
                    raise LedgerMissing(f"{file} is empty (no ledger schema)")
                if version:
                    full = unclean or _size(file) <= FULL_CHECK_MAX_BYTES
                    check_integrity(raw, file, tables=None if full else _SMALL_TABLES)
                mode = raw.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":  # pragma: no cover - exotic filesystems
                    raise LedgerError(f"cannot use WAL mode for {file} (got {mode!r})")
                raw.execute(f"PRAGMA journal_size_limit={_JOURNAL_SIZE_LIMIT}")
                raw.execute("PRAGMA foreign_keys=ON")
            conn = cls(raw, file=file, readonly=False)
            if version < SCHEMA_VERSION:
                conn.migrate(version)
            conn.created = version == 0
            return conn
        except BaseException:
            raw.close()
            raise

    @classmethod
    def create(cls, file: Path) -> None:
        """Create a new, fully migrated ledger at ``file``, which must not exist.

        It is built under a temporary name and renamed into place, so a ``ledger.db`` that exists is always a whole
        ledger: a process killed while creating one leaves no half-made ledger (nor a WAL) behind. The caller holds
        the ledger lock.
        """
        temporary = file.with_name(f"{file.name}{_CREATING_SUFFIX}{os.getpid()}")
        try:
            for stale in file.parent.glob(f"{file.name}{_CREATING_SUFFIX}*"):
                stale.unlink(missing_ok=True)  # left by a creator that died; the lock is ours now
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # SQLite's own 0644 ignores
            raw = _connect(str(temporary), file=file, uri=False)  # a group's umask 002 (its -wal, -shm copy the mode)
            try:
                with _translating(file):
                    check_header(raw, file)
                    cls(raw, file=file, readonly=False).migrate(0)
            finally:
                raw.close()
            fsync_path(temporary)
            os.rename(temporary, file)
            fsync_path(file.parent)
        except OSError as exc:
            raise LedgerError(f"cannot create the ledger {file} ({exc.strerror or exc})") from exc
        finally:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)  # gone once renamed; else half made

    @classmethod
    def open_readonly(cls, file: Path) -> Connection:
        """Open the ledger for reading only; a missing one reads as empty."""
        if not file.exists():
            return cls._empty(file)
        raw = _connect(file.resolve().as_uri() + "?mode=ro", file=file, uri=True)
        try:
            try:
                journal = journal_left_behind(file)  # a first registration under way, or killed
                version = check_header(raw, file, busy_s=_JOURNAL_BUSY_S if journal else BUSY_TIMEOUT_S)
                if journal:
                    raw.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            except sqlite3.OperationalError as exc:
                code = getattr(exc, "sqlite_errorcode", None)
                if journal and isinstance(code, int) and code & 0xFF == 5:  # SQLITE_BUSY
                    raise LedgerBusy(
                        f"a runner is planning the first jobs into {file} (one transaction, about 10 s for a "
                        "million jobs), and nothing can be read from it until that ends; run this again in a "
                        "moment. Nothing was changed."
                    ) from exc
                if code not in (READONLY_ROLLBACK, READONLY_DIRECTORY):
                    raise translate(exc, file) from exc
                raw.close()  # a journal left by a process killed mid-write: read what its rollback gives; a
                # folder this user may not write in (another's state directory): read a copy made where it may
                raw = rolled_back_copy(file, folder_shut=code == READONLY_DIRECTORY)
                with _translating(file):
                    version = check_header(raw, file)
            except sqlite3.Error as exc:
                raise translate(exc, file) from exc
            with _translating(file):
                if version < READS_AS_CURRENT_FROM:
                    # Empty or older: upgrade a private in-memory copy, never the file.
                    memory = _connect(":memory:", file=file, uri=False)
                    raw.backup(memory)
                    raw.close()
                    raw = memory
                    raw.execute("PRAGMA foreign_keys=ON")
                    conn = cls(raw, file=file, readonly=True)
                    conn.migrate(version)
                    return conn
                raw.execute("PRAGMA foreign_keys=ON")
            return cls(raw, file=file, readonly=True)
        except BaseException:
            raw.close()
            raise

    @classmethod
    def _empty(cls, file: Path) -> Connection:
        raw = _connect(":memory:", file=file, uri=False)
        conn = cls(raw, file=file, readonly=True)
        conn.migrate(0)
        return conn

    def migrate(self, version: int) -> None:
        """Run every migration after ``version`` in one transaction: all of them, or none.

        Statement by statement with ``execute``: ``executescript`` (that of :mod:`sqlite3`, and sqlite-utils 3.x's)
        COMMITs the open transaction first, which would leave a failed migration half applied. Foreign keys are off
        meanwhile (a migration may rebuild a table others refer to, keeping its ids) and checked before the commit.
        """
        with self.lock, _translating(self.file):
            raw = self.db.conn
            enforced = int(raw.execute("PRAGMA foreign_keys").fetchone()[0])
            raw.execute("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction: set before BEGIN
            try:
                raw.execute("BEGIN IMMEDIATE")
                try:
                    tables = {str(row[0]) for row in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                    for script in pending(MIGRATIONS, version, tables):
                        for statement in statements(script):
                            raw.execute(statement)
                    broken = raw.execute("PRAGMA foreign_key_check").fetchone()
                    if broken is not None:
                        raise LedgerSchemaError(
                            f"{self.file}: upgrading the ledger's schema would break a reference ({broken[0]} row "
                            f"{broken[1]} to {broken[2]}); nothing was changed. This is a bug in runner: report it."
                        )
                    raw.execute(f"PRAGMA application_id={APPLICATION_ID}")
                    raw.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                    if not self.readonly:  # (a read-only open's private copy: no file written, no version read)
                        raw.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                                    (SCHEMA_WRITTEN_BY, installed_version()))
                    raw.execute("COMMIT")
                except BaseException:
                    _rollback(raw)
                    raise
            finally:
                raw.execute(f"PRAGMA foreign_keys={'ON' if enforced else 'OFF'}")

    def close(self) -> None:
        with self.lock, _translating(self.file):
            if self.hook is not None:
                self.hook.close()
            truncate_wal(self.db.conn, writer=not self.readonly)
            self.db.close()

    def backup_to(self, target: Path) -> None:
        """Write a consistent copy of the open database to ``target`` (SQLite's backup API)."""
        with self.lock, _translating(target):
            dest = sqlite3.connect(str(target))
            try:
                self.db.conn.backup(dest)
            finally:
                dest.close()

    # ------------------------------------------------------------- statements

    def write(self, *, durable: bool = False, directory: bool = False) -> _Transaction:
        """One ``BEGIN IMMEDIATE … COMMIT`` transaction (``with conn.write() as db:``); rolled back on any exception.

        ``durable``: ``synchronous=FULL``; with ``directory`` too, ``EXTRA`` (the directory synced once a rollback
        journal is deleted: see :func:`~runner.ledger.journal.rollback_journal`)."""
        return self._transaction(("EXTRA" if directory else "FULL") if durable else "NORMAL", begin=True)

    def write_one(self) -> _Transaction:
        """``with conn.write_one() as db:`` for a write of ONE statement (and reads): each statement commits on
        its own (autocommit), which for one statement is :meth:`write` without its ``BEGIN`` and ``COMMIT``.
        Never durable: the money transitions, and any write of two statements, use :meth:`write`."""
        return self._transaction("NORMAL", begin=False)

    def _transaction(self, level: str, *, begin: bool) -> _Transaction:
        if self.readonly:
            raise LedgerError(f"the ledger {self.file} was opened read-only; this is a bug in runner")
        return _Transaction(self, level, begin=begin)

    def rows(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
        """Every row of a query, as dicts (fetched at once; page large reads)."""
        with self.lock, _translating(self.file):
            return list(self.db.query(sql, params))

    def tuples(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        """Every row of a query as plain tuples: the fast path for hot, narrow reads."""
        with self.lock:
            try:
                return self.db.conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise translate(exc, self.file) from exc

    def one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Row | None:
        rows = self.rows(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        with self.lock, _translating(self.file):
            row = self.db.conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    @contextlib.contextmanager
    def bulk(self) -> Iterator[None]:
        """A larger page cache for one big write, given back afterwards."""
        with self.lock, _translating(self.file):
            raw = self.db.conn
            before = int(raw.execute("PRAGMA cache_size").fetchone()[0])
            raw.execute(f"PRAGMA cache_size={-_BULK_CACHE_KIB}")
            try:
                yield
            finally:
                raw.execute(f"PRAGMA cache_size={before}")
                raw.execute("PRAGMA shrink_memory")

    def set_max_pages(self, pages: int) -> None:
        """Cap the file size (tests use it to simulate a full disk)."""
        with self.lock, _translating(self.file):
            self.db.conn.execute(f"PRAGMA max_page_count={int(pages)}")


class _Transaction:
    """:meth:`Connection.write`'s transaction: the lock held, ``PRAGMA synchronous`` at ``level``, ``BEGIN IMMEDIATE``;
    ``COMMIT`` on a clean exit, else a rollback; a :mod:`sqlite3` error leaves as a :class:`LedgerError`. A class, not
    a generator: the ledger's hot path opens four of these a job."""

    __slots__ = ("_begin", "_conn", "_level")

    def __init__(self, conn: Connection, level: str, *, begin: bool = True) -> None:
        self._conn = conn
        self._level = level
        self._begin = begin  # False: autocommit, each statement its own transaction (Connection.write_one)

    def __enter__(self) -> Database:
        conn = self._conn
        conn.lock.acquire()
        try:
            raw = conn.db.conn
            if conn._synchronous != self._level:
                raw.execute(f"PRAGMA synchronous={self._level}")
                conn._synchronous = self._level
            if self._begin:
                raw.execute("BEGIN IMMEDIATE")
        except BaseException as exc:
            conn.lock.release()
            if isinstance(exc, sqlite3.Error):
                raise translate(exc, conn.file) from exc
            raise
        return conn.db

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        conn = self._conn
        raw = conn.db.conn
        try:
            if exc is None:
                if not self._begin:
                    return
                hook = conn.hook if self._level != "NORMAL" else None
                try:
                    if hook is not None:
                        hook.stamp(conn.db)
                    raw.execute("COMMIT")
                except BaseException as error:
                    _rollback(raw)
                    if isinstance(error, sqlite3.Error):
                        raise translate(error, conn.file) from error
                    raise
                if hook is not None:
                    hook.committed()
                return
            _rollback(raw)
            if isinstance(exc, sqlite3.Error):
                raise translate(exc, conn.file) from exc
        finally:
            conn.lock.release()


@contextlib.contextmanager
def _translating(file: Path) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise translate(exc, file) from exc


def _connect(target: str, *, file: Path, uri: bool, missing_ok: bool = True) -> sqlite3.Connection:
    """A connection with explicit transactions only (``isolation_level=None``); a file that is no regular one, refused."""
    check_regular(file) if uri else None  # before SQLite opens it: a FIFO was waited on for ever, deaf to Ctrl-C
    try:
        return temporaries_kept(sqlite3.connect(
            target, uri=uri, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        ))
    except sqlite3.Error as exc:
        if not missing_ok and not file.exists():
            raise LedgerMissing(f"there is no ledger at {file}") from exc
        raise translate(exc, file) from exc


def _size(file: Path) -> int:
    try:
        return file.stat().st_size
    except OSError:
        return 0


def _rollback(raw: sqlite3.Connection) -> None:
    """Roll back if a transaction is open; a failing rollback must not hide the cause."""
    if raw.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            raw.execute("ROLLBACK")
