"""The rows of ``leases`` on a PostgreSQL ledger: a runner that closes deletes its own, but one killed (systemd's
SIGKILL after TimeoutStopSec, the OOM killer, a power cut, a server down as it closed) left its row for ever, and
``runner status`` listed each of them as a runner whose lease expired, a line more for every kill of every night.

Leases expired for :data:`PRUNE_AFTER_S` are deleted when a runner opens the ledger for writing. A lease row is
what tells a runner stopped past its TTL (a machine suspended for days) that others may have taken its work over:
a renewal that finds its own row gone is refused as an expired one, never taken as a first lease.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from runner.ledger.postgres import open_postgres_ledger
from runner.ledger.postgres.marks import PRUNE_AFTER_S


def _owners(url: str) -> set[str]:
    with psycopg.connect(url, autocommit=True) as admin:
        return {row[0] for row in admin.execute("SELECT owner FROM leases").fetchall()}


def test_leases_expired_a_week_ago_are_pruned_when_a_runner_opens_the_ledger(pg_url: str, tmp_path: Path) -> None:
    with open_postgres_ledger(pg_url, tmp_path):
        pass
    with psycopg.connect(pg_url, autocommit=True) as admin:  # what killed runners left: one last week, one an hour ago
        now = admin.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()[0]
        week, hour = now - PRUNE_AFTER_S - 60, now - 3600
        admin.execute("INSERT INTO leases (owner, host, pid, started_at, renewed_at, expires_at) VALUES"
                      " ('killed-last-week', 'h', 1, %s, %s, %s), ('killed-an-hour-ago', 'h', 2, %s, %s, %s)",
                      (week - 60, week - 60, week, hour - 60, hour - 60, hour))
    with open_postgres_ledger(pg_url, tmp_path, readonly=True) as reader:
        assert {r.owner for r in reader.leases()} >= {"killed-last-week", "killed-an-hour-ago"}, "a reader writes nothing"
    with open_postgres_ledger(pg_url, tmp_path) as runner:
        owners = _owners(pg_url)
        assert "killed-last-week" not in owners, "a lease expired a week ago is still listed"
        assert {"killed-an-hour-ago", runner.owner} <= owners
        assert [r.owner for r in runner.leases() if not r.live] == ["killed-an-hour-ago"]


def test_a_runner_whose_lease_row_was_pruned_is_refused_a_renewal(pg_url: str, tmp_path: Path) -> None:
    """Suspended for over a week: its expired lease was pruned by another runner meanwhile. Its renewal must say
    expired (its run stops before anything is sent), not make it a new lease over work others took over."""
    with open_postgres_ledger(pg_url, tmp_path) as runner:
        assert runner.renew_lease(runner.owner)
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("DELETE FROM leases WHERE owner = %s", (runner.owner,))
        assert not runner.renew_lease(runner.owner), "a lease pruned while its runner was stopped was made anew"
        assert runner.owner not in _owners(pg_url)
