"""Progress while a run works: the tracker's counts, rates and ETA, and the plain, JSON and quiet reporters."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest

from runner.engine import events as ev
from runner.jobs import JobState
from runner.reporting import configure_logging
from runner.reporting.progress import (
    HEARTBEAT,
    JsonReporter,
    PlainReporter,
    QuietReporter,
    RichReporter,
    make_reporter,
    plain_line,
    progress_every,
)
from runner.reporting.tracker import ProgressTracker


class FakeClock:
    """Monotonic time the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Result:
    """Stands in for the engine's RunResult."""

    def __init__(self, reason: str = "complete", error: Exception | None = None) -> None:
        self.reason = reason
        self.error = error
        self.submitted = self.done = 7
        self.in_doubt_new = self.failed = self.lost = self.rate_limited = 0


def counts(**by_state: int) -> dict[JobState, int]:
    return {JobState(k): v for k, v in by_state.items()}


def test_tracker_moves_jobs_between_states_as_events_arrive() -> None:
    """Counts follow the engine's events between ledger reads (submitted → running → succeeded → done)."""
    tracker = ProgressTracker(counts(pending=3), 0.0, clock=FakeClock())
    tracker.take(ev.Accepted(key="a", task_id="t", estimated_usd=0.56))
    tracker.take(ev.Accepted(key="b", task_id="u", estimated_usd=0.56))
    tracker.take(ev.Succeeded(key="a", task_id="t"))
    tracker.take(ev.Stored(key="a", path="x.mp4", bytes=1))
    tracker.take(ev.InDoubt(key="c", reason=None, message="read timeout"))
    snap = tracker.snapshot()
    assert snap.counts[JobState.DONE] == 1
    assert snap.counts[JobState.RUNNING] == 1
    assert snap.counts[JobState.PENDING] == 0
    assert snap.in_doubt == 1
    assert snap.spent_usd == pytest.approx(1.12)
    assert any("IN DOUBT c" in line for line in snap.recent)


def test_tracker_moves_a_lost_job_from_the_state_the_event_names() -> None:
    """A Lost event says whether the job was running or succeeded: the tracker takes that, never a guess."""
    tracker = ProgressTracker(counts(running=1, succeeded=1), 0.0, clock=FakeClock())
    tracker.take(ev.Lost(key="a", reason="gone", was=JobState.RUNNING))
    snap = tracker.snapshot()
    assert snap.counts[JobState.RUNNING] == 0 and snap.counts[JobState.SUCCEEDED] == 1
    assert snap.counts[JobState.LOST] == 1 and snap.lost == 1
    tracker.take(ev.InputRejected(key="b", reason="input a.png changed"))
    assert tracker.snapshot().failed == 1 and any("a.png changed" in line for line in tracker.snapshot().recent)


def test_tracker_rates_and_eta_come_from_the_recent_window() -> None:
    """Finishing 6 jobs in the first minute with 6 left gives 6/min and an ETA of one minute."""
    clock = FakeClock()
    tracker = ProgressTracker(counts(pending=12), 0.0, clock=clock)
    for i in range(6):
        clock.now += 10
        tracker.take(ev.Accepted(key=f"k{i}", task_id="t", estimated_usd=0.5))
        tracker.take(ev.Succeeded(key=f"k{i}", task_id="t"))
        tracker.take(ev.Stored(key=f"k{i}", path="p", bytes=1))
    snap = tracker.snapshot()
    assert snap.finish_rate == pytest.approx(6.0)
    assert snap.submit_rate == pytest.approx(6.0)
    assert snap.eta == pytest.approx(60.0)
    clock.now += 1000  # nothing finished for longer than the window: no rate, no ETA
    later = tracker.snapshot()
    assert later.finish_rate == 0 and later.eta is None


def test_tracker_resync_replaces_event_counts_with_the_ledger() -> None:
    """The ledger is the truth: a resync overrides whatever the events suggested."""
    tracker = ProgressTracker(counts(pending=2), 0.0, clock=FakeClock())
    tracker.take(ev.Accepted(key="a", task_id="t", estimated_usd=1.0))
    tracker.resync(counts(pending=1, in_doubt=1), 2.5)
    snap = tracker.snapshot()
    assert snap.counts[JobState.RUNNING] == 0 and snap.in_doubt == 1
    assert snap.spent_usd == 2.5


def test_plain_line_names_the_counts_rates_eta_and_spend() -> None:
    """The plain status line says done/total, what is running, in doubt, rates, ETA and spend."""
    tracker = ProgressTracker(counts(done=3, running=2, pending=2, in_doubt=1), 1.68, clock=FakeClock())
    line = plain_line(tracker.snapshot())
    assert "done 3/8" in line and "running 2" in line and "pending 2" in line
    assert "IN DOUBT 1" in line
    assert "submits/min" in line and "ETA" in line and "1.68 USD" in line


def test_plain_reporter_prints_on_change_and_on_heartbeat_only() -> None:
    """Without a TTY a line is printed when counts change, else only every heartbeat."""
    clock, out = FakeClock(), io.StringIO()
    reporter = PlainReporter(None, "demo", stream=out, clock=clock, counts=counts(pending=2))
    assert reporter.tick() is True
    clock.now += 5
    assert reporter.tick() is False
    reporter.emit(ev.Accepted(key="a", task_id="t", estimated_usd=0.56))
    assert reporter.tick() is True
    clock.now += HEARTBEAT
    assert reporter.tick() is True
    reporter.close(Result("max_runtime"))
    lines = out.getvalue().splitlines()
    assert len(lines) == 4
    assert all(line.startswith("runner: ") for line in lines)
    assert lines[-1].endswith("[max_runtime]")


def test_json_reporter_writes_one_json_object_per_event() -> None:
    """--log-json: each event is one JSON line carrying its kind and fields; the provider's message is kept."""
    out = io.StringIO()
    reporter = JsonReporter(None, "demo", stream=out, clock=FakeClock(), wall=lambda: 1.5, counts=counts(pending=2))
    reporter.emit(ev.Accepted(key="a", task_id="t-1", estimated_usd=0.56))
    reporter.emit(ev.InDoubt(key="b", reason=None, message="read timeout after the request was sent"))
    assert reporter.tick() is True
    reporter.close(Result())
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["event"] for r in records] == ["submitted", "in_doubt", "status", "summary"]
    first = records[0]
    assert first["key"] == "a" and first["task_id"] == "t-1" and first["estimated_usd"] == 0.56
    assert first["ts"] == 1.5 and first["manifest"] == "demo" and first["level"] == "info"
    assert records[1]["level"] == "warning"
    assert records[1]["provider_message"] == "read timeout after the request was sent"
    assert records[2]["counts"]["running"] == 1 and records[2]["counts"]["in_doubt"] == 1
    assert records[3]["reason"] == "complete" and records[3]["run"]["done"] == 7


def test_quiet_reporter_says_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    """--quiet: no progress at all."""
    reporter = QuietReporter()
    reporter.emit(ev.Accepted(key="a", task_id="t", estimated_usd=0.5))
    reporter.close(Result())
    captured = capsys.readouterr()
    assert captured.out == captured.err == ""


class FakeLedger:
    """Answers the two reads a reporter makes."""

    def __init__(self) -> None:
        self.reads = 0

    def counts(self, manifest: str | None = None) -> dict[JobState, int]:
        self.reads += 1
        return counts(pending=1, done=2)

    def spent_usd(self, manifest: str | None = None) -> float:
        return 1.12


@pytest.mark.parametrize(
    ("flags", "kind"),
    [
        ({"quiet": True, "json_lines": True, "tty": True}, QuietReporter),
        ({"json_lines": True, "tty": True}, JsonReporter),
        ({"tty": True}, RichReporter),
        ({}, PlainReporter),
    ],
)
def test_make_reporter_picks_the_mode(flags: dict[str, bool], kind: type) -> None:
    """--quiet beats --log-json, which beats the TTY's live display; otherwise plain lines."""
    reporter = make_reporter(ledger=FakeLedger(), manifest="demo", **flags)  # type: ignore[arg-type]
    assert isinstance(reporter, kind)


def test_ledger_is_reread_no_more_often_than_it_is_cheap() -> None:
    """Counts come from the ledger at most once per second between forced reads."""
    clock, ledger = FakeClock(), FakeLedger()
    reporter = PlainReporter(ledger, "demo", stream=io.StringIO(), clock=clock)  # type: ignore[arg-type]
    assert ledger.reads == 1
    reporter.snapshot()
    assert ledger.reads == 1
    clock.now += 1.5
    snap = reporter.snapshot()
    assert ledger.reads == 2 and snap.counts[JobState.DONE] == 2 and snap.spent_usd == 1.12
    reporter.snapshot(force=True)
    assert ledger.reads == 3


def test_progress_interval_comes_from_the_environment(caplog: pytest.LogCaptureFixture) -> None:
    """RUNNER_PROGRESS_SECONDS sets the status-line cadence; junk falls back to 5 s, and says so (operator sweep,
    2026-12-04: it was silently ignored)."""
    assert progress_every({"RUNNER_PROGRESS_SECONDS": "0.5"}) == 0.5
    assert progress_every({}) == 5.0 and not caplog.records
    for junk in ("soon", "nan", "-1", "inf"):
        assert progress_every({"RUNNER_PROGRESS_SECONDS": junk}) == 5.0
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 4 and "RUNNER_PROGRESS_SECONDS='soon' is not a number of seconds above 0" in said[0], said


def test_json_logging_puts_one_object_per_record(capsys: pytest.CaptureFixture[str]) -> None:
    """With --log-json, library log records are JSON lines too, with their extra event fields."""
    root = logging.getLogger("runner")
    saved = (root.handlers[:], root.level, root.propagate)
    configure_logging(level=logging.INFO, json_lines=True, tty=False)
    try:
        logging.getLogger("runner.engine").warning(
            "job %s is IN DOUBT", "k1", extra={"event": {"key": "k1", "message": "read timeout"}})
    finally:
        root.handlers[:], root.level, root.propagate = saved
    record: dict[str, Any] = json.loads(capsys.readouterr().err.strip())
    assert record["message"] == "job k1 is IN DOUBT"
    assert record["level"] == "warning" and record["logger"] == "runner.engine" and record["key"] == "k1"
    assert record["message_"] == "read timeout"  # a field never overwrites the line's own keys
