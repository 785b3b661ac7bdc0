"""An accepted task whose id the ledger cannot record (a full disk) is kept: retried, journalled, recovered."""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from runner.client.submit import TASK_TAKEN
from runner.engine.admission import AdoptCommands
from runner.engine.landing import not_sent
from runner.errors import JobMovedOn, LedgerError, RunnerError, TaskIdTaken
from runner.jobs import JobState
from runner.ledger import open_ledger
from runner.ledger.rescue import RESCUE_NAME, pending_entries
from runner.service.outcome import EXIT_IN_DOUBT, exit_code_for

from engine_rig import Rig, make_jobs

pytestmark = pytest.mark.anyio


QUICK = (0.0, 0.0, 0.0)  # the Policy's record_retry_delays, without the waits
SHARED = ("--ledger", '"$RUNNER_LEDGER_URL"')  # a PostgreSQL run's ledger flags (runner.service.hints.ledger_words)
NOTE = "the ledger URL's password is left out of these commands"


async def test_ledger_full_when_the_answer_arrives_recovers_as_running(rig_factory: Callable[..., Rig],
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """mark_running fails every time: the id goes to the rescue journal; the next start records it running."""
    rig = rig_factory()
    jobs = make_jobs(1)
    rig.plan(jobs)
    calls = 0

    def full(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        raise LedgerError("disk full while writing ledger.db")

    rig.ledger.mark_running = full  # type: ignore[method-assign]
    caplog.set_level(logging.WARNING)
    with pytest.raises(RunnerError) as caught:
        await rig.run(record_retry_delays=QUICK)
    (task_id,) = rig.sim.task_ids()
    assert calls == 1 + len(QUICK), "the write was not retried"
    assert task_id in str(caught.value) and RESCUE_NAME in str(caught.value)
    lines = [json.loads(line) for line in (rig.state / RESCUE_NAME).read_text().splitlines() if line]  # blank: between lines
    assert lines == [{"key": jobs[0].key, "task_id": task_id, "attempt": lines[0]["attempt"], "at": lines[0]["at"]}]
    rig.ledger.close()

    with open_ledger(rig.state) as ledger:  # the next start
        assert ledger.recover_expired(ledger.owner) == 0, "a job whose id is in the journal was put in doubt"
        job = ledger.get(jobs[0].key)
        assert job is not None and job.state is JobState.RUNNING and job.task_id == task_id
        assert ledger.recover_expired(ledger.owner) == 0  # the journal line is consumed, applying again changes nothing
    again = rig_factory(state=rig.state)
    again.sim = rig.sim
    again.client = rig.client
    await again.run()
    assert again.counts()[JobState.DONE] == 1
    assert rig.sim.stats()["accepted_total"] == 1


async def test_a_write_that_fails_once_is_retried_and_the_run_goes_on(rig_factory: Callable[..., Rig]) -> None:
    """mark_running fails on the first try only: the retry records it; every job is done, none in doubt."""
    rig = rig_factory()
    rig.plan(make_jobs(3))
    original = rig.ledger.mark_running
    failed: list[str] = []

    def flaky(key: str, *args: Any, **kwargs: Any) -> None:
        if not failed:
            failed.append(key)
            raise LedgerError("disk full while writing ledger.db")
        original(key, *args, **kwargs)

    rig.ledger.mark_running = flaky  # type: ignore[method-assign]
    result = await rig.run(record_retry_delays=QUICK)
    assert result.error is None
    assert rig.counts()[JobState.DONE] == 3 and rig.counts()[JobState.IN_DOUBT] == 0
    assert rig.sim.stats()["accepted_total"] == 3


async def test_journal_unwritable_leaves_the_log_line(rig_factory: Callable[..., Rig],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """When the rescue journal cannot be written either, the task id is still in the log."""
    rig = rig_factory()
    rig.plan(make_jobs(1))
    (rig.state / RESCUE_NAME).mkdir()  # a folder where the journal should be: writing it fails

    def full(*args: Any, **kwargs: Any) -> None:
        raise LedgerError("disk full while writing ledger.db")

    rig.ledger.mark_running = full  # type: ignore[method-assign]
    caplog.set_level(logging.WARNING)
    with pytest.raises(RunnerError):
        await rig.run(record_retry_delays=QUICK)
    (task_id,) = rig.sim.task_ids()
    assert task_id in caplog.text and "rescue journal" in caplog.text


async def test_an_id_another_runner_recorded_while_the_write_was_retried_is_held_in_doubt(
        rig_factory: Callable[..., Rig]) -> None:
    """The first write of an accepted id fails (journalled); by the retry another runner on the ledger has recorded
    that id for its own job (a replayed answer): mark_running refuses (TaskIdTaken), and this job is held in doubt,
    TASK_ID_TAKEN, as on a first try — never running on the other job's task, never a failed run."""
    rig = rig_factory()
    jobs = make_jobs(1)
    rig.plan(jobs)
    calls = 0

    def full_then_taken(key: str, attempt: int, *, task_id: str, http_status: int | None) -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise LedgerError("disk full while writing ledger.db")
        raise TaskIdTaken(task_id, "0" * 20)

    rig.ledger.mark_running = full_then_taken  # type: ignore[method-assign]
    await rig.run(record_retry_delays=QUICK)
    (task_id,) = rig.sim.task_ids()
    job = rig.ledger.get(jobs[0].key)
    assert calls == 2 and job is not None and job.state is JobState.IN_DOUBT and job.task_id is None
    assert job.reason == TASK_TAKEN and task_id in (job.error or ""), job.error
    assert (rig.state / RESCUE_NAME).exists()  # journalled on the first failure: the replay finds it held, attaches nothing


async def test_two_answers_naming_one_task_id_leave_the_second_job_in_doubt_without_a_traceback(
    rig_factory: Callable[..., Rig], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A provider answering two submits with the same task id: the second job is held in doubt (its own task, if
    any, is unknown) — and it was also handed to the poller, which then died with a traceback under the run's end
    (hostile-data sweep, 2026-12-05: exit 1 every time)."""
    import dataclasses

    rig = rig_factory()
    rig.plan(make_jobs(2))
    real = rig.client.submit
    first: list[str] = []

    async def replayed(model: str, body: dict[str, Any]) -> Any:
        result = await real(model, body)
        if result.task_id is not None:
            first.append(result.task_id)
            result = dataclasses.replace(result, task_id=first[0])
        return result

    monkeypatch.setattr(rig.client, "submit", replayed)
    import runner.engine.submit as lane

    watched: list[str] = []
    real_put = lane.put

    async def put(stream: Any, item: Any) -> None:
        watched.append(item.key)
        await real_put(stream, item)

    monkeypatch.setattr(lane, "put", put)
    await rig.run(concurrency=1)
    counts = rig.counts()
    assert counts[JobState.DONE] == 1 and counts[JobState.IN_DOUBT] == 1, counts
    doubted = next(job.key for job in rig.ledger.iter_jobs("t", states=[JobState.IN_DOUBT]))
    assert doubted not in watched, "a job in doubt was handed to the poller with another job's task id"


async def test_an_answer_for_a_job_another_runner_took_over_is_journalled_and_said_plainly(
    rig_factory: Callable[..., Rig]
) -> None:
    """The multi-host sweep: runner A was stopped (SIGSTOP) past its lease with a POST on the wire; runner B held the
    job in doubt; A's answer then could not land. A said "this is a bug in runner … free space and run again" and
    exited 3, which a unit takes as success. Now the run stops with exit 4, saying where the id is and what records
    it; the next start records it, and nothing is paid twice."""
    rig = rig_factory()
    jobs = make_jobs(1)
    rig.plan(jobs)
    real = rig.ledger.mark_running

    def taken_over(key: str, attempt: int, **kwargs: Any) -> bool:
        rig.ledger.mark_in_doubt(key, attempt, http_status=None, reason="LEASE_EXPIRED", message="another runner")
        return real(key, attempt, **kwargs)

    rig.ledger.mark_running = taken_over  # type: ignore[method-assign]
    with pytest.raises(JobMovedOn) as caught:  # the run's ledger flags, as a shared ledger's run is given them
        await rig.run(record_retry_delays=QUICK, ledger_words=SHARED, ledger_note=NOTE)
    (task_id,) = rig.sim.task_ids()
    said = str(caught.value)
    assert exit_code_for(caught.value) == EXIT_IN_DOUBT
    assert "another runner took it over" in said and RESCUE_NAME in said and task_id in said, said
    # pasted without --ledger, the commands opened the SQLite ledger under ./state, which knows nothing of the job
    assert f'runner adopt {jobs[0].key} {task_id} --ledger "$RUNNER_LEDGER_URL"`' in said, said
    assert f'runner show {jobs[0].key} --ledger "$RUNNER_LEDGER_URL"`' in said and NOTE in said, said
    assert "free space" not in said, said
    assert rig.ledger.get(jobs[0].key).state is JobState.IN_DOUBT  # type: ignore[union-attr]
    rig.ledger.close()

    with open_ledger(rig.state) as ledger:  # the next start records the journalled id
        ledger.recover_expired(ledger.owner)
        job = ledger.get(jobs[0].key)
        assert job is not None and (job.state, job.task_id) == (JobState.RUNNING, task_id), job
    again = rig_factory(state=rig.state)  # and follows the task
    again.sim = rig.sim
    again.client = rig.client
    await again.run()
    assert again.counts()[JobState.DONE] == 1
    assert rig.sim.stats()["accepted_total"] == 1


async def test_an_answer_for_a_job_taken_over_and_sent_again_is_journalled_and_said_plainly(
    rig_factory: Callable[..., Rig]
) -> None:
    """The crash-window review: the job was taken over, held in doubt, then sent again by the other runner (a new
    open attempt) before this runner's answer arrived. The answer's move found the job submitting again and its
    attempt closed: "this is a bug in runner", exit 3. Now exit 4, the id journalled once, and the next start keeps
    it as another paid task of the job."""
    rig = rig_factory()
    jobs = make_jobs(1)
    rig.plan(jobs)
    real = rig.ledger.mark_running
    once: list[int] = []

    def taken_over_and_sent_again(key: str, attempt: int, **kwargs: Any) -> bool:
        if not once:
            once.append(1)
            rig.ledger.mark_in_doubt(key, attempt, http_status=None, reason="INTERRUPTED", message="another runner")
            rig.ledger.reset("t", JobState.IN_DOUBT)  # `retry --in-doubt` on the other host
            assert rig.ledger.mark_submitting(key) is not None  # its write-ahead: a new open attempt
        return real(key, attempt, **kwargs)

    rig.ledger.mark_running = taken_over_and_sent_again  # type: ignore[method-assign]
    with pytest.raises(JobMovedOn) as caught:
        await rig.run(record_retry_delays=QUICK)
    (task_id,) = rig.sim.task_ids()
    assert exit_code_for(caught.value) == EXIT_IN_DOUBT and "bug in runner)" in str(caught.value)
    assert "moved on" in str(caught.value) and f"runner show {jobs[0].key}" in str(caught.value)
    assert [entry.task_id for entry in pending_entries(rig.state)] == [task_id]


async def test_a_post_not_sent_for_a_job_taken_over_names_the_runs_ledger(rig_factory: Callable[..., Rig]) -> None:
    """A runner stopped past its lease between a write-ahead and its POST does not send it; when another runner took the
    job over meanwhile the run stops, telling the operator to look with `runner show KEY` — on a shared ledger a bare
    one opened the SQLite ledger under ./state, which knows nothing of the job. The command carries the run's flags."""
    rig = rig_factory()
    (job,) = make_jobs(1)
    rig.plan([job])
    first = rig.ledger.mark_submitting(job.key)
    assert first is not None
    rig.ledger.mark_in_doubt(job.key, first, http_status=None, reason="LEASE_EXPIRED", message="another runner")
    error = not_sent(rig.ledger, job.key, first, AdoptCommands(None, SHARED, NOTE))
    assert error is not None and "nothing was paid for that attempt" in str(error), error
    assert f'`runner show {job.key} --ledger "$RUNNER_LEDGER_URL"`' in str(error) and NOTE in str(error), error
    assert rig.sim.stats()["accepted_total"] == 0
