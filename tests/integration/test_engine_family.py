"""The engine runs every Kling v3.0 endpoint against the simulator, and copes with its fidelity knobs.

Jobs of all seven endpoints (every body their documented rules accept) run in one batch, each paid
once and stored as the video its request asked for. Without ``extra`` in task results (some of
Novita's own video examples have none) the engine has no provider timings to place first polls
by and falls back to its poll interval; a transient ``TASK_STATUS_UNKNOWN`` is polled through.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from runner import endpoints
from runner.endpoints import probe
from runner.jobs import JobSpec, JobState

from engine_rig import Rig, make_jobs

pytestmark = pytest.mark.anyio


def family_jobs() -> list[JobSpec]:
    jobs = []
    for spec in endpoints.all_specs():
        for n, fields in enumerate(spec.examples.valid):
            request = spec.request_body(fields)
            jobs.append(JobSpec.build(model=spec.slug, request=request, vars={"n": n}, repeat=1,
                                      output=f"{spec.slug}-{n}.mp4", estimated_usd=1.0))
    return jobs


async def test_a_batch_over_every_endpoint_is_paid_once_and_stored(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory()
    jobs = family_jobs()
    rig.plan(jobs)
    await rig.run()
    assert rig.counts()[JobState.DONE] == len(jobs)
    stats = rig.sim.stats()
    assert stats["accepted_total"] == len(jobs)
    by_slug: dict[str, int] = {}
    for job in rig.ledger.iter_jobs("t", states=[JobState.DONE]):
        assert job.task_id is not None and job.path is not None
        assert rig.sim.task(job.task_id).slug == job.model
        by_slug[job.model] = by_slug.get(job.model, 0) + 1
        info = probe.probe((rig.state / job.path).read_bytes())
        if "aspect_ratio" in job.request:
            wide, tall = (int(side) for side in job.request["aspect_ratio"].split(":"))
            assert info.width * tall == info.height * wide
    assert set(by_slug) == set(endpoints.slugs())


async def test_results_without_extra_still_finish_every_job(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory(extra_in_results=False)
    jobs = make_jobs(8)
    rig.plan(jobs)
    await rig.run()
    assert rig.counts()[JobState.DONE] == 8
    assert rig.sim.stats()["accepted_total"] == 8
    for job in rig.ledger.iter_jobs("t", states=[JobState.DONE]):
        assert rig.ledger.debug_info(job.key) == {}


async def test_a_transient_unknown_status_is_polled_through(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory(p_status_unknown=0.5, seed=3)
    rig.plan(make_jobs(6))
    await rig.run()
    assert rig.counts()[JobState.DONE] == 6
    assert rig.sim.stats()["accepted_total"] == 6
    assert rig.sim.stats()["responses"].get("task_result:status_unknown", 0) > 0
