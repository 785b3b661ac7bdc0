"""The client against the simulator in-process (sim_transport): every fault knob and its classification.

The simulator's own accounting (``sim.stats()``) proves what was really paid for, so these tests
check the client's claim ("refused: nothing created" / "ambiguous: may have been created") against
the truth.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner import endpoints
from runner.client import NovitaClient, OpenSink, SubmitOutcome, make_http_client
from runner.client.submit import classify_response
from runner.errors import AuthError, DownloadError, TaskNotFound, TransientError, UrlExpired
from runner.jobs import canonical_json
from runner.novita_wire import TaskStatus
from runner.simulator import ManualClock, SimConfig, Simulator, sim_transport
from runner.storage.local import LocalStore


def into(dest: Path) -> OpenSink:
    """Sinks for ``dest``, through a local store rooted at its folder."""
    return lambda: LocalStore(dest.parent).open_sink(dest.name)


MODEL = "kling-v3.0-pro-t2v"
KEY = "sk_sim_key_123"
BASE = "http://sim.test"
BODY: dict[str, Any] = endpoints.get("kling-v3.0-pro-t2v").request_body({"prompt": "a red fox in the snow", "duration": 5})
TASK_SECONDS = 10.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@dataclass
class Rig:
    sim: Simulator
    clock: ManualClock
    client: NovitaClient
    sleep: FakeSleep
    sent: list[httpx.Request] = field(default_factory=list)

    def posts(self) -> int:
        return sum(1 for r in self.sent if r.method == "POST")

    def accepted_total(self) -> int:
        return int(self.sim.stats()["accepted_total"])

    async def finished_url(self, task_id: str) -> str:
        """Advance past the task time and return the video URL of the succeeded task."""
        self.clock.advance(TASK_SECONDS + 1)
        result = await self.client.task_result(task_id)
        assert result.task.status is TaskStatus.SUCCEED
        return result.videos[0].video_url


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    clock = ManualClock()
    sim = Simulator(SimConfig(api_key=KEY, task_seconds=TASK_SECONDS, seed=7), clock=clock)
    sleep = FakeSleep()
    sent: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        sent.append(request)

    async with make_http_client(transport=sim_transport(sim)) as http:
        http.event_hooks["request"].append(record)
        client = NovitaClient(http, base_url=BASE, api_key=KEY, get_attempts=3, sleep=sleep, rng=random.Random(0))
        yield Rig(sim=sim, clock=clock, client=client, sleep=sleep, sent=sent)


def body_sha256(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


@pytest.mark.anyio
async def test_happy_path_submit_poll_download(rig: Rig, tmp_path: Path) -> None:
    """A clean run: ACCEPTED, QUEUED/PROCESSING then SUCCEED, and the stored file matches the simulator's video."""
    result = await rig.client.submit(MODEL, BODY)
    assert result.outcome is SubmitOutcome.ACCEPTED and result.task_id
    first = await rig.client.task_result(result.task_id)
    assert first.task.status in (TaskStatus.QUEUED, TaskStatus.PROCESSING)
    url = await rig.finished_url(result.task_id)
    stored = await rig.client.download(url, into(tmp_path / "fox.mp4"))
    truth = rig.sim.stats()["tasks"][result.task_id]
    assert stored.sha256 == truth["video_sha256"]
    assert stored.bytes == truth["video_bytes"] == (tmp_path / "fox.mp4").stat().st_size
    assert rig.sim.stats()["accepted_by_body"] == {body_sha256(BODY): 1}
    download_requests = [r for r in rig.sent if "/_sim/videos/" in r.url.path]
    assert download_requests and all("authorization" not in r.headers for r in download_requests)


@pytest.mark.anyio
async def test_rate_limit_is_refused_retryable_and_creates_nothing(rig: Rig) -> None:
    """p_rate_limit: REFUSED retryable with the simulator's Retry-After, and no task was created."""
    rig.sim.configure(p_rate_limit=1.0, retry_after=4.0, retry_after_header=True)
    result = await rig.client.submit(MODEL, BODY)
    assert result.outcome is SubmitOutcome.REFUSED and result.retryable
    assert result.http_status == 429 and result.reason == "RATE_LIMIT_EXCEEDED"
    assert result.retry_after == pytest.approx(4.0)
    assert rig.accepted_total() == 0
    assert rig.posts() == 1


@pytest.mark.anyio
async def test_rate_limit_without_retry_after(rig: Rig) -> None:
    """p_rate_limit_no_retry_after: REFUSED retryable with retry_after None, nothing created."""
    rig.sim.configure(p_rate_limit_no_retry_after=1.0)
    result = await rig.client.submit(MODEL, BODY)
    assert result.outcome is SubmitOutcome.REFUSED and result.retryable
    assert result.retry_after is None
    assert rig.accepted_total() == 0
    assert rig.posts() == 1


@pytest.mark.anyio
async def test_rpm_limit_refuses_the_extra_submit(rig: Rig) -> None:
    """The simulator's rpm window: the (rpm+1)th submit is REFUSED retryable, and passes after a minute."""
    rig.sim.configure(rpm=2, retry_after=30.0, retry_after_header=True)
    outcomes = [(await rig.client.submit(MODEL, BODY)).outcome for _ in range(3)]
    assert outcomes == [SubmitOutcome.ACCEPTED, SubmitOutcome.ACCEPTED, SubmitOutcome.REFUSED]
    rig.clock.advance(61)
    assert (await rig.client.submit(MODEL, BODY)).outcome is SubmitOutcome.ACCEPTED
    assert rig.accepted_total() == 3


@pytest.mark.anyio
async def test_create_failed_is_refused_retryable_and_creates_nothing(rig: Rig) -> None:
    """p_create_failed: the client says REFUSED retryable and the simulator indeed created no task."""
    rig.sim.configure(p_create_failed=1.0)
    result = await rig.client.submit(MODEL, BODY)
    assert result.outcome is SubmitOutcome.REFUSED and result.retryable
    assert result.reason == "CREATE_TASK_FAILED" and result.http_status == 500
    assert rig.accepted_total() == 0
    assert rig.posts() == 1


@pytest.mark.anyio
@pytest.mark.parametrize("created_fraction", [1.0, 0.0])
async def test_gateway_page_is_ambiguous_whether_or_not_a_task_exists(rig: Rig, created_fraction: float) -> None:
    """p_gateway: a 502/504 page is AMBIGUOUS both when the task was created and when it was not."""
    rig.sim.configure(p_gateway=1.0, gateway_created_fraction=created_fraction)
    result = await rig.client.submit(MODEL, BODY)
    assert result.outcome is SubmitOutcome.AMBIGUOUS
    assert result.http_status in (502, 504)
    assert rig.accepted_total() == int(created_fraction)
    assert rig.posts() == 1


@pytest.mark.anyio
async def test_dropped_connection_is_ambiguous_and_a_task_was_paid(rig: Rig) -> None:
    """p_drop: the simulator created (and charged) a task while the client could only say AMBIGUOUS."""
    rig.sim.configure(p_drop=1.0)
    result = await rig.client.submit(MODEL, BODY)
    assert result.outcome is SubmitOutcome.AMBIGUOUS
    assert result.reason == "RemoteProtocolError"
    assert "may have been created and paid for" in result.message
    assert rig.accepted_total() == 1
    assert rig.posts() == 1


@pytest.mark.anyio
async def test_malformed_200_is_ambiguous_and_a_task_was_paid(rig: Rig) -> None:
    """p_malformed: every malformed 200 body the simulator sends is AMBIGUOUS; each created a task."""
    rig.sim.configure(p_malformed=1.0)
    results = [await rig.client.submit(MODEL, BODY) for _ in range(8)]
    assert all(r.outcome is SubmitOutcome.AMBIGUOUS and r.http_status == 200 for r in results)
    assert rig.accepted_total() == 8
    assert rig.posts() == 8


@pytest.mark.anyio
async def test_auth_refusals_are_fatal_and_task_result_raises_auth_error(rig: Rig) -> None:
    """A wrong key makes submit REFUSED fatal (403) and task_result raise AuthError."""
    async with make_http_client(transport=sim_transport(rig.sim)) as http:
        wrong = NovitaClient(http, base_url=BASE, api_key="sk_wrong", sleep=rig.sleep)
        result = await wrong.submit(MODEL, BODY)
        assert result.outcome is SubmitOutcome.REFUSED and result.fatal
        assert result.http_status == 403
        with pytest.raises(AuthError):
            await wrong.task_result("whatever")
    assert rig.accepted_total() == 0


@pytest.mark.anyio
async def test_missing_key_is_fatal(rig: Rig) -> None:
    """A request without the Authorization header is refused fatally: 400 MISSING_API_KEY (the error
    table), or 401 with the simulator's auth_401 knob (the general guide)."""
    for auth_401, status in ((False, 400), (True, 401)):
        rig.sim.configure(auth_401=auth_401)
        async with make_http_client(transport=sim_transport(rig.sim)) as http:
            response = await http.post(f"{BASE}/v3/async/{MODEL}", json=BODY)
        result = classify_response(response)
        assert result.outcome is SubmitOutcome.REFUSED and result.fatal
        assert result.http_status == status and result.reason == "MISSING_API_KEY"


@pytest.mark.anyio
async def test_invalid_body_and_unknown_model_are_refused_permanently(rig: Rig) -> None:
    """A body the provider rejects is REFUSED for good; an unknown endpoint is REFUSED and stops the run."""
    bad = await rig.client.submit(MODEL, {**BODY, "duration": 20})
    assert bad.outcome is SubmitOutcome.REFUSED and not bad.retryable and not bad.fatal
    assert bad.reason == "INVALID_REQUEST_BODY" and bad.http_status == 400
    unknown = await rig.client.submit("no-such-model", BODY)
    assert unknown.outcome is SubmitOutcome.REFUSED and not unknown.retryable
    assert unknown.fatal and unknown.unknown_route  # a configuration error, not this job's fault
    assert unknown.reason == "API_NOT_FOUND" and unknown.http_status == 404
    assert rig.accepted_total() == 0


@pytest.mark.anyio
async def test_unknown_task_raises_task_not_found(rig: Rig) -> None:
    """task_result of an id the provider never issued raises TaskNotFound, without retrying."""
    with pytest.raises(TaskNotFound):
        await rig.client.task_result("no-such-task")
    assert rig.sleep.delays == []


@pytest.mark.anyio
async def test_task_failed_is_reported_with_reason(rig: Rig) -> None:
    """p_task_failed: the task ends TASK_STATUS_FAILED with a non-empty reason, returned not raised."""
    rig.sim.configure(p_task_failed=1.0)
    result = await rig.client.submit(MODEL, BODY)
    assert result.task_id
    rig.clock.advance(TASK_SECONDS + 1)
    polled = await rig.client.task_result(result.task_id)
    assert polled.task.status is TaskStatus.FAILED
    assert polled.task.reason
    assert polled.videos == []


@pytest.mark.anyio
async def test_poll_errors_are_retried_then_raise_transient(rig: Rig) -> None:
    """p_poll_error: task_result retries up to get_attempts, then TransientError; it recovers when polls do."""
    result = await rig.client.submit(MODEL, BODY)
    assert result.task_id
    rig.sim.configure(p_poll_error=1.0)
    polls_before = rig.sim.stats()["polls"]
    with pytest.raises(TransientError) as info:
        await rig.client.task_result(result.task_id)
    assert info.value.status in (500, 503)
    assert rig.sim.stats()["polls"] - polls_before == 3
    assert len(rig.sleep.delays) == 2
    rig.sim.configure(p_poll_error=0.0)
    assert (await rig.client.task_result(result.task_id)).task.task_id == result.task_id


@pytest.mark.anyio
async def test_truncated_download_fails_cleanly_then_succeeds(rig: Rig, tmp_path: Path) -> None:
    """p_truncated: downloads fail as DownloadError with nothing left on disk; a later try stores the file."""
    result = await rig.client.submit(MODEL, BODY)
    assert result.task_id
    url = await rig.finished_url(result.task_id)
    rig.sim.configure(p_truncated=1.0)
    dest = tmp_path / "v.mp4"
    with pytest.raises(DownloadError) as info:
        await rig.client.download(url, into(dest))
    assert not isinstance(info.value, UrlExpired)
    assert list(tmp_path.iterdir()) == []
    rig.sim.configure(p_truncated=0.0)
    stored = await rig.client.download(url, into(dest))
    assert stored.sha256 == rig.sim.stats()["tasks"][result.task_id]["video_sha256"]


@pytest.mark.anyio
async def test_expired_url_then_fresh_url_downloads(rig: Rig, tmp_path: Path) -> None:
    """p_expired_url: UrlExpired at once (no retry); a fresh task_result gives a URL that downloads."""
    result = await rig.client.submit(MODEL, BODY)
    assert result.task_id
    rig.sim.configure(p_expired_url=1.0)
    url = await rig.finished_url(result.task_id)
    downloads_before = len([r for r in rig.sent if "/_sim/videos/" in r.url.path])
    with pytest.raises(UrlExpired):
        await rig.client.download(url, into(tmp_path / "v.mp4"))
    assert len([r for r in rig.sent if "/_sim/videos/" in r.url.path]) == downloads_before + 1
    rig.sim.configure(p_expired_url=0.0)
    fresh = (await rig.client.task_result(result.task_id)).videos[0].video_url
    assert fresh != url
    stored = await rig.client.download(fresh, into(tmp_path / "v.mp4"))
    assert stored.bytes > 0


@pytest.mark.anyio
async def test_url_expires_with_its_ttl(rig: Rig, tmp_path: Path) -> None:
    """A URL used after its TTL (simulated clock) raises UrlExpired; re-polling renews it."""
    rig.sim.configure(video_url_ttl=60)
    result = await rig.client.submit(MODEL, BODY)
    assert result.task_id
    url = await rig.finished_url(result.task_id)
    rig.clock.advance(61)
    with pytest.raises(UrlExpired):
        await rig.client.download(url, into(tmp_path / "v.mp4"))
    fresh = (await rig.client.task_result(result.task_id)).videos[0].video_url
    assert (await rig.client.download(fresh, into(tmp_path / "v.mp4"))).bytes > 0
