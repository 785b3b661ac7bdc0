"""The ledger's thin handle on one :mod:`sqlite3` connection: ``execute`` and ``query`` (rows as dicts).

What the ledger used of sqlite-utils' ``Database``, without importing it: sqlite-utils pulls in
pandas and numpy when they are installed (0.8 s of a `runner plan` that needs none of it), and the
ledger's connections are in autocommit mode with explicit ``BEGIN IMMEDIATE … COMMIT`` transactions
(see :mod:`runner.ledger.connection`), so none of its transaction handling applies.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["Database"]


class Database:
    """``conn.execute`` as is, plus ``query``: a statement's rows as dicts keyed by column name."""

    __slots__ = ("conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Iterator[dict[str, Any]]:
        cursor = self.conn.execute(sql, params)
        keys = [column[0] for column in cursor.description or ()]
        return (dict(zip(keys, row, strict=True)) for row in cursor)

    def close(self) -> None:
        self.conn.close()
