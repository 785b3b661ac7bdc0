"""Owners of the in-memory ledger's work: leases, claims of pending jobs, recovery of expired work,
and the rescue journal's task ids (the rules of :mod:`runner.ledger.api`)."""

from __future__ import annotations

import contextlib
from dataclasses import replace

from runner.jobs import JobState
from runner.ledger import rescue
from runner.ledger.memory_reads import key_of_task
from runner.ledger.memory_tables import Lease, Tables, record, scope
from runner.ledger.records import JobRecord

__all__ = ["apply_rescue", "claim", "live", "recover", "release", "renew"]


def live(t: Tables, owner: str | None, caller: str) -> bool:
    """Whether ``owner`` is live: this ledger's own owner, ``caller``, or one whose lease runs."""
    if owner is None:
        return False
    if owner in (t.owner, caller):
        return True
    lease = t.leases.get(owner)
    return lease is not None and lease.expires_at > t.clock()


def renew(t: Tables, owner: str, ttl: float) -> bool:
    now = t.clock()
    lease = t.leases.get(owner)
    if lease is not None and owner != t.owner and lease.expires_at <= now:
        return False
    t.leases[owner] = Lease(now, now + ttl)
    return True


def claim(t: Tables, n: int, owner: str, manifest: str | None) -> list[JobRecord]:
    claimed: list[JobRecord] = []
    for row in scope(t, manifest):
        if len(claimed) >= n:
            break
        job = row.job
        if job.state is JobState.PENDING and (job.owner is None or (job.owner != owner
                                                                    and not live(t, job.owner, owner))):
            row.job = replace(job, owner=owner)
            claimed.append(record(t, row, None))
    return claimed


def release(t: Tables, owner: str) -> int:
    released = 0
    for row in t.rows.values():
        if row.job.owner == owner and row.job.state is JobState.PENDING:
            row.job = replace(row.job, owner=None)
            released += 1
    return released


def recover(t: Tables, owner: str) -> int:
    now, doubted = t.clock(), 0
    for row in sorted(t.rows.values(), key=lambda r: r.id):
        job = row.job
        if live(t, job.owner, owner):
            continue
        if job.state is JobState.SUBMITTING:
            for i, a in enumerate(t.attempts):
                if a.key == job.key and a.kind == "submit" and a.ended_at is None:
                    t.attempts[i] = replace(a, ended_at=now, outcome="interrupted",
                                            detail="the runner stopped while this request may have been on the wire")
            row.job = replace(job, state=JobState.IN_DOUBT, updated_at=now, reason="INTERRUPTED", owner=None,
                              error="interrupted while submitting: the request may have created a paid task")
            doubted += 1
        elif job.state in (JobState.RUNNING, JobState.SUCCEEDED):
            row.job = replace(job, owner=owner)
        elif job.state is JobState.PENDING and job.owner is not None:
            row.job = replace(job, owner=None)
    return doubted


def apply_rescue(t: Tables) -> int:
    applied = 0
    for entry in rescue.to_record(t.state_dir):
        row = t.rows.get(entry.key)
        # an id some job holds already is never attached (recorded another way, or another job's)
        moved = row is not None and row.job.state is JobState.SUBMITTING and key_of_task(t, entry.task_id) is None
        if row is not None and moved:
            now = t.clock()
            row.job = replace(row.job, state=JobState.RUNNING, task_id=entry.task_id, error=None, reason=None,
                              updated_at=now)
            for i, a in enumerate(t.attempts):
                if a.key == entry.key and a.kind == "submit" and a.ended_at is None:
                    t.attempts[i] = replace(a, ended_at=now, outcome="accepted", task_id=entry.task_id,
                                            detail=f"recorded from {rescue.RESCUE_NAME}")
        applied += int(moved)
        with contextlib.suppress(OSError):
            rescue.mark_consumed(t.state_dir, entry, at=t.clock(), outcome="running" if moved else "stale")
    return applied
