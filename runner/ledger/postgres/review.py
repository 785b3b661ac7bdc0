"""The operator's review in the PostgreSQL ledger (the rules of :mod:`runner.ledger.sqlite.review`).

Reject or accept a done job's video, requeue a rejected job for a fresh sample (``sample + 1``, a
new paid task through the same write-ahead path), and record a video ``runner verify`` downloaded
again. Each is one transaction; PostgreSQL commits are durable.
"""

from __future__ import annotations

from runner.jobs import JobState
from runner.ledger.postgres.connection import PgConnection, once_more
from runner.ledger.postgres.moves import CLEARED, move
from runner.ledger.postgres.reads import readable
from runner.ledger.records import REJECTION_COLUMNS, RejectionRecord

__all__ = ["accept", "reject", "rejected_keys", "rejections", "requeue_rejected", "restore_file", "review_counts"]

_OPEN = "closed_at IS NULL"


@once_more
def reject(conn: PgConnection, now: float, key: str, reason: str) -> bool:
    """done → done with ``review = 'rejected'``; records the video in ``rejections``."""
    with conn.write() as tx:
        if not move(tx, key, now, (JobState.DONE,), JobState.DONE, "review = 'rejected'",
                    where="review IS DISTINCT FROM 'rejected'"):
            return False
        tx.execute(
            "INSERT INTO rejections (key, sample, reason, rejected_at, task_id, path, sha256, bytes)"
            " SELECT key, sample, %s, %s, task_id, path, sha256, bytes FROM jobs WHERE key = %s",
            (reason, now, key),
        )
    return True


@once_more
def accept(conn: PgConnection, now: float, key: str) -> bool:
    """done → done with ``review = 'accepted'``; an open rejection is withdrawn."""
    with conn.write() as tx:
        if not move(tx, key, now, (JobState.DONE,), JobState.DONE, "review = 'accepted'"):
            return False
        tx.execute(f"UPDATE rejections SET closed_at = %s, outcome = 'withdrawn' WHERE key = %s AND {_OPEN}",
                   (now, key))
    return True


@once_more
def requeue_rejected(conn: PgConnection, now: float, key: str, kept_path: str) -> bool:
    """done (rejected) → pending with ``sample + 1``; the rejection records ``kept_path``."""
    with conn.write() as tx:
        if not move(tx, key, now, (JobState.DONE,), JobState.PENDING,
                    f"{CLEARED}, path = NULL, sha256 = NULL, bytes = NULL, review = NULL, sample = sample + 1",
                    where="review = 'rejected'"):
            return False
        tx.execute(
            "UPDATE rejections SET closed_at = %s, outcome = 'regenerated', kept_path = %s"
            f" WHERE key = %s AND {_OPEN}",
            (now, kept_path, key),
        )
    return True


@once_more
def restore_file(conn: PgConnection, now: float, key: str, path: str, sha256: str, size: int) -> bool:
    """done → done: the job's video was downloaded again to ``path``."""
    with conn.write() as tx:
        return move(tx, key, now, (JobState.DONE,), JobState.DONE,
                    "path = %(path)s, sha256 = %(sha256)s, bytes = %(bytes)s", path=path, sha256=sha256, bytes=size)


def rejections(conn: PgConnection, key: str) -> list[RejectionRecord]:
    """Every rejection of ``key``, oldest first."""
    rows = conn.rows(f"SELECT {REJECTION_COLUMNS} FROM rejections WHERE key = %s ORDER BY id", (key,))
    with readable(conn, "a rejection"):
        return [RejectionRecord.from_row(row) for row in rows]


def rejected_keys(conn: PgConnection, manifest: str) -> list[str]:
    """Keys of ``manifest``'s done jobs rejected in review (not regenerated yet), in planning order."""
    return [str(key) for (key,) in conn.tuples("SELECT j.key FROM targets t JOIN jobs j ON j.id = t.job_id WHERE"
                                               " t.manifest = %s AND j.state = 'done' AND j.review = 'rejected'"
                                               " ORDER BY j.id", (manifest,))]


def review_counts(conn: PgConnection, manifest: str | None) -> dict[str, int]:
    """Done jobs of ``manifest`` (or all) by review decision: ``{"rejected": n, "accepted": m}``."""
    scope = "" if manifest is None else " AND id IN (SELECT job_id FROM targets WHERE manifest = %s)"
    found = {"rejected": 0, "accepted": 0}
    for review, n in conn.tuples(f"SELECT review, count(*) AS n FROM jobs WHERE state = 'done' AND review IS NOT NULL{scope}"
                                 " GROUP BY review", () if manifest is None else (manifest,)):
        if review in found:
            found[str(review)] = int(n)
    return found
