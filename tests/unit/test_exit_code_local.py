"""Exit code 6 is a local disk or ledger file that cannot be written (or a ledger removed under the run), and
nothing else: a bad --ledger URL, a ledger held busy or a bug keep their codes (crash-window review, 2026-12-04)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from runner.errors import DiskError, LedgerError, LedgerReplaced
from runner.ledger.sqlerrors import translate
from runner.service.outcome import EXIT_LOCAL, EXIT_STOPPED, exit_code_for


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


@pytest.mark.parametrize("error", [
    LedgerError("not a PostgreSQL URL: ..."),
    translate(_sqlite_error(5), Path("/s/ledger.db")),  # BUSY: another process held it
    LedgerError("job k could not be moved to running: this is a bug in runner"),
])
def test_other_ledger_errors_keep_exit_3(error: LedgerError) -> None:
    assert exit_code_for(error) == EXIT_STOPPED
