"""Run history and spend by model: ``runner runs`` and the spend part of ``runner status``.

A run is one ``runner`` process that wrote to the ledger (``run``, ``submit``, ``collect``,
``retry``, ``adopt``). What it did comes from the ledger
(:meth:`~runner.ledger.api.LedgerBackend.run_history`): the submits that may have created a paid
task and their estimated spend, and the jobs that finished done, or failed or lost, while it ran.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from runner.ledger import RunSummary
from runner.reporting.text import duration, local_time, money, short, table

__all__ = ["by_model_lines", "concerns", "run_dict", "run_lines"]


def took(summary: RunSummary, now: float) -> float:
    """How long the run lasted (still going or killed: up to ``now``)."""
    end = summary.run.ended_at if summary.run.ended_at is not None else now
    return max(0.0, end - summary.run.started_at)


def concerns(summary: RunSummary, manifest_file: Path | None) -> bool:
    """Whether a run belongs in a manifest's history: it touched its jobs, or named its file."""
    if manifest_file is None or summary.submitted or summary.done or summary.failed:
        return True
    return any(Path(arg).name == manifest_file.name for arg in summary.run.argv[1:])


def run_dict(summary: RunSummary, *, now: float) -> dict[str, Any]:
    """One run as JSON: when, argv, exit code, submitted / done / failed, estimated spend, duration."""
    run = summary.run
    return {"id": run.id, "started_at": run.started_at, "ended_at": run.ended_at,
            "duration_s": round(took(summary, now), 3), "exit_code": run.exit_code, "argv": run.argv,
            "host": run.host, "pid": run.pid, "submitted": summary.submitted, "done": summary.done,
            "failed": summary.failed, "estimated_spent_usd": round(summary.estimated_usd, 4)}


def _exit(summary: RunSummary) -> str:
    if summary.run.ended_at is None:
        return "running or killed"
    return str(summary.run.exit_code)


def run_lines(summaries: Sequence[RunSummary], *, now: float, width: int = 48) -> list[str]:
    """The readable table of ``runner runs`` (newest first) with the total spend below it."""
    rows = [[f"#{s.run.id}", local_time(s.run.started_at), duration(took(s, now)), _exit(s), s.submitted, s.done,
             s.failed, f"{s.estimated_usd:.2f}", short(" ".join(s.run.argv), width)] for s in summaries]
    lines = table(["run", "started", "took", "exit", "submitted", "done", "failed", "est. USD", "command"], rows,
                  right=(2, 4, 5, 6, 7))
    total = sum(s.estimated_usd for s in summaries)
    lines.append("")
    lines.append(f"{len(summaries)} run(s), estimated spend {money(total)} (submits that may have created a paid"
                 " task; refused ones cost nothing)")
    return lines


def by_model_lines(by_model: Mapping[str, float], runs: Iterable[RunSummary]) -> list[tuple[str, str]]:
    """``status``'s facts: estimated spend by model, and by the latest runs."""
    facts: list[tuple[str, str]] = []
    if by_model:
        facts.append(("estimated spend by model", ", ".join(f"{model} {money(usd)}"
                                                            for model, usd in by_model.items())))
    spent = [f"#{s.run.id} {money(s.estimated_usd)}" for s in runs if s.submitted]
    if spent:
        facts.append(("estimated spend by run", ", ".join(spent) + " (latest first; `runner runs` lists them)"))
    return facts
