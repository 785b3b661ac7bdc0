"""The operator's review in the SQLite ledger: reject or accept a done job's video, requeue a
rejected job for a fresh sample, and record a video that ``runner verify`` downloaded again.

::

    done                    → done (review = rejected)   reject: a ``rejections`` row records the video
    done                    → done (review = accepted)   accept: an open rejection is withdrawn
    done (review rejected)  → pending, sample + 1        requeue_rejected (durable): a new paid task next
    done                    → done                       restore_file (verify downloaded it again)

A requeued job keeps its key, its attempts and its spend: the next submit adds its estimate
to ``spent_usd``, so every budget counts every sample. It is submitted by the engine like any
pending job (write-ahead ``submitting`` first).
"""

from __future__ import annotations

from runner.jobs import JobState
from runner.ledger.connection import Connection
from runner.ledger.records import REJECTION_COLUMNS, RejectionRecord
from runner.ledger.sqlite.moves import CLEARED, move
from runner.ledger.sqlite.reads import readable

__all__ = ["accept", "reject", "rejected_keys", "rejections", "requeue_rejected", "restore_file", "review_counts"]

_OPEN = "closed_at IS NULL"


def reject(conn: Connection, now: float, key: str, reason: str) -> bool:
    """done → done with ``review = 'rejected'``; records the video in ``rejections``."""
    with conn.write(durable=True) as db:
        if not move(db, key, now, (JobState.DONE,), JobState.DONE, "review = 'rejected'",
                    where="review IS NOT 'rejected'"):
            return False
        db.execute(
            "INSERT INTO rejections (key, sample, reason, rejected_at, task_id, path, sha256, bytes)"
            " SELECT key, sample, ?, ?, task_id, path, sha256, bytes FROM jobs WHERE key = ?",
            (reason, now, key),
        )
    return True


def accept(conn: Connection, now: float, key: str) -> bool:
    """done → done with ``review = 'accepted'``; an open rejection is withdrawn."""
    with conn.write(durable=True) as db:
        if not move(db, key, now, (JobState.DONE,), JobState.DONE, "review = 'accepted'"):
            return False
        db.execute(f"UPDATE rejections SET closed_at = ?, outcome = 'withdrawn' WHERE key = ? AND {_OPEN}",
                   (now, key))
    return True


def requeue_rejected(conn: Connection, now: float, key: str, kept_path: str) -> bool:
    """done (rejected) → pending with ``sample + 1``; the rejection records ``kept_path``."""
    with conn.write(durable=True) as db:
        if not move(db, key, now, (JobState.DONE,), JobState.PENDING,
                    f"{CLEARED}, path = NULL, sha256 = NULL, bytes = NULL, review = NULL, sample = sample + 1",
                    where="review = 'rejected'"):
            return False
        db.execute(
            "UPDATE rejections SET closed_at = ?, outcome = 'regenerated', kept_path = ?"
            f" WHERE key = ? AND {_OPEN}",
            (now, kept_path, key),
        )
    return True


def restore_file(conn: Connection, now: float, key: str, path: str, sha256: str, size: int) -> bool:
    """done → done: the job's video was downloaded again to ``path``."""
    with conn.write(durable=True) as db:
        return move(db, key, now, (JobState.DONE,), JobState.DONE,
                    "path = :path, sha256 = :sha256, bytes = :bytes", path=path, sha256=sha256, bytes=size)


def rejections(conn: Connection, key: str) -> list[RejectionRecord]:
    """Every rejection of ``key``, oldest first."""
    rows = conn.rows(f"SELECT {REJECTION_COLUMNS} FROM rejections WHERE key = ? ORDER BY id", (key,))
    with readable(conn, "a rejection"):
        return [RejectionRecord.from_row(row) for row in rows]


def rejected_keys(conn: Connection, manifest: str) -> list[str]:
    """Keys of ``manifest``'s done jobs rejected in review (not regenerated yet), in planning order."""
    return [str(key) for (key,) in conn.tuples("SELECT j.key FROM targets t JOIN jobs j ON j.id = t.job_id WHERE"
                                               " t.manifest = ? AND j.state = 'done' AND j.review = 'rejected'"
                                               " ORDER BY j.id", (manifest,))]


def review_counts(conn: Connection, manifest: str | None) -> dict[str, int]:
    """Done jobs of ``manifest`` (or all) by review decision: ``{"rejected": n, "accepted": m}``. Read through the
    review index, each job's target looked up by its key (``+state``: not the state index, which at 1M done jobs made
    every run's start read each of them, 0.7 s a call)."""
    scope = "" if manifest is None else " AND EXISTS (SELECT 1 FROM targets t WHERE t.manifest = ? AND t.job_id = jobs.id)"
    found = {"rejected": 0, "accepted": 0}
    for review, n in conn.tuples(f"SELECT review, count(*) AS n FROM jobs WHERE review IS NOT NULL AND +state = 'done'{scope}"
                                 " GROUP BY review", () if manifest is None else (manifest,)):
        if review in found:
            found[str(review)] = int(n)
    return found
