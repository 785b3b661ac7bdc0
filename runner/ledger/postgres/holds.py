"""How long an in-doubt job keeps its concurrency slot, as one runner counts it: from the server's clock once, then on
this host's steady clock.

An in-doubt submit may have created a task that runs at the provider for up to the hold
(:data:`~runner.ledger.api.IN_DOUBT_HOLD_S`, ``RUNNER_IN_DOUBT_HOLD``): the write-ahead's count of outstanding tasks
includes it until then, so the runners together stay within ``concurrency`` at the provider. The hold guards that
count only: an in-doubt job is never sent again whatever its hold says (only the operator moves it).

The hold was ``submitted_at > now - hold`` on the ledger's clock, the server's, which follows a step of the server's
own clock (an NTP correction, a VM restored from a snapshot) at the next lease renewal. Stepped ahead a day, every hold
ended at once and its slot went to a new POST while the in-doubt task may still run (over the limit at the
provider); set back a day, every hold lasted a day more (the runners idle on slots of tasks long ended). Now the
server's clock says how much of the hold is left the first time this runner counts a job in doubt — never more than
the hold: a submit time ahead of the server's clock is a clock set back since — and from then on this host's steady
clock (``CLOCK_BOOTTIME``, else monotonic: never stepped) times the rest, whatever the server's clock does. A runner
that first counts the job after a step of the server's clock ahead still reads less of the hold left than there is:
nothing steady is shared by the hosts and the server to tell it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runner.ledger.postgres.clock import steady_now
from runner.ledger.postgres.connection import PgConnection, Tx

__all__ = ["DoubtHolds"]


class DoubtHolds:
    """The in-doubt jobs whose slot this runner holds, and until when on its steady clock."""

    def __init__(self, steady: Callable[[], float] = steady_now) -> None:
        self.steady = steady
        self._until: dict[str, float] = {}  # key -> end of its hold (steady clock); kept while its hold may be asked

    def outstanding(self, db: PgConnection | Tx, now: float, hold: float) -> int:
        """Tasks that may exist at the provider: submitting and running jobs, and the in-doubt jobs whose hold has not
        ended (``now``: the ledger's clock); one statement."""
        steady = self.steady()
        held = [key for key, until in self._until.items() if until > steady]
        sql = ("SELECT NULL AS key, count(*)::float8 AS at FROM jobs WHERE state IN ('submitting', 'running')"
               " UNION ALL SELECT key, submitted_at FROM jobs WHERE state = 'in_doubt' AND submitted_at IS NOT NULL"
               " AND (submitted_at > %s OR key = ANY(%s))")
        params: tuple[Any, ...] = (now - hold, held)
        rows = db.rows(sql, params) if isinstance(db, PgConnection) else db.execute(sql, params).fetchall()
        count, until = 0, dict[str, float]()
        for row in rows:
            if row["key"] is None:
                count += int(row["at"])
                continue
            key = str(row["key"])
            left = min(hold, max(0.0, float(row["at"]) + hold - now))
            until[key] = self._until.get(key, steady + left)  # first counted now: the server's clock says what is left
        self._until = until  # a job no longer in doubt, or out of the server's window and of its hold, is forgotten
        return count + sum(1 for end in until.values() if end > steady)
