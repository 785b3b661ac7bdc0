"""How the ledger words its failures: sqlite3 errors translated, lock holders described."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from runner.errors import LedgerDiskError, LedgerError, LedgerSchemaError
from runner.ledger.connection import translate
from runner.ledger.holder import describe

FILE = Path("/srv/state/ledger.db")


def sqlite_error(code: int, message: str) -> sqlite3.Error:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code
    return error


@pytest.mark.parametrize(
    "code, kind, words",
    [
        (
            13,
            LedgerDiskError,
            "disk full while writing /srv/state/ledger.db; nothing recorded was lost",
        ),
        (13 | (3 << 8), LedgerDiskError, "disk full"),  # an extended code of SQLITE_FULL
        (26, LedgerSchemaError, "is not a usable runner ledger"),
        (11, LedgerSchemaError, "nothing was changed"),
        (5, LedgerError, "stayed locked by another process"),
        (8, LedgerDiskError, "check that the directory /srv/state exists and is writable"),  # exit 6: a disk to fix
        (14, LedgerDiskError, "cannot write the ledger /srv/state/ledger.db"),
        (10, LedgerDiskError, "I/O error on /srv/state/ledger.db"),
        (1, LedgerError, "ledger /srv/state/ledger.db: boom"),
    ],
)
def test_sqlite_errors_become_ledger_errors(code: int, kind: type[LedgerError], words: str) -> None:
    """Every sqlite3 failure reaches the user as a LedgerError naming the file."""
    translated = translate(sqlite_error(code, "boom"), FILE)
    assert type(translated) is kind
    assert words in str(translated)


def test_error_without_a_code_is_still_translated() -> None:
    """A driver error with no SQLite code (e.g. a closed database) is still a LedgerError."""
    translated = translate(sqlite3.ProgrammingError("Cannot operate on a closed database."), FILE)
    assert type(translated) is LedgerError and "closed database" in str(translated)


@pytest.mark.parametrize(
    "content, holder",
    [
        (
            "4242 build-box 2024-05-01T12:00:00Z\n",
            "pid 4242 on build-box since 2024-05-01T12:00:00Z",
        ),
        ("4242", "pid 4242"),
        ("", "a process that has not written its name yet"),
        ("garbage here", "a process that has not written its name yet"),
    ],
)
def test_lock_holder_is_described(content: str, holder: str) -> None:
    """LedgerLocked names the holder from the lock file, even a half-written one."""
    assert describe(content) == holder
