"""Unit tests of task_result: parsing, error translation and retry/backoff with a fake sleep."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from runner.client import NovitaClient, make_http_client
from runner.errors import (
    AuthError,
    EndpointNotFound,
    ProviderError,
    RateLimited,
    RequestRejected,
    TaskNotFound,
    TransientError,
)
from runner.novita_wire import TaskStatus
from runner.testing_http import Trickle

KEY = "sk_test_SECRET_0123456789"
BASE = "https://api.example.test"

Handler = Callable[[httpx.Request], httpx.Response]

SUCCEED: dict[str, Any] = {
    "task": {"task_id": "t-1", "task_type": "KLING", "status": "TASK_STATUS_SUCCEED", "reason": "",
             "eta": 0, "progress_percent": 100},
    "videos": [{"video_url": "https://store.test/v.mp4?sig=x", "video_url_ttl": "3600", "video_type": "mp4"}],
    "images": [],
    "audios": [],
    "extra": {"debug_info": {"submit_time_ms": "1718000000000"}},
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeSleep:
    """Records the delays it is asked to sleep, without sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def echoing(request: httpx.Request) -> httpx.Response:
    """SUCCEED, naming the task that was asked (an answer naming another task is refused)."""
    return httpx.Response(200, json={**SUCCEED, "task": {**SUCCEED["task"], "task_id": request.url.params["task_id"]}})


def sequence(*responses: Handler | httpx.Response) -> tuple[Handler, list[httpx.Request]]:
    """A handler answering the given responses in order (the last one repeats)."""
    seen: list[httpx.Request] = []
    items = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = items[min(len(seen) - 1, len(items) - 1)]
        return item(request) if callable(item) else item

    return handler, seen


def env(status: int, reason: str, message: str = "", headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status, json={"code": status, "reason": reason, "message": message, "metadata": {}}, headers=headers
    )


def raise_(exc_type: type[httpx.HTTPError]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_type("boom", request=request)  # type: ignore[call-arg]

    return handler


class Setup:
    def __init__(self, handler: Handler, *, attempts: int = 5, base: float = 0.5, cap: float = 30.0) -> None:
        self.sleep = FakeSleep()
        self.http = make_http_client(transport=httpx.MockTransport(handler))
        self.client = NovitaClient(
            self.http, base_url=BASE, api_key=KEY, get_attempts=attempts, backoff_base=base,
            backoff_max=cap, sleep=self.sleep, rng=random.Random(1),
        )


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., Setup]]:
    made: list[Setup] = []

    def factory(handler: Handler, **kw: Any) -> Setup:
        s = Setup(handler, **kw)
        made.append(s)
        return s

    yield factory
    for s in made:
        await s.http.aclose()


@pytest.mark.anyio
async def test_parses_success_and_sends_key_and_task_id(make: Callable[..., Setup]) -> None:
    """A 200 is parsed into a TaskResult; the GET carries the Bearer key and the task_id query."""
    handler, seen = sequence(httpx.Response(200, json=SUCCEED))
    s = make(handler)
    result = await s.client.task_result("t-1")
    assert result.task.status is TaskStatus.SUCCEED
    assert result.videos[0].video_url.startswith("https://store.test/")
    assert result.videos[0].video_url_ttl == 3600
    (req,) = seen
    assert req.method == "GET"
    assert req.url.path == "/v3/async/task-result"
    assert req.url.params["task_id"] == "t-1"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert s.sleep.delays == []


@pytest.mark.anyio
async def test_task_id_is_url_encoded(make: Callable[..., Setup]) -> None:
    """A task_id with reserved characters is sent as one query value, not spliced into the URL."""
    handler, seen = sequence(echoing)
    s = make(handler)
    await s.client.task_result("a&b=c d")
    assert seen[0].url.params["task_id"] == "a&b=c d"
    assert list(seen[0].url.params.keys()) == ["task_id"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "failure",
    [
        env(500, "GET_RESULT_FAILED"),
        httpx.Response(503, text="<html>overloaded</html>"),
        httpx.Response(200, text="not json"),
        httpx.Response(200, json=[1, 2]),
        raise_(httpx.ConnectError),
        raise_(httpx.ReadTimeout),
        raise_(httpx.RemoteProtocolError),
    ],
    ids=["500-envelope", "503-page", "malformed", "json-list", "connect", "read-timeout", "dropped"],
)
async def test_transient_failures_are_retried_then_succeed(failure: Any, make: Callable[..., Setup]) -> None:
    """Transient failures (5xx, network, malformed JSON) are retried with backoff until a good answer."""
    handler, seen = sequence(failure, failure, httpx.Response(200, json=SUCCEED))
    s = make(handler)
    result = await s.client.task_result("t-1")
    assert result.task.status is TaskStatus.SUCCEED
    assert len(seen) == 3
    assert len(s.sleep.delays) == 2


@pytest.mark.anyio
async def test_attempts_are_capped_then_transient_error(make: Callable[..., Setup]) -> None:
    """After get_attempts tries a persistent 5xx raises TransientError carrying status and reason."""
    handler, seen = sequence(env(500, "GET_RESULT_FAILED", "db down"))
    s = make(handler, attempts=4)
    with pytest.raises(TransientError) as info:
        await s.client.task_result("t-1")
    assert type(info.value) is TransientError
    assert info.value.status == 500
    assert info.value.reason == "GET_RESULT_FAILED"
    assert "t-1" in str(info.value) and "4" in str(info.value)
    assert len(seen) == 4
    assert len(s.sleep.delays) == 3


@pytest.mark.anyio
async def test_network_error_exhausted_is_transient_error(make: Callable[..., Setup]) -> None:
    """A network that keeps failing ends in TransientError (no httpx exception escapes)."""
    handler, seen = sequence(raise_(httpx.ConnectError))
    s = make(handler, attempts=3)
    with pytest.raises(TransientError) as info:
        await s.client.task_result("t-1")
    assert "ConnectError" in str(info.value)
    assert isinstance(info.value.__cause__, Exception)
    assert len(seen) == 3


@pytest.mark.anyio
async def test_backoff_is_full_jitter_exponential_and_capped(make: Callable[..., Setup]) -> None:
    """Backoff delays stay within [0, min(cap, base*2**n)] and are jittered, not constant."""
    handler, _ = sequence(httpx.Response(502, text="bad gateway"))
    s = make(handler, attempts=40, base=0.5, cap=4.0)
    with pytest.raises(TransientError):
        await s.client.task_result("t-1")
    delays = s.sleep.delays
    assert len(delays) == 39
    for n, delay in enumerate(delays):
        assert 0.0 <= delay <= min(4.0, 0.5 * 2**n)
    assert len(set(delays)) > 30  # jittered
    assert max(delays[5:]) > 2.0  # grows towards the cap


@pytest.mark.anyio
@pytest.mark.parametrize(("headers", "retry_after"), [({"Retry-After": "2.5"}, 2.5), ({"Retry-After": "600"}, 600.0),
                                                      ({}, None)])
async def test_429_is_handed_to_the_callers_limiter_at_once(
    make: Callable[..., Setup], headers: dict[str, str], retry_after: float | None,
) -> None:
    """A 429 is not retried per request (that hammers a provider shedding load): RateLimited is raised at once,
    carrying Retry-After when the provider sent one, so the poller's one shared limiter paces every poll."""
    handler, seen = sequence(env(429, "RATE_LIMIT_EXCEEDED", headers=headers), httpx.Response(200, json=SUCCEED))
    s = make(handler, attempts=5)
    with pytest.raises(RateLimited) as info:
        await s.client.task_result("t-1")
    assert info.value.retry_after == retry_after
    assert info.value.status == 429
    assert s.sleep.delays == []
    assert len(seen) == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("response", "exc_type", "reason"),
    [
        (env(401, "INVALID_API_KEY"), AuthError, "INVALID_API_KEY"),
        (env(403, "API_NOT_ALLOWED"), AuthError, "API_NOT_ALLOWED"),
        (env(400, "MISSING_API_KEY"), AuthError, "MISSING_API_KEY"),
        (env(404, "TASK_NOT_FOUND", "no such task"), TaskNotFound, "TASK_NOT_FOUND"),
        (env(404, "API_NOT_FOUND"), EndpointNotFound, "API_NOT_FOUND"),  # a wrong base URL
        (env(400, "INVALID_REQUEST_BODY"), RequestRejected, "INVALID_REQUEST_BODY"),
        (httpx.Response(404, text="not here"), EndpointNotFound, None),
    ],
    ids=["401", "403", "missing-key", "task-not-found", "api-not-found", "400", "404-page"],
)
async def test_4xx_are_not_retried(
    response: httpx.Response, exc_type: type[ProviderError], reason: str | None, make: Callable[..., Setup]
) -> None:
    """Auth errors, unknown tasks and other 4xx raise at once with status and reason, without retry."""
    handler, seen = sequence(response)
    s = make(handler)
    with pytest.raises(exc_type) as info:
        await s.client.task_result("t-9")
    assert type(info.value) is exc_type
    assert info.value.status == response.status_code
    assert info.value.reason == reason
    assert len(seen) == 1
    assert s.sleep.delays == []


@pytest.mark.anyio
async def test_failed_task_is_a_result_not_an_error(make: Callable[..., Setup]) -> None:
    """A task the provider reports FAILED comes back as a TaskResult with its reason."""
    body = {"task": {"task_id": "t-1", "status": "TASK_STATUS_FAILED", "reason": "content moderation"}}
    handler, _ = sequence(httpx.Response(200, json=body))
    s = make(handler)
    result = await s.client.task_result("t-1")
    assert result.task.status is TaskStatus.FAILED
    assert result.task.reason == "content moderation"


@pytest.mark.anyio
@pytest.mark.parametrize("task_id", ["t-1", "a+b&c=d/e?f#g%20", "tâche-é"])
async def test_the_task_id_reaches_the_provider_as_it_is(make: Callable[..., Setup], task_id: str) -> None:
    """The poll's query is built by hand (not httpx's params=): reserved characters are escaped the same."""
    handler, seen = sequence(echoing)
    await make(handler).client.task_result(task_id)
    assert seen[0].url.params["task_id"] == task_id and list(seen[0].url.params) == ["task_id"]
    assert seen[0].url.path == "/v3/async/task-result"


@pytest.mark.anyio
async def test_an_answer_naming_another_task_is_never_taken_for_this_one(make: Callable[..., Setup]) -> None:
    """The answer to a poll of t-2 names t-1 (a caching proxy, a provider's mix-up): its video was stored as t-2's
    job's (hostile-data sweep, 2026-12-05). It is an unusable answer: tried again, then given up as a failure."""
    handler, seen = sequence(httpx.Response(200, json=SUCCEED))  # always names t-1
    with pytest.raises(TransientError, match="the answer is for task 't-1', not the one asked"):
        await make(handler).client.task_result("t-2")
    assert len(seen) >= 2  # tried again


@pytest.mark.anyio
async def test_an_answer_that_trickles_forever_is_cut_at_the_read_timeout(make: Callable[..., Setup]) -> None:
    """A task-result body that trickles a byte at a time never trips httpx's per-read timeout: the whole answer has
    the read timeout as its deadline, and one that misses it is retried like any transient failure (a poll never
    holds its job, and the run, for good)."""
    import anyio

    handler, seen = sequence(lambda request: httpx.Response(200, stream=Trickle()))
    s = make(handler, attempts=2)
    s.http.timeout = httpx.Timeout(0.05)  # connect, read, write, pool: 0.15 s for the whole exchange
    with anyio.fail_after(5):
        with pytest.raises(TransientError, match=r"no whole answer within 0\.15 s"):
            await s.client.task_result("t-1")
    assert len(seen) == 2
