"""What the PostgreSQL ledger says each run did and what each model cost (as :mod:`runner.ledger.sqlite.history`).

With several runners on one ledger, runs overlap: a job finished while two runs were going counts for
both (a run's finished jobs are those whose finish time falls inside it), while submits belong to the
run that made them.
"""

from __future__ import annotations

from typing import Any

from runner.jobs import JobState
from runner.ledger.api import UNPAID_SUBMITS
from runner.ledger.postgres.connection import PgConnection, once_more
from runner.ledger.postgres.reads import runs
from runner.ledger.records import RunSummary, finished_by_run, run_summaries

__all__ = ["finish_run", "meta", "run_history", "set_meta", "spend_by_model", "start_run"]

_NEVER = 1e18  # the end of a run still going


@once_more
def start_run(conn: PgConnection, pid: int, host: str, argv_json: str, now: float) -> int:
    with conn.write() as tx:
        return int(tx.scalar("INSERT INTO runs (pid, host, argv, started_at) VALUES (%s, %s, %s, %s) RETURNING id",
                             (pid, host, argv_json, now)))


@once_more
def finish_run(conn: PgConnection, run_id: int, now: float, exit_code: int, counts_json: str) -> bool:
    with conn.write() as tx:
        return tx.execute("UPDATE runs SET ended_at = %s, exit_code = %s, counts_json = %s WHERE id = %s",
                          (now, exit_code, counts_json, run_id)).rowcount == 1


def meta(conn: PgConnection, key: str) -> str | None:
    value = conn.scalar("SELECT value FROM meta WHERE key = %s", (key,))
    return None if value is None else str(value)


@once_more
def set_meta(conn: PgConnection, key: str, value: str) -> None:
    with conn.write() as tx:
        tx.execute("INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                   (key, value))


def _scope(manifest: str | None) -> tuple[str, dict[str, Any]]:
    if manifest is None:
        return "", {}
    return " JOIN targeted e ON e.job_id = j.id AND e.manifest = %(manifest)s", {"manifest": manifest}


def spend_by_model(conn: PgConnection, manifest: str | None) -> dict[str, float]:
    """Estimated spend by model of ``manifest``'s jobs (every job it ever targeted) or of all."""
    join, params = _scope(manifest)
    rows = conn.tuples(
        f"SELECT j.model, round(sum(j.spent_usd)::numeric, 9) FROM jobs j{join}"
        " WHERE j.spent_usd > 0 GROUP BY j.model ORDER BY j.model", params)
    return {str(model): float(spent) for model, spent in rows}


def run_history(conn: PgConnection, manifest: str | None, limit: int) -> list[RunSummary]:
    """The latest ``limit`` runs, newest first, with their submits, spend and finished jobs."""
    latest = runs(conn, limit)
    if not latest:
        return []
    join, params = _scope(manifest)
    params |= {"ids": [run.id for run in latest], "unpaid": list(UNPAID_SUBMITS), "never": _NEVER,
               "ended": [str(s) for s in (JobState.DONE, JobState.FAILED, JobState.LOST)]}
    submits = {int(run_id): (int(n), float(usd)) for run_id, n, usd in conn.tuples(
        "SELECT a.run_id, count(*), round(coalesce(sum(j.estimated_usd), 0)::numeric, 9) FROM attempts a"
        f" JOIN jobs j ON j.key = a.key{join} WHERE a.run_id = ANY(%(ids)s) AND a.kind = 'submit'"
        " AND coalesce(a.outcome, '') <> ALL(%(unpaid)s) GROUP BY a.run_id", params)}
    windows = {run.id: (run.started_at, run.ended_at if run.ended_at is not None else _NEVER) for run in latest}
    params |= {"first": min(start for start, _ in windows.values()), "last": max(end for _, end in windows.values())}
    finished = finished_by_run(windows, conn.tuples(  # the finished jobs read once, not once a run
        f"SELECT j.state, j.finished_at FROM jobs j{join} WHERE j.state = ANY(%(ended)s)"
        " AND j.finished_at >= %(first)s AND j.finished_at <= %(last)s", params))
    return run_summaries(latest, submits, finished)
