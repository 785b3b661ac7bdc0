"""The account balance GET (issue 12, item 2c): the simulator's route read by the client, Novita's units
(1/10000 USD, as strings), the older route as a fallback, and the GET retry rules (429, 5xx)."""

from __future__ import annotations

import random

import httpx
import pytest

from runner.client import NovitaClient
from runner.client.balance import parse_balance
from runner.errors import ProviderError
from runner.simulator import SimConfig, Simulator, sim_transport
from runner.testing_http import Trickle

KEY = "sk_sim_key_123"
BASE = "http://sim.test"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def _client(transport: httpx.AsyncBaseTransport, sleep: FakeSleep) -> NovitaClient:
    return NovitaClient(httpx.AsyncClient(transport=transport), base_url=BASE, api_key=KEY, sleep=sleep,
                        rng=random.Random(1))


def test_novitas_body_is_read_in_ten_thousandths_of_a_dollar() -> None:
    body = {"availableBalance": "1000000", "cashBalance": "800000", "creditLimit": "200000", "pendingCharges": "0",
            "outstandingInvoices": "0"}
    balance = parse_balance(body)
    assert (balance.available_usd, balance.cash_usd, balance.credit_limit_usd) == (100.0, 80.0, 20.0)
    assert parse_balance({"availableBalance": 12345}).available_usd == 1.2345


@pytest.mark.anyio
async def test_the_client_reads_the_simulators_balance() -> None:
    sim = Simulator(SimConfig(api_key=KEY, balance_usd=42.5))
    balance = await _client(sim_transport(sim), FakeSleep()).balance()
    assert balance.available_usd == 42.5 and balance.path == "/openapi/v1/billing/balance/detail"
    assert sim.stats()["responses"]["balance:ok"] == 1


@pytest.mark.anyio
async def test_no_balance_route_is_an_error_the_caller_can_warn_about() -> None:
    sim = Simulator(SimConfig(api_key=KEY, balance_usd=None))
    with pytest.raises(ProviderError, match="no balance route"):
        await _client(sim_transport(sim), FakeSleep()).balance()


@pytest.mark.anyio
async def test_the_older_route_is_read_when_the_documented_one_is_missing_and_429s_are_retried() -> None:
    seen: list[str] = []
    answers = iter([httpx.Response(429, headers={"retry-after": "2"}), httpx.Response(500),
                    httpx.Response(200, json={"availableBalance": "70000"})])

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        assert request.headers["authorization"] == f"Bearer {KEY}"
        if request.url.path == "/openapi/v1/billing/balance/detail":
            return httpx.Response(404, json={"code": 404, "reason": "API_NOT_FOUND", "message": "no"})
        return next(answers)

    sleep = FakeSleep()
    balance = await _client(httpx.MockTransport(handler), sleep).balance()
    assert balance.available_usd == 7.0 and balance.path == "/v3/user/balance"
    assert seen == ["/openapi/v1/billing/balance/detail"] + ["/v3/user/balance"] * 3
    assert sleep.delays[0] == 2.0 and len(sleep.delays) == 2, "Retry-After honoured, then backoff"


@pytest.mark.anyio
async def test_a_refused_balance_call_is_not_retried_and_names_no_key() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(403, json={"code": 403, "reason": "INVALID_API_KEY", "message": KEY})

    with pytest.raises(ProviderError) as caught:
        await _client(httpx.MockTransport(handler), FakeSleep()).balance()
    assert len(calls) == 1 and KEY not in str(caught.value)


@pytest.mark.anyio
async def test_a_balance_answer_that_trickles_forever_does_not_hold_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The balance is read before the first submit: an answer whose body never ends is cut at the attempt's
    timeout, as a whole, and the read gives up after its attempts instead of holding the run's start for good."""
    import anyio

    from runner.client import balance

    monkeypatch.setattr(balance, "BALANCE_TIMEOUT_S", 0.05)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, stream=Trickle())

    with anyio.fail_after(5):
        with pytest.raises(ProviderError, match=r"no whole answer within 0\.15 s"):
            await _client(httpx.MockTransport(handler), FakeSleep()).balance()
    assert seen
