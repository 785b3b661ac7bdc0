"""Where SQLite keeps its temporary files: in memory when no folder it would use may be written.

SQLite writes a temporary file (opened and unlinked at once) for a statement's journal past 64 KiB, a sort past its
page cache or a temporary table, in the first folder it may write (``access(W_OK|X_OK)``) of ``$SQLITE_TMPDIR``,
``$TMPDIR``, ``/var/tmp``, ``/usr/tmp``, ``/tmp`` and the working directory. A container run with a read-only root
file system and no tmpfs (``docker run --read-only -v …:/state``, a Kubernetes pod's ``readOnlyRootFilesystem``) has
none of them: the re-plan of a batch of a few thousand jobs failed at every run, "disk I/O error" on the ledger, as
if its disk were broken. There a connection keeps them in memory (``PRAGMA temp_store=MEMORY``); elsewhere they go on
going to disk, so a large sort's memory stays bounded.
"""

from __future__ import annotations

import os
import sqlite3

__all__ = ["temporaries_kept"]

_FOLDERS_OF_ENV = ("SQLITE_TMPDIR", "TMPDIR")
_FOLDERS = ("/var/tmp", "/usr/tmp", "/tmp", ".")


def _may_write(folder: str) -> bool:
    """SQLite's own test of a folder for its temporary files (``unixTempFileDir``)."""
    try:
        return os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK)
    except (OSError, ValueError):  # (a NUL in a variable's value)
        return False


def sqlite_has_a_temporary_folder() -> bool:
    """Whether SQLite finds a folder for its temporary files (it reads the variables once, as it starts)."""
    named = (os.environ.get(name) for name in _FOLDERS_OF_ENV)
    return any(_may_write(folder) for folder in (*(name for name in named if name), *_FOLDERS))


def temporaries_kept(raw: sqlite3.Connection) -> sqlite3.Connection:
    """``raw``, its temporary files kept in memory when SQLite has no folder it may write them in."""
    if not sqlite_has_a_temporary_folder():
        raw.execute("PRAGMA temp_store=MEMORY")
    return raw
