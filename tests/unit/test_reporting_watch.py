"""The watch view's arithmetic and rendering (runner.reporting.watch): done per minute over the refreshes
seen, the run's own rate before that, outstanding tasks and the ETA; pure, with ``now`` pinned."""

from __future__ import annotations

import dataclasses

import pytest
from rich.console import Console

from runner.jobs import JobState
from runner.ledger.records import RunRecord, RunSummary
from runner.reporting.inspect import StatusSummary
from runner.reporting.watch import Rates, frame_dict, frame_line, frame_table


def _summary(now: float, done: int, pending: int, running: int = 2, runs: list[RunSummary] | None = None,
             rejected: int = 0) -> StatusSummary:
    counts = dict.fromkeys(JobState, 0)
    counts.update({JobState.DONE: done, JobState.PENDING: pending, JobState.RUNNING: running})
    return StatusSummary(scope="demo", total=sum(counts.values()), counts=counts, spent_usd=1.5, pending_usd=0.0,
                         oldest_running=None, running_without_time=0, earliest_expiry=None, last_run=None,
                         now=now, runs=runs or [], review={"rejected": rejected, "accepted": 0})


def test_rate_and_eta_come_from_the_refreshes_seen() -> None:
    rates = Rates()
    first = rates.frame(_summary(1000.0, done=0, pending=40))
    assert first.done_per_minute is None and first.eta_s is None
    rates.frame(_summary(1030.0, done=5, pending=35))
    frame = rates.frame(_summary(1060.0, done=10, pending=30))
    assert frame.done_per_minute == pytest.approx(10.0)  # 10 done in 60 s
    assert frame.outstanding == 2
    assert frame.eta_s == pytest.approx(60.0 * 32 / 10.0)  # 30 pending + 2 running at 10/min
    data = frame_dict(frame)
    assert (data["done_per_minute"], data["outstanding"], data["eta_s"], data["counts"]["done"]) == (10.0, 2, 192.0, 10)
    assert "demo: 10/42 done, 30 pending, 2 running, done/min 10.0, outstanding 2, spent 1.50 USD, ETA 3m12s" in (
        frame_line(frame))


def test_before_a_span_worth_measuring_the_running_runs_rate_is_shown() -> None:
    run = RunRecord(id=1, pid=1, host="h", argv=["runner", "run"], started_at=400.0, ended_at=None, exit_code=None,
                    counts=None)
    summary = _summary(1000.0, done=20, pending=10, runs=[RunSummary(run, submitted=22, estimated_usd=2.0, done=20,
                                                                     failed=0)])
    frame = Rates().frame(summary)
    assert frame.done_per_minute == pytest.approx(2.0)  # 20 done in the 10 minutes the run has been going
    ended = dataclasses.replace(summary, runs=[RunSummary(dataclasses.replace(run, ended_at=900.0), 22, 2.0, 20, 0)])
    assert Rates().frame(ended).done_per_minute is None  # a finished run says nothing about now


def test_the_terminal_view_shows_states_rejected_and_the_facts() -> None:
    console = Console(record=True, width=100)
    console.print(frame_table(Rates().frame(_summary(1000.0, done=3, pending=1, rejected=2))))
    text = console.export_text()
    assert "done" in text and "2 rejected" in text and "in_doubt" in text and "ETA" in text and "spent" in text
