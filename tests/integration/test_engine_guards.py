"""Guards found by review: each scenario once lost a video, hung a run, or risked paying for nothing."""
from __future__ import annotations

import contextlib
import hashlib
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner.errors import LedgerError, RunnerError
from runner.jobs import JobSpec, JobState
from runner.ledger import open_ledger, rescue
from runner.simulator.transport import sim_transport

from engine_rig import Rig, make_jobs

pytestmark = pytest.mark.anyio


def mock(task_result: Callable[[int], httpx.Response]) -> httpx.MockTransport:
    """POST -> a fresh task id; GET task-result -> task_result(n-th poll)."""
    state = {"posts": 0, "polls": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            state["posts"] += 1
            return httpx.Response(200, json={"task_id": f"task-{state['posts']}"})
        state["polls"] += 1
        return task_result(state["polls"])

    return httpx.MockTransport(handler)


async def test_budget_stop_still_collects_what_was_paid(rig_factory: Callable[..., Rig]) -> None:
    """`run --budget` stops submitting, but still polls and downloads the tasks it paid for."""
    rig = rig_factory()
    rig.plan(make_jobs(10))
    await rig.run(budget_usd=2.0)
    await rig.run(budget_usd=2.0)  # the cron re-run with the same flags
    counts = rig.counts()
    assert rig.sim.stats()["accepted_total"] == 3
    assert counts[JobState.DONE] == 3, {str(k): v for k, v in counts.items() if v}


async def test_single_task_not_found_does_not_lose_a_paid_video(rig_factory: Callable[..., Rig], tmp_path: Path) -> None:
    """Collecting against another provider (e.g. `collect --simulate` on a real state dir) must not mark real tasks lost."""
    real = rig_factory()
    real.plan(make_jobs(3))
    await real.run(collect=False)  # `runner submit`: 3 paid tasks, running
    assert real.counts()[JobState.RUNNING] == 3
    real.ledger.close()
    other = rig_factory(state=real.state)  # a second, empty provider (the built-in simulator)
    await other.run(manifest=None, submit=False)  # `runner collect --simulate`
    assert other.counts()[JobState.LOST] == 0, "paid tasks marked lost on one TASK_NOT_FOUND"


async def test_edited_manifest_never_overwrites_a_stored_video(rig_factory: Callable[..., Rig]) -> None:
    """A new job that reuses an output name must not overwrite the video of a job already done."""
    rig = rig_factory()
    first = make_jobs(1, prompt="a red fox {i}")
    rig.plan(first)
    await rig.run()
    old = rig.ledger.get(first[0].key)
    assert old is not None and old.state is JobState.DONE and old.path
    rig.plan(make_jobs(1, prompt="a red fox, at dusk {i}"))  # the user edits the prompt; same output name
    await rig.run()
    data = (rig.state / old.path).read_bytes()
    assert hashlib.sha256(data).hexdigest() == old.sha256, f"{old.path} of done job {old.key[:8]} was overwritten"


async def test_systematic_ambiguity_stops_the_run(rig_factory: Callable[..., Rig]) -> None:
    """When every POST's answer is lost, the run stops after a few instead of paying for the whole batch blind."""
    rig = rig_factory(p_drop=1.0)
    rig.plan(make_jobs(20))
    await rig.run(concurrency=2)
    assert rig.sim.stats()["accepted_total"] <= 3, f"{rig.sim.stats()['accepted_total']} paid tasks, all in doubt"


async def test_task_id_survives_a_failed_ledger_write(rig_factory: Callable[..., Rig], caplog: pytest.LogCaptureFixture) -> None:
    """If the ledger cannot record an accepted task, its task_id is at least logged for the operator."""
    rig = rig_factory()
    rig.plan(make_jobs(1))

    def broken(*args: Any, **kwargs: Any) -> None:
        raise LedgerError("disk full while writing ledger.db")

    rig.ledger.mark_running = broken  # type: ignore[method-assign]
    caplog.set_level(logging.DEBUG)
    with pytest.raises(RunnerError):
        await rig.run()
    (task_id,) = rig.sim.task_ids()
    assert task_id in caplog.text, "a paid task's only link (its task_id) was dropped"


async def test_succeeded_without_video_does_not_hang(rig_factory: Callable[..., Rig]) -> None:
    """A task that says SUCCEED but lists no video is given up for this run, not polled forever."""
    body = {"task": {"task_id": "x", "status": "TASK_STATUS_SUCCEED"}, "videos": []}
    rig = rig_factory(transport=mock(lambda n: httpx.Response(200, json=body)))
    rig.plan(make_jobs(1))
    await rig.run(timeout=10, poll_interval=0.001, poll_max_interval=0.002)


async def test_given_up_polls_do_not_block_the_run_forever(rig_factory: Callable[..., Rig],
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """When polls of every outstanding task are given up, the run ends instead of waiting for capacity — and it
    says why, once well before giving up, and when it does (hostile-data sweep, 2026-12-05: two minutes of silence
    at the default verbosity, then a line that did not say what failed)."""
    rig = rig_factory(transport=mock(lambda n: httpx.Response(503, text="<html>busy</html>")),
                      client_kw={"get_attempts": 1})
    rig.plan(make_jobs(2))
    await rig.run(timeout=10, concurrency=1, poll_interval=0.001, poll_max_interval=0.002)
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "task-1" in r.getMessage()]
    assert any("keeps failing" in line and "HTTP 503" in line for line in said), said
    assert any("giving up polling" in line and "HTTP 503" in line for line in said), said


def test_missing_source_is_a_runner_error(tmp_path: Path) -> None:
    """A done video deleted by hand makes planning a sharing manifest fail with a clear error, not a traceback."""
    from runner.engine import materialise_targets
    from runner.ledger import open_ledger

    with open_ledger(tmp_path) as ledger:
        jobs = make_jobs(1)
        ledger.register("t", "d1", jobs)
        key = jobs[0].key
        attempt = ledger.mark_submitting(key)
        ledger.mark_running(key, attempt, task_id="x", http_status=200)
        ledger.mark_succeeded(key, video_url="http://x", url_expires_at=None, debug={})
        ledger.mark_done(key, path="outputs/t/clip-0.mp4", sha256="0" * 64, bytes=1)  # file never/no longer there
        ledger.register("u", "d2", [JobSpec.build(model=jobs[0].model, request=jobs[0].request, vars={}, repeat=1,
                                                  output="late.mp4", estimated_usd=0.56)])
        with contextlib.suppress(RunnerError):  # a clear message is fine
            materialise_targets(ledger, "u")



class _Middlebox(httpx.AsyncBaseTransport):
    """Something between the runner and the simulator (:func:`_behind` puts it there)."""

    inner: httpx.AsyncBaseTransport | None = None  # the simulator's transport, once the rig has made it


def _behind(rig_factory: Callable[..., Rig], box: _Middlebox, **config: Any) -> Rig:
    """A rig whose client reaches its simulator through ``box``."""
    rig = rig_factory(transport=box, **config)
    box.inner = sim_transport(rig.sim)
    return rig


class _ReplayedSubmit(_Middlebox):
    """The simulator behind a middlebox that answers every POST with the first POST's answer (a cache that should
    never have kept it): each POST reaches the provider and may be billed, but every job hears the same task id."""

    def __init__(self) -> None:
        self.first: bytes | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert self.inner is not None
        response = await self.inner.handle_async_request(request)
        if request.method != "POST" or response.status_code != 200:
            return response
        body = await response.aread()
        self.first = self.first or body
        return httpx.Response(200, content=self.first, headers={"content-type": "application/json"}, request=request)


async def test_a_task_id_another_job_holds_is_never_taken_for_this_job(rig_factory: Callable[..., Rig]) -> None:
    """The provider (or a middlebox) answers a POST with a task id that another job already holds: the job is held
    in doubt (its own task may exist and be billed), never recorded as running with the other job's task, whose
    video would then be stored under this job's name as if it were its own."""
    rig = _behind(rig_factory, _ReplayedSubmit())
    jobs = make_jobs(3, prompt="animal {i}")
    rig.plan(jobs)
    await rig.run(concurrency=1)
    records = [rig.ledger.get(job.key) for job in jobs]
    states = [r.state if r is not None else None for r in records]
    assert states == [JobState.DONE, JobState.IN_DOUBT, JobState.IN_DOUBT], states
    assert rig.sim.stats()["accepted_total"] == 3  # three POSTs reached the provider: three tasks may be billed
    first_task = records[0].task_id if records[0] is not None else None
    assert first_task is not None
    for record in records[1:]:
        assert record is not None and record.task_id is None
        assert first_task in (record.error or ""), record.error


class _HtmlVideos(_Middlebox):
    """The simulator, but every video URL answers a 200 HTML page (a storage host's login wall)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert self.inner is not None
        if request.method == "GET" and "task-result" not in request.url.path and "balance" not in request.url.path:
            page = b"<html><body>Please sign in</body></html>"
            return httpx.Response(200, stream=httpx.ByteStream(page), request=request,
                                  headers={"content-type": "text/html", "content-length": str(len(page))})
        return await self.inner.handle_async_request(request)


async def test_a_download_given_up_for_the_run_says_why(rig_factory: Callable[..., Rig],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """A video URL that keeps answering something that is not a video: the job stays succeeded for the next run,
    and the line that says so gives the last reason (before, only `runner show` had it)."""
    rig = _behind(rig_factory, _HtmlVideos())
    jobs = make_jobs(1)
    rig.plan(jobs)
    caplog.set_level(logging.ERROR, logger="runner")
    await rig.run(max_fetch_tries=2, download_backoff=0.001)
    record = rig.ledger.get(jobs[0].key)
    assert record is not None and record.state is JobState.SUCCEEDED
    (line,) = [r.getMessage() for r in caplog.records if "could not download its video this run" in r.getMessage()]
    assert "last:" in line and "MP4" in line, line


async def test_a_run_whose_slots_are_all_held_in_doubt_says_why_it_waits(
    rig_factory: Callable[..., Rig], caplog: pytest.LogCaptureFixture,
) -> None:
    """Every answer lost: the in-doubt jobs keep their slots (their tasks may run) and the lane waits for the first
    to free. The operator probe watched 11 minutes of `0.0 submits/min` without a word: the wait is said, once."""
    rig = rig_factory(p_drop=1.0)
    rig.plan(make_jobs(6))
    caplog.set_level(logging.WARNING, logger="runner")
    await rig.run(concurrency=2, in_doubt_hold_s=0.3)
    held = [r.getMessage() for r in caplog.records if "every slot is held by a job in doubt" in r.getMessage()]
    assert len(held) == 1, held
    assert "the next frees in" in held[0]


async def test_a_replayed_answer_naming_this_jobs_own_failed_task_is_in_doubt(rig_factory: Callable[..., Rig]) -> None:
    """The job's first task failed; `runner retry` sends it again and the middlebox replays the first answer (the
    old, failed task). The second POST may have created a billed task: the job is in doubt, not failed again on its
    old task with the new one's id lost (crash-window review, 2026-12-04)."""
    rig = _behind(rig_factory, _ReplayedSubmit(), p_task_failed=1.0)
    jobs = make_jobs(1)
    rig.plan(jobs)
    await rig.run(concurrency=1)
    key = jobs[0].key
    first = rig.ledger.get(key)
    assert first is not None and first.state is JobState.FAILED, first
    assert rig.ledger.retry_failed_job(key)
    await rig.run(concurrency=1)
    assert rig.sim.stats()["accepted_total"] == 2  # two billed tasks
    record = rig.ledger.get(key)
    assert record is not None and record.state is JobState.IN_DOUBT, (record.state if record else None)


async def test_a_regenerated_sample_hearing_its_rejected_task_again_is_in_doubt(rig_factory: Callable[..., Rig]) -> None:
    """A rejected video is regenerated and the middlebox replays sample 0's answer: sample 1 is in doubt, never
    `done` with the rejected video again (its own billed task lost)."""
    import os

    rig = _behind(rig_factory, _ReplayedSubmit())
    jobs = make_jobs(1)
    rig.plan(jobs)
    await rig.run(concurrency=1)
    key = jobs[0].key
    done = rig.ledger.get(key)
    assert done is not None and done.state is JobState.DONE and done.path is not None
    assert rig.ledger.reject(key, reason="bad")
    kept = "outputs/t/_rejected/x.mp4"
    os.makedirs(rig.state / "outputs/t/_rejected", exist_ok=True)
    os.rename(rig.state / done.path, rig.state / kept)
    assert rig.ledger.requeue_rejected(key, kept_path=kept)
    await rig.run(concurrency=1)
    assert rig.sim.stats()["accepted_total"] == 2
    record = rig.ledger.get(key)
    assert record is not None and record.state is JobState.IN_DOUBT, (record.state if record else None)


async def test_a_holder_check_that_fails_is_a_failed_write_the_id_is_journalled_and_recorded(
    rig_factory: Callable[..., Rig], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The holder of an accepted task id is read inside mark_running's own transaction: when that read fails (an I/O
    error), the write failed — the paid task's id goes to the rescue journal and the retry records it, never dropped."""
    from runner.ledger.sqlite import transitions

    rig = rig_factory()
    jobs = make_jobs(1)
    rig.plan(jobs)
    real, calls = transitions.task_holder, []

    def flaky(db: Any, task_id: str) -> str | None:
        calls.append(task_id)
        if len(calls) == 1:
            raise sqlite3.OperationalError("disk I/O error")
        return real(db, task_id)

    monkeypatch.setattr(transitions, "task_holder", flaky)
    caplog.set_level(logging.WARNING, logger="runner")
    await rig.run(concurrency=1, record_retry_delays=(0.0,))
    record = rig.ledger.get(jobs[0].key)
    (task_id,) = rig.sim.task_ids()
    assert record is not None and record.state is JobState.DONE and record.task_id == task_id
    assert calls == [task_id, task_id] and task_id in caplog.text
    assert [e.task_id for e in rescue.pending_entries(rig.state)] == [task_id]  # kept until the next start applies it


async def test_an_unexpected_error_checking_the_holder_keeps_the_id_in_the_journal(
    rig_factory: Callable[..., Rig], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A PostgreSQL ledger in SQL_ASCII raises a bare UnicodeEncodeError for a non-ASCII task id (psycopg encodes
    the parameter), not a LedgerError: the run stops, the paid task's id logged and journalled, and the next start
    records it."""
    from runner.ledger.sqlite import transitions

    rig = rig_factory()
    jobs = make_jobs(1)
    rig.plan(jobs)
    real = transitions.task_holder

    def unencodable(db: Any, task_id: str) -> str | None:
        raise UnicodeEncodeError("ascii", task_id, 0, 1, "ordinal not in range(128)")

    monkeypatch.setattr(transitions, "task_holder", unencodable)
    caplog.set_level(logging.WARNING, logger="runner")
    with pytest.raises(ExceptionGroup) as caught:  # the lane's task group: the error is not the run's to translate
        await rig.run(concurrency=1)
    assert caught.group_contains(UnicodeEncodeError), caught.value
    (task_id,) = rig.sim.task_ids()
    assert task_id in caplog.text
    assert [e.task_id for e in rescue.pending_entries(rig.state)] == [task_id]
    monkeypatch.setattr(transitions, "task_holder", real)
    rig.ledger.close()
    with open_ledger(rig.state) as ledger:  # the next start
        assert ledger.recover_expired(ledger.owner) == 0
        record = ledger.get(jobs[0].key)
        assert record is not None and record.state is JobState.RUNNING and record.task_id == task_id


async def test_a_lone_surrogate_in_the_providers_words_ends_a_job_not_the_run(rig_factory: Callable[..., Rig]) -> None:
    r"""A refusal or a FAILED reason holding a ``\ud800`` escape (valid JSON, no text UTF-8 can store) crashed the run
    at the ledger write: a refused POST was left `submitting` (in doubt next run), a failed task `running` (every
    later run crashed at its first poll). Each job ends as the answer says, the run with it."""
    envelope = b'{"code": 400, "reason": "ILLEGAL_PROMPT", "message": "flagged \\ud800 prompt"}'
    failed = b'{"task": {"task_id": "task-1", "status": "TASK_STATUS_FAILED", "reason": "moderated \\udfff"}}'

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            first = b'"clip 0"' in request.content
            return httpx.Response(200, json={"task_id": "task-1"}) if first else httpx.Response(400, content=envelope)
        return httpx.Response(200, content=failed)

    rig = rig_factory(transport=httpx.MockTransport(handler))
    rig.plan(make_jobs(2))
    await rig.run(concurrency=1)
    assert rig.counts()[JobState.FAILED] == 2
    reasons = [(record.error or "") + (record.reason or "") for record in rig.ledger.iter_jobs("t")]
    assert any("flagged" in text for text in reasons) and any("moderated" in text for text in reasons), reasons
