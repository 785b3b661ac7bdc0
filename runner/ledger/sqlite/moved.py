"""Marking a SQLite ledger moved (meta ``moved_to``: :func:`runner.ledger.api.moved_mark`): its jobs go on in another
ledger, and a run refuses it from then on — it would pay again for every job that one sends — until ``runner ledger
reopen`` clears the mark. Two writers, each holding the ledger's lock: ``runner ledger copy`` marks its source once
the copy has committed (:mod:`runner.ledger.postgres.transfer`), and a run from a copy of a state directory made by
other tools (``cp -a``) marks the original on this host before it sends anything (:mod:`runner.ledger.sqlite.copied`).
"""

from __future__ import annotations

from runner.ledger.api import MOVED_META
from runner.ledger.connection import Connection

__all__ = ["set_moved"]


def set_moved(conn: Connection, mark: str) -> None:
    """Write ``mark`` (a :func:`~runner.ledger.api.moved_mark`) in the writable ledger on ``conn``, durably (synced
    before this returns)."""
    with conn.write(durable=True) as db:
        db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                   (MOVED_META, mark))
