"""What ``runner ledger copy`` moves (:mod:`.transfer`): every table of both schemas in the order their rows are
copied, parents first, the tables whose ids a PostgreSQL sequence numbers, the rows a query reads or an insert writes
at a time, and the statement that writes a mark in the meta of either side."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["CHUNK", "IDENTITIES", "MARK", "TABLES", "Rows"]

# Every table of both schemas, parents before children; (table, order of the rows).
TABLES = (("runs", "id"), ("jobs", "id"), ("manifests", "name"), ("targets", "manifest, job_id"),
          ("targeted", "manifest, job_id"), ("attempts", "id"), ("meta", "key"), ("renames", "key"), ("rejections", "id"))
IDENTITIES = ("runs", "jobs", "attempts", "rejections")
CHUNK = 5000
Rows = Iterator[tuple[Any, ...]]
# A mark in the meta table, its placeholder filled in for the side (``%s``: PostgreSQL, ``?``: SQLite).
MARK = "INSERT INTO meta (key, value) VALUES ({0}, {0}) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
