"""Issue 11 item 3: a local input that changed after planning is never sent (the resolver refuses it)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from runner.endpoints.media import InputChanged
from runner.jobs import JobSpec, JobState
from runner.manifest.inputs import InputResolver
from runner.scheduler import Engine, EngineConfig
from runner.testing import make_png

from engine_rig import Rig

MODEL = "kling-v3.0-std-i2v"


def image_job(folder: Path, data: bytes) -> JobSpec:
    ref = {"file": "frames/a.png", "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "kind": "image",
           "mime": "image/png"}
    body = {"prompt": "push in", "image": ref, "duration": 5, "cfg_scale": 0.5, "sound": False}
    return JobSpec(key="c0ffee" * 3 + "00", model=MODEL, request=body, vars={}, repeat=1, output="a.mp4",
                   estimated_usd=0.42)


@pytest.mark.anyio
async def test_an_input_edited_after_planning_is_not_sent(rig_factory: Callable[..., Rig], tmp_path: Path) -> None:
    rig = rig_factory()
    (tmp_path / "frames").mkdir()
    planned = make_png(640, 360, seed=1)
    (tmp_path / "frames" / "a.png").write_bytes(planned)
    job = image_job(tmp_path, planned)
    rig.plan([job])
    (tmp_path / "frames" / "a.png").write_bytes(make_png(640, 360, seed=2))  # edited after the plan
    config = EngineConfig(manifest="t", concurrency=2, rpm=None, poll_rpm=None, poll_interval=0.02,
                          poll_max_interval=0.1)
    engine = Engine(rig.ledger, rig.client, config, inputs=InputResolver(tmp_path))
    with anyio.fail_after(30):
        try:
            await engine.run()
        except InputChanged as exc:  # until the engine turns it into the job's own failure
            assert "frames/a.png" in str(exc)
    assert rig.sim.stats()["accepted_total"] == 0
    stored = rig.ledger.get(job.key)
    assert stored is not None and stored.state in (JobState.PENDING, JobState.FAILED) and stored.attempts == 0


@pytest.mark.anyio
async def test_an_unchanged_input_is_sent_inline_and_accepted(rig_factory: Callable[..., Rig], tmp_path: Path) -> None:
    rig = rig_factory()
    (tmp_path / "frames").mkdir()
    planned = make_png(640, 360, seed=1)
    (tmp_path / "frames" / "a.png").write_bytes(planned)
    job = image_job(tmp_path, planned)
    rig.plan([job])
    config = EngineConfig(manifest="t", concurrency=2, rpm=None, poll_rpm=None, poll_interval=0.02,
                          poll_max_interval=0.1)
    engine = Engine(rig.ledger, rig.client, config, inputs=InputResolver(tmp_path))
    with anyio.fail_after(30):
        await engine.run()
    assert rig.sim.stats()["accepted_total"] == 1
    stored = rig.ledger.get(job.key)
    assert stored is not None and stored.state is JobState.DONE
    assert stored.request["image"]["file"] == "frames/a.png"  # the ledger kept the reference
