"""What a :mod:`sqlite3` error means for the ledger file: :func:`translate` turns each one into a
:class:`~runner.errors.LedgerError` that says what happened, to which file, and whether anything recorded was
lost (never: a failed write is rolled back as a whole). Used by :mod:`runner.ledger.connection`."""

from __future__ import annotations

import glob
import sqlite3
from pathlib import Path

from runner.errors import LedgerDiskError, LedgerError, LedgerSchemaError
from runner.storage.ownership import chown_fix, not_writable

__all__ = ["BUSY_TIMEOUT_S", "READONLY_DIRECTORY", "READONLY_ROLLBACK", "corrupt_message", "translate"]

BUSY_TIMEOUT_S = 10.0
# Primary result codes of https://sqlite.org/rescode.html
_PERM, _BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT = 3, 5, 6, 8, 10, 11
_FULL, _CANTOPEN, _NOTADB = 13, 14, 26
READONLY_ROLLBACK = _READONLY | (3 << 8)  # a hot journal, met by a connection that may not write
READONLY_DIRECTORY = _READONLY | (6 << 8)  # a WAL ledger read in a folder where its -shm cannot be made
_MAX_WRITE_BYTES = 65536 + 24  # the largest page SQLite writes, with a WAL frame's header


def translate(exc: sqlite3.Error, file: Path) -> LedgerError:
    """The :class:`LedgerError` that tells a user what ``exc`` means for ``file``."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary == _FULL:
        return LedgerDiskError(
            f"disk full while writing {file}; nothing recorded was lost "
            "(the change being written was rolled back). Free some space and run again."
        )
    if primary in (_NOTADB, _CORRUPT):
        return LedgerSchemaError(corrupt_message(file, str(exc)))
    if primary in (_BUSY, _LOCKED):
        return LedgerError(
            f"{file} stayed locked by another process for more than {BUSY_TIMEOUT_S:g} s ({exc}); "
            "nothing was changed. Try again when it is done."
        )
    if code == READONLY_ROLLBACK:
        return LedgerError(
            f"a runner stopped while planning the first jobs into {file}, and its journal must be rolled back "
            "before this connection can read on; nothing recorded was lost. Run the command again (a new read "
            "rolls a private copy back; the next `runner run` rolls the file back)."
        )
    if primary in (_READONLY, _CANTOPEN, _PERM):
        if (whose := not_writable(_ledger_files(file))) is not None:  # another user's (a `sudo runner run` once)
            return LedgerDiskError(f"cannot write the ledger {file} ({exc}): {whose.what}. Nothing recorded was"
                                   f" lost; {chown_fix(file.parent, whose)}.")
        return LedgerDiskError(
            f"cannot write the ledger {file} ({exc}); check that the directory "
            f"{file.parent} exists and is writable. Nothing recorded was lost."
        )
    if primary == _IOERR and (limit := _file_size_limit_met(file)) is not None:
        return LedgerDiskError(
            f"cannot write {file}: it reached the file size limit this process runs under ({limit:,} bytes); the "
            "change being written was rolled back and nothing recorded before it was lost. Raise the limit "
            "(`ulimit -f`, systemd's LimitFSIZE=) and run again."
        )
    if primary == _IOERR:
        return LedgerDiskError(
            f"I/O error on {file} ({exc}); the change being written was rolled back "
            "and nothing recorded before it was lost."
        )
    return LedgerError(f"ledger {file}: {exc}")


def _ledger_files(db: Path) -> list[Path]:
    """The files a writable open of the SQLite ledger ``db`` writes, its folder first."""
    real = db.resolve()
    return [real.parent, real, *(real.with_name(real.name + suffix) for suffix in ("-wal", "-shm", "-journal"))]


def _file_size_limit_met(file: Path) -> int | None:
    """The process's file size limit (RLIMIT_FSIZE) when the ledger or its WAL or journal is within one write of it.

    SQLite reports a write refused past that limit (EFBIG: Python ignores SIGXFSZ) as a plain I/O error, which
    sends an operator to check a healthy disk. A write is at most one page (64 KiB) and a WAL frame's header. The
    file written may be one named after the ledger: a new ledger is built as ``ledger.db.creating-<pid>`` (and its
    journal), a copy as ``ledger.db.copying-<random>``."""
    try:
        import resource  # (POSIX only: elsewhere there is no such limit to name)

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    except (ImportError, OSError, ValueError):
        return None
    if limit == resource.RLIM_INFINITY or limit < 0:
        return None
    try:
        written = list(file.parent.glob(f"{glob.escape(file.name)}*"))
    except OSError:
        return None
    for path in written:
        try:
            if path.stat().st_size > limit - _MAX_WRITE_BYTES:
                return int(limit)
        except OSError:
            continue
    return None


def corrupt_message(file: Path, detail: str) -> str:
    """What to say about a damaged ledger: corrupt, nothing changed, and how to recover."""
    recovered = file.with_name(file.name + ".recovered")
    return (
        f"{file} is not a usable runner ledger: it is corrupt ({detail}); nothing was changed and "
        f"nothing will be sent with it. Restore {file.name} from a backup, or salvage what SQLite "
        f"can still read: `sqlite3 {file} .recover | sqlite3 {recovered}`, then move {file.name} aside, "
        f"put {recovered.name} in its place and run again (check `runner status` first)."
    )
