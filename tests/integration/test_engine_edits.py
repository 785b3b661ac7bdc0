"""The engine after a manifest edit: orphans are collected, never paid for again (issue 9, item 6)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from runner.engine import StopReason
from runner.jobs import JobState

from engine_rig import Rig, make_jobs

pytestmark = pytest.mark.anyio


async def test_a_failed_task_of_a_dropped_job_is_not_retried(rig_factory: Callable[..., Rig]) -> None:
    """`retries` pays again only for jobs a manifest still lists: a dropped job's failed task stays failed."""
    rig = rig_factory(p_task_failed=1.0, task_seconds=0.05)
    rig.plan(make_jobs(2), digest="d1")
    await rig.run(collect=False)  # both submitted, still running
    assert rig.sim.stats()["accepted_total"] == 2
    rig.plan(make_jobs(1, start=10), digest="d2")  # the edit drops both
    rig.sim.configure(p_task_failed=0.0)
    result = await rig.run(retries=3)
    assert result.reason is StopReason.COMPLETE
    assert rig.sim.stats()["accepted_total"] == 3  # the new job only; no retry of the dropped two
    assert rig.counts(None)[JobState.FAILED] == 2


async def test_orphans_are_stored_in_the_orphans_folder(rig_factory: Callable[..., Rig]) -> None:
    """Tasks of jobs an edit dropped while they ran are downloaded to outputs/<manifest>/_orphans/<key>.mp4."""
    rig = rig_factory(task_seconds=0.05)
    jobs = make_jobs(3)
    rig.plan(jobs, digest="d1")
    await rig.run(collect=False)
    rig.plan(jobs[:1], digest="d2")
    await rig.run()
    assert rig.counts(None)[JobState.DONE] == 3
    books = rig.sim.stats()["tasks"]
    for job in jobs[1:]:
        record = rig.ledger.get(job.key)
        assert record is not None and record.task_id is not None
        assert record.path == f"outputs/t/_orphans/{job.key}.mp4"
        data = (rig.state / record.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == books[record.task_id]["video_sha256"]
    assert rig.ledger.orphans("t") == {JobState.DONE: 2}
