"""The provider's answers the docs leave open, each produced by a knob: a CREATE_TASK_FAILED that created its task,
every documented refusal, a replayed task id, a per-account task cap, and a task-result that hands out one URL."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from runner.errors import UsageError
from runner.simulator import ManualClock, SimConfig, Simulator, sim_transport
from runner.simulator.config import parse_config
from runner.testing import make_png

SUBMIT = "/v3/async/kling-v3.0-pro-t2v"
RESULT = "/v3/async/task-result"
BODY = {"prompt": "waves breaking on black sand"}

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _client(sim: Simulator, key: str = "sk-test") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=sim_transport(sim), base_url="http://sim.test",
                             headers={"Authorization": f"Bearer {key}"}, timeout=5.0)


def _sim(clock: ManualClock | None = None, **knobs: Any) -> Simulator:
    return Simulator(SimConfig(**knobs), clock=clock or ManualClock())


@pytest.mark.parametrize(("fraction", "created"), [(1.0, 1), (0.0, 0)])
async def test_create_failed_can_have_created_the_task(fraction: float, created: int) -> None:
    """create_failed_created_fraction: a CREATE_TASK_FAILED answer that paid for a task first ([guess]: the docs do
    not say a 500 created nothing); the answer itself is the same."""
    sim = _sim(p_create_failed=1.0, create_failed_created_fraction=fraction)
    async with _client(sim) as client:
        response = await client.post(SUBMIT, json=BODY)
    assert response.status_code == 500 and response.json()["reason"] == "CREATE_TASK_FAILED"
    stats = sim.stats()
    assert stats["accepted_total"] == created
    assert stats["responses"] == {"submit:create_failed" + ("_created" if created else ""): 1}


@pytest.mark.parametrize("refusal", ["400 ILLEGAL_PROMPT", "400 BILLING_BALANCE_NOT_ENOUGH", "403 API_NOT_ALLOWED",
                                     "403 FEATURE_NOT_ALLOWED", "402 INSUFFICIENT_BALANCE", "500 BILLING_FAILED",
                                     "500 TASK_FAILED"])
async def test_each_documented_refusal_is_answered_in_the_envelope(refusal: str) -> None:
    """p_refused answers ``refusal`` (status and reason) in the provider's envelope and creates nothing."""
    sim = _sim(p_refused=1.0, refusal=refusal)
    async with _client(sim) as client:
        response = await client.post(SUBMIT, json=BODY)
    status, reason = refusal.split(" ")
    assert response.status_code == int(status)
    body = response.json()
    assert body["code"] == int(status) and body["reason"] == reason and body["message"] and body["metadata"] == {}
    assert sim.stats()["accepted_total"] == 0


@pytest.mark.parametrize("refusal", ["ILLEGAL_PROMPT", "200 OK", "400", "400 illegal", "600 X"])
def test_a_refusal_that_is_no_error_answer_is_a_bad_knob(refusal: str) -> None:
    """``refusal`` must read '<4xx or 5xx status> <REASON>'."""
    with pytest.raises(UsageError, match="refusal"):
        parse_config(None, refusal=refusal)


async def test_a_duplicate_task_id_names_the_task_answered_before() -> None:
    """p_duplicate_task_id: the submit is paid for, but the answer names the task answered before it; the first
    answer has none to repeat and is clean."""
    sim = _sim(p_duplicate_task_id=1.0)
    async with _client(sim) as client:
        first = (await client.post(SUBMIT, json=BODY)).json()["task_id"]
        again = [(await client.post(SUBMIT, json={"prompt": f"shot {n}"})).json()["task_id"] for n in range(2)]
    stats = sim.stats()
    assert again == [first, first]
    assert stats["accepted_total"] == 3 and len(set(sim.task_ids())) == 3
    assert stats["responses"] == {"submit:ok": 1, "submit:duplicate_task_id": 2}


async def test_max_concurrent_refuses_a_task_beyond_the_cap_per_account() -> None:
    """max_concurrent: an account with that many unfinished tasks gets 429 RATE_LIMIT_EXCEEDED (nothing created);
    another key's account is not held back, and a finished task frees its place."""
    clock = ManualClock()
    sim = _sim(clock, max_concurrent=1, task_seconds=10)
    async with _client(sim) as one, _client(sim, "sk-other") as other:
        assert (await one.post(SUBMIT, json=BODY)).status_code == 200
        refused = await one.post(SUBMIT, json=BODY)
        assert (await other.post(SUBMIT, json=BODY)).status_code == 200
        clock.advance(10)
        freed = await one.post(SUBMIT, json=BODY)
    assert refused.status_code == 429 and refused.json()["reason"] == "RATE_LIMIT_EXCEEDED"
    assert "retry-after" not in refused.headers
    assert freed.status_code == 200
    stats = sim.stats()
    assert stats["accepted_total"] == 3 and stats["responses"]["submit:concurrency_limited"] == 1


async def test_without_fresh_urls_a_task_hands_out_its_first_url_until_it_expires_for_good() -> None:
    """fresh_urls off: every task-result call repeats the first URL, still saying the whole TTL; once it expired
    no call gives a working one ([guess: yes, URLs are fresh], so the other answer is a knob)."""
    clock = ManualClock()
    sim = _sim(clock, fresh_urls=False, task_seconds=0, video_url_ttl=100)
    async with _client(sim) as client:
        task_id = (await client.post(SUBMIT, json=BODY)).json()["task_id"]
        first = (await client.get(RESULT, params={"task_id": task_id})).json()["videos"][0]
        clock.advance(101)
        later = (await client.get(RESULT, params={"task_id": task_id})).json()["videos"][0]
        download = await client.get(later["video_url"])
    assert later == first and later["video_url_ttl"] == "100"
    assert download.status_code == 403 and "<Code>AccessDenied</Code>" in download.text


async def test_shared_rpm_counts_polls_and_submits_in_one_window() -> None:
    """shared_rpm: task-result GETs spend the submit window of rpm, so polls can leave a submit 429 (nothing
    created), and a poll beyond it is 429 too; a minute later both go through again."""
    clock = ManualClock()
    sim = _sim(clock, rpm=2, shared_rpm=True)
    async with _client(sim) as client:
        task_id = (await client.post(SUBMIT, json=BODY)).json()["task_id"]
        polled = await client.get(RESULT, params={"task_id": task_id})
        submit = await client.post(SUBMIT, json=BODY)
        poll = await client.get(RESULT, params={"task_id": task_id})
        clock.advance(60)
        later = await client.get(RESULT, params={"task_id": task_id})
    assert polled.status_code == 200 and later.status_code == 200
    assert (submit.status_code, poll.status_code) == (429, 429)
    assert submit.json()["reason"] == poll.json()["reason"] == "RATE_LIMIT_EXCEEDED"
    assert sim.stats()["accepted_total"] == 1


@pytest.mark.parametrize("field", ["image", "end_image"])
async def test_without_data_uri_images_an_inline_image_is_refused_and_a_url_taken(field: str) -> None:
    """data_uri_images off ([?]: base64 for Kling v3 I2V is not stated): a data: URI image answers 400
    INVALID_REQUEST_BODY naming the field, nothing created; the same body with a URL is accepted."""
    inline = "data:image/png;base64," + base64.b64encode(make_png(480, 320)).decode()
    url = "https://example.com/still.png"
    body = {"prompt": "the camera pushes in", "image": url, field: inline}
    sim = _sim(data_uri_images=False)
    async with _client(sim) as client:
        refused = await client.post("/v3/async/kling-v3.0-std-i2v", json=body)
        accepted = await client.post("/v3/async/kling-v3.0-std-i2v", json={**body, field: url})
    assert refused.status_code == 400 and refused.json()["reason"] == "INVALID_REQUEST_BODY"
    assert refused.json()["metadata"]["errors"][0]["field"] == field
    assert accepted.status_code == 200
    assert sim.stats()["accepted_total"] == 1


async def test_a_key_without_bearer_is_missing_unless_bare_key_takes_it() -> None:
    """Novita's JS SDK sends ``Authorization: <key>`` with no scheme ([?]: whether the real API takes it): 400
    MISSING_API_KEY by default; with bare_key it is read as the key (a wrong one is still 403)."""
    async with httpx.AsyncClient(transport=sim_transport(_sim(api_key="sk-js")), base_url="http://sim.test") as strict:
        refused = await strict.post(SUBMIT, json=BODY, headers={"Authorization": "sk-js"})
    sim = _sim(api_key="sk-js", bare_key=True)
    async with httpx.AsyncClient(transport=sim_transport(sim), base_url="http://sim.test") as lenient:
        taken = await lenient.post(SUBMIT, json=BODY, headers={"Authorization": "sk-js"})
        wrong = await lenient.post(SUBMIT, json=BODY, headers={"Authorization": "sk-other"})
        bearer = await lenient.post(SUBMIT, json=BODY, headers={"Authorization": "Bearer sk-js"})
    assert refused.status_code == 400 and refused.json()["reason"] == "MISSING_API_KEY"
    assert (taken.status_code, wrong.status_code, bearer.status_code) == (200, 403, 200)
    assert len(sim.stats()["max_active_by_account"]) == 1  # one account, however the key was written


async def test_tasks_per_key_hides_a_task_from_another_key() -> None:
    """tasks_per_key ([?]: an account's tasks are its own): a task asked for with another key answers 404
    TASK_NOT_FOUND; its own key still sees it."""
    sim = _sim(tasks_per_key=True)
    async with _client(sim) as owner, _client(sim, "sk-other") as other:
        task_id = (await owner.post(SUBMIT, json=BODY)).json()["task_id"]
        hidden = await other.get(RESULT, params={"task_id": task_id})
        seen = await owner.get(RESULT, params={"task_id": task_id})
    assert hidden.status_code == 404 and hidden.json()["reason"] == "TASK_NOT_FOUND"
    assert seen.status_code == 200


async def test_task_usd_draws_the_balance_down_and_refuses_a_task_it_cannot_pay() -> None:
    """task_usd: each task created draws the balance down (the balance route says what is left); a submit when
    less than a task is left answers 400 BILLING_BALANCE_NOT_ENOUGH and creates nothing."""
    sim = _sim(balance_usd=1.0, task_usd=0.4)
    async with _client(sim) as client:
        statuses = [(await client.post(SUBMIT, json=BODY)).status_code for _ in range(3)]
        refused = await client.post(SUBMIT, json=BODY)
        left = (await client.get("/openapi/v1/billing/balance/detail")).json()["availableBalance"]
    assert statuses == [200, 200, 400] and refused.json()["reason"] == "BILLING_BALANCE_NOT_ENOUGH"
    assert sim.stats()["accepted_total"] == 2
    assert left == "2000"  # 0.2 USD in 1/10000 USD
