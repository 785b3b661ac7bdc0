"""The API key never appears in a result message, an exception or a log line — on any failure path."""

from __future__ import annotations

import logging
import random
import traceback
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from runner.client import NovitaClient, OpenSink, SubmitOutcome, make_http_client
from runner.errors import RunnerError
from runner.storage.local import LocalStore


def into(dest: Path) -> OpenSink:
    """Sinks for ``dest``, through a local store rooted at its folder."""
    return lambda: LocalStore(dest.parent).open_sink(dest.name)


KEY = "sk_live_TOPSECRET_4f9a1c7e"
BASE = "https://api.example.test"
MODEL = "kling-v3.0-pro-t2v"

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def no_sleep(seconds: float) -> None:
    return None


def echo_envelope(status: int, reason: str) -> Handler:
    """A provider that (rudely) quotes the Authorization header back in its error message."""

    def handler(request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("authorization", "none")
        return httpx.Response(
            status,
            json={"code": status, "reason": reason, "message": f"bad header {auth}", "metadata": {"key": auth}},
            headers={"Retry-After": "1"} if status == 429 else None,
        )

    return handler


def echo_page(status: int) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text=f"<html>{request.headers.get('authorization')}</html>")

    return handler


def raise_with_key(exc_type: type[Exception]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        message = f"failed with {request.headers.get('authorization')}"
        if issubclass(exc_type, httpx.RequestError):
            raise exc_type(message, request=request)
        raise exc_type(message)

    return handler


RESPONSE_HANDLERS: list[Handler] = [
    echo_envelope(400, "INVALID_REQUEST_BODY"),
    echo_envelope(400, "BILLING_BALANCE_NOT_ENOUGH"),
    echo_envelope(400, "MISSING_API_KEY"),
    echo_envelope(401, "INVALID_API_KEY"),
    echo_envelope(403, "API_NOT_ALLOWED"),
    echo_envelope(404, "TASK_NOT_FOUND"),
    echo_envelope(429, "RATE_LIMIT_EXCEEDED"),
    echo_envelope(500, "CREATE_TASK_FAILED"),
    echo_envelope(500, "BILLING_FAILED"),
    echo_page(502),
    echo_page(200),
    echo_page(302),
]
RAISING_HANDLERS: list[Handler] = [
    raise_with_key(t)
    for t in (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, httpx.RemoteProtocolError,
              httpx.ProxyError)
]
# Only submit promises to classify even a foreign exception from the transport.
SUBMIT_ONLY: list[Handler] = [raise_with_key(OSError), raise_with_key(RuntimeError)]


def own_text(exc: BaseException) -> str:
    """What our own exception says about itself (its foreign cause is not ours to word)."""
    return f"{exc}\n{exc!r}\n{exc.args!r}"


def full_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


@pytest.mark.anyio
async def test_key_never_leaks_on_any_failure(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Every submit, task-result and download failure is scanned: the key is in no message or log."""
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    failures = 0
    for handler in RESPONSE_HANDLERS + RAISING_HANDLERS:
        raising = handler in RAISING_HANDLERS
        async with make_http_client(transport=httpx.MockTransport(handler)) as http:
            client = NovitaClient(http, base_url=BASE, api_key=KEY, get_attempts=2, sleep=no_sleep,
                                  rng=random.Random(0))
            texts.append(repr(client))

            result = await client.submit(MODEL, {"prompt": "x"})
            assert result.outcome is not SubmitOutcome.ACCEPTED
            texts.append(result.message)
            texts.append(repr(result))

            for call in (
                lambda client=client: client.task_result("t-1"),
                lambda client=client, failures=failures: client.download(f"https://store.test/v.mp4?sig={failures}",
                                                                         into(tmp_path / "v.mp4")),
            ):
                with pytest.raises(RunnerError) as info:
                    await call()
                failures += 1
                texts.append(own_text(info.value) if raising else full_text(info.value))
    for handler in SUBMIT_ONLY:
        async with make_http_client(transport=httpx.MockTransport(handler)) as http:
            client = NovitaClient(http, base_url=BASE, api_key=KEY)
            result = await client.submit(MODEL, {"prompt": "x"})
            assert result.outcome is SubmitOutcome.AMBIGUOUS
            texts.append(result.message)
    texts.extend(record.getMessage() for record in caplog.records)
    texts.append(caplog.text)
    assert failures == 2 * len(RESPONSE_HANDLERS + RAISING_HANDLERS)
    leaks = [t for t in texts if KEY in t]
    assert leaks == []
    # The scan is real: the handlers did see the key on the provider requests.
    assert any("***" in t for t in texts)


def test_the_key_is_a_pydantic_secret_str_and_redaction_takes_it() -> None:
    """Issue 10 item 8: the hand-written Secret class gave way to pydantic.SecretStr; redact, scrub and the
    classifier take one, and neither its repr nor its str shows the key."""
    from pydantic import SecretStr

    from runner.client import connection
    from runner.client.submit import classify_response
    from runner.client.untrusted import scrub

    assert not hasattr(connection, "Secret")
    secret = SecretStr(KEY)
    assert KEY not in repr(secret) and KEY not in str(secret)
    assert connection.redact(f"bad header Bearer {KEY}", secret) == "bad header Bearer ***"
    assert scrub({"message": f"key {KEY}", "list": [KEY]}, secret) == {"message": "key ***", "list": ["***"]}
    answer = httpx.Response(400, json={"code": 400, "reason": "BAD", "message": f"key {KEY}"},
                            request=httpx.Request("POST", f"{BASE}/v3/async/{MODEL}"))
    result = classify_response(answer, secret=secret)
    assert KEY not in result.message and "***" in result.message
    client = NovitaClient(httpx.AsyncClient(), base_url=BASE, api_key=KEY)
    assert KEY not in repr(vars(client)) and "SecretStr" in repr(vars(client))
