"""Task statuses that never settle: the poller says so and lets the run end, the task left running for the next run."""
from __future__ import annotations

import json
from collections.abc import Callable

import anyio
import httpx
import pytest

from runner.jobs import JobState
from runner.simulator import sim_transport

from engine_rig import Rig, make_jobs

pytestmark = pytest.mark.anyio


async def test_a_status_that_stays_unknown_is_given_up_for_this_run(rig_factory: Callable[..., Rig],
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """TASK_STATUS_UNKNOWN at every poll (or a status this runner does not know: it reads as UNKNOWN) used to be
    polled every poll_interval for ever — 14,057 polls of 2 tasks in 6 virtual hours, the run never ending, not a
    line said. It is polled with the error backoff, given up after max_poll_errors in a row, and said; the job
    stays running and the next run, the provider answering again, collects it."""
    rig = rig_factory(p_status_unknown=1.0)
    rig.plan(make_jobs(2))
    with anyio.move_on_after(6 * 3600) as scope:
        await rig.engine().run()
    polls = rig.sim.stats()["polls"]
    assert not scope.cancelled_caught, f"still polling after 6 h: {polls} polls"
    assert polls <= 2 * 40
    assert rig.counts()[JobState.RUNNING] == 2 and rig.sim.stats()["accepted_total"] == 2
    assert any("TASK_STATUS_UNKNOWN" in r.getMessage() and "stays running" in r.getMessage() for r in caplog.records)
    rig.sim.configure(p_status_unknown=0.0)
    await rig.run()
    assert rig.counts()[JobState.DONE] == 2 and rig.sim.stats()["accepted_total"] == 2


class Recant(httpx.AsyncBaseTransport):
    """The simulator (its URLs handed out expired), except that after the first SUCCEED every task-result answer
    says the task FAILED, with a reason and no video: a provider going back on its word."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner, self.succeeded = inner, False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if not request.url.path.endswith("/task-result") or response.status_code != 200:
            return response
        body = json.loads(await response.aread())
        if self.succeeded:
            body["task"].update(status="TASK_STATUS_FAILED", reason="content moderation: video withdrawn")
            body["videos"] = []
        self.succeeded = self.succeeded or body["task"]["status"] == "TASK_STATUS_SUCCEED"
        return httpx.Response(200, json=body)


async def test_a_provider_recanting_a_success_is_quoted(rig_factory: Callable[..., Rig],
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """SUCCEED, its URL expired, then FAILED at every refresh: the video stays succeeded for the next run (nothing is
    lost or paid again), and the line that gives up for this run says what the provider now says — it said "the
    provider returned no video for a finished task", hiding the FAILED and its reason."""
    first = rig_factory(p_expired_url=1.0)
    rig = rig_factory(transport=Recant(sim_transport(first.sim)), state=first.state.parent / "recant")
    rig.sim = first.sim
    rig.plan(make_jobs(1))
    await rig.run()
    assert rig.counts()[JobState.SUCCEEDED] == 1 and rig.sim.stats()["accepted_total"] == 1
    said = [r.getMessage() for r in caplog.records if "could not download its video" in r.getMessage()]
    assert said and "TASK_STATUS_FAILED" in said[0] and "content moderation" in said[0], said


NO_SUCH_KEY = b"<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>"


class FirstUrlMissing(httpx.AsyncBaseTransport):
    """The simulator, with no ``video_url_ttl`` in its answers (read as "does not expire"), and the first URL it
    signs answering 404 NoSuchKey for good (a URL handed out before the object was stored, or on a replica that
    never got it); every URL signed later works."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner, self.bad = inner, None
        self.downloads: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if "/_sim/videos/" in request.url.path:
            self.downloads.append(str(request.url))
            if str(request.url) == self.bad:
                return httpx.Response(404, content=NO_SUCH_KEY, headers={"Content-Type": "application/xml"})
            return await self.inner.handle_async_request(request)
        response = await self.inner.handle_async_request(request)
        if not request.url.path.endswith("/task-result") or response.status_code != 200:
            return response
        body = json.loads(await response.aread())
        for video in body["videos"]:
            del video["video_url_ttl"]
            self.bad = self.bad or video["video_url"]
        return httpx.Response(200, json=body)


async def test_a_url_that_fails_is_signed_again(rig_factory: Callable[..., Rig]) -> None:
    """A result URL whose download fails for a reason other than expiry (404 NoSuchKey, a body that is not an MP4)
    was tried again and again, never asked for anew unless its expiry came near — and one given with no ttl never
    expires: the paid video was never downloaded, run after run, while every fresh URL the provider signed worked.
    A failed URL is now followed by a fresh one."""
    first = rig_factory()
    transport = FirstUrlMissing(sim_transport(first.sim))
    rig = rig_factory(transport=transport, state=first.state.parent / "missing")
    rig.sim = first.sim
    rig.plan(make_jobs(1))
    for _ in range(2):
        await rig.run()
    assert rig.counts()[JobState.DONE] == 1, f"{len(transport.downloads)} downloads, all of the first URL"
    assert rig.sim.stats()["accepted_total"] == 1
