"""The simulator refuses every body the documented rules refuse, and accepts every boundary."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from runner.simulator import SimConfig, Simulator, sim_transport

SUBMIT = "/v3/async/kling-v3.0-pro-t2v"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _client(sim: Simulator) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=sim_transport(sim), base_url="http://sim.test", headers={"Authorization": "Bearer sk-test"}
    )


def _shots(*durations: Any, prompt: str = "a shot") -> list[dict[str, Any]]:
    return [{"prompt": prompt, "duration": d} for d in durations]


REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("duration below 3", {"prompt": "p", "duration": 2}, "duration"),
    ("duration above 15", {"prompt": "p", "duration": 16}, "duration"),
    ("duration not an integer", {"prompt": "p", "duration": 5.5}, "duration"),
    ("duration not a number", {"prompt": "p", "duration": "five"}, "duration"),
    ("cfg_scale below 0", {"prompt": "p", "cfg_scale": -0.01}, "cfg_scale"),
    ("cfg_scale above 1", {"prompt": "p", "cfg_scale": 1.01}, "cfg_scale"),
    ("prompt over 2500 chars", {"prompt": "x" * 2501}, "prompt"),
    ("prompt not a string", {"prompt": 123}, "prompt"),
    ("negative_prompt over 2500 chars", {"prompt": "p", "negative_prompt": "x" * 2501}, "negative_prompt"),
    ("aspect ratio not in enum", {"prompt": "p", "aspect_ratio": "4:3"}, "aspect_ratio"),
    ("sound not a bool", {"prompt": "p", "sound": "maybe"}, "sound"),
    ("prompt and multi_prompt", {"prompt": "p", "multi_prompt": _shots(5), "duration": 5}, "mutually exclusive"),
    ("neither prompt nor multi_prompt", {"duration": 5}, "exactly one of prompt and multi_prompt"),
    ("unknown top-level field", {"prompt": "p", "seed": 42}, "seed"),
    ("seven shots", {"multi_prompt": _shots(*[2] * 7), "duration": 14}, "multi_prompt"),
    ("no shots", {"multi_prompt": [], "duration": 5}, "multi_prompt"),
    ("shots not summing to duration", {"multi_prompt": _shots(2, 2), "duration": 5}, "sum to 4"),
    ("shot of 0 seconds", {"multi_prompt": [*_shots(0), *_shots(5)], "duration": 5}, "multi_prompt[0].duration"),
    ("shot prompt over 512 chars", {"multi_prompt": _shots(5, prompt="x" * 513), "duration": 5}, "prompt"),
    ("empty shot prompt", {"multi_prompt": _shots(5, prompt=""), "duration": 5}, "prompt"),
    ("shot without duration", {"multi_prompt": [{"prompt": "p"}], "duration": 5}, "duration"),
    (
        "unknown shot field",
        {"multi_prompt": [{"prompt": "p", "duration": 5, "camera": "pan"}], "duration": 5},
        "camera",
    ),
]

ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    ("prompt only, defaults filled", {"prompt": "a lighthouse at dusk"}),
    ("duration 3", {"prompt": "p", "duration": 3}),
    ("duration 15", {"prompt": "p", "duration": 15}),
    ("cfg_scale 0", {"prompt": "p", "cfg_scale": 0}),
    ("cfg_scale 1", {"prompt": "p", "cfg_scale": 1}),
    ("2500-char prompt", {"prompt": "x" * 2500}),
    ("empty prompt (0 chars is documented)", {"prompt": ""}),
    ("2500-char negative prompt", {"prompt": "p", "negative_prompt": "y" * 2500}),
    ("aspect 9:16 with sound", {"prompt": "p", "aspect_ratio": "9:16", "sound": True}),
    ("aspect 1:1", {"prompt": "p", "aspect_ratio": "1:1"}),
    ("6 shots summing to duration", {"multi_prompt": _shots(1, 1, 1, 1, 1, 1), "duration": 6}),
    ("1 shot equal to duration", {"multi_prompt": _shots(15), "duration": 15}),
    ("512-char shot prompt", {"multi_prompt": _shots(3, prompt="z" * 512), "duration": 3}),
    ("shot duration as numeric string", {"multi_prompt": _shots("2", "3"), "duration": 5}),
    (
        "shots with index",
        {"multi_prompt": [{"index": 0, "prompt": "a", "duration": 2}, {"index": 1, "prompt": "b", "duration": 3}]},
    ),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("case", "body", "mention"), REFUSED, ids=[case for case, _, _ in REFUSED])
async def test_rule_is_refused_with_400(case: str, body: dict[str, Any], mention: str) -> None:
    """A body breaking a documented rule gets 400 INVALID_REQUEST_BODY naming the problem, and costs nothing."""
    sim = Simulator(SimConfig())
    async with _client(sim) as client:
        response = await client.post(SUBMIT, json=body)
    assert response.status_code == 400, case
    error = response.json()
    assert error["code"] == 400
    assert error["reason"] == "INVALID_REQUEST_BODY"
    assert mention in error["message"], error["message"]
    assert error["metadata"]["errors"], "each broken rule is listed"
    assert sim.stats()["accepted_total"] == 0


@pytest.mark.anyio
@pytest.mark.parametrize(("case", "body"), ACCEPTED, ids=[case for case, _ in ACCEPTED])
async def test_boundary_is_accepted(case: str, body: dict[str, Any]) -> None:
    """A body at the edge of a documented rule is accepted and creates exactly one task."""
    if "duration" not in body and "multi_prompt" in body:
        body = {**body, "duration": 5}
    sim = Simulator(SimConfig())
    async with _client(sim) as client:
        response = await client.post(SUBMIT, json=body)
    assert response.status_code == 200, (case, response.text)
    task_id = response.json()["task_id"]
    assert sim.stats()["accepted_total"] == 1
    assert sim.task(task_id).body == body


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("content", "mention"),
    [(b"{not json", "not valid JSON"), (b"", "not valid JSON"), (b"[1, 2]", "JSON object"), (b"\xff\xfe", "JSON")],
)
async def test_non_json_body_is_refused(content: bytes, mention: str) -> None:
    """A body that is not a JSON object gets 400 INVALID_REQUEST_BODY."""
    sim = Simulator(SimConfig())
    async with _client(sim) as client:
        response = await client.post(SUBMIT, content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["reason"] == "INVALID_REQUEST_BODY"
    assert mention in response.json()["message"]
    assert sim.stats()["accepted_total"] == 0


@pytest.mark.anyio
async def test_long_values_are_shortened_in_messages() -> None:
    """A refused 2501-char prompt is quoted shortened, so error messages stay readable."""
    sim = Simulator(SimConfig())
    async with _client(sim) as client:
        response = await client.post(SUBMIT, json={"prompt": "x" * 2501})
    message = response.json()["message"]
    assert "2501 long" in message
    assert len(message) < 400
