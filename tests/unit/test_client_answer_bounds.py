"""Answers are read plain and bounded (runner/client/connection.py): a hostile provider cannot grow the process
(hostile-data sweep, 2026-12-05: a never-ending or 100 MB answer, or a few MB of gzip, reached gigabytes)."""

from __future__ import annotations

import gzip
import random
from collections.abc import AsyncIterator

import httpx
import pytest

from runner.client.connection import MAX_ANSWER_BYTES, make_http_client
from runner.client.novita import NovitaClient
from runner.client.submit import SubmitOutcome
from runner.errors import ProviderError

BASE = "https://api.example.test"


class Endless(httpx.AsyncByteStream):
    """A body that never ends, counting what was read of it."""

    def __init__(self) -> None:
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            self.sent += 65536
            yield b" " * 65536


def client_for(handler: httpx.MockTransport) -> NovitaClient:
    http = make_http_client(transport=handler)
    return NovitaClient(http, base_url=BASE, api_key="sk-test", get_attempts=2, sleep=_no_sleep,
                        rng=random.Random(1))


async def _no_sleep(seconds: float) -> None:
    return None


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_a_submit_answer_that_never_ends_is_cut_at_the_cap_and_in_doubt() -> None:
    body = Endless()
    client = client_for(httpx.MockTransport(lambda request: httpx.Response(200, stream=body)))
    result = await client.submit("kling-v3.0-std-t2v", {"prompt": "x", "duration": 5})
    assert result.outcome is SubmitOutcome.AMBIGUOUS, result  # sent, no usable answer: held, never resent
    assert body.sent <= MAX_ANSWER_BYTES + 2 * 65536


@pytest.mark.anyio
async def test_a_compressed_answer_is_refused_and_none_is_asked_for() -> None:
    seen: list[httpx.Request] = []
    bomb = gzip.compress(b"{" + b" " * 10_000_000 + b"}")

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=bomb)

    client = client_for(httpx.MockTransport(handler))
    with pytest.raises(ProviderError, match="encoded"):
        await client.task_result("task-1")
    assert seen and all(request.headers["accept-encoding"] == "identity" for request in seen)
