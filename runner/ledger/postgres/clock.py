"""The PostgreSQL ledger's clock.

Leases compare times written by runners on several hosts, so they must share one
clock. The ledger's default clock (:class:`ServerClock`) is the database server's: this host's
``time.time()`` plus the offset to the server's clock, measured when the ledger opens and again at
every lease renewal (no round trip per transition). Every time the ledger writes or compares comes
from that one clock, or from the clock a caller injects (the tests do; a caller that injects
``time.time`` trusts its hosts' clocks to agree within a small part of the lease TTL).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.ledger.postgres.connection import PgConnection

__all__ = ["ServerClock"]


class ServerClock:
    """This host's clock moved onto the database server's (see the module docstring)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def sync(self, conn: PgConnection) -> None:
        before = time.time()
        server = float(conn.scalar("SELECT extract(epoch FROM clock_timestamp())::float8"))
        after = time.time()
        self.offset = server - (before + after) / 2

    def __call__(self) -> float:
        return time.time() + self.offset
