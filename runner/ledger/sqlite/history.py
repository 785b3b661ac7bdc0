"""What the SQLite ledger says each run did and what each model cost: ``runner runs`` and ``status``."""

from __future__ import annotations

from typing import Any

from runner.jobs import JobState
from runner.ledger.api import UNPAID_SUBMITS
from runner.ledger.connection import Connection
from runner.ledger.records import RunSummary, run_summaries
from runner.ledger.sqlite.runs import runs

__all__ = ["run_history", "spend_by_model"]

_NEVER = 1e18  # the end of a run still going


def _scope(manifest: str | None) -> tuple[str, list[Any]]:
    if manifest is None:
        return "", []
    return " JOIN targeted e ON e.job_id = j.id AND e.manifest = ?", [manifest]


def spend_by_model(conn: Connection, manifest: str | None) -> dict[str, float]:
    """Estimated spend by model of ``manifest``'s jobs (every job it ever targeted) or of all."""
    join, params = _scope(manifest)
    rows = conn.tuples(
        f"SELECT j.model, round(sum(j.spent_usd), 9) FROM jobs j{join}"
        " WHERE j.spent_usd > 0 GROUP BY j.model ORDER BY j.model", params)
    return {str(model): float(spent) for model, spent in rows}


def run_history(conn: Connection, manifest: str | None, limit: int) -> list[RunSummary]:
    """The latest ``limit`` runs, newest first, with their submits, spend and finished jobs. A run without an end
    that a later run followed was killed before it (one writer at a time): its window ends where the next began."""
    latest = runs(conn, limit)
    if not latest:
        return []
    join, params = _scope(manifest)
    ids = [run.id for run in latest]
    marks, unpaid = ", ".join("?" * len(ids)), ", ".join("?" * len(UNPAID_SUBMITS))
    submits = {int(run_id): (int(n), float(usd)) for run_id, n, usd in conn.tuples(
        f"SELECT a.run_id, count(*), round(coalesce(sum(j.estimated_usd), 0), 9) FROM attempts a"
        f" JOIN jobs j ON j.key = a.key{join} WHERE a.run_id IN ({marks}) AND a.kind = 'submit'"
        f" AND coalesce(a.outcome, '') NOT IN ({unpaid}) GROUP BY a.run_id",
        [*params, *ids, *UNPAID_SUBMITS])}
    ended = [str(s) for s in (JobState.DONE, JobState.FAILED, JobState.LOST)]
    finished: dict[tuple[int, str], int] = {}
    for run_id, state, n in conn.tuples(
        f"SELECT r.id, j.state, count(*) FROM runs r JOIN jobs j ON j.finished_at >= r.started_at"
        f" AND j.finished_at <= coalesce(r.ended_at, (SELECT min(n.started_at) FROM runs n WHERE n.id > r.id), ?)"
        f"{join} WHERE r.id IN ({marks})"
        " AND j.state IN (?, ?, ?) GROUP BY r.id, j.state",
        [_NEVER, *params, *ids, *ended]):
        finished[(int(run_id), str(state))] = int(n)
    return run_summaries(latest, submits, finished)
