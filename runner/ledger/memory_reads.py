"""Reads of the in-memory ledger that take more than a line: pages, spend, orphans, where stored
files are recorded, task lookups (the rules of :mod:`runner.ledger.api`; each answers as the
SQLite ledger's query does)."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence

from runner.jobs import JobState
from runner.ledger.api import PAID_STATES
from runner.ledger.memory_tables import Tables, record, scope, targets
from runner.ledger.records import JobRecord

__all__ = [
    "done_files",
    "estimate_usd",
    "get",
    "iter_jobs",
    "key_of_task",
    "misplaced",
    "not_found_keys",
    "orphan_home",
    "orphans",
    "paths_with_sha256",
    "pending_batch",
    "spent_usd",
    "stored_elsewhere",
    "stored_paths",
    "targeted_keys",
    "targets_of",
    "within_budget",
]


def outstanding(t: Tables, in_doubt_since: float | None) -> int:
    """Submitting + running jobs; with ``in_doubt_since``, also the in-doubt jobs sent after it."""
    return sum(1 for r in t.rows.values() if r.job.state.outstanding or (
        in_doubt_since is not None and r.job.state is JobState.IN_DOUBT
        and r.job.submitted_at is not None and r.job.submitted_at > in_doubt_since))


def get(t: Tables, key: str, manifest: str | None) -> JobRecord | None:
    row = t.rows.get(key)
    if row is None or (manifest is not None and key not in targets(t, manifest)):
        return None
    return record(t, row, manifest)


def iter_jobs(t: Tables, manifest: str | None, states: Collection[JobState] | None) -> Iterator[JobRecord]:
    wanted = None if states is None else {JobState(s) for s in states}
    for row in scope(t, manifest):
        if wanted is None or row.job.state in wanted:
            yield record(t, row, manifest)


def pending_batch(t: Tables, manifest: str | None, limit: int, after_rowid: int) -> list[tuple[int, JobRecord]]:
    rows = [r for r in scope(t, manifest) if r.id > after_rowid and r.job.state is JobState.PENDING]
    return [(r.id, record(t, r, manifest)) for r in rows[:max(limit, 0)]]


def stored_paths(t: Tables, keys: Sequence[str]) -> dict[str, str]:
    return {k: r.job.path for k in keys if (r := t.rows.get(k)) is not None
            and r.job.state is JobState.DONE and r.job.path is not None}


def targeted_keys(t: Tables, manifest: str, *, dropped: bool = False) -> list[str]:
    return [k for (m, k), (_, at) in t.targeted.items() if m == manifest and (not dropped or at is not None)]


def spent_usd(t: Tables, manifest: str | None, *, dropped: bool = False) -> float:
    keys = list(t.rows) if manifest is None else targeted_keys(t, manifest, dropped=dropped)
    return round(sum(t.rows[k].job.spent_usd for k in keys), 9)


def within_budget(t: Tables, key: str, manifest: str, usd: float) -> bool:
    """Whether ``manifest``'s spend plus the estimate of job ``key`` stays within ``usd``."""
    row = t.rows.get(key)
    return spent_usd(t, manifest) + (row.job.estimated_usd if row is not None else 0.0) <= usd + 1e-9


def estimate_usd(t: Tables, manifest: str | None, states: Collection[JobState] | None) -> float:
    wanted = None if states is None else {JobState(s) for s in states}
    return round(sum(r.job.estimated_usd for r in scope(t, manifest)
                     if wanted is None or r.job.state in wanted), 9)


def _listed(t: Tables, key: str) -> bool:
    return any(key in m.targets for m in t.manifests.values())


def orphans(t: Tables, manifest: str | None) -> dict[JobState, int]:
    keys = list(t.rows) if manifest is None else targeted_keys(t, manifest, dropped=True)
    found: dict[JobState, int] = {}
    for key in keys:
        state = t.rows[key].job.state
        if state in PAID_STATES and not _listed(t, key):
            found[state] = found.get(state, 0) + 1
    return found


def orphan_home(t: Tables, key: str) -> str | None:
    homes = [(at is None, at or 0.0, m) for (m, k), (_, at) in t.targeted.items() if k == key]
    if not homes:
        return None
    # Still listed first, then the latest drop, then by name (as the SQLite ledger orders them).
    homes.sort(key=lambda h: (not h[0], -h[1], h[2]))
    return homes[0][2]


def targets_of(t: Tables, key: str) -> list[tuple[str, str]]:
    ordered = sorted(t.manifests.items(), key=lambda item: (item[1].created_at, item[0]))
    return [(name, m.targets[key]) for name, m in ordered if key in m.targets]


def _done_targets(t: Tables, manifest: str) -> Iterator[tuple[JobRecord, str]]:
    for row in scope(t, manifest):
        if row.job.state is JobState.DONE and row.job.path is not None:
            yield row.job, targets(t, manifest)[row.job.key]


def misplaced(t: Tables, manifest: str, folder: str, limit: int | None) -> list[tuple[str, str, str]]:
    found = [(job.key, job.path or "", output) for job, output in _done_targets(t, manifest)
             if (job.path or "").startswith(folder) and job.path != folder + output]
    return found if limit is None else found[:limit]


def stored_elsewhere(t: Tables, manifest: str, folder: str) -> Iterator[tuple[str, str, str, str]]:
    for job, output in _done_targets(t, manifest):
        if not (job.path or "").startswith(folder):
            yield job.key, job.path or "", output, job.sha256 or ""


def done_files(t: Tables, manifest: str | None) -> Iterator[tuple[str, float | None]]:
    for row in scope(t, manifest):
        if row.job.state is JobState.DONE and row.job.path is not None:
            yield row.job.path, row.job.url_expires_at


def paths_with_sha256(t: Tables, sha256: str) -> list[str]:
    return [r.job.path for r in t.rows.values()
            if r.job.sha256 == sha256 and r.job.state is JobState.DONE and r.job.path is not None]


def key_of_task(t: Tables, task_id: str) -> str | None:
    found = next((r.job.key for r in t.rows.values() if r.job.task_id == task_id), None)
    return found or next((a.key for a in t.attempts if a.task_id == task_id), None)


def not_found_keys(t: Tables) -> set[str]:
    return {a.key for a in t.attempts if a.outcome == "not_found"
            and t.rows[a.key].job.state in (JobState.RUNNING, JobState.SUCCEEDED)}
