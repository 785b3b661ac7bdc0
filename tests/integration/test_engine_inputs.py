"""A local input file that changed since the plan: nothing is sent, nothing is written ahead, the job fails.

The submit lane builds each wire body before the write-ahead, resolving local media inputs through
the engine's ``inputs=`` resolver; a resolver that refuses a file (``InputChanged``) fails that job
unsent (``fail_unsent``: pending → failed, no attempt, nothing spent) with a typed event, and the
other jobs run as usual.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.endpoints import api
from runner.endpoints.kling_t2v import PRO_T2V
from runner.endpoints.media import InputChanged, LocalFile
from runner.engine import Engine, StopReason
from runner.engine import events as ev
from runner.jobs import JobSpec, JobState
from runner.manifest.inputs import InputResolver
from runner.testing import make_png

from engine_rig import MODEL, Rig, engine_config, guard, make_jobs

pytestmark = pytest.mark.anyio

REF = {"file": "stills/fox.png", "sha256": "ab" * 32, "size": 10, "kind": "image", "mime": "image/png"}


class ChangedFiles:
    """A resolver whose every local file no longer has its planned bytes."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def wire_value(self, ref: LocalFile) -> str:
        self.asked.append(ref.file)
        raise InputChanged(f"input {ref.file} changed since the plan (sha256 no longer {ref.sha256[:12]}…);"
                           " restore it or plan again")


class Events:
    def __init__(self) -> None:
        self.seen: list[ev.Event] = []

    def emit(self, event: ev.Event, /) -> None:
        self.seen.append(event)


@pytest.fixture
def image_input(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Kling v3.0 Pro T2V with an ``image`` media field (as the I2V endpoints have)."""
    monkeypatch.setitem(api._SPECS, PRO_T2V.slug, dataclasses.replace(PRO_T2V, media_fields={"image": "image"}))
    yield


async def test_a_changed_input_fails_its_job_unsent_and_the_others_run(
    rig_factory: Callable[..., Rig], image_input: None
) -> None:
    rig = rig_factory()
    body: dict[str, Any] = {"prompt": "a fox", "duration": 5, "cfg_scale": 0.5, "aspect_ratio": "16:9",
                            "sound": False, "image": REF}
    with_image = JobSpec.build(model=MODEL, request=body, vars={}, repeat=1, output="fox.mp4", estimated_usd=0.56)
    rig.plan([*make_jobs(2), with_image])
    resolver, events = ChangedFiles(), Events()
    engine = Engine(rig.ledger, rig.client, engine_config(manifest="t", concurrency=4, rpm=None, poll_rpm=None,
                                                          poll_interval=0.02, poll_max_interval=0.1),
                    reporter=events, inputs=resolver)
    with guard(30):
        result = await engine.run()
    assert resolver.asked == ["stills/fox.png"]
    job = rig.ledger.get(with_image.key)
    assert job is not None and job.state is JobState.FAILED
    assert job.error is not None and "stills/fox.png changed since the plan" in job.error
    assert rig.ledger.attempts(with_image.key) == [], "a write-ahead or a POST happened for an unsent job"
    assert len(rig.sim.task_ids()) == 2, "the job with the changed input reached the provider"
    assert {state: n for state, n in rig.counts().items() if n} == {JobState.DONE: 2, JobState.FAILED: 1}
    assert rig.ledger.spent_usd("t") == pytest.approx(2 * 0.56)
    rejected = [e for e in events.seen if isinstance(e, ev.InputRejected)]
    assert [e.key for e in rejected] == [with_image.key] and "fox.png" in rejected[0].reason
    assert result.reason is StopReason.COMPLETE and result.failed == 1 and result.done == 2


# ------------------------------------------------ a real resolver over local files

I2V = "kling-v3.0-std-i2v"


def image_job(folder: Path, data: bytes) -> JobSpec:
    ref = {"file": "frames/a.png", "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "kind": "image",
           "mime": "image/png"}
    body = {"prompt": "push in", "image": ref, "duration": 5, "cfg_scale": 0.5, "sound": False}
    return JobSpec(key="c0ffee" * 3 + "00", model=I2V, request=body, vars={}, repeat=1, output="a.mp4",
                   estimated_usd=0.42)


async def test_an_input_edited_after_planning_fails_unsent(rig_factory: Callable[..., Rig], tmp_path: Path) -> None:
    rig = rig_factory()
    (tmp_path / "frames").mkdir()
    planned = make_png(640, 360, seed=1)
    (tmp_path / "frames" / "a.png").write_bytes(planned)
    job = image_job(tmp_path, planned)
    rig.plan([job])
    (tmp_path / "frames" / "a.png").write_bytes(make_png(640, 360, seed=2))  # edited after the plan
    config = engine_config(manifest="t", concurrency=2, rpm=None, poll_rpm=None, poll_interval=0.02,
                           poll_max_interval=0.1)
    engine = Engine(rig.ledger, rig.client, config, inputs=InputResolver(tmp_path))
    with guard(30):
        await engine.run()
    assert rig.sim.stats()["accepted_total"] == 0
    stored = rig.ledger.get(job.key)
    assert stored is not None and stored.state is JobState.FAILED and stored.attempts == 0
    assert stored.error is not None and "frames/a.png" in stored.error


async def test_an_unchanged_input_is_sent_inline_and_accepted(rig_factory: Callable[..., Rig], tmp_path: Path) -> None:
    rig = rig_factory()
    (tmp_path / "frames").mkdir()
    planned = make_png(640, 360, seed=1)
    (tmp_path / "frames" / "a.png").write_bytes(planned)
    job = image_job(tmp_path, planned)
    rig.plan([job])
    config = engine_config(manifest="t", concurrency=2, rpm=None, poll_rpm=None, poll_interval=0.02,
                           poll_max_interval=0.1)
    engine = Engine(rig.ledger, rig.client, config, inputs=InputResolver(tmp_path))
    with guard(30):
        await engine.run()
    assert rig.sim.stats()["accepted_total"] == 1
    stored = rig.ledger.get(job.key)
    assert stored is not None and stored.state is JobState.DONE
    assert stored.request["image"]["file"] == "frames/a.png"  # the ledger kept the reference
