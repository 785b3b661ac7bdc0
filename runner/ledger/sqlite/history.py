"""What the SQLite ledger says each run did and what each model cost: ``runner runs`` and ``status``."""

from __future__ import annotations

from typing import Any

from runner.jobs import JobState
from runner.ledger.api import UNPAID_SUBMITS
from runner.ledger.connection import Connection
from runner.ledger.records import RunSummary, finished_by_run, run_summaries
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
    # Each run's window: from its start to its end, or (killed) to the next run's start, or still going. The
    # finished jobs inside the windows are read once (finished_by_run), not once a run.
    windows = {run.id: (run.started_at, run.ended_at if run.ended_at is not None else
                        min((n.started_at for n in latest if n.id > run.id), default=_NEVER)) for run in latest}
    ended = [str(s) for s in (JobState.DONE, JobState.FAILED, JobState.LOST)]
    finished = finished_by_run(windows, conn.tuples(
        f"SELECT j.state, j.finished_at FROM jobs j{join} WHERE j.state IN (?, ?, ?)"
        " AND j.finished_at >= ? AND j.finished_at <= ?",
        [*params, *ended, min(start for start, _ in windows.values()), max(end for _, end in windows.values())]))
    return run_summaries(latest, submits, finished)
