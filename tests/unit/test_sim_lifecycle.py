"""Task life cycle, result shape, retention and presigned URLs, driven by a ManualClock."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from runner.jobs import canonical_json
from runner.novita_wire import TaskResult, TaskStatus
from runner.simulator import ManualClock, SimConfig, Simulator, sim_transport

SUBMIT = "/v3/async/kling-v3.0-pro-t2v"
RESULT = "/v3/async/task-result"
BODY = {"prompt": "a paper boat on a rainy street", "duration": 5}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1000.0)


def _client(sim: Simulator, base_url: str = "http://sim.test") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=sim_transport(sim), base_url=base_url, headers={"Authorization": "Bearer sk-test"}
    )


async def _submit(client: httpx.AsyncClient, body: dict[str, Any] | None = None) -> str:
    response = await client.post(SUBMIT, json=body or BODY)
    assert response.status_code == 200, response.text
    task_id: str = response.json()["task_id"]
    return task_id


async def _poll(client: httpx.AsyncClient, task_id: str) -> httpx.Response:
    return await client.get(RESULT, params={"task_id": task_id})


@pytest.mark.anyio
async def test_task_walks_queued_processing_succeed(clock: ManualClock) -> None:
    """A task is QUEUED, then PROCESSING with a falling eta and rising progress, then SUCCEED with a video."""
    sim = Simulator(SimConfig(task_seconds=10, queue_fraction=0.2), clock=clock)
    async with _client(sim) as client:
        task_id = await _submit(client)
        queued = (await _poll(client, task_id)).json()
        clock.advance(4)
        early = (await _poll(client, task_id)).json()
        clock.advance(4)
        late = (await _poll(client, task_id)).json()
        clock.advance(2)
        done = (await _poll(client, task_id)).json()

    assert queued["task"]["status"] == "TASK_STATUS_QUEUED"
    assert queued["task"]["eta"] == 10
    assert queued["task"]["progress_percent"] == 0
    assert queued["videos"] == []
    assert early["task"]["status"] == "TASK_STATUS_PROCESSING"
    assert late["task"]["status"] == "TASK_STATUS_PROCESSING"
    assert (early["task"]["eta"], late["task"]["eta"]) == (6, 2)
    assert 0 < early["task"]["progress_percent"] < late["task"]["progress_percent"] < 100
    assert done["task"]["status"] == "TASK_STATUS_SUCCEED"
    assert done["task"]["progress_percent"] == 100
    assert done["task"]["reason"] == ""
    [video] = done["videos"]
    assert video["video_type"] == "mp4"
    assert video["video_url_ttl"] == "3600"
    assert video["video_url"].startswith(f"http://sim.test/_sim/videos/{task_id}.mp4?")


@pytest.mark.anyio
async def test_result_has_the_documented_shape(clock: ManualClock) -> None:
    """The result carries task, videos, images, audios and extra.debug_info with string ms timestamps."""
    sim = Simulator(SimConfig(task_seconds=2), clock=clock)
    async with _client(sim) as client:
        task_id = await _submit(client)
        queued = (await _poll(client, task_id)).json()
        clock.advance(2)
        done = (await _poll(client, task_id)).json()
    assert set(done) == {"task", "videos", "images", "audios", "extra"}
    assert set(done["task"]) == {"task_id", "task_type", "status", "reason", "eta", "progress_percent"}
    assert done["images"] == [] and done["audios"] == []
    info = done["extra"]["debug_info"]
    assert all(isinstance(info[k], str) for k in ("submit_time_ms", "execute_time_ms", "complete_time_ms"))
    assert int(info["complete_time_ms"]) - int(info["submit_time_ms"]) == 2000
    assert int(info["submit_time_ms"]) <= int(info["execute_time_ms"]) <= int(info["complete_time_ms"])
    assert queued["extra"]["debug_info"]["complete_time_ms"] == ""
    assert queued["extra"]["debug_info"]["execute_time_ms"] == ""
    parsed = TaskResult.model_validate(done)  # the client's tolerant reader understands it
    assert parsed.task.status is TaskStatus.SUCCEED
    assert parsed.videos[0].video_url_ttl == 3600


@pytest.mark.anyio
async def test_failed_task_has_a_reason(clock: ManualClock) -> None:
    """With p_task_failed=1 a task ends FAILED (HTTP 200) with a non-empty reason and no videos."""
    sim = Simulator(SimConfig(task_seconds=1, p_task_failed=1.0), clock=clock)
    async with _client(sim) as client:
        task_id = await _submit(client)
        running = (await _poll(client, task_id)).json()
        clock.advance(1)
        response = await _poll(client, task_id)
    assert running["task"]["status"] == "TASK_STATUS_QUEUED"
    assert running["task"]["reason"] == ""
    assert response.status_code == 200
    result = response.json()
    assert result["task"]["status"] == "TASK_STATUS_FAILED"
    assert result["task"]["reason"]
    assert result["videos"] == []
    assert sim.task(task_id).status is TaskStatus.FAILED
    assert sim.stats()["tasks"][task_id]["video_sha256"] is None


@pytest.mark.anyio
async def test_unknown_task_is_404_task_not_found() -> None:
    """An unknown task_id answers 404 TASK_NOT_FOUND; a missing one 400."""
    sim = Simulator(SimConfig())
    async with _client(sim) as client:
        unknown = await _poll(client, "00000000-0000-4000-8000-000000000000")
        missing = await client.get(RESULT)
    assert unknown.status_code == 404
    assert unknown.json()["reason"] == "TASK_NOT_FOUND"
    assert missing.status_code == 400
    with pytest.raises(KeyError):
        sim.task("00000000-0000-4000-8000-000000000000")


@pytest.mark.anyio
async def test_finished_task_is_forgotten_after_retention(clock: ManualClock) -> None:
    """With task_retention_seconds, a finished task answers TASK_NOT_FOUND once retention has passed."""
    sim = Simulator(SimConfig(task_seconds=10, task_retention_seconds=60), clock=clock)
    async with _client(sim) as client:
        task_id = await _submit(client)
        clock.advance(10 + 59)
        kept = await _poll(client, task_id)
        clock.advance(1)
        gone = await _poll(client, task_id)
    assert kept.json()["task"]["status"] == "TASK_STATUS_SUCCEED"
    assert gone.status_code == 404
    assert gone.json()["reason"] == "TASK_NOT_FOUND"


@pytest.mark.anyio
async def test_running_task_is_never_forgotten(clock: ManualClock) -> None:
    """Retention counts from the end of a task, so a long task stays queryable while it runs."""
    sim = Simulator(SimConfig(task_seconds=1000, task_retention_seconds=1), clock=clock)
    async with _client(sim) as client:
        task_id = await _submit(client)
        clock.advance(999)
        response = await _poll(client, task_id)
    assert response.json()["task"]["status"] == "TASK_STATUS_PROCESSING"


async def _video_url(client: httpx.AsyncClient, task_id: str) -> str:
    url: str = (await _poll(client, task_id)).json()["videos"][0]["video_url"]
    return url


@pytest.mark.anyio
async def test_each_result_call_signs_a_fresh_url(clock: ManualClock) -> None:
    """Every task-result call hands out a new URL with a new expiry; all of them work."""
    sim = Simulator(SimConfig(task_seconds=0, video_url_ttl=100), clock=clock)
    async with _client(sim) as client:
        task_id = await _submit(client)
        first = await _video_url(client, task_id)
        same_instant = await _video_url(client, task_id)
        clock.advance(50)
        later = await _video_url(client, task_id)
        assert len({first, same_instant, later}) == 3
        expiry = [float(parse_qs(urlsplit(u).query)["expires"][0]) for u in (first, later)]
        assert expiry[1] - expiry[0] == pytest.approx(50)
        for url in (first, same_instant, later):
            assert (await client.get(url)).status_code == 200


@pytest.mark.anyio
async def test_url_works_before_ttl_and_403s_after(clock: ManualClock) -> None:
    """A URL downloads the MP4 until its TTL passes, then answers 403 with S3-like XML."""
    sim = Simulator(SimConfig(task_seconds=0, video_url_ttl=3600), clock=clock)
    async with _client(sim) as client:
        task_id = await _submit(client)
        url = await _video_url(client, task_id)
        clock.advance(3599)
        ok = await client.get(url)
        clock.advance(1)
        expired = await client.get(url)
        fresh = await client.get(await _video_url(client, task_id))
    assert ok.status_code == 200
    assert ok.headers["content-type"] == "video/mp4"
    assert int(ok.headers["content-length"]) == len(ok.content)
    assert hashlib.sha256(ok.content).hexdigest() == sim.stats()["tasks"][task_id]["video_sha256"]
    assert expired.status_code == 403
    assert expired.headers["content-type"] == "application/xml"
    assert "<Code>AccessDenied</Code>" in expired.text
    assert "<Message>Request has expired</Message>" in expired.text
    assert fresh.status_code == 200, "a new task-result call gives a working URL again"


def _tamper(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return parts._replace(query=urlencode(query)).geturl()


@pytest.mark.anyio
async def test_forged_urls_are_403(clock: ManualClock) -> None:
    """A URL with a bad signature, a stretched expiry or another task's path answers 403."""
    sim = Simulator(SimConfig(task_seconds=0, video_url_ttl=10), clock=clock)
    async with _client(sim) as client:
        first = await _submit(client)
        second = await _submit(client, {"prompt": "another"})
        url = await _video_url(client, first)
        other_path = url.replace(first, second)
        responses = [
            await client.get(_tamper(url, sig="0" * 64)),
            await client.get(_tamper(url, expires="99999999.000")),
            await client.get(other_path),
            await client.get(url.split("?")[0]),
        ]
    for response in responses:
        assert response.status_code == 403
        assert "<Code>SignatureDoesNotMatch</Code>" in response.text
    assert sim.stats()["downloads"] == 0


@pytest.mark.anyio
async def test_url_host_follows_the_request(clock: ManualClock) -> None:
    """The video URL uses the Host the client reached the simulator at, so any port works."""
    sim = Simulator(SimConfig(task_seconds=0), clock=clock)
    async with _client(sim, base_url="http://localhost:54321") as client:
        task_id = await _submit(client)
        url = await _video_url(client, task_id)
    assert url.startswith("http://localhost:54321/_sim/videos/")


@pytest.mark.anyio
async def test_ttl_knob_sets_expiry_and_the_ttl_string(clock: ManualClock) -> None:
    """video_url_ttl is reported as a string and bounds the URL's life."""
    sim = Simulator(SimConfig(task_seconds=0, video_url_ttl=5), clock=clock)
    async with _client(sim) as client:
        task_id = await _submit(client)
        result = (await _poll(client, task_id)).json()
        clock.advance(5)
        response = await client.get(result["videos"][0]["video_url"])
    assert result["videos"][0]["video_url_ttl"] == "5"
    assert response.status_code == 403


@pytest.mark.anyio
async def test_stats_account_for_paid_tasks_by_body_hash(clock: ManualClock) -> None:
    """stats() counts accepted tasks per sha256(canonical_json(body)), so a test can spot double payment."""
    sim = Simulator(SimConfig(task_seconds=1), clock=clock)
    other = {"prompt": "a different video", "sound": True}
    async with _client(sim) as client:
        a1 = await _submit(client)
        a2 = await _submit(client)
        b = await _submit(client, other)
        clock.advance(1)
        await _poll(client, a1)
        await client.get(await _video_url(client, a1))
    stats = sim.stats()
    body_hash = hashlib.sha256(canonical_json(BODY).encode()).hexdigest()
    other_hash = hashlib.sha256(canonical_json(other).encode()).hexdigest()
    assert stats["accepted_total"] == 3
    assert stats["accepted_by_body"] == {body_hash: 2, other_hash: 1}
    assert set(stats["tasks"]) == {a1, a2, b}
    assert stats["tasks"][b]["body_sha256"] == other_hash
    assert stats["tasks"][a1]["status"] == "TASK_STATUS_SUCCEED"
    assert stats["polls"] == 2
    assert stats["downloads"] == 1
    assert stats["responses"]["submit:ok"] == 3
    assert stats["responses"]["download:ok"] == 1
    async with _client(sim) as client:
        over_http = (await client.get("/_sim/stats")).json()
    assert over_http["accepted_by_body"] == stats["accepted_by_body"]


@pytest.mark.anyio
async def test_task_snapshot_reports_progress(clock: ManualClock) -> None:
    """sim.task() shows a task's body, status and, once done, its video's size and hash."""
    sim = Simulator(SimConfig(task_seconds=4), clock=clock)
    async with _client(sim) as client:
        task_id = await _submit(client)
    running = sim.task(task_id)
    clock.advance(4)
    done = sim.task(task_id)
    assert running.status is TaskStatus.QUEUED
    assert running.video_sha256 is None
    assert running.body == BODY
    assert done.status is TaskStatus.SUCCEED
    assert done.video_bytes == len(sim.video(task_id))
    assert done.video_sha256 == hashlib.sha256(sim.video(task_id)).hexdigest()
    assert sim.task_ids() == [task_id]


@pytest.mark.anyio
async def test_each_task_downloads_its_own_mp4(clock: ManualClock) -> None:
    """Two tasks, even with the same body, download different files that both start with an ftyp box."""
    sim = Simulator(SimConfig(task_seconds=0), clock=clock)
    async with _client(sim) as client:
        first, second = await _submit(client), await _submit(client)
        files = [(await client.get(await _video_url(client, t))).content for t in (first, second)]
    assert files[0] != files[1]
    assert all(data[4:8] == b"ftyp" for data in files)
    assert files == [sim.video(first), sim.video(second)]


@pytest.mark.anyio
async def test_stats_count_the_most_tasks_outstanding_per_account(clock: ManualClock) -> None:
    """``max_active_by_account``: each key's peak of created, unfinished tasks, named by a hash (never the key)."""
    sim = Simulator(SimConfig(task_seconds=10), clock=clock)
    other = httpx.AsyncClient(transport=sim_transport(sim), base_url="http://sim.test",
                              headers={"Authorization": "Bearer sk-other"})
    async with _client(sim) as client, other:
        for n in range(3):  # three at once for sk-test
            await _submit(client, {**BODY, "prompt": f"boat {n}"})
        await _submit(other, {**BODY, "prompt": "another account"})
        clock.advance(10)  # all four finished: the next ones start from zero
        for n in range(2):
            await _submit(client, {**BODY, "prompt": f"later {n}"})
            clock.advance(6)  # each overlaps the one before only
    stats = sim.stats()
    mine, theirs = (hashlib.sha256(key).hexdigest()[:12] for key in (b"sk-test", b"sk-other"))
    assert stats["max_active_by_account"] == {mine: 3, theirs: 1}
    assert stats["max_answered_by_account"] == {mine: 3, theirs: 1}  # every id answered at once
    assert stats["max_active"] == 4
    assert "sk-test" not in repr(stats) and "sk-other" not in repr(stats)


@pytest.mark.anyio
async def test_a_task_whose_answer_was_lost_counts_as_active_but_not_as_answered(clock: ManualClock) -> None:
    """A malformed 200 after the task was created: the provider holds it, the caller could not know its id."""
    sim = Simulator(SimConfig(task_seconds=10, p_malformed=1.0), clock=clock)
    async with _client(sim) as client:
        assert (await client.post(SUBMIT, json=BODY)).status_code == 200  # a malformed body
        sim.configure(p_malformed=0.0)
        await _submit(client, {**BODY, "prompt": "answered"})
    stats = sim.stats()
    mine = hashlib.sha256(b"sk-test").hexdigest()[:12]
    assert stats["responses"]["submit:malformed"] == 1
    assert stats["max_active_by_account"] == {mine: 2}
    assert stats["max_answered_by_account"] == {mine: 1}
