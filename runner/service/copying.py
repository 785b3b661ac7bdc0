"""``runner ledger copy SRC DST``: move a ledger between SQLite (a state directory) and PostgreSQL (a URL)."""

from __future__ import annotations

from runner.errors import LedgerError, LedgerLocked, UsageError
from runner.ledger.postgres.transfer import CopyReport
from runner.ledger.postgres.transfer import copy_ledger as _copy

__all__ = ["CopyReport", "copy_ledger"]


def copy_ledger(src: str, dst: str) -> CopyReport:
    """Copy every row of the ledger at ``src`` into ``dst`` (which must hold none), refusing while a
    runner holds the source (:class:`~runner.errors.LedgerLocked`, exit 75); anything else that stops the
    copy is a usage error (exit 2) with nothing written to the destination."""
    try:
        return _copy(src, dst)
    except LedgerLocked:
        raise
    except LedgerError as exc:
        raise UsageError(str(exc)) from exc
