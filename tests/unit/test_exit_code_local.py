"""Exit code 6 is a local disk or ledger file that cannot be written (or a ledger removed under the run), and
nothing else: a bad --ledger URL, a ledger held busy or a bug keep their codes (crash-window review, 2026-12-04)."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import psycopg
import pytest

from runner.errors import DiskError, LedgerDiskError, LedgerError, LedgerReplaced
from runner.ledger.postgres.connection import PgConnection
from runner.ledger.sqlerrors import translate
from runner.service.outcome import EXIT_LOCAL, EXIT_STOPPED, EXIT_UNREACHABLE, exit_code_for


def _sqlite_error(code: int) -> sqlite3.Error:
    exc = sqlite3.OperationalError("x")
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    return exc


@pytest.mark.parametrize("code", [13, 10, 10 | (3 << 8), 8, 14])  # FULL, IOERR, IOERR_WRITE, READONLY, CANTOPEN
def test_a_ledger_file_that_cannot_be_written_is_6(code: int) -> None:
    assert exit_code_for(translate(_sqlite_error(code), Path("/s/ledger.db"))) == EXIT_LOCAL


def test_a_full_disk_for_a_video_and_a_ledger_removed_are_6() -> None:
    assert exit_code_for(DiskError("cannot write outputs/x.mp4: No space left on device")) == EXIT_LOCAL
    assert exit_code_for(LedgerReplaced("removed")) == EXIT_LOCAL


def _pg_error(error: psycopg.Error) -> LedgerError:
    """What the PostgreSQL ledger's one translation (``PgConnection.errors``, around every statement) makes of
    ``error``; the connection is not opened, as the translation needs only its location and password."""
    conn = object.__new__(PgConnection)
    conn.location, conn._password = "postgresql://runner@db.example:5432/videos", "pw-secret"
    with pytest.raises(LedgerError) as caught, conn.errors():
        raise error
    return caught.value


@pytest.mark.parametrize("error", [psycopg.errors.DiskFull("could not extend file: No space left on device (pw-secret)"),
                                   psycopg.errors.IoError("could not read block 0: Input/output error")])
def test_a_postgres_server_whose_disk_fails_is_6(error: psycopg.Error) -> None:
    """53100 disk_full and 58030 io_error: the PostgreSQL server's disk, exit 6 as SQLite's FULL and IOERR."""
    translated = _pg_error(error)
    assert isinstance(translated, LedgerDiskError) and exit_code_for(translated) == EXIT_LOCAL
    message = str(translated)
    assert "PostgreSQL server" in message and "db.example:5432" in message and "run again" in message
    assert "pw-secret" not in message


@pytest.mark.parametrize("error", [psycopg.errors.InsufficientResources("too many open files"),
                                   psycopg.errors.OutOfMemory("out of memory"),
                                   psycopg.errors.TooManyConnections("too many clients"),
                                   psycopg.OperationalError("server closed the connection unexpectedly")])
def test_other_postgres_resource_errors_keep_exit_3(error: psycopg.Error) -> None:
    """No disk to free: they pass with time or are the server's configuration (the next run resumes)."""
    translated = _pg_error(error)
    assert not isinstance(translated, LedgerDiskError) and exit_code_for(translated) == EXIT_STOPPED


@pytest.mark.parametrize("error", [
    LedgerError("not a PostgreSQL URL: ..."),
    translate(_sqlite_error(5), Path("/s/ledger.db")),  # BUSY: another process held it
    LedgerError("job k could not be moved to running: this is a bug in runner"),
])
def test_other_ledger_errors_keep_exit_3(error: LedgerError) -> None:
    assert exit_code_for(error) == EXIT_STOPPED


def test_a_server_that_refuses_the_connection_is_named_on_one_line_without_the_password() -> None:
    """The driver's message has a newline and a tab; the error is one line of prose (its control characters were
    printed escaped, as ``\\t``), exits 5 as a provider not reached (3 read as success to a timer) and never shows
    the password."""
    with socket.socket() as probe:  # a port nothing listens on: the connection is refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(LedgerError) as caught:
        PgConnection.open(f"postgresql://runner:pw-secret@127.0.0.1:{port}/videos")
    message = str(caught.value)
    assert message.startswith(f"cannot connect to the PostgreSQL ledger postgresql://runner@127.0.0.1:{port}/videos: ")
    assert not any(ch in message for ch in "\n\t\r") and "?." not in message
    assert "Check the URL" in message and "pw-secret" not in message
    assert exit_code_for(caught.value) == EXIT_UNREACHABLE
