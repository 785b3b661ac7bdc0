"""The engine sends images inline as encoded bodies: the same requests, a changed file still fails unsent.

With the manifest's deferred resolver (what ``runner run`` passes), a body carrying a local file is read, checked
and encoded by the submit lane before the job's write-ahead (``runner.client.body``). The simulator must receive
the very request the eager path sent, and a file changed after the plan must fail its job with nothing written
ahead and nothing sent (``fail_unsent``), as with the eager resolver (``test_engine_inputs.py``). And the bytes of
such bodies held at once stay under ``inline_memory``, the wait for room coming before any write-ahead.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from runner import endpoints
from runner.client import NovitaClient, SubmitResult
from runner.endpoints.media import LocalFile
from runner.engine import Engine
from runner.jobs import JobSpec, JobState
from runner.manifest.inputs import InputResolver
from runner.testing import make_png

from engine_rig import Rig, engine_config, guard, loop_wall

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


# ------------------------------------------------------------- the bound on inline bodies in memory


class Counting(NovitaClient):
    """The rig's client, counting the bytes of inline bodies inside ``submit`` at once (not the limiter's count)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.held = self.peak = self.most = self.now = 0
        self.before: Callable[[], Awaitable[None]] | None = None  # awaited in each submit, before the POST

    async def submit(self, model: str, body: dict[str, Any] | bytes) -> SubmitResult:
        size = len(body) if isinstance(body, bytes) else sum(
            len(value) for value in body.values() if isinstance(value, str) and value.startswith("data:"))
        self.held += size
        self.now += 1
        self.peak, self.most = max(self.peak, self.held), max(self.most, self.now)
        try:
            if self.before is not None:
                await self.before()
            return await super().submit(model, body)
        finally:
            self.held -= size
            self.now -= 1


def counting(rig: Rig) -> Counting:
    return Counting(rig.http, base_url="http://sim.test", api_key="test-key")


def body_size(job: JobSpec) -> int:
    """The bytes of ``job``'s encoded body (what the limiter counts)."""
    return len(json.dumps(endpoints.get(I2V).wire_body(job.request, _Sized()), ensure_ascii=False,
                          separators=(",", ":")).encode())


class _Sized:
    def wire_value(self, ref: LocalFile) -> str:
        return "data:image/png;base64," + "A" * (4 * ((ref.size + 2) // 3))


async def test_many_inline_images_at_a_high_concurrency_stay_under_the_cap(
    rig_factory: Callable[..., Rig], tmp_path: Path
) -> None:
    """24 slots, answers held 2 s, 30 images of 300 kB: without a bound all 24 bodies would be in memory at once;
    with a cap of four and a half bodies, at most four are, and every job is paid for once."""
    rig = rig_factory(p_slow=1.0, slow_seconds=2.0)
    jobs = image_jobs(tmp_path, 30, noise=300_000)
    rig.plan(jobs)
    size = max(map(body_size, jobs))
    cap = size * 9 // 2
    client = counting(rig)
    engine = Engine(rig.ledger, client, config(concurrency=24, inline_memory=cap),
                    inputs=InputResolver(tmp_path, deferred=True), wall=loop_wall())
    with guard(60):
        result = await engine.run()
    assert result.done == 30 and rig.sim.stats()["accepted_total"] == 30
    assert all(n == 1 for n in rig.sim.stats()["accepted_by_body"].values()), "a job was paid for twice"
    assert client.peak <= cap, (client.peak, cap)
    assert client.most == 4, "the cap lets four bodies on the wire together, not one at a time nor all 24"


async def test_a_body_larger_than_the_cap_goes_alone(rig_factory: Callable[..., Rig], tmp_path: Path) -> None:
    rig = rig_factory(p_slow=1.0, slow_seconds=2.0)
    rig.plan(image_jobs(tmp_path, 5, noise=200_000))
    client = counting(rig)
    engine = Engine(rig.ledger, client, config(concurrency=5, inline_memory=1000),
                    inputs=InputResolver(tmp_path, deferred=True), wall=loop_wall())
    with guard(60):
        result = await engine.run()
    assert result.done == 5 and client.most == 1


async def test_a_job_waiting_for_room_is_never_written_ahead_and_a_stop_leaves_it_pending(
    rig_factory: Callable[..., Rig], tmp_path: Path
) -> None:
    """The wait for room comes before the write-ahead: while the first POST holds all the room, the next job is
    pending (no attempt, nothing reserved), and a graceful stop then ends the run with no job submitting or in doubt
    — a kill at that moment would have left nothing in doubt either."""
    rig = rig_factory(p_slow=1.0, slow_seconds=2.0)
    jobs = image_jobs(tmp_path, 4, noise=100_000)
    rig.plan(jobs)
    client = counting(rig)
    engine = Engine(rig.ledger, client, config(concurrency=4, inline_memory=body_size(jobs[0])),
                    inputs=InputResolver(tmp_path, deferred=True), wall=loop_wall())
    seen: list[dict[JobState, int]] = []

    async def first_post_on_the_wire() -> None:
        client.before = None
        await anyio.sleep(1.0)  # the lane meanwhile takes the next job and waits for room
        seen.append(rig.counts())
        engine.request_stop()

    client.before = first_post_on_the_wire
    with guard(60):
        result = await engine.run()
    (during,) = seen
    assert during[JobState.SUBMITTING] == 1 and during[JobState.PENDING] == 3, during
    counts = rig.counts()
    assert counts[JobState.SUBMITTING] == counts[JobState.IN_DOUBT] == 0, counts
    assert counts[JobState.PENDING] == 3 and result.submitted == 1, counts
    assert rig.sim.stats()["accepted_total"] == 1 and client.most == 1
    for job in jobs:
        if rig.ledger.get(job.key).state is JobState.PENDING:  # type: ignore[union-attr]
            assert rig.ledger.attempts(job.key) == [], "a job waiting for room was written ahead"
