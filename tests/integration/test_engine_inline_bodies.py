"""The engine sends images inline as encoded bodies: the same requests, a changed file still fails unsent.

With the manifest's deferred resolver (what ``runner run`` passes), a body carrying a local file is read, checked
and encoded by the submit lane before the job's write-ahead (``runner.client.body``). The simulator must receive
the very request the eager path sent, and a file changed after the plan must fail its job with nothing written
ahead and nothing sent (``fail_unsent``), as with the eager resolver (``test_engine_inputs.py``).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runner import endpoints
from runner.engine import Engine
from runner.jobs import JobSpec, JobState
from runner.manifest.inputs import InputResolver
from runner.testing import make_png

from engine_rig import Rig, engine_config, guard

pytestmark = pytest.mark.anyio
I2V = "kling-v3.0-std-i2v"


def image_jobs(folder: Path, n: int, *, noise: int = 0) -> list[JobSpec]:
    """``n`` image-to-video jobs, each with its own PNG in ``folder/frames`` (``noise`` random bytes after it)."""
    (folder / "frames").mkdir(exist_ok=True)
    rng, jobs = random.Random(n), []
    for i in range(n):
        png = make_png(640, 360, seed=i) + rng.randbytes(noise)  # bytes after IEND: the probe stops before
        (folder / "frames" / f"{i}.png").write_bytes(png)
        ref = {"file": f"frames/{i}.png", "sha256": hashlib.sha256(png).hexdigest(), "size": len(png),
               "kind": "image", "mime": "image/png"}
        body = {"prompt": f"push in {i}", "image": ref, "duration": 5, "cfg_scale": 0.5, "sound": False}
        jobs.append(JobSpec.build(model=I2V, request=body, vars={"i": i}, repeat=1, output=f"{i}.mp4",
                                  estimated_usd=0.42))
    return jobs


def config(**options: Any) -> Any:
    return engine_config(**{"manifest": "t", "concurrency": 4, "rpm": None, "poll_rpm": None, "poll_interval": 0.02,
                            "poll_max_interval": 0.1, **options})


async def test_inline_images_are_sent_as_the_requests_the_eager_path_sent(
    rig_factory: Callable[..., Rig], tmp_path: Path
) -> None:
    rig = rig_factory()
    jobs = image_jobs(tmp_path, 6, noise=300_000)
    rig.plan(jobs)
    engine = Engine(rig.ledger, rig.client, config(), inputs=InputResolver(tmp_path, deferred=True))
    with guard(30):
        await engine.run()
    assert rig.counts()[JobState.DONE] == 6
    spec, eager = endpoints.get(I2V), InputResolver(tmp_path)
    sent = {rig.sim.task(task_id).body["prompt"]: rig.sim.task(task_id).body for task_id in rig.sim.task_ids()}
    assert sorted(sent) == sorted(job.request["prompt"] for job in jobs)
    for job in jobs:
        assert sent[job.request["prompt"]] == spec.wire_body(job.request, eager)
    assert rig.sim.stats()["accepted_total"] == 6


async def test_a_deferred_input_changed_after_planning_fails_unsent(
    rig_factory: Callable[..., Rig], tmp_path: Path
) -> None:
    rig = rig_factory()
    jobs = image_jobs(tmp_path, 3)
    rig.plan(jobs)
    (tmp_path / "frames" / "1.png").write_bytes(make_png(640, 360, seed=99))  # edited after the plan
    engine = Engine(rig.ledger, rig.client, config(), inputs=InputResolver(tmp_path, deferred=True))
    with guard(30):
        result = await engine.run()
    stored = rig.ledger.get(jobs[1].key)
    assert stored is not None and stored.state is JobState.FAILED and stored.attempts == 0
    assert stored.error is not None and "frames/1.png changed after it was planned" in stored.error
    assert rig.ledger.attempts(jobs[1].key) == [], "a write-ahead or a POST happened for an unsent job"
    assert rig.sim.stats()["accepted_total"] == 2
    assert result.done == 2 and result.failed == 1
