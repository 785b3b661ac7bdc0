"""What the SQLite ledger says was spent, and on whom: spend and estimates by manifest, and the
orphans (paid jobs no manifest lists any more, still polled and stored)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from runner.jobs import JobState
from runner.ledger.api import PAID_STATES
from runner.ledger.connection import Connection
from runner.ledger.sqlite.reads import STATES

__all__ = ["dropped_spent_usd", "orphan_home", "orphan_keys", "orphans", "spent_usd", "sum_of", "within_budget"]


def spent_usd(conn: Connection, manifest: str | None) -> float:
    """Estimated spend of every submit that may have created a paid task.

    For a manifest: of every job it *ever* targeted, including those an
    edit has dropped since (its budget counts them; see :func:`dropped_spent_usd`).
    """
    if manifest is None:
        return sum_of(conn, "spent_usd", None, None)
    return float(
        conn.scalar(
            "SELECT round(coalesce(sum(j.spent_usd), 0), 9) FROM targeted e"
            " JOIN jobs j ON j.id = e.job_id WHERE e.manifest = ?",
            (manifest,),
        )
    )


def within_budget(conn: Connection, key: str, manifest: str, usd: float) -> bool:
    """Whether ``manifest``'s spend plus the estimate of job ``key`` stays within ``usd`` (one writer: the
    lock makes this check and the write-ahead that follows one step)."""
    estimate = conn.scalar("SELECT estimated_usd FROM jobs WHERE key = ?", (key,))
    return spent_usd(conn, manifest) + float(estimate or 0.0) <= usd + 1e-9


def dropped_spent_usd(conn: Connection, manifest: str) -> float:
    """The part of :func:`spent_usd` spent on jobs ``manifest`` no longer lists."""
    return float(
        conn.scalar(
            "SELECT round(coalesce(sum(j.spent_usd), 0), 9) FROM targeted e"
            " JOIN jobs j ON j.id = e.job_id WHERE e.manifest = ? AND e.dropped_at IS NOT NULL",
            (manifest,),
        )
    )


def orphans(conn: Connection, manifest: str | None) -> dict[JobState, int]:
    """Paid jobs (submitted, in any state since) that no manifest lists any more, by state.

    With ``manifest``: those that manifest once targeted. They are still
    polled and stored (see :func:`orphan_home`); only states present
    are in the answer.
    """
    paid = sorted(str(state) for state in PAID_STATES)
    marks = ", ".join("?" * len(paid))
    params: list[Any] = []
    if manifest is None:
        sql = f"SELECT j.state, count(*) FROM jobs j WHERE j.state IN ({marks})"
    else:
        sql = (
            "SELECT j.state, count(*) FROM targeted e JOIN jobs j ON j.id = e.job_id"
            f" WHERE e.manifest = ? AND e.dropped_at IS NOT NULL AND j.state IN ({marks})"
        )
        params.append(manifest)
    sql += " AND NOT EXISTS (SELECT 1 FROM targets t WHERE t.job_id = j.id) GROUP BY j.state"
    return {STATES[state]: int(n) for state, n in conn.tuples(sql, [*params, *paid])}


def orphan_keys(conn: Connection, manifest: str, state: JobState) -> list[str]:
    """Jobs in ``state`` that ``manifest`` once targeted and that no manifest lists any more."""
    rows = conn.tuples(
        "SELECT j.key FROM targeted e JOIN jobs j ON j.id = e.job_id WHERE e.manifest = ?"
        " AND e.dropped_at IS NOT NULL AND j.state = ?"
        " AND NOT EXISTS (SELECT 1 FROM targets t WHERE t.job_id = j.id) ORDER BY j.id",
        (manifest, str(state)),
    )
    return [str(key) for (key,) in rows]


def orphan_home(conn: Connection, key: str) -> str | None:
    """The manifest that dropped ``key`` last (where its orphan is stored), ``None`` if no record says."""
    home = conn.scalar(
        "SELECT e.manifest FROM jobs j JOIN targeted e ON e.job_id = j.id WHERE j.key = ?"
        " ORDER BY e.dropped_at IS NULL DESC, e.dropped_at DESC, e.manifest LIMIT 1",
        (key,),
    )
    return None if home is None else str(home)


def sum_of(conn: Connection, column: str, manifest: str | None, states: Collection[JobState] | None) -> float:
    """The sum of a money ``column`` over the jobs of ``manifest`` (or all) in ``states`` (or any)."""
    params: list[Any] = []
    sql = f"SELECT round(coalesce(sum(j.{column}), 0), 9) FROM jobs j"
    where: list[str] = []
    if manifest is not None:
        sql += " JOIN targets t ON t.job_id = j.id AND t.manifest = ?"
        params.append(manifest)
    if states is not None:
        wanted = sorted({str(JobState(s)) for s in states})
        if not wanted:
            return 0.0
        where.append(f"j.state IN ({', '.join('?' * len(wanted))})")
        params.extend(wanted)
    if where:
        sql += " WHERE " + " AND ".join(where)
    return float(conn.scalar(sql, params))
