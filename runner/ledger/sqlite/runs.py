"""The SQLite ledger's records about itself: facts (``meta``) and the runs that used it."""

from __future__ import annotations

import json
import os
import socket

from runner.errors import LedgerError
from runner.ledger.connection import Connection
from runner.ledger.records import RUN_COLUMNS, RunRecord
from runner.ledger.sqlite.reads import readable

__all__ = ["finish_run", "meta", "runs", "set_meta", "start_run"]


def meta(conn: Connection, key: str) -> str | None:
    """A fact about the ledger itself (``provider``: what it was made with), or ``None``."""
    value = conn.scalar("SELECT value FROM meta WHERE key = ?", (key,))
    return None if value is None else str(value)


def set_meta(conn: Connection, key: str, value: str) -> None:
    """Record a fact about the ledger itself (durably: it guards what may be paid)."""
    with conn.write(durable=True) as db:
        db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


def start_run(conn: Connection, now: float, argv: list[str]) -> int:
    """Record this process as a run; its id (later submits and events refer to it)."""
    with conn.write() as db:
        cursor = db.execute(
            "INSERT INTO runs (pid, host, argv, started_at) VALUES (?, ?, ?, ?)",
            (os.getpid(), socket.gethostname(), json.dumps(list(argv)), now),
        )
        return int(cursor.lastrowid or 0)


def finish_run(conn: Connection, now: float, run_id: int, *, exit_code: int, counts: dict[str, int]) -> None:
    """Close a run with its exit code and final counts."""
    with conn.write() as db:
        cursor = db.execute(
            "UPDATE runs SET ended_at = ?, exit_code = ?, counts_json = ? WHERE id = ?",
            (now, exit_code, json.dumps(counts, sort_keys=True), run_id),
        )
        if cursor.rowcount != 1:
            raise LedgerError(f"unknown run {run_id}; this is a bug in runner")


def runs(conn: Connection, limit: int) -> list[RunRecord]:
    """The latest runs, newest first."""
    rows = conn.rows(f"SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT ?", (limit,))
    with readable(conn, "a run"):
        return [RunRecord.from_row(row) for row in rows]
