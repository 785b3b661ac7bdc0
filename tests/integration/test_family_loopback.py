"""Every Kling v3.0 endpoint round-trips against the simulator over real loopback TCP.

For each registered endpoint and each body its documented rules accept, runner's own client submits
the wire body, polls the task to SUCCEED and downloads the MP4; the video's headers say the size
and length the request asked for (the image's aspect ratio for image-to-video, the reference's
length for motion control with ``character_orientation: video``).
"""

from __future__ import annotations

import base64
import hashlib
import random
from pathlib import Path
from typing import Any

import pytest

from runner import endpoints
from runner.client import NovitaClient, OpenSink, SubmitOutcome, make_http_client
from runner.endpoints import EndpointSpec, probe
from runner.endpoints.inputs import data_uri_bytes
from runner.endpoints.media import LocalFile
from runner.novita_wire import TaskStatus
from runner.simulator import ManualClock, Simulator, SimulatorThread
from runner.storage.local import LocalStore
from runner.testing import make_png

pytestmark = pytest.mark.anyio
SPECS = endpoints.all_specs()
_ASPECTS = {"16:9": 16 / 9, "9:16": 9 / 16, "1:1": 1.0}


def _ratio(value: Any) -> float:
    """The aspect ratio an image input gives the output: the image's, or 16:9 for a URL (never fetched)."""
    decoded = data_uri_bytes(value) if isinstance(value, str) else None
    if decoded is None:
        return 16 / 9
    info = probe.probe(decoded[1])
    return info.width / info.height


def _expected(spec: EndpointSpec, body: dict[str, Any], reference_seconds: float) -> tuple[float, float]:
    """(aspect ratio, seconds) of the video a wire ``body`` must produce."""
    if spec.slug.endswith("motion-control"):
        seconds = 5.0 if body.get("character_orientation") == "image" else reference_seconds
        return _ratio(body["image"]), seconds
    ratio = _ratio(body["image"]) if "image" in body else _ASPECTS[body.get("aspect_ratio", "16:9")]
    return ratio, float(body.get("duration", 5))


async def _round_trip(client: NovitaClient, clock: ManualClock, slug: str, wire: dict[str, Any], dest: Path) -> probe.MediaInfo:
    submitted = await client.submit(slug, wire)
    assert submitted.outcome is SubmitOutcome.ACCEPTED, submitted.message
    assert submitted.task_id is not None
    clock.advance(4)
    result = await client.task_result(submitted.task_id)
    assert result.task.status is TaskStatus.SUCCEED
    assert result.task.progress_percent == 100
    store = LocalStore(dest.parent)
    sink: OpenSink = lambda: store.open_sink(dest.name)  # noqa: E731
    stored = await client.download(result.videos[0].video_url, sink)
    return probe.probe((dest.parent / stored.rel).read_bytes())


@pytest.mark.parametrize("spec", SPECS, ids=[spec.slug for spec in SPECS])
async def test_every_valid_body_round_trips_with_the_video_it_asked_for(
    spec: EndpointSpec, sim: Simulator, sim_clock: ManualClock, sim_server: SimulatorThread, sim_api_key: str,
    tmp_path: Path,
) -> None:
    sim.configure(task_seconds=3, reference_seconds=12.0)
    async with make_http_client() as http:
        client = NovitaClient(http, base_url=sim_server.base_url, api_key=sim_api_key, rng=random.Random(0))
        for n, fields in enumerate(spec.examples.valid):
            wire = spec.wire_body(spec.request_body(fields))
            info = await _round_trip(client, sim_clock, spec.slug, wire, tmp_path / f"{n}.mp4")
            ratio, seconds = _expected(spec, wire, 12.0)
            assert info.format == "mp4"
            assert info.width / info.height == pytest.approx(ratio, rel=0.01), (fields, info)
            assert info.duration == pytest.approx(seconds), (fields, info)
    assert sim.stats()["accepted_total"] == len(spec.examples.valid)
    assert {sim.task(task_id).slug for task_id in sim.task_ids()} == {spec.slug}


class _Inline:
    """The resolver of a manifest folder: a local file becomes a data: URI of its bytes."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def wire_value(self, ref: LocalFile) -> str:
        data = (self.root / ref.file).read_bytes()
        assert hashlib.sha256(data).hexdigest() == ref.sha256
        return f"data:{ref.mime};base64,{base64.b64encode(data).decode()}"


async def test_a_local_portrait_image_gives_a_portrait_video_over_a_large_body(
    sim: Simulator, sim_clock: ManualClock, sim_server: SimulatorThread, sim_api_key: str, tmp_path: Path
) -> None:
    """A local 1:2 PNG of 1.5 MB (more than the old 1 MiB body limit) is sent inline and animated 9:18."""
    rng = random.Random(1)
    png = make_png(400, 800)
    noise = rng.randbytes(1_500_000)  # an ancillary chunk the probe skips: an incompressible large image
    png = png[:33] + len(noise).to_bytes(4, "big") + b"zzZz" + noise + b"\0\0\0\0" + png[33:]
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "tall.png").write_bytes(png)
    ref = {"file": "frames/tall.png", "sha256": hashlib.sha256(png).hexdigest(), "size": len(png), "kind": "image",
           "mime": "image/png"}
    spec = endpoints.get("kling-v3.0-pro-i2v")
    wire = spec.wire_body(spec.request_body({"image": ref, "prompt": "she turns"}), _Inline(tmp_path))
    sim.configure(task_seconds=3)
    async with make_http_client() as http:
        client = NovitaClient(http, base_url=sim_server.base_url, api_key=sim_api_key, rng=random.Random(0))
        info = await _round_trip(client, sim_clock, spec.slug, wire, tmp_path / "tall.mp4")
    assert (info.width, info.height) == (1080, 2160)  # Pro: 1080 px on the shorter side
    assert info.duration == pytest.approx(5.0)
