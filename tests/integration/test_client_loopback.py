"""The client against the simulator over a real loopback socket (SimulatorThread).

These are the faults only a real connection shows faithfully: a dropped socket, a response slower
than the read timeout, a body cut off mid-stream, and a port nobody listens on.
"""

from __future__ import annotations

import random
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner import endpoints
from runner.client import NovitaClient, OpenSink, SubmitOutcome, make_http_client
from runner.client.submit import NOT_SENT
from runner.errors import DownloadError, TransientError, UrlExpired
from runner.novita_wire import TaskStatus
from runner.simulator import ManualClock, SimConfig, Simulator, SimulatorThread
from runner.storage.local import LocalStore


def into(dest: Path) -> OpenSink:
    """Sinks for ``dest``, through a local store rooted at its folder."""
    return lambda: LocalStore(dest.parent).open_sink(dest.name)


MODEL = "kling-v3.0-pro-t2v"
KEY = "sk_loopback_key_456"
BODY: dict[str, Any] = endpoints.get("kling-v3.0-pro-t2v").request_body({"prompt": "a lighthouse at dusk", "duration": 3})
TASK_SECONDS = 5.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def no_sleep(seconds: float) -> None:
    return None


@dataclass
class Served:
    sim: Simulator
    clock: ManualClock
    base_url: str
    sent: list[httpx.Request] = field(default_factory=list)

    def client(self, http: httpx.AsyncClient) -> NovitaClient:
        async def record(request: httpx.Request) -> None:
            self.sent.append(request)

        http.event_hooks["request"].append(record)
        return NovitaClient(
            http, base_url=self.base_url, api_key=KEY, get_attempts=3, sleep=no_sleep, rng=random.Random(0)
        )

    def accepted_total(self) -> int:
        return int(self.sim.stats()["accepted_total"])


@pytest.fixture
def served() -> Iterator[Served]:
    clock = ManualClock()
    sim = Simulator(SimConfig(api_key=KEY, task_seconds=TASK_SECONDS, seed=11), clock=clock)
    with SimulatorThread(sim) as server:
        yield Served(sim=sim, clock=clock, base_url=server.base_url)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with make_http_client(connect=5, read=10, write=5, pool=5) as client:
        yield client


async def finished_url(served: Served, client: NovitaClient, task_id: str) -> str:
    served.clock.advance(TASK_SECONDS + 1)
    result = await client.task_result(task_id)
    assert result.task.status is TaskStatus.SUCCEED
    return result.videos[0].video_url


@pytest.mark.anyio
async def test_full_cycle_over_loopback(served: Served, http: httpx.AsyncClient, tmp_path: Path) -> None:
    """Over a real socket: submit, poll, download; the file matches and the download carried no key."""
    client = served.client(http)
    result = await client.submit(MODEL, BODY)
    assert result.outcome is SubmitOutcome.ACCEPTED and result.task_id
    url = await finished_url(served, client, result.task_id)
    assert url.startswith(served.base_url)
    stored = await client.download(url, into(tmp_path / "a" / "v.mp4"))
    assert stored.sha256 == served.sim.stats()["tasks"][result.task_id]["video_sha256"]
    assert (tmp_path / "a" / "v.mp4").read_bytes()[4:8] == b"ftyp"
    downloads = [r for r in served.sent if "/_sim/videos/" in r.url.path]
    assert len(downloads) == 1 and "authorization" not in downloads[0].headers
    api_calls = [r for r in served.sent if r.url.path.startswith("/v3/")]
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in api_calls)


@pytest.mark.anyio
async def test_dropped_socket_is_ambiguous_and_task_was_created(served: Served, http: httpx.AsyncClient) -> None:
    """p_drop on a real socket: the simulator created a task, the client says AMBIGUOUS and sent one POST."""
    served.sim.configure(p_drop=1.0)
    client = served.client(http)
    result = await client.submit(MODEL, BODY)
    assert result.outcome is SubmitOutcome.AMBIGUOUS
    assert result.reason in ("RemoteProtocolError", "ReadError")
    assert served.accepted_total() == 1
    assert sum(1 for r in served.sent if r.method == "POST") == 1


@pytest.mark.anyio
async def test_a_submit_its_caller_stops_at_the_first_byte_sends_nothing(served: Served, http: httpx.AsyncClient) -> None:
    """Review of the lease check: between a runner's last look at its lease and its POST's first byte come a wait for
    a connection, a connect, a stalled loop. ``may_send`` is asked as the headers are about to go (a connection
    made, a connection reused): no, and nothing reaches the provider, a refusal of reason NOT_SENT; yes, and the
    POST goes as ever."""
    client = served.client(http)
    asked: list[bool] = []

    def no() -> bool:
        asked.append(False)
        return False

    result = await client.submit(MODEL, BODY, may_send=no)
    assert (result.outcome, result.reason, result.retryable, result.fatal) == (SubmitOutcome.REFUSED, NOT_SENT,
                                                                            False, False)
    assert asked == [False] and served.accepted_total() == 0
    accepted = await client.submit(MODEL, BODY, may_send=lambda: True)
    assert accepted.outcome is SubmitOutcome.ACCEPTED and served.accepted_total() == 1
    again = await client.submit(MODEL, BODY, may_send=no)  # on the connection kept alive: the same
    assert again.reason == NOT_SENT and asked == [False, False] and served.accepted_total() == 1


@pytest.mark.anyio
async def test_slow_response_past_read_timeout_is_ambiguous(served: Served) -> None:
    """p_slow: a response slower than the read timeout is AMBIGUOUS ReadTimeout, and the task exists."""
    served.sim.configure(p_slow=1.0, slow_seconds=2.0)
    async with make_http_client(connect=5, read=0.3, write=5, pool=5) as slow_http:
        client = served.client(slow_http)
        result = await client.submit(MODEL, BODY)
    assert result.outcome is SubmitOutcome.AMBIGUOUS
    assert result.reason == "ReadTimeout"
    assert "may have been created and paid for" in result.message
    assert served.accepted_total() == 1
    assert sum(1 for r in served.sent if r.method == "POST") == 1


@pytest.mark.anyio
async def test_truncated_body_on_socket_fails_cleanly(
    served: Served, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    """p_truncated on a real socket: DownloadError after the retries, nothing on disk; then it downloads."""
    client = served.client(http)
    result = await client.submit(MODEL, BODY)
    assert result.task_id
    url = await finished_url(served, client, result.task_id)
    served.sim.configure(p_truncated=1.0)
    with pytest.raises(DownloadError) as info:
        await client.download(url, into(tmp_path / "v.mp4"))
    assert not isinstance(info.value, UrlExpired)
    assert len([r for r in served.sent if "/_sim/videos/" in r.url.path]) == 3
    assert list(tmp_path.iterdir()) == []
    served.sim.configure(p_truncated=0.0)
    assert (await client.download(url, into(tmp_path / "v.mp4"))).bytes > 0


@pytest.mark.anyio
async def test_expired_url_over_loopback(served: Served, http: httpx.AsyncClient, tmp_path: Path) -> None:
    """An expired URL over a real socket raises UrlExpired; the next task_result's URL downloads."""
    client = served.client(http)
    result = await client.submit(MODEL, BODY)
    assert result.task_id
    served.sim.configure(p_expired_url=1.0)
    url = await finished_url(served, client, result.task_id)
    with pytest.raises(UrlExpired) as info:
        await client.download(url, into(tmp_path / "v.mp4"))
    assert info.value.status == 403
    served.sim.configure(p_expired_url=0.0)
    fresh = (await client.task_result(result.task_id)).videos[0].video_url
    assert (await client.download(fresh, into(tmp_path / "v.mp4"))).bytes > 0


def closed_port() -> int:
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.anyio
async def test_connection_refused_is_refused_retryable() -> None:
    """Nothing listening: submit is REFUSED retryable (nothing sent) and task_result ends in TransientError."""
    async with make_http_client(connect=2) as http:
        client = NovitaClient(
            http, base_url=f"http://127.0.0.1:{closed_port()}", api_key=KEY, get_attempts=2, sleep=no_sleep
        )
        result = await client.submit(MODEL, BODY)
        assert result.outcome is SubmitOutcome.REFUSED and result.retryable
        assert result.reason == "ConnectError"
        with pytest.raises(TransientError):
            await client.task_result("t-1")
