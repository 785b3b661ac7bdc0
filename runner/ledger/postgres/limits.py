"""Global limits of the runners sharing a PostgreSQL ledger: the submit rate and the budget.

* **The submit rate** (:func:`take_token`): a token bucket in the table ``rate_buckets``, one row per
  limit, holding at most one token and refilled at the rate asked. A take is one statement — an upsert
  that locks the row, adds the tokens earned since ``updated_at`` and takes one — timed by the server's
  ``clock_timestamp()``, never the hosts' clocks. An empty bucket goes into debt: the caller is told
  how long to wait for its token, so runners are served in the order they asked and never poll (the
  generic cell rate algorithm). Every runner together thus sends at most 1 + rate × T tokens in any T
  seconds. A token whose job is then not sent (no slot left, a stop) is lost: the rate only errs low.
* **The budget** (:func:`within_budget`): checked inside ``mark_submitting``'s transaction under an
  advisory lock of the manifest, so two runners never both reserve the last dollars.
"""

from __future__ import annotations

from runner.ledger.postgres.connection import PgConnection, Tx
from runner.ledger.postgres.schema import ADVISORY_LOCK

__all__ = ["BUDGET_LOCK", "take_token", "within_budget"]

BUDGET_LOCK = ADVISORY_LOCK + 3  # (class, hashtext(manifest)): serialises a manifest's budgeted write-aheads


def take_token(conn: PgConnection, bucket: str, per_minute: float) -> float:
    """Take a token of ``bucket`` (see the module docstring); the seconds to wait before using it."""
    if per_minute <= 0:
        raise ValueError(f"a rate bucket needs a positive rate, not {per_minute}")
    rate = per_minute / 60.0
    tokens = float(conn.scalar(
        "INSERT INTO rate_buckets AS b (name, tokens, updated_at) VALUES (%(name)s, 0, clock_timestamp())"
        " ON CONFLICT (name) DO UPDATE SET tokens = least(1, b.tokens"
        " + greatest(0, extract(epoch FROM clock_timestamp() - b.updated_at)::float8) * %(rate)s::float8) - 1,"
        " updated_at = greatest(b.updated_at, clock_timestamp()) RETURNING tokens",
        {"name": bucket, "rate": rate}))
    return max(0.0, -tokens / rate)


def within_budget(tx: Tx, key: str, manifest: str, usd: float) -> bool:
    """Whether ``manifest``'s spend (every job it ever targeted, every runner's reservations) plus the
    estimate of job ``key`` stays within ``usd``; holds the manifest's budget lock until the commit."""
    tx.execute("SELECT pg_advisory_xact_lock(%s::int4, hashtext(%s))", (BUDGET_LOCK, manifest))
    return bool(tx.scalar(
        "SELECT (SELECT coalesce(sum(j.spent_usd), 0) FROM targeted e JOIN jobs j ON j.id = e.job_id"
        " WHERE e.manifest = %(m)s) + coalesce((SELECT estimated_usd FROM jobs WHERE key = %(key)s), 0)"
        " <= %(usd)s::float8 + 1e-9", {"m": manifest, "key": key, "usd": usd}))
