"""The write marks of the PostgreSQL ledger's connections (table ``write_marks``): what a new connection learns from them.

A transaction that writes sets its connection's row to a new mark just before its COMMIT (:data:`MARK`), so:

* a COMMIT whose answer was lost is looked up by its mark on a new connection (:data:`LOOK`, under the row's lock,
  which waits for a COMMIT still in progress): there, it was committed; not there, rolled back (see
  :mod:`runner.ledger.postgres.connection`);
* a server connected to again must still hold the mark of the last COMMIT it acknowledged (:func:`lost`). One that
  does not lost commits this runner saw made — a failover to a replica that lagged (asynchronous replication), a
  restore from a backup: jobs it wrote ahead or recorded may read pending again, and a write-ahead would pay for
  them again. What else was lost, of this runner's or of others', cannot be known from here.

A connection that closes keeps its row, as one killed does: a later writable open checks it against the mark the
state directory keeps of it (:mod:`.hostmarks`: a server restored between runs). Rows no write touched for :data:`PRUNE_AFTER_S` (by
the server's clock) are deleted as a runner opens the ledger for writing (:data:`PRUNE`): far past any lease, stall
or COMMIT in progress, and a live runner renews its lease (a write) every TTL/4. A connection that did go that long
without a write (a process stopped for days, a review page left open) may find its row pruned: it then cannot tell,
and says so, rather than read the missing row as lost commits (:func:`lost`) or as a COMMIT rolled back
(``PgConnection._marked``: not known, never written again). Its lease expired long before: the run stops at the
next renewal, before anything is sent.
"""

from __future__ import annotations

import logging
from typing import Any

from runner.ledger.postgres.clock import age
from runner.ledger.postgres.reach import pooled

__all__ = ["LOOK", "MARK", "PRUNE", "PRUNE_AFTER_S", "lost", "marked", "stale"]

log = logging.getLogger("runner.ledger")

#: A write's mark, in its own transaction, only if the transaction wrote (has an id): the row's lock is then held
#: until the COMMIT ends, so a look from a new connection waits for a COMMIT still in progress. It returns the row's
#: time (the server's clock, the one :data:`PRUNE` reads): the host mark's (:mod:`.hostmarks`), never this host's;
#: and the session's name (:data:`~.reach.SESSION`): not the connection's, the transaction ran in another session.
#: Its COMMIT is durable whatever the session holds by then (``synchronous_commit`` raised from off to on for this
#: transaction only): a pooler in transaction mode may hand the session's server connection to another client
#: between two transactions, and a ``SET synchronous_commit = off`` of that client's stays on it.
MARK = (b"INSERT INTO write_marks (conn, mark, at) SELECT %s, %s, extract(epoch FROM clock_timestamp())"
        b" WHERE txid_current_if_assigned() IS NOT NULL"
        b" ON CONFLICT (conn) DO UPDATE SET mark = excluded.mark, at = excluded.at"
        b" RETURNING at, current_setting('runner.session', true) AS session, CASE WHEN"
        b" current_setting('synchronous_commit') = 'off' THEN set_config('synchronous_commit', 'on', true) END AS durable")
def marked(row: Any, session: str, location: str) -> float | None:
    """The time :data:`MARK`'s ``row`` holds, None when the transaction wrote nothing (no row); a row naming another
    session than the connection's (``session``) is refused — a pooler in transaction mode ran the transaction on a
    server connection without the session the runner set up (durable commits among it): raised before the COMMIT,
    the write is rolled back whole."""
    if row is None:
        return None
    if row["session"] != session:
        raise pooled(location, "a write ran in a session the runner did not set up")
    return float(row["at"])


#: The row as the last COMMIT left it: an insert of mark 0 waits for one in progress on the key (the first mark), a
#: conflict's update for one holding the row's lock (a later mark); either then reads what was committed.
LOOK = (b"INSERT INTO write_marks (conn, mark, at) VALUES (%s, 0, extract(epoch FROM clock_timestamp()))"
        b" ON CONFLICT (conn) DO UPDATE SET conn = excluded.conn RETURNING mark")


#: The rows of connections that wrote nothing for five weeks: killed runners' (a live one's row is its own to delete).
#: Long enough that a weekly or fortnightly batch's next open still finds the rows of its last run, so a ledger
#: restored between two such runs is refused (:mod:`.hostmarks` refuses a missing row for a mark younger than half
#: this); at a week, the rows of last week's run were gone by the next and a restore went by as "cannot tell".
PRUNE_AFTER_S = 35 * 86400.0
PRUNE = "DELETE FROM write_marks WHERE at < extract(epoch FROM clock_timestamp()) - %s"


def stale(then: tuple[float, float]) -> bool:
    """Whether ``then`` (:func:`~.clock.stamp`) is half :data:`PRUNE_AFTER_S` old (:func:`~.clock.age`: never by a
    wall clock stepped ahead where a steady clock counts a suspend): a write mark set then may have been pruned since."""
    return age(then) > PRUNE_AFTER_S / 2


def lost(raw: Any, conn: str, committed: int, location: str, *, stale: bool = False) -> str | None:
    """On a connection just made again: what the server lost, said for the operator, when it no longer holds the mark
    ``committed`` of connection ``conn`` (its last COMMIT acknowledged, or found by :data:`LOOK`); else None. A
    plain read: a COMMIT still in progress on the old backend leaves the row at ``committed`` or later. ``stale``:
    that COMMIT is older than half :data:`PRUNE_AFTER_S` by this host's clocks, so a row missing may be pruned."""
    if committed == 0:
        return None
    row = raw.execute(b"SELECT mark FROM write_marks WHERE conn = %s", (conn,)).fetchone()
    if row is None and stale:
        log.warning("the PostgreSQL ledger %s no longer holds this connection's write mark, pruned after %g days"
                    " without a write: whether the server lost commits since cannot tell; going on (a lease"
                    " expired meanwhile stops the run before anything is sent)", location, PRUNE_AFTER_S / 86400)
        return None
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
