"""Bearer auth and routing of the simulator, as the real API answers them."""

from __future__ import annotations

import httpx
import pytest

from runner.simulator import ManualClock, SimConfig, Simulator, sim_transport

SUBMIT = "/v3/async/kling-v3.0-pro-t2v"
RESULT = "/v3/async/task-result"
BODY = {"prompt": "a red fox in snow"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _client(sim: Simulator, authorization: str | None = None) -> httpx.AsyncClient:
    headers = {} if authorization is None else {"Authorization": authorization}
    return httpx.AsyncClient(transport=sim_transport(sim), base_url="http://sim.test", headers=headers)


@pytest.mark.anyio
@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer   ", "Basic c2stdGVzdA==", "sk-test"])
async def test_missing_key_is_401(authorization: str | None) -> None:
    """With auth_401, without a Bearer key submit and task-result answer 401 MISSING_API_KEY; nothing is created."""
    sim = Simulator(SimConfig(auth_401=True))
    async with _client(sim, authorization) as client:
        submit = await client.post(SUBMIT, json=BODY)
        poll = await client.get(RESULT, params={"task_id": "whatever"})
    for response in (submit, poll):
        assert response.status_code == 401
        assert response.json()["reason"] == "MISSING_API_KEY"
    assert sim.stats()["accepted_total"] == 0


@pytest.mark.anyio
@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Basic c2stdGVzdA==", "sk-test"])
async def test_missing_key_is_400_as_the_error_table_says(authorization: str | None) -> None:
    """By default a missing key answers 400 MISSING_API_KEY (Novita's error table); nothing is created."""
    sim = Simulator(SimConfig())
    async with _client(sim, authorization) as client:
        submit = await client.post(SUBMIT, json=BODY)
        poll = await client.get(RESULT, params={"task_id": "whatever"})
    for response in (submit, poll):
        assert response.status_code == 400
        assert response.json()["reason"] == "MISSING_API_KEY"
    assert sim.stats()["accepted_total"] == 0
    assert sim.stats()["responses"] == {"submit:missing_key": 1, "task_result:missing_key": 1}


@pytest.mark.anyio
async def test_wrong_key_is_401_with_the_knob() -> None:
    """auth_401 answers a wrong key 401 INVALID_API_KEY (Novita's general guide)."""
    sim = Simulator(SimConfig(api_key="sk-the-right-one", auth_401=True))
    async with _client(sim, "Bearer sk-a-wrong-one") as client:
        submit = await client.post(SUBMIT, json=BODY)
    assert submit.status_code == 401
    assert submit.json()["reason"] == "INVALID_API_KEY"
    assert sim.stats()["accepted_total"] == 0


@pytest.mark.anyio
async def test_wrong_key_is_403_and_not_echoed() -> None:
    """A wrong key answers 403 INVALID_API_KEY, creates nothing, and neither key appears in the answer."""
    sim = Simulator(SimConfig(api_key="sk-the-right-one"))
    async with _client(sim, "Bearer sk-a-wrong-one") as client:
        submit = await client.post(SUBMIT, json=BODY)
        poll = await client.get(RESULT, params={"task_id": "x"})
    for response in (submit, poll):
        assert response.status_code == 403
        assert response.json()["reason"] == "INVALID_API_KEY"
        assert "sk-a-wrong-one" not in response.text
        assert "sk-the-right-one" not in response.text
    assert sim.stats()["accepted_total"] == 0
    assert "sk-the-right-one" not in repr(sim.config)


@pytest.mark.anyio
async def test_configured_key_is_accepted() -> None:
    """The configured key is accepted for submit and task-result."""
    sim = Simulator(SimConfig(api_key="sk-the-right-one"))
    async with _client(sim, "Bearer sk-the-right-one") as client:
        submit = await client.post(SUBMIT, json=BODY)
        poll = await client.get(RESULT, params={"task_id": submit.json()["task_id"]})
    assert submit.status_code == 200
    assert poll.status_code == 200


@pytest.mark.anyio
@pytest.mark.parametrize("key", ["sk-anything", "x", "bearer-case-insensitive"])
async def test_any_key_is_accepted_when_none_configured(key: str) -> None:
    """With no key configured, any non-empty Bearer key is accepted (the demo needs no key)."""
    sim = Simulator(SimConfig())
    scheme = "bearer" if key.startswith("bearer") else "Bearer"
    async with _client(sim, f"{scheme} {key}") as client:
        response = await client.post(SUBMIT, json=BODY)
    assert response.status_code == 200
    assert response.json()["task_id"]


@pytest.mark.anyio
async def test_video_url_needs_no_bearer_key() -> None:
    """A presigned video URL downloads without any Authorization header."""
    clock = ManualClock()
    sim = Simulator(SimConfig(api_key="sk-right", task_seconds=1), clock=clock)
    async with _client(sim, "Bearer sk-right") as client:
        task_id = (await client.post(SUBMIT, json=BODY)).json()["task_id"]
        clock.advance(1)
        url = (await client.get(RESULT, params={"task_id": task_id})).json()["videos"][0]["video_url"]
    async with _client(sim) as anonymous:
        response = await anonymous.get(url)
    assert response.status_code == 200
    assert response.content == sim.video(task_id)


@pytest.mark.anyio
@pytest.mark.parametrize("slug", ["kling-v9-ultra", "kling-v3.0-pro-t2v-typo"])
async def test_unknown_endpoint_is_404_api_not_found(slug: str) -> None:
    """A POST to an unknown /v3/async/<slug> answers 404 API_NOT_FOUND and creates nothing."""
    sim = Simulator(SimConfig())
    async with _client(sim, "Bearer sk") as client:
        response = await client.post(f"/v3/async/{slug}", json=BODY)
    assert response.status_code == 404
    assert response.json() == {
        "code": 404,
        "reason": "API_NOT_FOUND",
        "message": f"unknown API /v3/async/{slug}",
        "metadata": {},
    }
    assert sim.stats()["accepted_total"] == 0


@pytest.mark.anyio
async def test_other_paths_and_methods_are_refused() -> None:
    """Unknown paths answer 404 and wrong methods 405, both with the error envelope."""
    sim = Simulator(SimConfig())
    async with _client(sim, "Bearer sk") as client:
        unknown = await client.get("/v2/nothing-here")
        get_submit = await client.get(SUBMIT)
        post_result = await client.post(RESULT, json={})
    assert unknown.status_code == 404
    assert unknown.json()["reason"] == "API_NOT_FOUND"
    assert get_submit.status_code == 405
    assert post_result.status_code == 405
    assert sim.stats()["accepted_total"] == 0
