"""What opening a ledger file checks: that it is a runner ledger this runner can read (its header), and that it is
intact (SQLite's ``quick_check``, of the whole file or of some tables). Used by :mod:`runner.ledger.connection`."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from collections.abc import Sequence
from pathlib import Path

from runner.distribution import installed_version
from runner.errors import LedgerSchemaError
from runner.ledger.schema import APPLICATION_ID, SCHEMA_VERSION
from runner.ledger.sqlerrors import BUSY_TIMEOUT_S, corrupt_message

__all__ = ["SCHEMA_WRITTEN_BY", "check_header", "check_integrity", "check_regular", "newer_runner"]

#: The ``meta`` key of the version of runner that last wrote the ledger's schema (its migrations): an older runner
#: refusing the ledger names it (a downgrade after an upgrade).
SCHEMA_WRITTEN_BY = "schema_written_by"


def _written_by(raw: sqlite3.Connection) -> str | None:
    """The version of runner that wrote the schema of a newer ledger, if it said (runners before 2026-12-05 did not)."""
    try:
        row = raw.execute("SELECT value FROM meta WHERE key = ?", (SCHEMA_WRITTEN_BY,)).fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else str(row[0])


def check_header(raw: sqlite3.Connection, file: Path, *, busy_s: float = BUSY_TIMEOUT_S) -> int:
    """The schema version of ``file``; refuses foreign, corrupt or newer files."""
    raw.execute(f"PRAGMA busy_timeout={int(busy_s * 1000)}")
    version = int(raw.execute("PRAGMA user_version").fetchone()[0])
    app_id = int(raw.execute("PRAGMA application_id").fetchone()[0])
    tables = int(raw.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])
    if app_id != APPLICATION_ID and (app_id != 0 or tables or version):
        raise LedgerSchemaError(
            f"{file} is a SQLite database but not a runner ledger; nothing was changed. "
            "Point --state at another directory or move the file aside."
        )
    if version > SCHEMA_VERSION:
        raise LedgerSchemaError(f"{file} {newer_runner(version, SCHEMA_VERSION, _written_by(raw))}")
    return version


def newer_runner(version: int, ours: int, theirs: str | None, *, under_run: bool = False) -> str:
    """What refuses a ledger whose schema ``version`` is past this runner's (``ours``), ``theirs`` the version of runner
    that wrote it (its meta :data:`SCHEMA_WRITTEN_BY`), and the upgrade that fixes it: a sentence without its subject.
    ``under_run``: the schema moved under a run of this runner (a shared ledger, another host upgraded)."""
    mine = installed_version()
    named = theirs is not None and theirs != mine  # (a git pull in a checkout may keep the version's number)
    which = f"a newer runner{f', {theirs},' if named else ''}"
    upgrade = (f"upgrade runner{f' to {theirs} or later' if named else ''} (`pip install -U kling-runner`, or `git pull`"
               " in its checkout)")
    if under_run:
        return (f"was upgraded under this run by {which} run on another host or by another process (schema {version}"
                f" > {ours} of this runner, {mine}); this run sent nothing more, and what it sent stays recorded for"
                f" the upgraded runners to finish. To run the batch here again, {upgrade}.")
    return (f"was written by {which[:-1] if named else which} (schema {version} > {ours} of this runner, {mine});"
            f" {upgrade} to use it. Nothing was changed.")


def check_integrity(raw: sqlite3.Connection, file: Path, *, tables: Sequence[str] | None) -> None:
    """``PRAGMA quick_check`` of the whole file (``tables=None``) or of some tables; corrupt raises."""
    problems: list[str] = []
    for target in [None] if tables is None else tables:
        pragma = "PRAGMA quick_check(5)" if target is None else f"PRAGMA quick_check('{target}')"
        rows = [str(row[0]) for row in raw.execute(pragma).fetchall()]
        problems.extend(row for row in rows if row != "ok")
    if problems:
        detail = "; ".join(problems[:3]) + (" …" if len(problems) > 3 else "")
        raise LedgerSchemaError(corrupt_message(file, f"integrity check: {detail}"))


def check_regular(file: Path) -> None:
    """Refuse (:class:`LedgerSchemaError`) a ledger file that is not a regular file — a FIFO, a device, a folder —
    before SQLite opens it: on a FIFO it waited for its first bytes for ever, deaf to Ctrl-C and SIGTERM (it retries
    the interrupted read). A missing file is the caller's to judge."""
    with contextlib.suppress(OSError):
        if not stat.S_ISREG(os.stat(file).st_mode):
            raise LedgerSchemaError(f"{file} is not a regular file (a FIFO, a device or a folder), so it is no ledger;"
                                    " nothing was read or changed. Move it away, or give the --state the batch ran with")
