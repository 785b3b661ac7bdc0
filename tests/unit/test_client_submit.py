"""Unit tests of submit classification (the money path) on httpx.MockTransport."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

import httpx
import pytest

from runner.client import NovitaClient, SubmitOutcome, SubmitResult, make_http_client
from runner.client.retry import MAX_RETRY_AFTER_S, parse_retry_after

KEY = "sk_test_SECRET_0123456789"
BASE = "https://api.example.test"
MODEL = "kling-v3.0-pro-t2v"
BODY: dict[str, Any] = {"prompt": "a red fox", "duration": 5}

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Recorder:
    """A MockTransport handler that records requests and answers with ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)


async def submit_with(handler: Handler) -> tuple[SubmitResult, Recorder]:
    recorder = Recorder(handler)
    async with make_http_client(transport=httpx.MockTransport(recorder)) as http:
        client = NovitaClient(http, base_url=BASE, api_key=KEY)
        result = await client.submit(MODEL, BODY)
    return result, recorder


def envelope(status: int, reason: str, message: str = "", headers: dict[str, str] | None = None) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            status,
            json={"code": status, "reason": reason, "message": message, "metadata": {}},
            headers=headers,
        )

    return handler


def raising(exc_type: type[httpx.HTTPError]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_type("boom", request=request)  # type: ignore[call-arg]

    return handler


@pytest.mark.anyio
async def test_accepted_returns_task_id_and_sends_key_and_body() -> None:
    """A 200 with a task_id is ACCEPTED; the POST carries the Bearer key and the JSON body."""
    result, rec = await submit_with(lambda r: httpx.Response(200, json={"task_id": "t-123"}))
    assert result.outcome is SubmitOutcome.ACCEPTED
    assert result.task_id == "t-123"
    assert result.http_status == 200
    (request,) = rec.requests
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/v3/async/{MODEL}"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == BODY


@pytest.mark.anyio
async def test_429_with_retry_after_seconds_is_refused_retryable() -> None:
    """A 429 means nothing was created: REFUSED, retryable, with Retry-After seconds parsed."""
    result, rec = await submit_with(envelope(429, "RATE_LIMIT_EXCEEDED", "slow down", {"Retry-After": "7"}))
    assert result.outcome is SubmitOutcome.REFUSED
    assert result.retryable and not result.fatal
    assert result.retry_after == 7.0
    assert result.reason == "RATE_LIMIT_EXCEEDED"
    assert result.http_status == 429
    assert len(rec.requests) == 1


@pytest.mark.anyio
async def test_429_with_retry_after_http_date_is_parsed() -> None:
    """A Retry-After given as an HTTP-date becomes the seconds until that date."""
    when = formatdate(time.time() + 120, usegmt=True)
    result, rec = await submit_with(envelope(429, "RATE_LIMIT_EXCEEDED", headers={"Retry-After": when}))
    assert result.outcome is SubmitOutcome.REFUSED and result.retryable
    assert result.retry_after is not None and 100 <= result.retry_after <= 121
    assert len(rec.requests) == 1


@pytest.mark.anyio
async def test_429_without_envelope_or_header_is_refused_retryable() -> None:
    """A bare 429 (no envelope, no Retry-After) is still REFUSED retryable, retry_after None."""
    result, rec = await submit_with(lambda r: httpx.Response(429, text="Too Many Requests"))
    assert result.outcome is SubmitOutcome.REFUSED and result.retryable
    assert result.retry_after is None
    assert result.reason == "RATE_LIMIT_EXCEEDED"
    assert len(rec.requests) == 1


def test_parse_retry_after_forms() -> None:
    """Retry-After accepts seconds and HTTP-dates; junk and negatives give None, past dates 0."""
    now = 1_700_000_000.0
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-1") is None
    assert parse_retry_after("") is None
    assert parse_retry_after(None) is None


def test_an_absurd_retry_after_is_capped() -> None:
    """`Retry-After: 1e300` (or a date a century away) parked a run forever (hostile-data sweep, 2026-12-05)."""
    now = 1_700_000_000.0
    assert parse_retry_after("1e300") == MAX_RETRY_AFTER_S
    assert parse_retry_after(formatdate(now + 100 * 365 * 86400, usegmt=True), now=now) == MAX_RETRY_AFTER_S
    assert parse_retry_after("599") == 599.0


@pytest.mark.anyio
@pytest.mark.parametrize(
    "exc_type", [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError],
    ids=lambda e: e.__name__
)
async def test_not_sent_errors_are_refused_retryable(exc_type: type[httpx.HTTPError]) -> None:
    """Connect errors, pool timeouts and a proxy's refusal of the tunnel (raised before the request's first byte)
    mean nothing was sent: REFUSED retryable, reason names the error."""
    result, rec = await submit_with(raising(exc_type))
    assert result.outcome is SubmitOutcome.REFUSED
    assert result.retryable and not result.fatal
    assert result.reason == exc_type.__name__
    assert result.http_status is None
    assert len(rec.requests) == 1


@pytest.mark.anyio
async def test_5xx_create_task_failed_envelope_is_refused_retryable() -> None:
    """A 5xx with the provider envelope CREATE_TASK_FAILED says nothing was created: REFUSED retryable."""
    result, rec = await submit_with(envelope(500, "CREATE_TASK_FAILED", "try again"))
    assert result.outcome is SubmitOutcome.REFUSED
    assert result.retryable and not result.fatal
    assert result.reason == "CREATE_TASK_FAILED"
    assert result.http_status == 500
    assert len(rec.requests) == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "reason"),
    [(401, "INVALID_API_KEY"), (403, "API_NOT_ALLOWED"), (401, ""), (400, "MISSING_API_KEY"),
     (400, "BILLING_BALANCE_NOT_ENOUGH"), (402, "INSUFFICIENT_BALANCE"), (402, "")],
)
async def test_auth_and_balance_refusals_are_fatal(status: int, reason: str) -> None:
    """401/402/403 (any reason), MISSING_API_KEY and BILLING_BALANCE_NOT_ENOUGH stop the run: REFUSED fatal. A 402
    with a reason the docs do not list was refused for good, job after job: a batch failed for a balance to top up."""
    handler = envelope(status, reason) if reason else (lambda r: httpx.Response(status, text="nope"))
    result, rec = await submit_with(handler)
    assert result.outcome is SubmitOutcome.REFUSED
    assert result.fatal and not result.retryable
    assert result.http_status == status
    assert result.reason == (reason or None)
    assert len(rec.requests) == 1


@pytest.mark.anyio
async def test_balance_message_says_top_up() -> None:
    """A balance refusal tells the user to top up rather than to check the key."""
    result, _ = await submit_with(envelope(400, "BILLING_BALANCE_NOT_ENOUGH", "insufficient"))
    assert "top up" in result.message
    assert "insufficient" in result.message
    result, _ = await submit_with(envelope(402, "INSUFFICIENT_BALANCE", "add funds"))
    assert "top up" in result.message and "add funds" in result.message


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "reason"),
    [(400, "INVALID_REQUEST_BODY"), (400, "ILLEGAL_PROMPT"), (405, "METHOD_NOT_ALLOWED"), (422, "")],
)
async def test_other_4xx_are_refused_permanently(status: int, reason: str) -> None:
    """Other 4xx are REFUSED, neither retryable nor fatal, with the provider's reason and message."""
    handler = (
        envelope(status, reason, "duration 20 is out of range")
        if reason
        else (lambda r: httpx.Response(status, text="<html>bad</html>"))
    )
    result, rec = await submit_with(handler)
    assert result.outcome is SubmitOutcome.REFUSED
    assert not result.retryable and not result.fatal
    assert result.http_status == status
    assert result.reason == (reason or None)
    if reason:
        assert "duration 20 is out of range" in result.message
    assert len(rec.requests) == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    "exc_type",
    [httpx.ReadTimeout, httpx.WriteTimeout, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError,
     httpx.CloseError],
    ids=lambda e: e.__name__,
)
async def test_errors_after_sending_are_ambiguous(exc_type: type[httpx.HTTPError]) -> None:
    """Timeouts and dropped connections after the request went out are AMBIGUOUS, named, never retried."""
    result, rec = await submit_with(raising(exc_type))
    assert result.outcome is SubmitOutcome.AMBIGUOUS
    assert result.reason == exc_type.__name__
    assert result.task_id is None
    assert not result.retryable and not result.fatal
    assert "may have been created and paid for" in result.message
    assert len(rec.requests) == 1


@pytest.mark.anyio
async def test_unexpected_foreign_exception_is_ambiguous() -> None:
    """Even a non-httpx error from the transport is classified AMBIGUOUS instead of raising."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise OSError("socket went away")

    result, rec = await submit_with(handler)
    assert result.outcome is SubmitOutcome.AMBIGUOUS
    assert result.reason == "OSError"
    assert len(rec.requests) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("status", [502, 503, 504, 500])
async def test_5xx_gateway_page_without_envelope_is_ambiguous(status: int) -> None:
    """A 5xx without the provider's envelope (a gateway page) may have created a task: AMBIGUOUS."""
    result, rec = await submit_with(
        lambda r: httpx.Response(status, text="<html><h1>502 Bad Gateway</h1></html>",
                                 headers={"content-type": "text/html"})
    )
    assert result.outcome is SubmitOutcome.AMBIGUOUS
    assert result.http_status == status
    assert result.reason is None
    assert "may have been created" in result.message
    assert len(rec.requests) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("reason", ["BILLING_FAILED", "TASK_FAILED", "GET_RESULT_FAILED"])
async def test_5xx_envelope_with_other_reason_is_ambiguous(reason: str) -> None:
    """A 5xx envelope with a reason other than CREATE_TASK_FAILED is not clearly 'nothing created': AMBIGUOUS."""
    result, rec = await submit_with(envelope(500, reason, "internal"))
    assert result.outcome is SubmitOutcome.AMBIGUOUS
    assert result.reason == reason
    assert result.http_status == 500
    assert len(rec.requests) == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    "content",
    [b"<html>ok</html>", b"", b"[1,2]", b'{"task_id": ""}', b'{"id": "t-1"}', b'{"task_id": null}', b"\xff\xfe"],
    ids=["html", "empty", "list", "empty-id", "no-task-id", "null-id", "binary"],
)
async def test_malformed_200_is_ambiguous(content: bytes) -> None:
    """A 200 that is not valid JSON or has no task_id is AMBIGUOUS (the task may exist)."""
    result, rec = await submit_with(lambda r: httpx.Response(200, content=content))
    assert result.outcome is SubmitOutcome.AMBIGUOUS
    assert result.http_status == 200
    assert result.task_id is None
    assert len(rec.requests) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("status", [301, 302, 304, 100])
async def test_unexpected_status_is_ambiguous(status: int) -> None:
    """Any status outside the known table (a redirect…) is AMBIGUOUS and not followed."""
    result, rec = await submit_with(
        lambda r: httpx.Response(status, headers={"location": f"{BASE}/elsewhere"})
    )
    assert result.outcome is SubmitOutcome.AMBIGUOUS
    assert result.http_status == status
    assert len(rec.requests) == 1


@pytest.mark.anyio
async def test_unencodable_body_is_refused_without_sending() -> None:
    """A body that cannot be JSON-encoded is REFUSED (permanent) and nothing is sent."""
    recorder = Recorder(lambda r: httpx.Response(200, json={"task_id": "t"}))
    async with make_http_client(transport=httpx.MockTransport(recorder)) as http:
        client = NovitaClient(http, base_url=BASE, api_key=KEY)
        result = await client.submit(MODEL, {"cfg_scale": float("nan")})
        result2 = await client.submit(MODEL, {"x": object()})
    for res in (result, result2):
        assert res.outcome is SubmitOutcome.REFUSED
        assert not res.retryable and not res.fatal
    assert recorder.requests == []


@pytest.mark.anyio
async def test_submit_result_is_frozen() -> None:
    """SubmitResult is immutable, so a recorded outcome cannot be altered by accident."""
    result, _ = await submit_with(lambda r: httpx.Response(200, json={"task_id": "t-1"}))
    with pytest.raises(AttributeError):
        result.task_id = "other"  # type: ignore[misc]


@pytest.mark.anyio
async def test_a_models_submit_url_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsing the URL is half of building a POST (httpx checks it character by character): a model's submit URL
    is parsed on its first submit and reused; every POST still goes to it."""
    import httpx._urls as urls_module

    parsed: list[str] = []
    real = urls_module.urlparse

    def counting(url: str = "", **kwargs: Any) -> Any:
        parsed.append(url)
        return real(url, **kwargs)

    monkeypatch.setattr(urls_module, "urlparse", counting)
    recorder = Recorder(lambda r: httpx.Response(200, json={"task_id": "t-1"}))
    async with make_http_client(transport=httpx.MockTransport(recorder)) as http:
        client = NovitaClient(http, base_url=BASE, api_key=KEY)
        for _ in range(5):
            assert (await client.submit(MODEL, BODY)).outcome is SubmitOutcome.ACCEPTED
    assert [str(r.url) for r in recorder.requests] == [f"{BASE}/v3/async/{MODEL}"] * 5
    assert sum(1 for url in parsed if MODEL in url) == 1, parsed
