"""The ledger's journals: the WAL it runs in, and the rollback journal of its first registration.

A writable ledger runs in WAL mode. One write leaves it: the first registration into a ledger with no job
(:func:`rollback_journal`). In WAL mode each of its pages would be written twice (into the WAL, then by the
checkpoint into the file; ~1.2 GB for a million jobs); with a rollback journal a page the file did not have is
written once, and the journal keeps only the few pages the ledger had.

A WAL or a journal left behind means the last writer did not close cleanly (the next writable open then checks
the whole file). A journal is left only by a process killed inside the first registration: the next writable
open rolls it back; a read-only connection may not, so it reads :func:`rolled_back_copy` instead. SQLite keeps
these files beside the file a symbolic link points to.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from runner.errors import LedgerBusy, LedgerError
from runner.ledger.scratch import temporaries_kept
from runner.ledger.sqlerrors import BUSY_TIMEOUT_S, translate
from runner.storage.ownership import chown_owner

if TYPE_CHECKING:
    from runner.ledger.connection import Connection

__all__ = ["COPY_TRIES", "beside", "journal_left_behind", "rollback_journal", "rolled_back_copy", "truncate_wal",
           "wal_left_behind"]

COPY_TRIES = 5  # read-only copies of a ledger left mid-registration, made again while a writer changes it


@contextlib.contextmanager
def rollback_journal(conn: Connection) -> Iterator[bool]:
    """A rollback journal instead of the WAL for ``conn``'s writes inside; WAL mode given back after.

    Yields whether the journal mode changed: leaving WAL mode needs the file to itself, so while another
    connection has it open (a ``runner status`` reading it) the writes inside simply stay in WAL mode.
    Inside, commit with ``write(durable=True, directory=True)``: with a rollback journal a commit is the
    journal's deletion, which survives a power cut only once the directory is synced (``EXTRA``).
    Returning to WAL mode waits for readers up to the busy timeout; failing that, it raises rather than
    let the run go on without WAL.
    """
    with conn.lock:
        raw = conn.db.conn
        raw.execute("PRAGMA busy_timeout=0")
        try:
            mode = str(raw.execute("PRAGMA journal_mode=DELETE").fetchone()[0]).lower()
        except sqlite3.OperationalError:  # busy: another connection has the file open
            mode = "wal"
        finally:
            raw.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        switched = mode == "delete"
        try:
            yield switched
        finally:
            if switched:
                try:
                    back = str(raw.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
                except sqlite3.Error as exc:
                    back = f"{exc}"
                if back != "wal":
                    raise LedgerError(
                        f"cannot return {conn.file} to WAL mode after planning its jobs ({back}); "
                        "what was planned is kept and nothing was sent. Run again."
                    )


def truncate_wal(raw: sqlite3.Connection, *, writer: bool = True) -> None:
    """Everything into the file and the WAL emptied, as a writer closes cleanly. SQLite deletes the WAL only when
    its last connection closes: a reader open then (``runner review``, a watcher) kept it full of the run's frames,
    and the next writable open took it for a writer killed (:func:`wal_left_behind`: the whole file checked, ~12 s
    for a million jobs, before every run of a night). A reader in the middle of a read makes it give up at once
    (busy timeout 0): the WAL then stays, as before. Nothing for a read-only connection (``writer`` False)."""
    if not writer:
        return
    with contextlib.suppress(sqlite3.Error):
        raw.execute("PRAGMA busy_timeout=0")
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def wal_left_behind(file: Path) -> bool:
    """Whether ``file`` was not closed cleanly: its last connection checkpoints and deletes the WAL, and a writer
    that closes beside readers empties it (:func:`truncate_wal`)."""
    try:
        return beside(file, "-wal").stat().st_size > 0
    except OSError:
        return False


def journal_left_behind(file: Path) -> bool:
    """Whether a rollback journal was left by a process killed inside :func:`rollback_journal`."""
    try:
        return beside(file, "-journal").stat().st_size > 0
    except OSError:
        return False


def beside(file: Path, suffix: str) -> Path:
    """SQLite's file ``suffix`` of ``file``: beside the file a symbolic link points to, not beside the link."""
    real = file.resolve()
    return real.with_name(real.name + suffix)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def rolled_back_copy(file: Path, *, folder_shut: bool = False) -> sqlite3.Connection:
    """An in-memory copy of ``file`` as its hot journal rolls it back, ``file`` itself untouched.

    ``folder_shut``: read this way because this user may not write in the ledger's folder (a state directory another
    user made, ``sudo runner run`` once, or made read-only), where SQLite cannot make the ``-shm`` a WAL ledger is read
    through: its ``-wal``, when one was left, is copied with it and read into the copy (none is when no writer has it
    open: a writer keeps its ``-shm`` there, which SQLite then reads in place and this copy is not needed).

    No lock is taken: the journal (or WAL), then the file, are copied, and the copy is kept only if neither changed
    meanwhile (the next run may roll the journal back and write again in between); otherwise it is made again.
    """
    suffix = "-wal" if folder_shut else "-journal"
    real, journal = file.resolve(), beside(file, suffix)
    try:
        for _ in range(COPY_TRIES):
            with tempfile.TemporaryDirectory(prefix="runner-ledger-") as scratch:
                copy = Path(scratch) / real.name
                before = _stamp(journal), _stamp(real)
                with contextlib.suppress(FileNotFoundError):  # rolled back meanwhile: the file alone is whole
                    shutil.copyfile(journal, copy.with_name(copy.name + suffix))
                shutil.copyfile(real, copy)
                if (_stamp(journal), _stamp(real)) != before:
                    continue
                try:
                    disk = sqlite3.connect(str(copy), isolation_level=None)
                    try:
                        disk.execute("SELECT count(*) FROM sqlite_master").fetchone()  # rolls the copy back
                        memory = temporaries_kept(sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False))
                        disk.backup(memory)
                    finally:
                        disk.close()
                except sqlite3.Error as exc:
                    raise translate(exc, file) from exc
                return memory
    except OSError as exc:
        if folder_shut:
            raise LedgerError(
                f"cannot read {file}: this user may not write in its folder {file.parent}, where SQLite keeps what"
                f" a reader needs, and no private copy could be made to read it ({exc.strerror or exc}). Nothing was"
                " changed; run this as the ledger's owner, or give this user the folder"
                f" (`sudo chown -R {chown_owner(os.geteuid())} {file.parent}`)."
            ) from exc
        raise LedgerError(
            f"{file} was left mid-write by a runner that stopped, and no private copy could be made to read it "
            f"({exc.strerror or exc}); the next `runner run` on it rolls it back. Nothing recorded was lost."
        ) from exc
    raise LedgerBusy(f"{file} kept changing while a copy was made to read it (a runner is rolling it back and "
                     "writing); run this again in a moment. Nothing was changed.")
