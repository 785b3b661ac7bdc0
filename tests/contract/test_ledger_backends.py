"""The ledger backend contract: every backend (SQLite, in-memory, PostgreSQL) passes all of it.

Rules under test are those of :mod:`runner.ledger.api`: transitions and their refusals, claims that
never hand one job to two owners, leases whose expiry recovers only expired owners' work, spend,
counts, orphans, iteration order and attempts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.errors import LedgerError, ManifestError, TaskIdTaken
from runner.jobs import JobSpec, JobState
from runner.layout import manifest_folder, orphan_path, output_path
from runner.ledger import LEASE_TTL_S, LedgerBackend, MemoryLedger, open_ledger
from runner.ledger.api import UNSENT_REASON
from runner.ledger.postgres import open_postgres_ledger

PRICE = 0.56


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def spec(i: int, *, output: str | None = None, price: float = PRICE) -> JobSpec:
    return JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"clip {i}", "duration": 5},
                         vars={"i": i}, repeat=1, output=output or f"c{i}.mp4", estimated_usd=price)


def key(i: int) -> str:
    return spec(i).key


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sqlite", "memory", "postgres"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[LedgerBackend]:
    backend: LedgerBackend
    if request.param == "sqlite":
        backend = open_ledger(tmp_path / "state", clock=clock)
    elif request.param == "postgres":
        backend = open_postgres_ledger(request.getfixturevalue("pg_url"), tmp_path / "state", clock=clock)
    else:
        backend = MemoryLedger(state_dir=tmp_path / "state", clock=clock)
    with backend:
        backend.register("m", "d1", [spec(i) for i in range(6)])
        yield backend


def state(ledger: LedgerBackend, i: int) -> JobState:
    job = ledger.get(key(i))
    assert job is not None
    return job.state


def running(ledger: LedgerBackend, i: int, task: str = "t") -> None:
    attempt = ledger.mark_submitting(key(i))
    assert attempt is not None
    assert ledger.mark_running(key(i), attempt, task_id=f"{task}{i}", http_status=200)


def test_is_a_backend(ledger: LedgerBackend) -> None:
    assert isinstance(ledger, LedgerBackend)


# ------------------------------------------------------------------ transitions


def test_every_transition_moves_and_says_so(ledger: LedgerBackend) -> None:
    running(ledger, 0)
    assert ledger.mark_succeeded(key(0), video_url="u", url_expires_at=5.0, debug={"a": 1})
    assert ledger.mark_succeeded(key(0), video_url="u2", url_expires_at=9.0, debug={})  # a fresh URL
    assert ledger.note_file_problem(key(0), "name too long")
    assert ledger.mark_done(key(0), path="outputs/m/c0.mp4", sha256="s0", bytes=10)
    assert ledger.finish_rename(key(0), src="outputs/m/c0.mp4", dst="outputs/m/x.mp4")
    assert ledger.get(key(0)).path == "outputs/m/x.mp4"  # type: ignore[union-attr]
    running(ledger, 1)
    assert ledger.mark_failed(key(1), reason="boom")
    assert ledger.retry_failed_job(key(1))
    assert state(ledger, 1) is JobState.PENDING
    running(ledger, 2)
    assert ledger.mark_lost(key(2), reason="gone")
    assert ledger.reopen_lost(key(2), detail="found again")
    assert state(ledger, 2) is JobState.RUNNING
    attempt = ledger.mark_submitting(key(3))
    assert attempt is not None
    assert ledger.mark_in_doubt(key(3), attempt, http_status=None, reason="TIMEOUT", message="read timeout")
    assert ledger.adopt_task(key(3), "t3", detail="operator")
    assert state(ledger, 3) is JobState.RUNNING
    attempt = ledger.mark_submitting(key(4))
    assert attempt is not None
    assert ledger.mark_refused(key(4), attempt, http_status=429, reason=None, message="slow down", permanent=False)
    assert state(ledger, 4) is JobState.PENDING
    attempt = ledger.mark_submitting(key(4))
    assert attempt is not None
    assert ledger.mark_refused(key(4), attempt, http_status=400, reason="BAD", message="no", permanent=True)
    assert state(ledger, 4) is JobState.FAILED
    assert ledger.reset("m", JobState.FAILED) == 1
    assert state(ledger, 4) is JobState.PENDING


REFUSED: list[tuple[str, Callable[[LedgerBackend], object]]] = [
    ("running from pending", lambda led: led.mark_running(key(0), 1, task_id="t", http_status=200)),
    ("refused from pending", lambda led: led.mark_refused(key(0), 1, http_status=400, reason=None, message="m",
                                                         permanent=True)),
    ("in doubt from pending", lambda led: led.mark_in_doubt(key(0), 1, http_status=None, reason=None, message="m")),
    ("succeeded from pending", lambda led: led.mark_succeeded(key(0), video_url="u", url_expires_at=None, debug={})),
    ("failed from pending", lambda led: led.mark_failed(key(0), reason="r")),
    ("done from pending", lambda led: led.mark_done(key(0), path="p", sha256="s", bytes=1)),
    ("lost from pending", lambda led: led.mark_lost(key(0), reason="r")),
    ("file problem of pending", lambda led: led.note_file_problem(key(0), "x")),
    ("adopt of pending", lambda led: led.adopt_task(key(0), "t", detail="d")),
    ("reopen of pending", lambda led: led.reopen_lost(key(0), detail="d")),
    ("retry of pending", lambda led: led.retry_failed_job(key(0))),
    ("rename of pending", lambda led: led.finish_rename(key(0), src="a", dst="b")),
]


@pytest.mark.parametrize("name, move", REFUSED, ids=[name for name, _ in REFUSED])
def test_a_refused_transition_returns_false_and_changes_nothing(
    ledger: LedgerBackend, name: str, move: Callable[[LedgerBackend], object]
) -> None:
    before = ledger.get(key(0))
    assert move(ledger) is False
    assert ledger.get(key(0)) == before
    assert ledger.attempts(key(0)) == []


def test_an_unsent_job_fails_from_pending_only_and_costs_nothing(ledger: LedgerBackend) -> None:
    """fail_unsent: pending → failed with the reason, nothing spent, no attempt; from any other state it refuses."""
    assert ledger.fail_unsent(key(0), reason="input a.png changed since the plan")
    job = ledger.get(key(0))
    assert job is not None and job.state is JobState.FAILED and job.error == "input a.png changed since the plan"
    assert job.reason == UNSENT_REASON  # what the next run reads to plan it again (runner/service/unsent.py)
    assert ledger.spent_usd() == 0 and ledger.attempts(key(0)) == [] and not ledger.has_provider_tasks()
    assert ledger.fail_unsent(key(0), reason="again") is False
    running(ledger, 1)
    before = ledger.get(key(1))
    assert ledger.fail_unsent(key(1), reason="r") is False and ledger.get(key(1)) == before
    assert ledger.reset("m", JobState.FAILED) == 1  # an explicit retry sends it once the file is fixed
    assert state(ledger, 0) is JobState.PENDING


def test_a_held_back_job_is_adopted_from_its_file_as_done_and_paid(ledger: LedgerBackend) -> None:
    """adopt_file (`runner adopt --file`): pending → done with the file's path, sha256 and size, no task id, its
    estimate counted as spent (paid for in a run the ledger no longer records), one submit attempt `adopted` with
    no task id; from any other state, or at a path another job records, it refuses and writes nothing."""
    assert ledger.adopt_file(key(0), path="outputs/m/c0.mp4", sha256="s0", bytes=123, detail="from its file")
    job = ledger.get(key(0))
    assert job is not None and job.state is JobState.DONE and job.task_id is None
    assert (job.path, job.sha256, job.bytes) == ("outputs/m/c0.mp4", "s0", 123)
    assert job.finished_at is not None and job.spent_usd == PRICE and ledger.spent_usd("m") == PRICE
    assert ledger.key_at_path("outputs/m/c0.mp4") == key(0) and ledger.has_provider_tasks()
    [attempt] = ledger.attempts(key(0))
    assert (attempt.kind, attempt.outcome, attempt.task_id, attempt.detail) == ("submit", "adopted", None,
                                                                                 "from its file")
    assert attempt.ended_at is not None
    assert all(run.submitted == 0 for run in ledger.run_history("m"))  # no new paid submit of a run
    assert ledger.adopt_file(key(0), path="outputs/m/c0.mp4", sha256="s0", bytes=123, detail="again") is False
    before = ledger.get(key(1))
    assert ledger.adopt_file(key(1), path="outputs/m/c0.mp4", sha256="s0", bytes=123, detail="d") is False
    assert ledger.get(key(1)) == before and ledger.attempts(key(1)) == []
    running(ledger, 2)
    before = ledger.get(key(2))
    assert ledger.adopt_file(key(2), path="outputs/m/c2.mp4", sha256="s2", bytes=1, detail="d") is False
    assert ledger.get(key(2)) == before and len(ledger.attempts(key(2))) == 1
    assert ledger.spent_usd("m") == 2 * PRICE


def test_a_second_submit_is_refused_and_reserves_nothing(ledger: LedgerBackend) -> None:
    assert ledger.mark_submitting(key(0)) is not None
    assert ledger.mark_submitting(key(0)) is None
    assert ledger.spent_usd() == pytest.approx(PRICE)
    assert len(ledger.attempts(key(0))) == 1


# -------------------------------------------------------- a task id held already


def taken_by(ledger: LedgerBackend, i: int, task_id: str) -> TaskIdTaken:
    """Submit job ``i`` and record ``task_id`` for it, which a job holds already: refused, nothing written (the job
    still submitting, its attempt open, nothing of it changed); the refusal, to look at its holder."""
    attempt = ledger.mark_submitting(key(i))
    assert attempt is not None
    before, attempts = ledger.get(key(i)), ledger.attempts(key(i))
    with pytest.raises(TaskIdTaken) as refused:
        ledger.mark_running(key(i), attempt, task_id=task_id, http_status=200)
    assert ledger.get(key(i)) == before and ledger.attempts(key(i)) == attempts
    assert attempts[-1].ended_at is None and attempts[-1].task_id is None
    assert refused.value.task_id == task_id
    # the caller holds it in doubt (the submit lane: TASK_ID_TAKEN), its attempt closed there
    assert ledger.mark_in_doubt(key(i), attempt, http_status=200, reason="TASK_ID_TAKEN", message="held")
    assert state(ledger, i) is JobState.IN_DOUBT
    return refused.value


def test_a_task_id_another_job_runs_is_refused_and_writes_nothing(ledger: LedgerBackend) -> None:
    """An accepted answer naming another job's current task (a middlebox replaying its answer): mark_running
    refuses with that job as the holder, in the same step as the move; the holder is untouched."""
    running(ledger, 0)
    holder = ledger.get(key(0))
    assert taken_by(ledger, 1, "t0").holder == key(0)
    assert ledger.get(key(0)) == holder and ledger.key_of_task("t0") == key(0)
    assert ledger.spent_usd() == pytest.approx(2 * PRICE)  # job 1's POST may have created a task: its estimate stays


def test_a_task_id_on_record_only_as_an_earlier_task_is_refused_too(ledger: LedgerBackend) -> None:
    """Job 0's task t0 failed and the job went back to pending (no current task): t0 is still on record in its
    attempts, and neither another job nor job 0's own next submit may take it."""
    running(ledger, 0)
    assert ledger.mark_failed(key(0), reason="boom") and ledger.retry_failed_job(key(0))
    assert ledger.get(key(0)).task_id is None  # type: ignore[union-attr]
    assert taken_by(ledger, 1, "t0").holder == key(0)
    assert taken_by(ledger, 0, "t0").holder == key(0)  # the job's own earlier task: this POST's task is another


def test_a_job_no_longer_submitting_is_refused_before_the_id_is_looked_at(ledger: LedgerBackend) -> None:
    """A write that landed though it reported failure, tried again: the job is running with this very id already.
    That is the plain refusal (False: the caller reads the job and sees its id recorded), not TaskIdTaken."""
    running(ledger, 0)
    attempt = ledger.attempts(key(0))[-1].id
    assert ledger.mark_running(key(0), attempt, task_id="t0", http_status=200) is False


def test_adopting_a_task_id_a_job_holds_is_refused_and_writes_nothing(ledger: LedgerBackend) -> None:
    """`runner adopt` attaches an id to an in-doubt job: one another job runs, or one on record as an earlier task
    (the job's own included), is refused in the same transaction (TaskIdTaken), as mark_running refuses it."""
    running(ledger, 0)
    attempt = ledger.mark_submitting(key(1))
    assert attempt is not None
    assert ledger.mark_in_doubt(key(1), attempt, http_status=None, reason="TIMEOUT", message="no answer")
    before, attempts = ledger.get(key(1)), ledger.attempts(key(1))
    with pytest.raises(TaskIdTaken) as refused:
        ledger.adopt_task(key(1), "t0", detail="attached by hand")
    assert refused.value.holder == key(0)
    assert ledger.get(key(1)) == before and ledger.attempts(key(1)) == attempts and ledger.key_of_task("t0") == key(0)
    assert ledger.adopt_task(key(1), "t1-found", detail="attached by hand") is True
    assert state(ledger, 1) is JobState.RUNNING and ledger.key_of_task("t1-found") == key(1)
    assert ledger.adopt_task(key(0), "other", detail="not in doubt") is False  # the plain refusal first


def test_a_rescued_task_id_another_job_holds_is_never_attached(ledger: LedgerBackend) -> None:
    """The rescue journal names an id another job holds (recorded there by another runner meanwhile): replaying it
    moves nothing; the journalled job is left to recovery (in doubt), the holder untouched."""
    running(ledger, 0)
    holder = ledger.get(key(0))
    attempt = ledger.mark_submitting(key(1))
    assert attempt is not None
    ledger.state_dir.mkdir(parents=True, exist_ok=True)  # the journal's folder (a SQLite ledger's is made already)
    assert ledger.rescue_task_id(key(1), attempt, "t0")
    assert ledger.apply_rescue() == 0
    assert state(ledger, 1) is JobState.SUBMITTING and ledger.get(key(0)) == holder


def test_an_in_doubt_job_holds_its_slot_while_its_task_may_still_run(ledger: LedgerBackend, clock: Clock) -> None:
    """A submit held in doubt may have created a task: within ``in_doubt_hold_s`` of its POST it counts against
    ``max_outstanding`` (the provider would see it), after that it no longer does."""
    attempt = ledger.mark_submitting(key(0), max_outstanding=1, in_doubt_hold_s=900)
    assert attempt is not None
    assert ledger.mark_in_doubt(key(0), attempt, http_status=None, reason="drop", message="connection dropped")
    clock.now += 600
    assert (ledger.outstanding(), ledger.outstanding(in_doubt_hold_s=900)) == (0, 1)  # what the write-ahead counts
    assert ledger.mark_submitting(key(1), max_outstanding=1, in_doubt_hold_s=900) is None
    assert state(ledger, 1) is JobState.PENDING and ledger.attempts(key(1)) == []
    second = ledger.mark_submitting(key(1), max_outstanding=1)  # no hold asked: the in-doubt job counts not
    assert second is not None
    assert ledger.mark_refused(key(1), second, http_status=429, reason="RATE_LIMIT", message="later",
                               permanent=False)  # back to pending: nothing was created
    clock.now += 301
    assert ledger.outstanding(in_doubt_hold_s=900) == 0
    assert ledger.mark_submitting(key(1), max_outstanding=1, in_doubt_hold_s=900) is not None


def test_a_submit_past_the_outstanding_limit_is_refused_and_writes_nothing(ledger: LedgerBackend) -> None:
    assert ledger.mark_submitting(key(0), max_outstanding=2) is not None
    running(ledger, 1)
    assert ledger.outstanding() == 2
    assert ledger.mark_submitting(key(2), max_outstanding=2) is None
    assert state(ledger, 2) is JobState.PENDING and ledger.attempts(key(2)) == []
    assert ledger.mark_submitting(key(2), max_outstanding=3) is not None


def test_two_runners_share_one_outstanding_limit(pair: tuple[LedgerBackend, LedgerBackend]) -> None:
    a, b = pair
    assert a.mark_submitting(key(0), max_outstanding=2) is not None
    assert b.mark_submitting(key(1), max_outstanding=2) is not None
    assert a.mark_submitting(key(2), max_outstanding=2) is None  # b's task counts too
    assert b.mark_submitting(key(3), max_outstanding=2) is None


def test_a_submit_past_the_budget_is_refused_and_writes_nothing(ledger: LedgerBackend) -> None:
    budget = ("m", 2 * PRICE)
    first = ledger.mark_submitting(key(0), budget=budget)
    assert first is not None and ledger.mark_submitting(key(1), budget=budget) is not None
    assert ledger.mark_submitting(key(2), budget=budget) is None  # 3 × PRICE would pass it
    assert state(ledger, 2) is JobState.PENDING and ledger.attempts(key(2)) == []
    assert ledger.spent_usd("m") == pytest.approx(2 * PRICE)
    ledger.mark_refused(key(0), first, http_status=429, reason=None, message="m", permanent=False)
    assert ledger.mark_submitting(key(2), budget=budget) is not None  # a refused submit gave its estimate back
    assert ledger.mark_submitting(key(3), budget=("m", 10 * PRICE)) is not None


def test_take_token_paces_threads_at_the_rate(ledger: LedgerBackend, request: pytest.FixtureRequest,
                                              tmp_path: Path) -> None:
    """N takers (threads; on PostgreSQL each its own connection) use tokens at most at the bucket's rate:
    1 + rate × T in any T seconds (each waits the time it is told before using its token). A token's time is
    the moment the bucket gives it, so a thread's late wake-up on a loaded machine does not bunch the tokens."""
    per_minute, seconds, takers = 600.0, 2.0, 4
    rate = per_minute / 60
    shared = "pg_url" in request.fixturenames
    used: list[float] = []
    start = threading.Barrier(takers)

    def taker(i: int) -> None:
        led = open_postgres_ledger(request.getfixturevalue("pg_url"), tmp_path / f"t{i}") if shared else ledger
        try:
            start.wait()
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                wait = led.take_token("submit", per_minute=per_minute)
                used.append(time.monotonic() + wait)  # when the bucket lets it be used, not when sleep wakes
                time.sleep(wait)
        finally:
            if led is not ledger:
                led.close()

    threads = [threading.Thread(target=taker, args=(i,)) for i in range(takers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    used.sort()
    span = used[-1] - used[0]
    assert len(used) <= 1 + rate * (span + 0.05), (len(used), span)
    assert len(used) >= rate * seconds * 0.6, len(used)  # paced, not starved
    for i, at in enumerate(used):  # any one-second window
        assert sum(1 for t in used[i:] if t < at + 1.0) <= 1 + rate * 1.05
    assert ledger.take_token("other", per_minute=per_minute) == 0.0  # each bucket is its own


def test_a_late_update_of_a_finished_job_is_harmless(ledger: LedgerBackend) -> None:
    running(ledger, 0)
    assert ledger.mark_succeeded(key(0), video_url="u", url_expires_at=None, debug={})
    assert ledger.mark_done(key(0), path="p", sha256="s", bytes=1)
    assert ledger.mark_succeeded(key(0), video_url="u", url_expires_at=None, debug={}) is False
    assert ledger.mark_failed(key(0), reason="late") is False
    assert state(ledger, 0) is JobState.DONE


def test_a_poll_answer_moves_only_the_task_it_is_about(ledger: LedgerBackend) -> None:
    """``mark_succeeded(task_id=…)``, a poll's answer applied without reading the job first: it moves a running
    job whose current task that is, and nothing else (an old task of a retried job, a job already succeeded or
    finished, an unknown key: False, nothing written)."""
    running(ledger, 0)
    assert ledger.mark_succeeded(key(0), video_url="u", url_expires_at=None, debug={}, task_id="old") is False
    assert state(ledger, 0) is JobState.RUNNING
    assert ledger.mark_succeeded(key(0), video_url="u", url_expires_at=7.0, debug={"a": 1}, task_id="t0")
    job = ledger.get(key(0))
    assert job is not None and (job.state, job.video_url, job.url_expires_at) == (JobState.SUCCEEDED, "u", 7.0)
    assert ledger.debug_info(key(0)) == {"a": 1}
    # Already succeeded: a duplicate answer is not a fresh URL (that is the fetch lane's, without task_id).
    assert ledger.mark_succeeded(key(0), video_url="u2", url_expires_at=None, debug={}, task_id="t0") is False
    assert ledger.get(key(0)).video_url == "u"  # type: ignore[union-attr]
    assert ledger.mark_succeeded("no-such-key", video_url="u", url_expires_at=None, debug={}, task_id="t0") is False


def test_bugs_still_raise(ledger: LedgerBackend) -> None:
    with pytest.raises(LedgerError, match="unknown job"):
        ledger.mark_submitting("no-such-key")
    with pytest.raises(LedgerError, match="unknown job"):
        ledger.mark_failed("no-such-key", reason="r")
    with pytest.raises(LedgerError, match="unknown event kind"):
        ledger.record_event(key(0), "submit", "x")
    first = ledger.mark_submitting(key(0))
    assert first is not None
    with pytest.raises(LedgerError, match="no longer an open submit"):
        ledger.mark_running(key(0), first + 1000, task_id="t", http_status=200)
    assert state(ledger, 0) is JobState.SUBMITTING  # rolled back whole
    with pytest.raises(LedgerError, match="only failed or in_doubt"):
        ledger.reset(None, JobState.RUNNING)


# ------------------------------------------------------------- claims, leases


def test_claims_never_hand_one_job_to_two_owners(ledger: LedgerBackend) -> None:
    assert ledger.renew_lease("a") and ledger.renew_lease("b")
    a = ledger.claim_pending(2, "a")
    b = ledger.claim_pending(10, "b")
    assert [j.key for j in a] == [key(0), key(1)]  # planning order
    assert [j.key for j in b] == [key(i) for i in range(2, 6)]
    assert ledger.claim_pending(1, "a") == [] and ledger.claim_pending(1, "c") == []
    assert all(j.owner == "a" for j in a) and ledger.get(key(0)).owner == "a"  # type: ignore[union-attr]
    # Another live owner's claim is not submitted by anyone else; the holder's is.
    assert ledger.mark_submitting(key(0), owner="b") is None
    assert ledger.mark_submitting(key(0)) is None  # this process's own owner, too
    assert ledger.mark_submitting(key(0), owner="a") is not None


def test_interleaved_claims_of_two_owners_are_disjoint(ledger: LedgerBackend) -> None:
    ledger.register("m", "d2", [spec(i) for i in range(40)])
    ledger.renew_lease("a")
    ledger.renew_lease("b")
    got: dict[str, list[str]] = {"a": [], "b": []}
    for turn in range(30):
        owner = "ab"[turn % 2]
        for job in ledger.claim_pending(1 + turn % 3, owner):
            got[owner].append(job.key)
            if turn % 4 == 0:
                assert ledger.mark_submitting(job.key, owner=owner) is not None
    assert not set(got["a"]) & set(got["b"])
    assert sorted(got["a"] + got["b"]) == sorted(key(i) for i in range(40))


def test_a_claim_through_a_manifest_takes_only_its_jobs(ledger: LedgerBackend) -> None:
    ledger.register("z", "d", [spec(9), spec(4), spec(7)])
    ledger.renew_lease("a")
    assert [j.key for j in ledger.claim_pending(2, "a", manifest="z")] == [key(4), key(9)]  # planning order
    assert [j.key for j in ledger.claim_pending(5, "a", manifest="z")] == [key(7)]
    assert [j.key for j in ledger.claim_pending(1, "a", manifest="m")] == [key(0)]


def test_released_and_expired_claims_can_be_claimed_again(ledger: LedgerBackend, clock: Clock) -> None:
    ledger.renew_lease("a", ttl=10)
    ledger.renew_lease("b", ttl=100)
    assert len(ledger.claim_pending(2, "a")) == 2
    assert ledger.release_claims("a") == 2
    assert [j.key for j in ledger.claim_pending(1, "b")] == [key(0)]
    assert [j.key for j in ledger.claim_pending(2, "a")] == [key(1), key(2)]
    clock.now += 50  # a's lease expires, b's does not
    assert ledger.renew_lease("a") is False, "an expired lease is not renewed: its work may be taken over"
    assert [j.key for j in ledger.claim_pending(5, "b")] == [key(1), key(2), key(3), key(4), key(5)]


def test_expiry_recovers_only_expired_owners_work(ledger: LedgerBackend, clock: Clock) -> None:
    ledger.renew_lease("a", ttl=10)
    ledger.renew_lease("b", ttl=100)
    a0, b1 = ledger.mark_submitting(key(0), owner="a"), ledger.mark_submitting(key(1), owner="b")
    a2 = ledger.mark_submitting(key(2), owner="a")
    assert a0 is not None and b1 is not None and a2 is not None
    assert ledger.mark_running(key(2), a2, task_id="t2", http_status=200)
    assert ledger.recover_expired("c") == 0, "nobody's lease has expired yet"
    clock.now += 50
    assert ledger.renew_lease("b")
    assert ledger.recover_expired("c") == 1
    assert state(ledger, 0) is JobState.IN_DOUBT  # a's POST may have created a task: held, never resubmitted
    assert ledger.attempts(key(0))[0].outcome == "interrupted"
    assert state(ledger, 1) is JobState.SUBMITTING  # b is live: its POST may still be on the wire
    job2 = ledger.get(key(2))
    assert job2 is not None and job2.state is JobState.RUNNING and job2.owner == "c"  # taken over
    assert ledger.spent_usd() == pytest.approx(3 * PRICE)  # the reservations stay
    assert ledger.mark_running(key(1), b1, task_id="t1", http_status=200)
    assert ledger.mark_running(key(0), a0, task_id="late", http_status=200) is False  # a lost the race


def test_rows_without_an_owner_lease_count_as_expired(ledger: LedgerBackend) -> None:
    assert ledger.mark_submitting(key(0), owner="never-leased") is not None
    assert ledger.recover_expired("c") == 1
    assert state(ledger, 0) is JobState.IN_DOUBT


def test_this_process_owner_is_live(ledger: LedgerBackend) -> None:
    assert ledger.mark_submitting(key(0)) is not None
    assert ledger.recover_expired("c") == 0
    assert ledger.recover_expired(ledger.owner) == 0
    assert state(ledger, 0) is JobState.SUBMITTING


# ------------------------------------------------------- reads: spend, counts


def test_spend_budget_and_counts(ledger: LedgerBackend) -> None:
    running(ledger, 0)
    attempt = ledger.mark_submitting(key(1))
    assert attempt is not None
    ledger.mark_refused(key(1), attempt, http_status=429, reason=None, message="m", permanent=False)
    attempt = ledger.mark_submitting(key(2))
    assert attempt is not None
    assert ledger.spent_usd() == pytest.approx(2 * PRICE) == ledger.spent_usd("m")
    assert ledger.estimate_usd("m", [JobState.PENDING]) == pytest.approx(4 * PRICE)
    assert ledger.estimate_usd() == pytest.approx(6 * PRICE)
    assert ledger.outstanding() == 2
    counts = ledger.counts("m")
    assert set(counts) == set(JobState)
    assert counts[JobState.PENDING] == 4 and counts[JobState.RUNNING] == 1 and counts[JobState.SUBMITTING] == 1
    assert ledger.counts() == counts and ledger.total() == 6 == ledger.total("m")
    assert ledger.has_provider_tasks()
    assert ledger.states_of([key(0), "nope"]) == {key(0): JobState.RUNNING}


def test_orphans_and_dropped_spend(ledger: LedgerBackend) -> None:
    running(ledger, 0)
    ledger.register("m", "d2", [spec(i) for i in range(1, 6)])
    assert ledger.orphans("m") == {JobState.RUNNING: 1} == ledger.orphans()
    assert ledger.spent_usd("m") == pytest.approx(PRICE) == ledger.dropped_spent_usd("m")
    assert ledger.orphan_home(key(0)) == "m"
    assert orphan_path(ledger.orphan_home(key(0)), key(0)) == f"outputs/m/_orphans/{key(0)}.mp4"
    assert ledger.orphan_home("unknown") is None
    assert ledger.targets_of(key(0)) == []


def test_a_job_with_its_targets_is_get_and_targets_of_in_one(ledger: LedgerBackend, clock: Clock) -> None:
    """``get_with_targets``: what the download reads (the job, where it goes), in one read: exactly ``get`` and
    ``targets_of``, for a job of two manifests, of one, of none (dropped by an edit), and an unknown key."""
    clock.now += 1
    ledger.register("n", "d", [spec(1, output="shared.mp4")])
    running(ledger, 1)
    assert ledger.get_with_targets(key(1)) == (ledger.get(key(1)), [("m", "c1.mp4"), ("n", "shared.mp4")])
    assert ledger.get_with_targets(key(2)) == (ledger.get(key(2)), [("m", "c2.mp4")])
    ledger.register("m", "d2", [spec(i) for i in range(1, 6)])  # key(0) is no manifest's now
    assert ledger.get_with_targets(key(0)) == (ledger.get(key(0)), [])
    assert ledger.get_with_targets("no-such-key") is None


def test_targets_outputs_and_paths(ledger: LedgerBackend, clock: Clock) -> None:
    clock.now += 1
    ledger.register("n", "d", [spec(1, output="shared.mp4")])
    assert ledger.targets_of(key(1)) == [("m", "c1.mp4"), ("n", "shared.mp4")]
    assert ledger.target_output("n", key(1)) == "shared.mp4" and ledger.target_output("n", key(0)) is None
    running(ledger, 1)
    ledger.mark_succeeded(key(1), video_url="u", url_expires_at=None, debug={"x": 1})
    ledger.mark_done(key(1), path="outputs/m/old.mp4", sha256="abc", bytes=3)
    assert ledger.misplaced("m", manifest_folder("m")) == [(key(1), "outputs/m/old.mp4", "c1.mp4")]
    assert ledger.misplaced_count("m", manifest_folder("m")) == 1
    assert list(ledger.stored_elsewhere("n", manifest_folder("n"))) == [
        (key(1), "outputs/m/old.mp4", "shared.mp4", "abc")]
    assert output_path("n", "shared.mp4") == "outputs/n/shared.mp4"
    assert ledger.stored_paths([key(1), key(2)]) == {key(1): "outputs/m/old.mp4"}
    assert ledger.key_at_path("outputs/m/old.mp4") == key(1)
    assert ledger.paths_with_sha256("abc") == ["outputs/m/old.mp4"]
    assert ledger.debug_info(key(1)) == {"x": 1}
    assert ledger.key_of_task("t1") == key(1) and ledger.key_of_task("no-such-task") is None
    assert ledger.find_keys(key(1)[:6]) == [key(1)]


def test_a_manifest_with_two_jobs_at_one_name_plans_nothing(ledger: LedgerBackend) -> None:
    with pytest.raises(ManifestError):
        ledger.register("x", "d", [spec(10, output="same.mp4"), spec(11, output="same.mp4")])
    assert ledger.total() == 6 and ledger.manifest_digest("x") is None


def test_an_edit_that_swaps_two_output_names_plans_both(ledger: LedgerBackend) -> None:
    ledger.register("m", "d2", [spec(0, output="c1.mp4"), spec(1, output="c0.mp4"), *(spec(i) for i in range(2, 6))])
    assert ledger.target_output("m", key(0)) == "c1.mp4" and ledger.target_output("m", key(1)) == "c0.mp4"
    ledger.register("m", "d3", [spec(i) for i in range(1, 7)])  # job 0 dropped, job 6 new
    assert [j.output for j in ledger.iter_jobs("m")] == [f"c{i}.mp4" for i in range(1, 7)]
    assert ledger.total("m") == 6 and ledger.total() == 7


# ------------------------------------------------------- order and attempts


def test_iteration_follows_planning_order(ledger: LedgerBackend) -> None:
    ledger.register("z", "d", [spec(9), spec(3), spec(7)])
    assert [j.key for j in ledger.iter_jobs()] == [key(i) for i in (0, 1, 2, 3, 4, 5, 9, 7)]
    assert [j.key for j in ledger.iter_jobs("z")] == [key(3), key(9), key(7)]
    assert [j.output for j in ledger.iter_jobs("z")] == ["c3.mp4", "c9.mp4", "c7.mp4"]
    running(ledger, 3)
    assert [j.key for j in ledger.iter_jobs("z", states=[JobState.PENDING])] == [key(9), key(7)]
    batch = ledger.pending_batch("m", limit=2)
    assert [j.key for _, j in batch] == [key(0), key(1)]
    after = ledger.pending_batch("m", limit=10, after_rowid=batch[-1][0])
    assert [j.key for _, j in after] == [key(2), key(4), key(5)]


def test_attempts_record_every_submit_and_event(ledger: LedgerBackend) -> None:
    run = ledger.start_run(argv=["runner", "run"])
    attempt = ledger.mark_submitting(key(0))
    assert attempt is not None
    ledger.mark_refused(key(0), attempt, http_status=429, reason=None, message="slow", permanent=False)
    running(ledger, 0, task="x")
    ledger.record_event(key(0), "poll", "error", http_status=500, detail="oops")
    ledger.mark_lost(key(0), reason="gone")
    got = ledger.attempts(key(0))
    assert [(a.kind, a.outcome) for a in got] == [("submit", "refused"), ("submit", "accepted"),
                                                   ("poll", "error"), ("poll", "lost")]
    assert got[1].task_id == "x0" and got[2].task_id == "x0" and got[0].run_id == run
    assert ledger.get(key(0)).attempts == 2  # type: ignore[union-attr]
    ledger.finish_run(run, exit_code=0, counts={"done": 1})
    assert ledger.runs(limit=1)[0].exit_code == 0


def test_meta_and_renames(ledger: LedgerBackend) -> None:
    assert ledger.meta("provider") is None
    ledger.set_meta("provider", "simulator")
    assert ledger.meta("provider") == "simulator"
    ledger.journal_renames([(key(0), "a", "b")])
    assert ledger.journaled_renames() == [(key(0), "a", "b")]
    ledger.forget_rename(key(0))
    assert ledger.journaled_renames() == []


# ------------------------------------------------------------------ re-planning moved inputs


def test_a_replan_under_the_same_key_updates_the_stored_reference_and_keeps_state(ledger: LedgerBackend) -> None:
    """Issue 11 item 4: an input folder renamed keeps each job's key; the ledger learns the new path."""
    def moved(folder: str, i: int) -> JobSpec:
        ref = {"file": f"{folder}/{i}.png", "sha256": f"{i:064x}", "size": 9, "kind": "image", "mime": "image/png"}
        return JobSpec(key=f"{'ab' * 15}{i:02d}", model="kling-v3.0-pro-i2v", request={"prompt": "p", "image": ref},
                       vars={"image": f"{folder}/{i}.png"}, repeat=1, output=f"i{i}.mp4", estimated_usd=PRICE)

    ledger.register("i2v", "d1", [moved("frames", i) for i in range(2)])
    attempt = ledger.mark_submitting(moved("frames", 0).key)
    assert attempt is not None and ledger.mark_running(moved("frames", 0).key, attempt, task_id="t", http_status=200)
    ledger.register("i2v", "d2", [moved("shots", i) for i in range(2)])
    for i, expected in ((0, JobState.RUNNING), (1, JobState.PENDING)):
        job = ledger.get(moved("shots", i).key)
        assert job is not None and job.state is expected
        assert job.request["image"]["file"] == f"shots/{i}.png" and job.vars == {"image": f"shots/{i}.png"}
    assert ledger.counts("i2v")[JobState.PENDING] == 1
    untouched = ledger.get(key(0))
    assert untouched is not None and untouched.request == {"prompt": "clip 0", "duration": 5}


# ------------------------------------------- several writers on one database (PostgreSQL)
# Two PostgresLedger instances are two runners: two connections, two owners, one database.


@pytest.fixture
def pair(pg_url: str, tmp_path: Path, clock: Clock) -> Iterator[tuple[LedgerBackend, LedgerBackend]]:
    with open_postgres_ledger(pg_url, tmp_path / "a", clock=clock) as a, \
            open_postgres_ledger(pg_url, tmp_path / "b", clock=clock) as b:
        a.register("m", "d1", [spec(i) for i in range(6)])
        yield a, b


def test_a_job_another_live_runner_claimed_is_not_adopted_from_a_file(
        pair: tuple[LedgerBackend, LedgerBackend]) -> None:
    """`runner adopt --file` on a shared ledger while another runner holds the job's claim (it may be sending it):
    refused, nothing written; once the claim is given back, adopted."""
    a, b = pair
    assert a.renew_lease(a.owner)
    assert [job.key for job in a.claim_pending(1, a.owner)] == [key(0)]
    assert b.adopt_file(key(0), path="outputs/m/c0.mp4", sha256="s0", bytes=1, detail="d") is False
    assert state(b, 0) is JobState.PENDING and b.attempts(key(0)) == []
    a.release_claims(a.owner)
    assert b.adopt_file(key(0), path="outputs/m/c0.mp4", sha256="s0", bytes=1, detail="d")


def test_two_runners_claim_disjoint_jobs_from_two_threads(pg_url: str, tmp_path: Path) -> None:
    with open_postgres_ledger(pg_url, tmp_path / "s") as setup:
        setup.register("m", "d", [spec(i) for i in range(300)])
    got: dict[str, list[str]] = {}
    start, finished = threading.Barrier(2), threading.Barrier(2)

    def runner(name: str) -> None:
        with open_postgres_ledger(pg_url, tmp_path / name) as led:
            mine = got.setdefault(led.owner, [])
            start.wait()
            while batch := led.claim_pending(3, led.owner):
                mine.extend(job.key for job in batch)
                for job in batch[:1]:
                    assert led.mark_submitting(job.key) is not None
            # Stay open until both are done: closing gives a runner's claims back, and the other
            # would then (rightly) claim them again.
            finished.wait()

    threads = [threading.Thread(target=runner, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    first, second = got.values()
    assert first and second, "both runners claimed work"
    assert not set(first) & set(second), "no job was handed to both runners"
    assert sorted(first + second) == sorted(key(i) for i in range(300))


def test_two_runners_racing_to_submit_one_job_submit_it_once(pg_url: str, tmp_path: Path) -> None:
    with open_postgres_ledger(pg_url, tmp_path / "s") as setup:
        setup.register("m", "d", [spec(i) for i in range(60)])
    wins: dict[str, int] = {}
    start = threading.Barrier(2)

    def runner(name: str) -> None:
        with open_postgres_ledger(pg_url, tmp_path / name) as led:
            start.wait()
            for i in range(60):
                if led.mark_submitting(key(i)) is not None:
                    wins[key(i)] = wins.get(key(i), 0) + 1

    threads = [threading.Thread(target=runner, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert wins == {key(i): 1 for i in range(60)}
    with open_postgres_ledger(pg_url, tmp_path / "s") as check:
        assert check.spent_usd() == pytest.approx(60 * PRICE) and all(len(check.attempts(key(i))) == 1
                                                                       for i in range(60))


def _lock_waits(watch: Any) -> int:
    """How many sessions of this database wait on a lock (a row's, an advisory one)."""
    return int(watch.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                             " AND wait_event_type = 'Lock'").fetchone()[0])


def _until(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not done():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.01)


@pytest.mark.parametrize("isolation", ["read committed", "repeatable read", "serializable"])
def test_two_runners_given_one_task_id_at_once_record_it_once(pg_url: str, tmp_path: Path, isolation: str) -> None:
    """One replayed answer reaches two runners at once, each for its own job. Runner a is stopped inside its
    mark_running transaction, after its holder read and its move (its attempt row is locked by a third session);
    runner b then records the same id. b must wait for a's commit, see a's row and be refused (TaskIdTaken,
    nothing written: it holds its job in doubt). A holder read that is not serialised on the id — the submit
    lane's former key_of_task before mark_running, or a plain read inside it under READ COMMITTED — lets b read
    "no holder" while a has not committed: both jobs would run one task, and b's own paid task be lost. The same
    whatever the database's default isolation: under REPEATABLE READ the read after the lock would see the snapshot
    of the lock's own statement (review, 2026-12-04), so the ledger's transactions are READ COMMITTED always."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as admin:
        database = admin.execute("SELECT current_database()").fetchone()
        assert database is not None
        admin.execute(f"ALTER DATABASE \"{database[0]}\" SET default_transaction_isolation = '{isolation}'")

    with open_postgres_ledger(pg_url, tmp_path / "a") as a, open_postgres_ledger(pg_url, tmp_path / "b") as b:
        a.register("m", "d", [spec(0), spec(1)])
        first, second = a.mark_submitting(key(0)), b.mark_submitting(key(1))
        assert first is not None and second is not None
        outcome: dict[str, bool | TaskIdTaken] = {}

        def record(led: LedgerBackend, i: int, attempt: int) -> None:
            try:
                outcome[key(i)] = led.mark_running(key(i), attempt, task_id="replayed", http_status=200)
            except TaskIdTaken as exc:
                outcome[key(i)] = exc

        with psycopg.connect(pg_url, autocommit=True) as blocker, psycopg.connect(pg_url, autocommit=True) as watch:
            with blocker.transaction():
                blocker.execute("SELECT 1 FROM attempts WHERE id = %s FOR UPDATE", (first,))
                runner_a = threading.Thread(target=record, args=(a, 0, first))
                runner_a.start()
                _until(lambda: _lock_waits(watch) == 1, "runner a to stop at its attempt row")
                runner_b = threading.Thread(target=record, args=(b, 1, second))
                runner_b.start()
                # b waits for the id's lock — or, were its check not serialised, records the id at once
                _until(lambda: key(1) in outcome or _lock_waits(watch) == 2, "runner b to wait or to finish")
                assert key(0) not in outcome  # a is still inside its transaction
            runner_a.join(timeout=30)
            runner_b.join(timeout=30)
        assert outcome[key(0)] is True, outcome
        refused = outcome[key(1)]
        assert isinstance(refused, TaskIdTaken) and refused.holder == key(0), outcome
        job = b.get(key(1))
        assert job is not None and job.state is JobState.SUBMITTING and job.task_id is None
        assert b.mark_in_doubt(key(1), second, http_status=200, reason="TASK_ID_TAKEN", message="held")
        assert [(r.key, r.task_id) for r in a.iter_jobs() if r.task_id] == [(key(0), "replayed")]


def test_runners_racing_with_one_task_id_a_round_record_each_id_once(pg_url: str, tmp_path: Path) -> None:
    """Three runners, 30 rounds: in each, every runner records the round's one id for a job of its own at the same
    moment (a barrier). Exactly one job a round runs the id; the others are refused and write nothing."""
    rounds, names = 30, ("a", "b", "c")
    with open_postgres_ledger(pg_url, tmp_path / "s") as setup:
        setup.register("m", "d", [spec(i) for i in range(rounds * len(names))])
    start = threading.Barrier(len(names))
    won: list[tuple[int, str]] = []
    refused: list[tuple[int, str]] = []
    errors: list[BaseException] = []

    def runner(n: int) -> None:
        try:
            with open_postgres_ledger(pg_url, tmp_path / names[n]) as led:
                mine = [key(r * len(names) + n) for r in range(rounds)]
                attempts = [led.mark_submitting(k) for k in mine]
                for r, (k, attempt) in enumerate(zip(mine, attempts, strict=True)):
                    assert attempt is not None
                    start.wait(timeout=30)
                    try:
                        assert led.mark_running(k, attempt, task_id=f"round-{r}", http_status=200)
                        won.append((r, k))
                    except TaskIdTaken:
                        refused.append((r, k))
        except BaseException as exc:
            errors.append(exc)
            start.abort()

    threads = [threading.Thread(target=runner, args=(n,)) for n in range(len(names))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert sorted(r for r, _ in won) == list(range(rounds)), "each round's id was recorded exactly once"
    assert len(refused) == rounds * (len(names) - 1)
    with open_postgres_ledger(pg_url, tmp_path / "s", readonly=True) as check:
        for r, k in won:
            assert check.key_of_task(f"round-{r}") == k
        assert all(check.get(k).state is JobState.SUBMITTING for _, k in refused)  # type: ignore[union-attr]


def test_two_runners_share_one_budget(pair: tuple[LedgerBackend, LedgerBackend]) -> None:
    a, b = pair
    budget = ("m", 3 * PRICE)
    assert a.mark_submitting(key(0), budget=budget) is not None
    assert b.mark_submitting(key(1), budget=budget) is not None
    assert a.mark_submitting(key(2), budget=budget) is not None
    assert b.mark_submitting(key(3), budget=budget) is None  # a's reservations count too
    assert a.mark_submitting(key(4), budget=budget) is None


def test_runners_racing_to_submit_never_pass_the_budget(pg_url: str, tmp_path: Path) -> None:
    with open_postgres_ledger(pg_url, tmp_path / "s") as setup:
        setup.register("m", "d", [spec(i) for i in range(40)])
    submitted: list[str] = []
    start = threading.Barrier(3)

    def runner(offset: int) -> None:
        with open_postgres_ledger(pg_url, tmp_path / str(offset)) as led:
            start.wait()
            for i in range(40):  # each from its own place in the batch: different jobs at the same moment
                if led.mark_submitting(key((i + offset) % 40), budget=("m", 5 * PRICE)) is not None:
                    submitted.append(key((i + offset) % 40))

    threads = [threading.Thread(target=runner, args=(offset,)) for offset in (0, 13, 26)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(submitted) == 5 == len(set(submitted))
    with open_postgres_ledger(pg_url, tmp_path / "s", readonly=True) as check:
        assert check.spent_usd("m") == pytest.approx(5 * PRICE)


def test_a_job_another_live_runner_holds_is_not_submitted(pair: tuple[LedgerBackend, LedgerBackend]) -> None:
    a, b = pair
    assert [j.key for j in a.claim_pending(1, a.owner)] == [key(0)]
    assert b.mark_submitting(key(0)) is None, "a's claim: b must not pay for it"
    assert b.claim_pending(1, b.owner)[0].key == key(1)
    assert a.mark_submitting(key(1)) is None, "b's claim"
    assert a.mark_submitting(key(0)) is not None
    assert b.recover_expired(b.owner) == 0, "a is live: its POST may be on the wire"
    assert b.get(key(0)).state is JobState.SUBMITTING  # type: ignore[union-attr]


def test_an_expired_runner_s_work_is_taken_over_and_its_late_answer_refused(
    pair: tuple[LedgerBackend, LedgerBackend], clock: Clock
) -> None:
    a, b = pair
    a0, a1 = a.mark_submitting(key(0)), a.mark_submitting(key(1))
    assert a0 is not None and a1 is not None
    assert a.mark_running(key(1), a1, task_id="t1", http_status=200)
    assert a.claim_pending(2, a.owner)
    clock.now += LEASE_TTL_S - 1
    assert b.renew_lease(b.owner) and b.recover_expired(b.owner) == 0, "a's lease still runs"
    clock.now += 2
    assert b.renew_lease(b.owner)
    assert b.recover_expired(b.owner) == 1
    assert b.get(key(0)).state is JobState.IN_DOUBT  # type: ignore[union-attr]
    assert b.get(key(1)).owner == b.owner  # type: ignore[union-attr]
    assert [j.key for j in b.claim_pending(2, b.owner)] == [key(2), key(3)], "a's claims lapsed"
    assert a.renew_lease(a.owner) is False, "a must stop submitting: its work was taken over"
    assert a.mark_running(key(0), a0, task_id="late", http_status=200) is False


def test_a_closed_runner_s_claims_and_lease_are_given_back(pair: tuple[LedgerBackend, LedgerBackend]) -> None:
    a, b = pair
    assert a.claim_pending(2, a.owner)
    attempt = a.mark_submitting(key(0))
    assert attempt is not None and a.mark_running(key(0), attempt, task_id="t0", http_status=200)
    a.close()
    assert b.recover_expired(b.owner) == 0
    assert b.get(key(0)).owner == b.owner  # type: ignore[union-attr]
    assert [j.key for j in b.claim_pending(1, b.owner)] == [key(1)]


# ------------------------------------------------------ review: reject, regenerate, restore


def done(ledger: LedgerBackend, i: int, task: str = "t") -> None:
    running(ledger, i, task)
    assert ledger.mark_succeeded(key(i), video_url=f"https://v/{task}{i}", url_expires_at=9e9, debug={})
    assert ledger.mark_done(key(i), path=f"outputs/m/c{i}.mp4", sha256="a" * 64, bytes=10)


def test_reject_marks_a_done_job_and_keeps_its_record(ledger: LedgerBackend) -> None:
    done(ledger, 0)
    assert not ledger.reject(key(1), reason="not done")  # pending: refused, nothing written
    assert ledger.rejections(key(1)) == []
    assert ledger.reject(key(0), reason="blurry")
    assert not ledger.reject(key(0), reason="twice")  # already rejected
    job = ledger.get(key(0))
    assert job is not None and job.state is JobState.DONE and job.review == "rejected" and job.sample == 0
    [rejection] = ledger.rejections(key(0))
    assert (rejection.reason, rejection.sample, rejection.path, rejection.task_id) == (
        "blurry", 0, "outputs/m/c0.mp4", "t0")
    assert rejection.outcome is None and rejection.kept_path is None
    assert ledger.accept(key(0))  # withdraws the open rejection
    job = ledger.get(key(0))
    assert job is not None and job.review == "accepted"
    assert [r.outcome for r in ledger.rejections(key(0))] == ["withdrawn"]
    assert not ledger.accept(key(1))
    with pytest.raises(LedgerError):
        ledger.reject("nope", reason="x")


def test_a_rejected_job_is_requeued_as_a_fresh_sample_and_paid_again(ledger: LedgerBackend) -> None:
    done(ledger, 0)
    assert not ledger.requeue_rejected(key(0), kept_path="outputs/m/_rejected/x.0.mp4")  # not rejected
    assert ledger.reject(key(0), reason="hands")
    assert ledger.requeue_rejected(key(0), kept_path=f"outputs/m/_rejected/{key(0)}.0.mp4")
    assert not ledger.requeue_rejected(key(0), kept_path="again")  # pending now: refused
    job = ledger.get(key(0), "m")
    assert job is not None
    assert (job.state, job.sample, job.review, job.path, job.task_id, job.sha256) == (
        JobState.PENDING, 1, None, None, None, None)
    assert job.key == key(0) and job.output == "c0.mp4"
    [rejection] = ledger.rejections(key(0))
    assert rejection.outcome == "regenerated" and rejection.kept_path == f"outputs/m/_rejected/{key(0)}.0.mp4"
    assert ledger.spent_usd("m") == pytest.approx(PRICE)  # the first sample's spend stays counted
    assert ledger.estimate_usd("m", [JobState.PENDING]) == pytest.approx(6 * PRICE)
    done(ledger, 0, task="u")  # the regeneration goes through the same write-ahead submit
    assert ledger.spent_usd("m") == pytest.approx(2 * PRICE)
    assert [a.task_id for a in ledger.attempts(key(0)) if a.kind == "submit"] == ["t0", "u0"]
    job = ledger.get(key(0))
    assert job is not None and job.sample == 1 and job.review is None
    assert ledger.reject(key(0), reason="still bad")
    assert [r.sample for r in ledger.rejections(key(0))] == [0, 1]


def test_restore_file_records_a_redownloaded_video(ledger: LedgerBackend) -> None:
    done(ledger, 0)
    assert not ledger.restore_file(key(1), path="outputs/m/c1.mp4", sha256="b" * 64, bytes=3)
    assert ledger.restore_file(key(0), path="outputs/m/c0.x.mp4", sha256="b" * 64, bytes=11)
    job = ledger.get(key(0))
    assert job is not None and (job.state, job.path, job.sha256, job.bytes) == (
        JobState.DONE, "outputs/m/c0.x.mp4", "b" * 64, 11)


# ------------------------------------------------------------------ spend and run history (issue 12, item 2)


def test_run_history_counts_each_runs_paid_submits_spend_and_finished_jobs(ledger: LedgerBackend, clock: Clock) -> None:
    ledger.register("other", "d1", [spec(9, price=1.0)])
    first = ledger.start_run(argv=["runner", "run", "m.yaml"])
    refused = ledger.mark_submitting(key(0))
    assert refused is not None
    ledger.mark_refused(key(0), refused, http_status=429, reason=None, message="slow", permanent=False)
    running(ledger, 0)
    running(ledger, 1)
    running(ledger, 9)
    clock.now += 10
    assert ledger.mark_failed(key(1), reason="boom")
    ledger.finish_run(first, exit_code=3, counts={})
    clock.now += 100
    second = ledger.start_run(argv=["runner", "collect"])
    clock.now += 5
    assert ledger.mark_succeeded(key(0), video_url="https://x/v", url_expires_at=None, debug={})
    assert ledger.mark_done(key(0), path="outputs/m/c0.mp4", sha256="s", bytes=1)
    newest, oldest = ledger.run_history("m")
    assert (newest.run.id, newest.submitted, newest.estimated_usd, newest.done, newest.failed) == (second, 0, 0.0, 1, 0)
    assert (oldest.run.id, oldest.submitted, oldest.estimated_usd, oldest.done, oldest.failed) == (
        first, 2, round(2 * PRICE, 9), 0, 1), "the refused submit cost nothing"
    everything = ledger.run_history(limit=1)
    assert len(everything) == 1 and everything[0].run.id == second
    assert ledger.run_history()[1].submitted == 3 and ledger.run_history()[1].estimated_usd == round(2 * PRICE + 1, 9)
    assert ledger.spend_by_model("m") == {"kling-v3.0-pro-t2v": round(2 * PRICE, 9)}
    assert ledger.spend_by_model() == {"kling-v3.0-pro-t2v": round(2 * PRICE + 1, 9)}


# ------------------------------------------------------ retry by key, review counts (issue 12, round 4)


def test_reset_with_keys_moves_only_the_named_jobs_in_that_state(ledger: LedgerBackend) -> None:
    for i in (0, 1, 2):
        running(ledger, i)
        assert ledger.mark_failed(key(i), reason="TASK_FAILED: content policy")
    attempt = ledger.mark_submitting(key(3))
    assert attempt is not None
    assert ledger.mark_in_doubt(key(3), attempt, http_status=None, reason=None, message="timeout")
    ledger.register("other", "d1", [spec(1)])
    assert ledger.reset("other", JobState.FAILED, keys=[key(0)]) == 0  # not a job of "other"
    assert ledger.reset("m", JobState.FAILED, keys=[key(0), key(2), key(3), key(4), key(0)]) == 2
    assert [state(ledger, i) for i in range(5)] == [
        JobState.PENDING, JobState.FAILED, JobState.PENDING, JobState.IN_DOUBT, JobState.PENDING]
    job = ledger.get(key(0))
    assert job is not None and job.task_id is None and job.error is None
    assert ledger.reset(None, JobState.IN_DOUBT, keys=[key(3)]) == 1
    assert state(ledger, 3) is JobState.PENDING
    assert ledger.reset("m", JobState.FAILED, keys=[]) == 0
    assert state(ledger, 1) is JobState.FAILED
    with pytest.raises(LedgerError):
        ledger.reset("m", JobState.DONE, keys=[key(1)])


def test_review_counts_count_the_decisions_on_done_jobs(ledger: LedgerBackend) -> None:
    ledger.register("other", "d1", [spec(9)])
    assert ledger.review_counts("m") == {"rejected": 0, "accepted": 0}
    for i in (0, 1, 2):
        done(ledger, i)
    assert ledger.reject(key(0), reason="hands") and ledger.reject(key(1), reason="blur")
    assert ledger.accept(key(2))
    assert ledger.review_counts("m") == {"rejected": 2, "accepted": 1}
    assert ledger.review_counts() == {"rejected": 2, "accepted": 1}
    assert ledger.review_counts("other") == {"rejected": 0, "accepted": 0}
    assert ledger.requeue_rejected(key(0), kept_path="aside.mp4")  # regenerated: no longer a rejected clip
    assert ledger.review_counts("m") == {"rejected": 1, "accepted": 1}


def test_done_files_and_recorded_paths_stream_what_a_check_of_the_stored_videos_reads(ledger: LedgerBackend) -> None:
    """``done_files``: each done job of a manifest (None: all) with its URL's expiry; ``recorded_paths``: every path
    recorded, in path order, a path another manifest shares given once."""
    done(ledger, 3, "a")
    done(ledger, 1, "b")
    running(ledger, 2, "c")
    ledger.register("other", "o1", [spec(1, output="shared.mp4"), spec(9)])
    assert sorted(ledger.done_files("m")) == [("outputs/m/c1.mp4", 9e9), ("outputs/m/c3.mp4", 9e9)]
    assert list(ledger.done_files("other")) == [("outputs/m/c1.mp4", 9e9)]
    assert sorted(ledger.done_files(None)) == [("outputs/m/c1.mp4", 9e9), ("outputs/m/c3.mp4", 9e9)]
    assert list(ledger.recorded_paths()) == ["outputs/m/c1.mp4", "outputs/m/c3.mp4"]
