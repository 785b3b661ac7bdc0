"""The task-update consumer: duplicate, late and out-of-order updates move nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.engine.updates import Outcome, TaskUpdate, UpdateConsumer
from runner.jobs import JobSpec, JobState
from runner.ledger import MemoryLedger
from runner.novita_wire import TaskStatus

MODEL = "kling-v3.0-pro-t2v"


@pytest.fixture
def ledger(tmp_path: Path) -> MemoryLedger:
    ledger = MemoryLedger(state_dir=tmp_path)
    body = {"prompt": "a fox", "duration": 5, "cfg_scale": 0.5, "aspect_ratio": "16:9", "sound": False}
    job = JobSpec.build(model=MODEL, request=body, vars={}, repeat=1, output="fox.mp4", estimated_usd=0.56)
    ledger.register("t", "digest", [job])
    return ledger


def _key(ledger: MemoryLedger) -> str:
    (job,) = ledger.iter_jobs("t")
    return job.key


def _run_task(ledger: MemoryLedger, task_id: str) -> str:
    key = _key(ledger)
    attempt = ledger.mark_submitting(key)
    assert attempt is not None
    assert ledger.mark_running(key, attempt, task_id=task_id, http_status=200)
    return key


def _update(key: str, task_id: str, status: TaskStatus, *, url: str | None = None, source: str = "poll") -> TaskUpdate:
    return TaskUpdate(task_id=task_id, key=key, status=status, source=source,  # type: ignore[arg-type]
                      received_at=1000.0, video_url=url, video_url_ttl=None if url is None else 3600.0,
                      url_expires_at=None if url is None else 4600.0, reason="boom" if status is TaskStatus.FAILED else None)


def test_a_duplicate_succeed_moves_once(ledger: MemoryLedger) -> None:
    key = _run_task(ledger, "t1")
    consumer = UpdateConsumer(ledger)
    first = consumer.apply(_update(key, "t1", TaskStatus.SUCCEED, url="https://cdn/a.mp4"))
    again = consumer.apply(_update(key, "t1", TaskStatus.SUCCEED, url="https://cdn/b.mp4", source="webhook"))
    assert (first.outcome, first.moved) == (Outcome.SUCCEEDED, True)
    assert (again.outcome, again.moved) == (Outcome.DUPLICATE, False)
    job = ledger.get(key)
    assert job is not None and job.state is JobState.SUCCEEDED and job.video_url == "https://cdn/a.mp4"


def test_a_duplicate_failed_moves_once(ledger: MemoryLedger) -> None:
    key = _run_task(ledger, "t1")
    consumer = UpdateConsumer(ledger)
    assert consumer.apply(_update(key, "t1", TaskStatus.FAILED)).moved
    again = consumer.apply(_update(key, "t1", TaskStatus.FAILED, source="webhook"))
    assert (again.outcome, again.moved) == (Outcome.DUPLICATE, False)


def test_a_late_update_of_an_old_task_of_a_retried_job_moves_nothing(ledger: MemoryLedger) -> None:
    key = _run_task(ledger, "t1")
    consumer = UpdateConsumer(ledger)
    assert consumer.apply(_update(key, "t1", TaskStatus.FAILED)).moved
    assert ledger.retry_failed_job(key)
    pending = consumer.apply(_update(key, "t1", TaskStatus.SUCCEED, url="https://cdn/old.mp4"))
    assert (pending.outcome, pending.moved) == (Outcome.LATE, False)  # the job is pending again
    _run_task(ledger, "t2")
    for status in (TaskStatus.SUCCEED, TaskStatus.FAILED, TaskStatus.PROCESSING):
        late = consumer.apply(_update(key, "t1", status, url="https://cdn/old.mp4"))
        assert (late.outcome, late.moved, late.current) == (Outcome.LATE, False, False)
    job = ledger.get(key)
    assert job is not None and (job.state, job.task_id, job.video_url) == (JobState.RUNNING, "t2", None)
    assert consumer.apply(_update(key, "t2", TaskStatus.SUCCEED, url="https://cdn/new.mp4")).moved


def test_processing_after_succeed_moves_nothing(ledger: MemoryLedger) -> None:
    key = _run_task(ledger, "t1")
    consumer = UpdateConsumer(ledger)
    assert consumer.apply(_update(key, "t1", TaskStatus.PROCESSING)).current
    assert consumer.apply(_update(key, "t1", TaskStatus.SUCCEED, url="https://cdn/a.mp4")).moved
    for status in (TaskStatus.QUEUED, TaskStatus.PROCESSING):
        applied = consumer.apply(_update(key, "t1", status))
        assert (applied.outcome, applied.moved, applied.current) == (Outcome.OUT_OF_ORDER, False, False)
    failed = consumer.apply(_update(key, "t1", TaskStatus.FAILED))
    assert not failed.moved
    job = ledger.get(key)
    assert job is not None and job.state is JobState.SUCCEEDED


def test_updates_for_a_finished_job_move_nothing(ledger: MemoryLedger) -> None:
    key = _run_task(ledger, "t1")
    consumer = UpdateConsumer(ledger)
    assert consumer.apply(_update(key, "t1", TaskStatus.SUCCEED, url="https://cdn/a.mp4")).moved
    assert ledger.mark_done(key, path="outputs/t/fox.mp4", sha256="0" * 64, bytes=10)
    assert consumer.apply(_update(key, "t1", TaskStatus.SUCCEED, url="https://cdn/b.mp4")).outcome is Outcome.DUPLICATE
    assert consumer.apply(_update(key, "t1", TaskStatus.FAILED)).outcome is Outcome.LATE
    assert consumer.apply(_update(key, "t1", TaskStatus.PROCESSING)).outcome is Outcome.OUT_OF_ORDER
    job = ledger.get(key)
    assert job is not None and job.state is JobState.DONE


def test_an_update_for_an_unknown_job_or_task_moves_nothing(ledger: MemoryLedger) -> None:
    key = _run_task(ledger, "t1")
    consumer = UpdateConsumer(ledger)
    assert consumer.apply(_update("0" * 64, "t1", TaskStatus.SUCCEED, url="https://cdn/a.mp4")).outcome is Outcome.LATE
    assert consumer.apply(_update(key, "t9", TaskStatus.SUCCEED, url="https://cdn/a.mp4")).outcome is Outcome.LATE
    assert consumer.apply(_update(key, "t1", TaskStatus.SUCCEED)).outcome is Outcome.NO_VIDEO
    job = ledger.get(key)
    assert job is not None and job.state is JobState.RUNNING
