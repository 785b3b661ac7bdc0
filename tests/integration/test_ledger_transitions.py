"""The ledger's job states: every legal transition, the refused ones, spend and attempts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from runner.errors import LedgerError
from runner.jobs import JobSpec, JobState
from runner.ledger import SqliteLedger, open_ledger

MODEL = "kling-v3.0-pro-t2v"
PRICE = 0.56


def spec(i: int, *, price: float = PRICE) -> JobSpec:
    return JobSpec.build(
        model=MODEL,
        request={"prompt": f"city {i} at night", "duration": 5},
        vars={"city": f"c{i}"},
        repeat=1,
        output=f"c{i}.mp4",
        estimated_usd=price,
    )


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(tmp_path: Path, clock: Clock) -> Iterator[SqliteLedger]:
    with open_ledger(tmp_path / "state", clock=clock) as opened:
        opened.register("m", "digest", [spec(i) for i in range(4)])
        yield opened


def key(i: int) -> str:
    return spec(i).key


def state(ledger: SqliteLedger, i: int) -> JobState:
    record = ledger.get(key(i))
    assert record is not None
    return record.state


def to_running(ledger: SqliteLedger, i: int) -> int:
    """Job ``i`` running, its task ``task-<i + 1>`` (one task id per job: a job's id is never another's)."""
    attempt = ledger.mark_submitting(key(i))
    ledger.mark_running(key(i), attempt, task_id=f"task-{i + 1}", http_status=200)
    return attempt


def to_succeeded(ledger: SqliteLedger, i: int) -> None:
    to_running(ledger, i)
    ledger.mark_succeeded(key(i), video_url="https://cdn/v.mp4", url_expires_at=5e9, debug={})


def test_happy_path_pending_to_done(ledger: SqliteLedger, clock: Clock) -> None:
    """A job walks pending → submitting → running → succeeded → done, each step recorded."""
    k = key(0)
    attempt = ledger.mark_submitting(k)
    record = ledger.get(k)
    assert record is not None and record.state is JobState.SUBMITTING
    assert record.attempts == 1 and record.submitted_at is not None
    ledger.mark_running(k, attempt, task_id="task-abc", http_status=200)
    assert state(ledger, 0) is JobState.RUNNING
    ledger.mark_succeeded(k, video_url="https://cdn/a.mp4", url_expires_at=2e9, debug={"x": 1})
    ledger.mark_succeeded(k, video_url="https://cdn/b.mp4", url_expires_at=3e9, debug={})
    record = ledger.get(k)
    assert record is not None and record.state is JobState.SUCCEEDED
    assert (record.video_url, record.url_expires_at) == ("https://cdn/b.mp4", 3e9)
    ledger.mark_done(k, path="outputs/m/c0.mp4", sha256="ab" * 32, bytes=1234)
    record = ledger.get(k, "m")
    assert record is not None
    assert record.state is JobState.DONE and record.task_id == "task-abc"
    assert (record.path, record.sha256, record.bytes) == ("outputs/m/c0.mp4", "ab" * 32, 1234)
    assert record.output == "c0.mp4" and record.finished_at is not None
    [submit] = ledger.attempts(k)
    assert submit.id == attempt and submit.kind == "submit" and submit.outcome == "accepted"
    assert (submit.task_id, submit.http_status) == ("task-abc", 200)
    assert submit.ended_at is not None and submit.ended_at > submit.started_at


def test_refused_submit_returns_to_pending_and_releases_the_reservation(ledger: SqliteLedger) -> None:
    """A definitely refused POST goes back to pending and its estimated spend is given back."""
    attempt = ledger.mark_submitting(key(0))
    assert ledger.spent_usd() == pytest.approx(PRICE)
    ledger.mark_refused(
        key(0),
        attempt,
        http_status=429,
        reason="RATE_LIMIT_EXCEEDED",
        message="slow down",
        permanent=False,
    )
    record = ledger.get(key(0))
    assert record is not None and record.state is JobState.PENDING
    assert record.spent_usd == 0.0 and ledger.spent_usd() == 0.0
    assert (record.error, record.reason) == ("slow down", "RATE_LIMIT_EXCEEDED")
    assert ledger.attempts(key(0))[0].outcome == "refused"


def test_permanently_refused_submit_fails_the_job(ledger: SqliteLedger) -> None:
    """A 4xx validation refusal fails the job for good, with nothing spent."""
    attempt = ledger.mark_submitting(key(1))
    ledger.mark_refused(
        key(1),
        attempt,
        http_status=400,
        reason="INVALID_REQUEST_BODY",
        message="bad body",
        permanent=True,
    )
    record = ledger.get(key(1))
    assert record is not None and record.state is JobState.FAILED
    assert record.spent_usd == 0.0 and record.finished_at is not None
    assert ledger.attempts(key(1))[0].outcome == "rejected"


def test_ambiguous_submit_is_in_doubt_and_keeps_the_reservation(ledger: SqliteLedger) -> None:
    """An ambiguous POST leaves the job in doubt, still counted as (maybe) paid."""
    attempt = ledger.mark_submitting(key(2))
    ledger.mark_in_doubt(key(2), attempt, http_status=None, reason=None, message="read timeout")
    record = ledger.get(key(2))
    assert record is not None and record.state is JobState.IN_DOUBT
    assert record.spent_usd == pytest.approx(PRICE) and record.error == "read timeout"
    assert ledger.attempts(key(2))[0].outcome == "ambiguous"


def test_provider_failure_and_lost_results(ledger: SqliteLedger) -> None:
    """running → failed, running → lost and succeeded → lost are recorded with their reason."""
    to_running(ledger, 0)
    ledger.mark_failed(key(0), reason="content policy")
    to_running(ledger, 1)
    ledger.mark_lost(key(1), reason="task not found")
    to_succeeded(ledger, 2)
    ledger.mark_lost(key(2), reason="URL expired for good")
    assert [state(ledger, i) for i in range(3)] == [JobState.FAILED, JobState.LOST, JobState.LOST]
    failed = ledger.get(key(0))
    assert failed is not None and failed.reason == "content policy"
    assert [(a.kind, a.outcome, a.task_id) for a in ledger.attempts(key(0))][-1] == (
        "poll",
        "failed",
        "task-1",
    )
    assert [(a.kind, a.outcome) for a in ledger.attempts(key(2))][-1] == ("download", "lost")
    assert ledger.spent_usd() == pytest.approx(3 * PRICE)


def test_explicit_retries_bring_failed_and_in_doubt_back_to_pending(ledger: SqliteLedger) -> None:
    """reset() and retry_failed_job() move failed / in-doubt jobs to pending; spend stays."""
    to_running(ledger, 0)
    ledger.mark_failed(key(0), reason="boom")
    ledger.retry_failed_job(key(0))
    record = ledger.get(key(0))
    assert record is not None and record.state is JobState.PENDING
    assert record.task_id is None and record.error is None
    for i in (1, 2):
        attempt = ledger.mark_submitting(key(i))
        ledger.mark_in_doubt(key(i), attempt, http_status=502, reason=None, message="gateway")
    assert ledger.estimate_usd("m", [JobState.IN_DOUBT]) == pytest.approx(2 * PRICE)
    assert ledger.reset("m", JobState.FAILED) == 0
    assert ledger.reset("m", JobState.IN_DOUBT) == 2
    assert ledger.counts("m")[JobState.PENDING] == 4
    ledger.mark_submitting(key(1))
    again = ledger.get(key(1))
    assert again is not None and again.attempts == 2
    assert again.spent_usd == pytest.approx(2 * PRICE)  # the doubtful task may have been paid
    with pytest.raises(LedgerError, match="only failed or in_doubt"):
        ledger.reset(None, JobState.RUNNING)


ILLEGAL: list[tuple[str, Callable[[SqliteLedger], object]]] = [
    ("running from pending", lambda led: led.mark_running(key(0), 1, task_id="t", http_status=200)),
    ("done from pending", lambda led: led.mark_done(key(0), path="p", sha256="s", bytes=1)),
    (
        "succeeded from pending",
        lambda led: led.mark_succeeded(key(0), video_url="u", url_expires_at=None, debug={}),
    ),
    ("failed from pending", lambda led: led.mark_failed(key(0), reason="r")),
    ("lost from pending", lambda led: led.mark_lost(key(0), reason="r")),
    ("retry of a pending job", lambda led: led.retry_failed_job(key(0))),
    (
        "refused from pending",
        lambda led: led.mark_refused(
            key(0), 1, http_status=400, reason=None, message="m", permanent=True
        ),
    ),
    (
        "in doubt from pending",
        lambda led: led.mark_in_doubt(key(0), 1, http_status=None, reason=None, message="m"),
    ),
]


@pytest.mark.parametrize("name, move", ILLEGAL, ids=[name for name, _ in ILLEGAL])
def test_illegal_transition_is_refused_and_changes_nothing(
    ledger: SqliteLedger, name: str, move: Callable[[SqliteLedger], object]
) -> None:
    """A transition from the wrong state is refused: it says it moved nothing, and the job is untouched."""
    before = ledger.get(key(0))
    assert move(ledger) is False
    assert ledger.get(key(0)) == before


def test_second_submit_of_a_submitting_job_is_refused(ledger: SqliteLedger) -> None:
    """A job cannot be marked submitting twice: it would be paid twice."""
    ledger.mark_submitting(key(0))
    assert ledger.mark_submitting(key(0)) is None
    assert ledger.spent_usd() == pytest.approx(PRICE)
    assert len(ledger.attempts(key(0))) == 1


def test_wrong_attempt_rolls_the_whole_transition_back(ledger: SqliteLedger) -> None:
    """mark_running with another job's attempt id fails and leaves the job submitting."""
    first = ledger.mark_submitting(key(0))
    ledger.mark_submitting(key(1))
    with pytest.raises(LedgerError, match="no longer an open submit"):
        ledger.mark_running(key(1), first, task_id="t", http_status=200)
    assert state(ledger, 1) is JobState.SUBMITTING
    record = ledger.get(key(1))
    assert record is not None and record.task_id is None


def test_unknown_job_is_refused(ledger: SqliteLedger) -> None:
    """Transitions and events of a key the ledger does not know raise LedgerError."""
    with pytest.raises(LedgerError, match="unknown job"):
        ledger.mark_submitting("no-such-key")
    with pytest.raises(LedgerError, match="unknown job"):
        ledger.record_event("no-such-key", "poll", "error")
    with pytest.raises(LedgerError, match="unknown event kind"):
        ledger.record_event(key(0), "submit", "error")


def test_recover_submitting_holds_interrupted_posts_in_doubt(tmp_path: Path, clock: Clock) -> None:
    """Rows left in submitting by a dead process become in_doubt at the next open; running ones are untouched."""
    with open_ledger(tmp_path / "state", clock=clock) as first:
        first.register("m", "digest", [spec(i) for i in range(4)])
        first.mark_submitting(key(0))
        first.mark_submitting(key(1))
        to_running(first, 2)
        assert first.recover_expired(first.owner) == 0, "its own process's submits are not expired"
    ledger = open_ledger(tmp_path / "state", clock=clock)
    assert ledger.outstanding() == 3
    assert ledger.recover_expired(ledger.owner) == 2
    assert [state(ledger, i) for i in range(4)] == [
        JobState.IN_DOUBT,
        JobState.IN_DOUBT,
        JobState.RUNNING,
        JobState.PENDING,
    ]
    assert ledger.attempts(key(0))[0].outcome == "interrupted"
    assert ledger.attempts(key(2))[0].outcome == "accepted"
    assert ledger.outstanding() == 1
    assert ledger.spent_usd() == pytest.approx(3 * PRICE)
    assert ledger.recover_expired(ledger.owner) == 0
    assert ledger.get(key(2)) is not None and ledger.get(key(2)).owner == ledger.owner  # taken over
    ledger.close()


def test_events_and_runs_are_recorded(ledger: SqliteLedger) -> None:
    """Poll / download errors and runs land in the ledger, attempts pointing at their run."""
    run = ledger.start_run(argv=["runner", "run", "m.yaml"])
    attempt = to_running(ledger, 0)
    ledger.record_event(key(0), "poll", "error", http_status=503, detail="busy", task_id="task-1")
    ledger.record_event(key(0), "download", "url_expired", http_status=403)
    ledger.finish_run(run, exit_code=3, counts={"running": 1})
    submit, poll, download = ledger.attempts(key(0))
    assert submit.id == attempt and submit.run_id == run
    assert (poll.kind, poll.outcome, poll.http_status, poll.detail) == (
        "poll",
        "error",
        503,
        "busy",
    )
    assert (download.kind, download.outcome, download.run_id) == ("download", "url_expired", run)
    [latest] = ledger.runs()
    assert latest.argv == ["runner", "run", "m.yaml"] and latest.exit_code == 3
    assert latest.counts == {"running": 1} and latest.ended_at is not None
    with pytest.raises(LedgerError, match="unknown run"):
        ledger.finish_run(run + 100, exit_code=0, counts={})


def test_every_state_is_counted_with_zeros(tmp_path: Path) -> None:
    """counts() has every state, zeros included, for the ledger and for one manifest."""
    with open_ledger(tmp_path) as led:
        assert led.counts() == dict.fromkeys(JobState, 0)
        led.register("m", "d", [spec(i) for i in range(8)])
        led.register("other", "d", [spec(100)])
        # 0 pending; 1 submitting; 2 in_doubt; 3 running; 4 succeeded; 5 done; 6 failed; 7 lost
        led.mark_submitting(key(1))
        attempt = led.mark_submitting(key(2))
        led.mark_in_doubt(key(2), attempt, http_status=None, reason=None, message="?")
        to_running(led, 3)
        to_succeeded(led, 4)
        to_succeeded(led, 5)
        led.mark_done(key(5), path="p", sha256="s", bytes=1)
        to_running(led, 6)
        led.mark_failed(key(6), reason="r")
        to_running(led, 7)
        led.mark_lost(key(7), reason="r")
        assert led.counts("m") == dict.fromkeys(JobState, 1)
        assert led.total("m") == 8 and led.total() == 9
        whole = led.counts()
        assert whole[JobState.PENDING] == 2 and sum(whole.values()) == 9
        assert led.outstanding() == 2
        assert led.counts("unknown") == dict.fromkeys(JobState, 0)


def test_calls_from_a_worker_thread(ledger: SqliteLedger) -> None:
    """The engine may call the ledger from a worker thread."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(to_running, ledger, 3).result(timeout=30)
    assert state(ledger, 3) is JobState.RUNNING


def test_a_write_ahead_is_stamped_with_the_boot_and_an_in_doubt_attempt_keeps_the_stamp(
        tmp_path: Path, clock: Clock) -> None:
    """Each write-ahead's attempt carries this boot's steady clock ([boot <id> +<s>s]); closed in doubt (ambiguous,
    or interrupted by the runner's death and recovered at the next open) it keeps it after its reason, which a later
    run times the job's hold from; accepted or refused, the stamp goes (nothing is held)."""
    with open_ledger(tmp_path / "state", clock=clock) as first:
        first.boot = lambda: ("b-1", 120.5)
        first.register("m", "digest", [spec(i) for i in range(4)])
        ambiguous, refused = first.mark_submitting(key(0)), first.mark_submitting(key(1))
        assert first.attempts(key(0))[0].detail == "[boot b-1 +120.500s]"
        first.mark_in_doubt(key(0), ambiguous, http_status=None, reason=None, message="read timeout")
        first.mark_refused(key(1), refused, http_status=429, reason=None, message="slow down", permanent=False)
        first.boot = lambda: ("b-1", 130.0)
        assert first.mark_submitting_many([key(2), key(3)]) != [None, None]
        to_running(first, 1)
    ledger = open_ledger(tmp_path / "state", clock=clock)
    assert ledger.recover_expired(ledger.owner) == 2
    assert ledger.attempts(key(0))[0].detail == "read timeout [boot b-1 +120.500s]"
    assert [a.detail for a in ledger.attempts(key(1))] == ["slow down", None]
    interrupted = ledger.attempts(key(2))[0]
    assert interrupted.outcome == "interrupted" and interrupted.detail is not None
    assert interrupted.detail.endswith(" [boot b-1 +130.000s]") and not interrupted.detail.startswith("[boot")
    assert state(ledger, 3) is JobState.IN_DOUBT and ledger.get(key(0)).error == "read timeout"  # type: ignore[union-attr]
    ledger.close()
