"""The PostgreSQL ledger's clock.

Leases compare times written by runners on several hosts, so they must share one
clock. The ledger's default clock (:class:`ServerClock`) is the database server's: the server's time read when the
ledger opens and again at every lease renewal, carried forward between two reads by this host's steady clock (no
round trip per transition). Its wall clock plays no part: a step of it (an NTP correction, a VM restored from a
snapshot) between two renewals moved every time written or compared until the next one — a write-ahead stamped a
day ahead, other runners' live leases read as expired. The steady clock is ``CLOCK_BOOTTIME`` where there is one
(Linux: it runs on while the machine is suspended), else ``time.monotonic``. Every time the ledger writes or
compares comes from that one clock, or from the clock a caller injects (the tests do; a caller that injects
``time.time`` trusts its hosts' clocks to agree within a small part of the lease TTL).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from runner.boot import BOOTTIME as _BOOTTIME

if TYPE_CHECKING:
    from runner.ledger.postgres.connection import PgConnection

__all__ = ["ServerClock", "age", "stamp", "steady_now"]


#: This host's steady clock: never set, never stepped; it counts a suspend where the system can (``_BOOTTIME``).
steady_now = _BOOTTIME or time.monotonic


def stamp() -> tuple[float, float]:
    """Now, for :func:`age`: the steady clock's reading and the wall clock's."""
    return steady_now(), time.time()


def age(then: tuple[float, float]) -> float:
    """Seconds since :func:`stamp` gave ``then``: by ``CLOCK_BOOTTIME`` where there is one (a wall clock stepped ahead
    weeks is no weeks gone by); else the larger of the monotonic clock (it stops while the machine is suspended) and
    the wall clock (it may be set back)."""
    if _BOOTTIME is not None:
        return _BOOTTIME() - then[0]
    return max(time.monotonic() - then[0], time.time() - then[1])


class ServerClock:
    """The database server's clock, read at each :meth:`sync` (see the module docstring)."""

    def __init__(self) -> None:
        self.server = time.time()  # until the first sync: this host's clock
        self.at = steady_now()

    def sync(self, conn: PgConnection) -> None:
        before = steady_now()
        server = float(conn.scalar("SELECT extract(epoch FROM clock_timestamp())::float8"))
        after = steady_now()
        self.server, self.at = server, (before + after) / 2

    def __call__(self) -> float:
        return self.server + (steady_now() - self.at)
