"""The book of this host's ledgers: one SQLite file per user, ``$XDG_STATE_HOME/kling-runner/ledgers.db`` (by default
``~/.local/state/kling-runner/ledgers.db``), where every run that may send notes the ledger it runs on.

A ledger is named by its id (SQLite: meta ``ledger_id``, :mod:`runner.ledger.sqlite.mark`; PostgreSQL: meta
``write_marks_ledger``), which stays with its file when its folder is moved. An entry keeps where the ledger was last
run (a SQLite state folder's absolute path, kept as :mod:`runner.ledger.path_text` keeps paths; a PostgreSQL URL without
its password), the host, the provider it sends to, its batches, the 256 smallest job keys it held then (job keys are
hashes: a uniform sample), when a run of it was first armed to send and when last run, and whether it was made with
``--new-ledger`` over entries the book named. What the entries are for, and the refusals, are
:mod:`runner.service.ledger_book`'s; this module only reads and writes the file, in short transactions with a busy
timeout (several runners of one user write it at once). Its folder is made 0700 and the file 0600.

Every failure here (no home, a read-only or full disk, a corrupt file, a book held too long) raises
:class:`BookUnusable`, whose text names the file: the caller warns and goes on.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from runner.ledger.path_text import as_text, from_text

__all__ = ["BOOK_NAME", "SAMPLE_SIZE", "BookUnusable", "Entry", "book_path", "drop", "entries", "note"]

BOOK_NAME = "ledgers.db"
SAMPLE_SIZE = 256  # the smallest job keys of a ledger kept in its entry
_FOLDER = "kling-runner"
_BUSY_MS = 5000  # another runner writing its entry: a few milliseconds; a book held longer is passed over
_BATCHES_KEPT = 20
_SCHEMA = """CREATE TABLE IF NOT EXISTS ledgers (
    ledger_id TEXT PRIMARY KEY,
    location TEXT NOT NULL,
    postgres INTEGER NOT NULL,
    host TEXT NOT NULL,
    provider TEXT NOT NULL,
    batches TEXT NOT NULL,
    sample TEXT NOT NULL,
    armed_at REAL,
    last_seen REAL NOT NULL,
    forced INTEGER NOT NULL DEFAULT 0
)"""


class BookUnusable(Exception):
    """The book could not be read or written; the text says which file and why. ``held``: another process held it
    past the busy timeout (a runner stopped with Ctrl-Z while it wrote its entry), not a file that cannot be written."""

    def __init__(self, text: str, *, held: bool = False) -> None:
        super().__init__(text)
        self.held = held


@dataclass(frozen=True, slots=True)
class Entry:
    ledger_id: str
    location: str  # a SQLite ledger's state folder (absolute), or a PostgreSQL URL without its password
    postgres: bool
    host: str
    provider: str  # the provider identity its runs send to (runner.service.provider)
    batches: tuple[str, ...]
    sample: tuple[str, ...]  # its smallest job keys, sorted
    armed_at: float | None  # when a run of it was first about to send (None: never)
    last_seen: float
    forced: bool = False  # made with --new-ledger over entries the book named: not refused for them again


def book_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the book is: ``$XDG_STATE_HOME/kling-runner/ledgers.db``, else under ``~/.local/state`` (a relative
    ``XDG_STATE_HOME`` is ignored, as the XDG spec says). :class:`BookUnusable` when there is no home to put it in."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(base):
        home = environ.get("HOME") or os.path.expanduser("~")  # HOME unset (cron, a service): the password database
        if not os.path.isabs(home):
            raise BookUnusable("the book of this host's ledgers has no place: neither XDG_STATE_HOME nor HOME is set,"
                               " and this user has no home directory")
        base = os.path.join(home, ".local", "state")
    return Path(base) / _FOLDER / BOOK_NAME


@contextlib.contextmanager
def _opened(path: Path, *, write: bool) -> Iterator[sqlite3.Connection]:
    """A connection to the book in one transaction (``BEGIN IMMEDIATE`` when it writes), committed on the way out."""
    try:
        if write:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        conn = sqlite3.connect(path, timeout=_BUSY_MS / 1000, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise BookUnusable(f"cannot open the book of this host's ledgers {path} ({_why(exc)})") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_MS}")
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        if write:
            conn.execute(_SCHEMA)
        yield conn
        conn.execute("COMMIT")
    except (OSError, sqlite3.Error) as exc:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        held = isinstance(exc, sqlite3.OperationalError) and (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF == 5
        why = (f"another runner has held it more than {_BUSY_MS // 1000} s: one stopped with Ctrl-Z, or on a stalled"
               " disk") if held else _why(exc)  # SQLITE_BUSY
        raise BookUnusable(f"cannot {'write' if write else 'read'} the book of this host's ledgers {path} ({why})",
                           held=held) from exc
    except BaseException:  # the caller's judgement refused the run: nothing written
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()


def _why(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)) or type(exc).__name__


def entries(path: Path, provider: str | None) -> list[Entry]:
    """The entries of ``provider``'s ledgers (None: every provider's), most recently run first (none when there is
    no book yet)."""
    if not path.exists():
        return []  # no run has noted a ledger yet (a read never makes the book)
    with _opened(path, write=False) as conn:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'ledgers'").fetchone() is None:
            return []
        return _entries(conn, provider)


def _entries(conn: sqlite3.Connection, provider: str | None) -> list[Entry]:
    rows = conn.execute("SELECT ledger_id, location, postgres, host, provider, batches, sample, armed_at, last_seen,"
                        " forced FROM ledgers WHERE ? IS NULL OR provider = ? ORDER BY last_seen DESC",
                        (provider, provider)).fetchall()
    return [Entry(str(r[0]), from_text(str(r[1])), bool(r[2]), str(r[3]), str(r[4]), _lines(r[5]), _lines(r[6]),
                  None if r[7] is None else float(r[7]), float(r[8]), bool(r[9])) for r in rows]


def note(path: Path, entry: Entry, judge: Callable[[list[Entry]], Sequence[str]] | None = None) -> None:
    """Write ``entry`` (its ledger's last run): a new one as it is; a known one takes its location, host, provider,
    sample and time, adds its batches, keeps the first armed time, and stays forced once forced. Committed on return.

    ``judge``, in the same transaction (two new ledgers of one batch starting at once: the second sees the first),
    is given the entries of the entry's provider first: it may raise (nothing is written) or name entries to drop."""
    with _opened(path, write=True) as conn:
        if judge is not None:
            gone = judge(_entries(conn, entry.provider))
            conn.executemany("DELETE FROM ledgers WHERE ledger_id = ?", [(name,) for name in gone])
        row = conn.execute("SELECT batches, armed_at, forced FROM ledgers WHERE ledger_id = ?",
                           (entry.ledger_id,)).fetchone()
        batches = list(dict.fromkeys([*entry.batches, *(_lines(row[0]) if row else ())]))[:_BATCHES_KEPT]
        armed = entry.armed_at if row is None or row[1] is None else float(row[1])
        forced = entry.forced or (row is not None and bool(row[2]))
        conn.execute("INSERT OR REPLACE INTO ledgers (ledger_id, location, postgres, host, provider, batches, sample,"
                     " armed_at, last_seen, forced) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (entry.ledger_id, as_text(entry.location), int(entry.postgres), entry.host, entry.provider,
                      "\n".join(batches), "\n".join(entry.sample), armed, entry.last_seen, int(forced)))


def drop(path: Path, ledger_ids: Sequence[str]) -> None:
    """Remove the entries of ``ledger_ids`` (ledgers gone, which ``--new-ledger`` paid again for on purpose)."""
    if not ledger_ids:
        return
    with _opened(path, write=True) as conn:
        conn.executemany("DELETE FROM ledgers WHERE ledger_id = ?", [(name,) for name in ledger_ids])


def _lines(text: object) -> tuple[str, ...]:
    return tuple(line for line in str(text or "").split("\n") if line)
