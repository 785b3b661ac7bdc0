"""The operator's review in the in-memory ledger: the rules of :mod:`runner.ledger.sqlite.review`
(reject, accept, requeue a rejected job for a fresh sample), on dictionaries."""

from __future__ import annotations

from dataclasses import replace

from runner.jobs import JobState
from runner.ledger.memory_moves import move
from runner.ledger.memory_tables import Tables, row_of, scope
from runner.ledger.records import RejectionRecord

__all__ = ["accept", "reject", "rejected_keys", "requeue_rejected", "review_counts"]

_CLEARED = {"task_id": None, "error": None, "reason": None, "video_url": None, "url_expires_at": None,
            "debug": None, "finished_at": None, "owner": None, "path": None, "sha256": None, "bytes": None}


def _close_open(t: Tables, key: str, outcome: str, kept_path: str | None = None) -> None:
    for i, found in enumerate(t.rejections):
        if found.key == key and found.closed_at is None:
            t.rejections[i] = replace(found, closed_at=t.clock(), outcome=outcome,
                                      kept_path=kept_path if kept_path is not None else found.kept_path)


def reject(t: Tables, key: str, reason: str) -> bool:
    job = row_of(t, key).job
    if job.review == "rejected" or not move(t, key, (JobState.DONE,), JobState.DONE, review="rejected"):
        return False
    t.rejections.append(RejectionRecord(
        id=len(t.rejections) + 1, key=key, sample=job.sample, reason=reason, rejected_at=t.clock(),
        task_id=job.task_id, path=job.path, sha256=job.sha256, bytes=job.bytes, kept_path=None, closed_at=None,
        outcome=None))
    return True


def accept(t: Tables, key: str) -> bool:
    if not move(t, key, (JobState.DONE,), JobState.DONE, review="accepted"):
        return False
    _close_open(t, key, "withdrawn")
    return True


def requeue_rejected(t: Tables, key: str, kept_path: str) -> bool:
    job = row_of(t, key).job
    if job.review != "rejected" or not move(t, key, (JobState.DONE,), JobState.PENDING, review=None,
                                            sample=job.sample + 1, **_CLEARED):
        return False
    _close_open(t, key, "regenerated", kept_path)
    return True


def rejected_keys(t: Tables, manifest: str) -> list[str]:
    return [row.job.key for row in scope(t, manifest) if row.job.state is JobState.DONE and row.job.review == "rejected"]


def review_counts(t: Tables, manifest: str | None) -> dict[str, int]:
    found = {"rejected": 0, "accepted": 0}
    for row in scope(t, manifest):
        if row.job.state is JobState.DONE and row.job.review in found:
            found[row.job.review] += 1
    return found
