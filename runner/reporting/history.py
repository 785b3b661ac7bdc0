"""Run history and spend by model: ``runner runs`` and the spend part of ``runner status``.

A run is one ``runner`` process that wrote to the ledger (``run``, ``submit``, ``collect``,
``retry``, ``adopt``). What it did comes from the ledger
(:meth:`~runner.ledger.api.LedgerBackend.run_history`): the submits that may have created a paid
task and their estimated spend, and the jobs that finished done, or failed or lost, while it ran.

The provider reports no cost per task, so the only figure of what was actually spent is the
account's: a run that submits reads the balance first and records it in the ledger's ``meta``
(:data:`RUN_BALANCE_META` + run id); the drop from one run's balance to the next run's is what the
account spent in between — on this ledger's tasks and on anything else the account did.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

from runner.ledger import LedgerBackend, RunSummary
from runner.reporting.text import duration, local_time, money, short, table

__all__ = ["RUN_BALANCE_META", "Balances", "by_model_lines", "concerns", "next_starts", "read_balances", "run_dict",
           "run_lines", "took"]

RUN_BALANCE_META = "run_balance_usd:"  # + run id: the account balance that run read before submitting


class Balances:
    """The balance each run read at its start, and the drop to the next run's (newer) reading."""

    def __init__(self, at_start: Mapping[int, float], order: Sequence[int]) -> None:
        self.at_start = dict(at_start)
        self.drop: dict[int, float] = {}
        for newer, older in pairwise(order):  # newest first
            if newer in self.at_start and older in self.at_start:
                self.drop[older] = round(self.at_start[older] - self.at_start[newer], 4)


def read_balances(ledger: LedgerBackend, summaries: Sequence[RunSummary]) -> Balances:
    """The recorded balances of these runs (newest first, unfiltered: drops are between neighbours)."""
    found: dict[int, float] = {}
    for summary in summaries:
        value = ledger.meta(f"{RUN_BALANCE_META}{summary.run.id}")
        try:
            found[summary.run.id] = float(value) if value is not None else math.nan
        except ValueError:
            continue
    return Balances({k: v for k, v in found.items() if math.isfinite(v)}, [s.run.id for s in summaries])


def took(summary: RunSummary, now: float, next_start: float | None = None) -> float:
    """How long the run lasted; without an end, up to ``next_start`` (the next run's start on a ledger of one
    writer: it was killed before) or else ``now`` (still going, or killed)."""
    end = summary.run.ended_at if summary.run.ended_at is not None else (next_start or now)
    return max(0.0, end - summary.run.started_at)


def next_starts(summaries: Sequence[RunSummary], one_writer: bool) -> dict[int, float]:
    """On a ledger of one writer (SQLite), each run without an end that a later run followed: the start of the
    next one (it was killed before that run could take the ledger). Runners on several hosts overlap: none."""
    if not one_writer:
        return {}
    found: dict[int, float] = {}
    newer: float | None = None
    for summary in summaries:  # newest first
        if summary.run.ended_at is None and newer is not None:
            found[summary.run.id] = newer
        newer = summary.run.started_at
    return found


def concerns(summary: RunSummary, manifest_file: Path | None) -> bool:
    """Whether a run belongs in a manifest's history: it touched its jobs, or named its file."""
    if manifest_file is None or summary.submitted or summary.done or summary.failed:
        return True
    return any(Path(arg).name == manifest_file.name for arg in summary.run.argv[1:])


def run_dict(summary: RunSummary, *, now: float, balances: Balances | None = None,
             next_start: float | None = None) -> dict[str, Any]:
    """One run as JSON: when, argv, exit code, submitted / done / failed, estimated spend, duration, and
    the account balance it read at its start with the drop until the next run's reading (None: unknown)."""
    run = summary.run
    known = balances or Balances({}, [])
    return {"account_balance_at_start_usd": known.at_start.get(run.id),
            "account_balance_drop_to_next_run_usd": known.drop.get(run.id), **{"id": run.id, "started_at": run.started_at, "ended_at": run.ended_at,
            "duration_s": round(took(summary, now, next_start), 3), "exit_code": run.exit_code, "argv": run.argv,
            "killed": run.ended_at is None and next_start is not None,
            "host": run.host, "pid": run.pid, "submitted": summary.submitted, "done": summary.done,
            "failed": summary.failed, "estimated_spent_usd": round(summary.estimated_usd, 4)}}


def _exit(summary: RunSummary, killed: bool) -> str:
    if summary.run.ended_at is None:
        return "killed" if killed else "running or killed"
    return str(summary.run.exit_code)


def _account(run_id: int, balances: Balances) -> str:
    if run_id not in balances.at_start:
        return ""
    drop = balances.drop.get(run_id)
    return f"{balances.at_start[run_id]:.2f}" + (f" (-{drop:.2f})" if drop is not None else "")


def run_lines(summaries: Sequence[RunSummary], *, now: float, width: int = 48,
              balances: Balances | None = None, ends: Mapping[int, float] | None = None) -> list[str]:
    """The readable table of ``runner runs`` (newest first) with the total spend below it; ``ends``: where runs
    without an end stopped at the latest (:func:`next_starts`)."""
    known = balances or Balances({}, [])
    ends = ends or {}
    rows = [[f"#{s.run.id}", local_time(s.run.started_at),
             ("≤ " if s.run.id in ends else "") + duration(took(s, now, ends.get(s.run.id))),
             _exit(s, s.run.id in ends), s.submitted, s.done,
             s.failed, f"{s.estimated_usd:.2f}", _account(s.run.id, known), short(" ".join(s.run.argv), width)]
            for s in summaries]
    lines = table(["run", "started", "took", "exit", "submitted", "done", "failed", "est. USD", "account USD",
                   "command"], rows, right=(2, 4, 5, 6, 7))
    total = sum(s.estimated_usd for s in summaries)
    lines.append("")
    lines.append(f"{len(summaries)} run(s), estimated spend {money(total)} (submits that may have created a paid"
                 " task; refused ones cost nothing)")
    if known.at_start:
        lines.append("account USD: the balance the provider reported when the run started, and (in brackets) its"
                     " drop until the next run's reading: all the account spent in between")
    return lines


def by_model_lines(by_model: Mapping[str, float], runs: Iterable[RunSummary],
                   manifest_path: str = "MANIFEST") -> list[tuple[str, str]]:
    """``status``'s facts: estimated spend by model, and by the latest runs (``runner runs`` of ``manifest_path``,
    the manifest and the --state the status was given: bare, it read ./state, another batch's history)."""
    facts: list[tuple[str, str]] = []
    if by_model:
        facts.append(("estimated spend by model", ", ".join(f"{model} {money(usd)}"
                                                            for model, usd in by_model.items())))
    spent = [f"#{s.run.id} {money(s.estimated_usd)}" for s in runs if s.submitted]
    if spent:
        facts.append(("estimated spend by run",
                      ", ".join(spent) + f" (latest first; `runner runs {manifest_path}` lists them)"))
    return facts
