"""The write marks of the PostgreSQL ledger's connections (table ``write_marks``): what a new connection learns from them.

A transaction that writes sets its connection's row to a new mark just before its COMMIT (:data:`MARK`), so:

* a COMMIT whose answer was lost is looked up by its mark on a new connection (:data:`LOOK`, under the row's lock,
  which waits for a COMMIT still in progress): there, it was committed; not there, rolled back (see
  :mod:`runner.ledger.postgres.connection`);
* a server connected to again must still hold the mark of the last COMMIT it acknowledged (:func:`lost`). One that
  does not lost commits this runner saw made — a failover to a replica that lagged (asynchronous replication), a
  restore from a backup: jobs it wrote ahead or recorded may read pending again, and a write-ahead would pay for
  them again. What else was lost, of this runner's or of others', cannot be known from here.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["LOOK", "MARK", "lost"]

log = logging.getLogger("runner.ledger")

#: A write's mark, in its own transaction, only if the transaction wrote (has an id): the row's lock is then held
#: until the COMMIT ends, so a look from a new connection waits for a COMMIT still in progress.
MARK = (b"INSERT INTO write_marks (conn, mark, at) SELECT %s, %s, extract(epoch FROM clock_timestamp())"
        b" WHERE txid_current_if_assigned() IS NOT NULL"
        b" ON CONFLICT (conn) DO UPDATE SET mark = excluded.mark, at = excluded.at")
#: The row as the last COMMIT left it: an insert of mark 0 waits for one in progress on the key (the first mark), a
#: conflict's update for one holding the row's lock (a later mark); either then reads what was committed.
LOOK = (b"INSERT INTO write_marks (conn, mark, at) VALUES (%s, 0, extract(epoch FROM clock_timestamp()))"
        b" ON CONFLICT (conn) DO UPDATE SET conn = excluded.conn RETURNING mark")


def lost(raw: Any, conn: str, committed: int, location: str) -> str | None:
    """On a connection just made again: what the server lost, said for the operator, when it no longer holds the mark
    ``committed`` of connection ``conn`` (its last COMMIT acknowledged, or found by :data:`LOOK`); else None. A
    plain read: a COMMIT still in progress on the old backend leaves the row at ``committed`` or later."""
    if committed == 0:
        return None
    row = raw.execute(b"SELECT mark FROM write_marks WHERE conn = %s", (conn,)).fetchone()
    held = 0 if row is None else int(row["mark"])
    if held >= committed:
        return None
    said = (f"the PostgreSQL server of the ledger {location}, connected to again, lost changes this runner saw"
            f" committed (its write {committed} is not there; the server holds {held or 'none'}): a failover to a"
            " replica that lagged behind, or a restore from a backup. Jobs this runner wrote ahead or recorded may"
            " read pending again, and a run would pay for them again; what else was lost, of this runner's or of"
            " others', cannot be known from here. Nothing more is written from this runner. Stop every runner of"
            " this ledger and compare it with the provider's console before running again (`runner ls`,"
            " `runner show KEY`; `runner adopt KEY TASK_ID` attaches a task found there to a job in doubt)")
    log.critical("%s", said)
    return said
