"""Simulator fidelity found by driving it with Novita's own clients (issue 11, item 8), and the
per-endpoint outputs (item 6): each behaviour at its default and with its knob."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from runner import endpoints
from runner.client import NovitaClient, make_http_client
from runner.endpoints import probe
from runner.endpoints.kling import data_uri
from runner.novita_wire import TaskResult, TaskStatus
from runner.simulator import ManualClock, SimConfig, Simulator, sim_transport
from runner.simulator.outputs import output_shape
from runner.simulator.tasks import task_type
from runner.testing import make_mp4, make_png

RESULT = "/v3/async/task-result"
PRO_T2V = "/v3/async/kling-v3.0-pro-t2v"
BODY = {"prompt": "waves breaking on black sand"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _client(sim: Simulator) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=sim_transport(sim), base_url="http://sim.test", headers={"Authorization": "Bearer sk-test"}
    )


async def _finished(sim: Simulator, clock: ManualClock, path: str, body: dict[str, Any]) -> dict[str, Any]:
    async with _client(sim) as client:
        task_id = (await client.post(path, json=body)).json()["task_id"]
        clock.advance(sim.config.task_seconds)
        result: dict[str, Any] = (await client.get(RESULT, params={"task_id": task_id})).json()
    return result


@pytest.mark.anyio
async def test_extra_is_in_results_by_default_and_left_out_by_a_knob() -> None:
    clock = ManualClock()
    sim = Simulator(SimConfig(task_seconds=1), clock=clock)
    assert "debug_info" in (await _finished(sim, clock, PRO_T2V, BODY))["extra"]
    sim.configure(extra_in_results=False)
    bare = await _finished(sim, clock, PRO_T2V, BODY)
    assert "extra" not in bare
    assert bare["task"]["status"] == "TASK_STATUS_SUCCEED" and bare["videos"]
    assert TaskResult.model_validate(bare).debug_info() == {}, "the client reads a result without extra"


@pytest.mark.anyio
async def test_extra_can_be_left_out_of_a_huge_numbers_answer_too() -> None:
    clock = ManualClock()
    sim = Simulator(SimConfig(task_seconds=1, extra_in_results=False, huge_numbers=True), clock=clock)
    assert "extra" not in await _finished(sim, clock, PRO_T2V, BODY)


@pytest.mark.anyio
async def test_a_failed_task_does_not_report_full_progress() -> None:
    clock = ManualClock()
    sim = Simulator(SimConfig(task_seconds=1, p_task_failed=1.0), clock=clock)
    result = await _finished(sim, clock, PRO_T2V, BODY)
    assert result["task"]["status"] == "TASK_STATUS_FAILED"
    assert result["task"]["progress_percent"] != 100
    assert sim.task(result["task"]["task_id"]).progress_percent == 0


@pytest.mark.anyio
async def test_status_unknown_is_a_transient_fault_the_client_keeps_polling_through() -> None:
    clock = ManualClock()
    sim = Simulator(SimConfig(task_seconds=1, p_status_unknown=1.0), clock=clock)
    unknown = await _finished(sim, clock, PRO_T2V, BODY)
    assert unknown["task"]["status"] == "TASK_STATUS_UNKNOWN" and unknown["videos"] == []
    assert sim.stats()["responses"]["task_result:status_unknown"] == 1
    assert not TaskStatus.UNKNOWN.terminal
    sim.configure(p_status_unknown=0.0)
    async with make_http_client(transport=sim_transport(sim)) as http:
        client = NovitaClient(http, base_url="http://sim.test", api_key="sk-test")
        later = await client.task_result(unknown["task"]["task_id"])
    assert later.task.status is TaskStatus.SUCCEED


@pytest.mark.parametrize(
    ("slug", "expected"),
    [("kling-v3.0-pro-t2v", "KLING_V3_PRO_T2V"), ("kling-v3.0-std-i2v", "KLING_V3_STD_I2V"),
     ("kling-v3.0-motion-control", "KLING_V3_MOTION_CONTROL")],
)
def test_task_type_names_the_endpoint(slug: str, expected: str) -> None:
    assert task_type(slug) == expected


# ------------------------------------------------------------------ outputs per endpoint


@pytest.mark.anyio
async def test_image_to_video_output_follows_the_input_image() -> None:
    clock = ManualClock()
    sim = Simulator(SimConfig(task_seconds=1), clock=clock)
    portrait = data_uri(make_png(300, 750), "image/png")
    result = await _finished(sim, clock, "/v3/async/kling-v3.0-std-i2v", {"image": portrait, "prompt": "", "duration": 8})
    info = probe.probe(sim.video(result["task"]["task_id"]))
    assert (info.width, info.height, info.duration) == (720, 1800, 8.0)
    assert result["task"]["task_type"] == "KLING_V3_STD_I2V"


@pytest.mark.anyio
async def test_text_to_video_output_follows_aspect_ratio_tier_and_duration() -> None:
    clock = ManualClock()
    sim = Simulator(SimConfig(task_seconds=1), clock=clock)
    result = await _finished(sim, clock, PRO_T2V, {"prompt": "p", "aspect_ratio": "9:16", "duration": 12})
    info = probe.probe(sim.video(result["task"]["task_id"]))
    assert (info.width, info.height, info.duration) == (1080, 1920, 12.0)


def test_motion_control_output_length_follows_the_orientation_and_the_reference() -> None:
    cfg = SimConfig(reference_seconds=11.0)
    body = {"image": "https://example.com/dancer.png", "video": "https://example.com/salsa.mp4",
            "model_name": "kling-v3-0-pro"}
    assert output_shape("kling-v3.0-motion-control", {**body, "character_orientation": "image"}, cfg).seconds == 5.0
    assert output_shape("kling-v3.0-motion-control", {**body, "character_orientation": "video"}, cfg).seconds == 11.0
    assert output_shape("kling-v3.0-motion-control", body, cfg).seconds == 11.0  # unset: the longer reading
    inline = {**body, "video": data_uri(make_mp4(640, 360, 17.5), "video/mp4"), "character_orientation": "video"}
    assert output_shape("kling-v3.0-motion-control", inline, cfg).seconds == 17.5  # a data URI: its own length
    assert output_shape("kling-v3.0-motion-control", body, cfg).height == 1080  # the tier follows model_name


def test_every_registered_endpoint_is_served() -> None:
    """A POST to each registered slug reaches its own validation (400 names the endpoint), not 404."""
    import anyio

    async def main() -> list[tuple[int, str]]:
        sim = Simulator(SimConfig())
        async with _client(sim) as client:
            answers = [await client.post(f"/v3/async/{slug}", json={"bogus": 1}) for slug in endpoints.slugs()]
        return [(r.status_code, r.json()["message"]) for r in answers]

    for slug, (status, message) in zip(endpoints.slugs(), anyio.run(main), strict=True):
        assert status == 400 and f"invalid request body for {slug}" in message
