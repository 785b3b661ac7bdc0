"""What the in-memory ledger says each run did and what each model cost (the rules of
:meth:`runner.ledger.api.LedgerBackend.run_history` and ``spend_by_model``, as the SQLite queries)."""

from __future__ import annotations

from collections import Counter, defaultdict

from runner.jobs import JobState
from runner.ledger.api import UNPAID_SUBMITS
from runner.ledger.memory_reads import targeted_keys
from runner.ledger.memory_tables import Tables
from runner.ledger.records import RunSummary

__all__ = ["run_history", "spend_by_model"]


def _keys(t: Tables, manifest: str | None) -> set[str]:
    return set(t.rows) if manifest is None else set(targeted_keys(t, manifest))


def spend_by_model(t: Tables, manifest: str | None) -> dict[str, float]:
    spent: defaultdict[str, float] = defaultdict(float)
    for key in _keys(t, manifest):
        job = t.rows[key].job
        if job.spent_usd > 0:
            spent[job.model] += job.spent_usd
    return {model: round(spent[model], 9) for model in sorted(spent)}


def _finished(t: Tables, key: str) -> float:
    at = t.rows[key].job.finished_at
    return -1.0 if at is None else at


def run_history(t: Tables, manifest: str | None, limit: int) -> list[RunSummary]:
    keys = _keys(t, manifest)
    found: list[RunSummary] = []
    for run in list(reversed(t.runs))[:limit]:
        paid = [a.key for a in t.attempts if a.run_id == run.id and a.kind == "submit" and a.key in keys
                and (a.outcome or "") not in UNPAID_SUBMITS]
        later = [other.started_at for other in t.runs if other.id > run.id]  # killed before the next began
        end = run.ended_at if run.ended_at is not None else min(later, default=float("inf"))
        ended = Counter(t.rows[k].job.state for k in keys if run.started_at <= _finished(t, k) <= end)
        found.append(RunSummary(run=run, submitted=len(paid),
                                estimated_usd=round(sum(t.rows[k].job.estimated_usd for k in paid), 9),
                                done=ended[JobState.DONE], failed=ended[JobState.FAILED] + ended[JobState.LOST]))
    return found
