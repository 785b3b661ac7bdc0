"""An error body without a ``reason`` still explains itself: the client falls back to its ``message``.

Novita's v3 routes answer ``{code, reason, message, metadata}``, but not every body carries a reason
(gateways, other routes, ``{"error": {"message"}}`` as its CLI parses); the operator must still read
what the provider said, key scrubbed.
"""

from __future__ import annotations

import httpx
import pytest

from runner.client import NovitaClient, SubmitOutcome, make_http_client
from runner.client.submit import classify_response
from runner.errors import RequestRejected

KEY = "sk_test_SECRET_0123456789"


def _answer(status: int, body: object) -> httpx.Response:
    return httpx.Response(status, json=body, request=httpx.Request("POST", "https://api.example.test/v3/async/m"))


@pytest.mark.parametrize(
    "body",
    [
        {"code": 400, "message": "prompt is too long"},
        {"code": 400, "reason": "", "message": "prompt is too long"},
        {"error": {"code": 400, "message": "prompt is too long"}},
    ],
)
def test_a_submit_refusal_without_reason_shows_the_message(body: object) -> None:
    result = classify_response(_answer(400, body))
    assert result.outcome is SubmitOutcome.REFUSED and not result.retryable
    assert "prompt is too long" in result.message


def test_the_fallback_message_is_scrubbed_of_the_key() -> None:
    from pydantic import SecretStr

    result = classify_response(_answer(400, {"message": f"bad key {KEY}"}), secret=SecretStr(KEY))
    assert KEY not in result.message and "bad key ***" in result.message


def test_a_reason_with_its_message_is_shown_as_before() -> None:
    result = classify_response(_answer(400, {"code": 400, "reason": "ILLEGAL_PROMPT", "message": "not allowed"}))
    assert "HTTP 400 ILLEGAL_PROMPT: not allowed" in result.message


@pytest.mark.anyio
async def test_a_task_result_error_without_reason_shows_the_message() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"code": 400, "message": "task_id is malformed"})

    async with make_http_client(transport=httpx.MockTransport(handler)) as http:
        client = NovitaClient(http, base_url="https://api.example.test", api_key=KEY, get_attempts=1)
        with pytest.raises(RequestRejected, match="task_id is malformed"):
            await client.task_result("t-1")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
