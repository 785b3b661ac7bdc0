"""Each fault knob at probability 1 shows its behaviour, and stats count paid tasks right."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pydantic
import pytest

from runner.errors import UsageError
from runner.novita_wire import SubmitResponse
from runner.simulator import ManualClock, SimConfig, Simulator, sim_transport

SUBMIT = "/v3/async/kling-v3.0-pro-t2v"
RESULT = "/v3/async/task-result"
BODY = {"prompt": "waves breaking on black sand"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _client(sim: Simulator, *, timeout: float = 5.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=sim_transport(sim),
        base_url="http://sim.test",
        headers={"Authorization": "Bearer sk-test"},
        timeout=timeout,
    )


def _sim(clock: ManualClock | None = None, **knobs: Any) -> Simulator:
    return Simulator(SimConfig(**knobs), clock=clock or ManualClock())


@pytest.mark.anyio
@pytest.mark.parametrize(("retry_after", "header"), [(1.0, "1"), (2.5, "2.5"), (None, "1")])
async def test_rate_limit_fault_is_429_with_retry_after(retry_after: float | None, header: str) -> None:
    """With retry_after_header, p_rate_limit answers 429 RATE_LIMIT_EXCEEDED with a Retry-After header
    and creates nothing."""
    sim = _sim(p_rate_limit=1.0, retry_after=retry_after, retry_after_header=True)
    async with _client(sim) as client:
        response = await client.post(SUBMIT, json=BODY)
    assert response.status_code == 429
    assert response.json()["reason"] == "RATE_LIMIT_EXCEEDED"
    assert response.headers["retry-after"] == header
    assert sim.stats()["accepted_total"] == 0


@pytest.mark.anyio
async def test_429s_carry_no_retry_after_by_default() -> None:
    """Retry-After is undocumented: by default neither a p_rate_limit 429 nor an rpm 429 sends it."""
    sim = _sim(p_rate_limit=1.0, retry_after=5.0)
    async with _client(sim) as client:
        fault = await client.post(SUBMIT, json=BODY)
    sim = _sim(rpm=1, retry_after=5.0)
    async with _client(sim) as client:
        await client.post(SUBMIT, json=BODY)
        rpm = await client.post(SUBMIT, json=BODY)
    for response in (fault, rpm):
        assert response.status_code == 429
        assert "retry-after" not in response.headers


@pytest.mark.anyio
async def test_rate_limit_without_retry_after() -> None:
    """p_rate_limit_no_retry_after answers 429 with no Retry-After header and creates nothing."""
    sim = _sim(p_rate_limit_no_retry_after=1.0)
    async with _client(sim) as client:
        response = await client.post(SUBMIT, json=BODY)
    assert response.status_code == 429
    assert response.json()["reason"] == "RATE_LIMIT_EXCEEDED"
    assert "retry-after" not in response.headers
    assert sim.stats()["accepted_total"] == 0


@pytest.mark.anyio
async def test_create_failed_is_500_envelope_and_creates_nothing() -> None:
    """p_create_failed answers 500 with envelope reason CREATE_TASK_FAILED; no task is paid for."""
    sim = _sim(p_create_failed=1.0)
    async with _client(sim) as client:
        response = await client.post(SUBMIT, json=BODY)
    assert response.status_code == 500
    assert response.json()["reason"] == "CREATE_TASK_FAILED"
    assert sim.stats()["accepted_total"] == 0


@pytest.mark.anyio
@pytest.mark.parametrize(("fraction", "created"), [(1.0, 1), (0.0, 0)])
async def test_gateway_page_without_envelope(fraction: float, created: int) -> None:
    """p_gateway answers a 502/504 HTML page with no JSON envelope; gateway_created_fraction of them paid."""
    sim = _sim(p_gateway=1.0, gateway_created_fraction=fraction)
    async with _client(sim) as client:
        response = await client.post(SUBMIT, json=BODY)
    assert response.status_code in (502, 504)
    assert response.headers["content-type"].startswith("text/html")
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert sim.stats()["accepted_total"] == created


@pytest.mark.anyio
async def test_gateway_statuses_vary_with_the_seed() -> None:
    """Gateway faults show both 502 and 504 over a few submits."""
    sim = _sim(p_gateway=1.0, gateway_created_fraction=0.5, seed=3)
    async with _client(sim) as client:
        statuses = {(await client.post(SUBMIT, json=BODY)).status_code for _ in range(20)}
    assert statuses == {502, 504}
    assert 0 < sim.stats()["accepted_total"] < 20


@pytest.mark.anyio
async def test_drop_creates_the_task_then_closes_without_response() -> None:
    """p_drop creates a paid task, then the client sees the connection close (RemoteProtocolError)."""
    sim = _sim(p_drop=1.0)
    async with _client(sim) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(SUBMIT, json=BODY)
    stats = sim.stats()
    assert stats["accepted_total"] == 1
    assert stats["responses"] == {"submit:drop": 1}


@pytest.mark.anyio
async def test_slow_response_outlasts_a_client_timeout_after_creating_the_task() -> None:
    """p_slow creates the task, then holds the answer past the client's read timeout."""
    sim = _sim(p_slow=1.0, slow_seconds=30)
    async with _client(sim, timeout=0.05) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(SUBMIT, json=BODY)
    assert sim.stats()["accepted_total"] == 1


@pytest.mark.anyio
async def test_slow_response_arrives_for_a_patient_client() -> None:
    """A slow answer still carries the task_id when the client waits long enough."""
    sim = _sim(p_slow=1.0, slow_seconds=0.01)
    async with _client(sim) as client:
        response = await client.post(SUBMIT, json=BODY)
    assert response.status_code == 200
    assert response.json()["task_id"] in sim.task_ids()


@pytest.mark.anyio
async def test_malformed_200_is_not_a_submit_response() -> None:
    """p_malformed creates a task but answers 200 with a body the documented reader cannot parse."""
    sim = _sim(p_malformed=1.0, seed=5)
    bodies = set()
    async with _client(sim) as client:
        for _ in range(12):
            response = await client.post(SUBMIT, json=BODY)
            assert response.status_code == 200
            bodies.add(response.content)
            with pytest.raises((pydantic.ValidationError, ValueError)):
                SubmitResponse.model_validate_json(response.content)
    assert len(bodies) >= 3, "several kinds of malformed body are used"
    assert sim.stats()["accepted_total"] == 12


@pytest.mark.anyio
async def test_poll_errors_are_transient() -> None:
    """p_poll_error answers 500 GET_RESULT_FAILED or a 503 page; the task is untouched and polls fine later."""
    clock = ManualClock()
    sim = _sim(clock, task_seconds=1, seed=1)
    async with _client(sim) as client:
        task_id = (await client.post(SUBMIT, json=BODY)).json()["task_id"]
        sim.configure(p_poll_error=1.0)
        errors = [await client.get(RESULT, params={"task_id": task_id}) for _ in range(12)]
        sim.configure(p_poll_error=0.0)
        clock.advance(1)
        healed = await client.get(RESULT, params={"task_id": task_id})
    assert {r.status_code for r in errors} == {500, 503}
    for response in errors:
        if response.status_code == 500:
            assert response.json()["reason"] == "GET_RESULT_FAILED"
        else:
            assert response.headers["content-type"].startswith("text/html")
    assert healed.json()["task"]["status"] == "TASK_STATUS_SUCCEED"
    assert sim.stats()["polls"] == 13


@pytest.mark.anyio
async def test_truncated_download_is_a_transport_error() -> None:
    """p_truncated cuts a download short after a full Content-Length: the client gets an error, not a file."""
    sim = _sim(task_seconds=0, p_truncated=1.0)
    async with _client(sim) as client:
        task_id = (await client.post(SUBMIT, json=BODY)).json()["task_id"]
        url = (await client.get(RESULT, params={"task_id": task_id})).json()["videos"][0]["video_url"]
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(url)
        sim.configure(p_truncated=0.0)
        response = await client.get(url)
    assert response.content == sim.video(task_id)
    assert sim.stats()["responses"]["download:truncated"] == 1
    assert sim.stats()["downloads"] == 2


@pytest.mark.anyio
async def test_expired_url_fault_hands_out_a_dead_url() -> None:
    """p_expired_url gives a URL that already answers 403 Request has expired."""
    sim = _sim(task_seconds=0, p_expired_url=1.0)
    async with _client(sim) as client:
        task_id = (await client.post(SUBMIT, json=BODY)).json()["task_id"]
        result = (await client.get(RESULT, params={"task_id": task_id})).json()
        response = await client.get(result["videos"][0]["video_url"])
    assert result["task"]["status"] == "TASK_STATUS_SUCCEED"
    assert response.status_code == 403
    assert "Request has expired" in response.text


@pytest.mark.anyio
async def test_rpm_limit_is_a_sliding_window() -> None:
    """With rpm=3 the 4th submit within 60 s is refused 429 (nothing created) and passes once the window slides."""
    clock = ManualClock()
    sim = _sim(clock, rpm=3, retry_after=7, retry_after_header=True)
    async with _client(sim) as client:
        first = [await client.post(SUBMIT, json=BODY) for _ in range(2)]
        clock.advance(30)
        third = await client.post(SUBMIT, json=BODY)
        refused = await client.post(SUBMIT, json=BODY)
        clock.advance(29.5)
        still_refused = await client.post(SUBMIT, json=BODY)
        clock.advance(0.5)  # the two submits of t=0 leave the window; the one of t=30 stays
        passes = [await client.post(SUBMIT, json=BODY) for _ in range(2)]
        full_again = await client.post(SUBMIT, json=BODY)
    assert [r.status_code for r in [*first, third]] == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.json()["reason"] == "RATE_LIMIT_EXCEEDED"
    assert refused.headers["retry-after"] == "7"
    assert still_refused.status_code == 429
    assert [r.status_code for r in passes] == [200, 200]
    assert full_again.status_code == 429
    assert sim.stats()["accepted_total"] == 5


@pytest.mark.anyio
async def test_rpm_429_can_omit_retry_after() -> None:
    """With retry_after=None, rpm 429s carry no Retry-After header."""
    sim = _sim(rpm=1, retry_after=None)
    async with _client(sim) as client:
        await client.post(SUBMIT, json=BODY)
        response = await client.post(SUBMIT, json=BODY)
    assert response.status_code == 429
    assert "retry-after" not in response.headers


async def _outcomes(seed: int) -> list[int]:
    sim = _sim(seed=seed, p_create_failed=0.3, p_rate_limit=0.2, p_gateway=0.2)
    async with _client(sim) as client:
        return [(await client.post(SUBMIT, json=BODY)).status_code for _ in range(30)]


@pytest.mark.anyio
async def test_faults_are_reproducible_from_the_seed() -> None:
    """The same seed gives the same fault sequence; another seed gives another."""
    first, again, other = await _outcomes(11), await _outcomes(11), await _outcomes(12)
    assert first == again
    assert first != other
    assert len(set(first)) >= 3


@pytest.mark.anyio
async def test_config_changes_at_run_time_over_http() -> None:
    """POST /_sim/config changes knobs of a running simulator; bad knobs are refused with 400."""
    sim = _sim(api_key="sk-test")
    async with _client(sim) as client:
        changed = await client.post("/_sim/config", json={"p_create_failed": 1.0})
        refused = await client.post(SUBMIT, json=BODY)
        bad = await client.post("/_sim/config", json={"p_drop": 2})
        typo = await client.post("/_sim/config", json={"p_dorp": 0.5})
        shown = await client.get("/_sim/config")
    assert changed.status_code == 200
    assert refused.status_code == 500
    assert bad.status_code == 400 and "p_drop" in bad.json()["message"]
    assert typo.status_code == 400 and "p_dorp" in typo.json()["message"]
    assert shown.json()["p_create_failed"] == 1.0
    assert shown.json()["api_key"] == "***"
    assert "sk-test" not in shown.text


def test_configure_validates_and_reseeds() -> None:
    """sim.configure() rejects unknown or out-of-range knobs with UsageError and re-seeds on a new seed."""
    sim = _sim()
    with pytest.raises(UsageError, match="p_slow"):
        sim.configure(p_slow=-0.1)
    with pytest.raises(UsageError, match="nonsense"):
        sim.configure(nonsense=True)
    assert sim.configure(seed=9, task_seconds=0.5).task_seconds == 0.5
    assert sim.config.seed == 9
