"""The submit's active-time deadline never throws away an answer that arrived (review of the issue-9 merge).

The deadline's watcher cancels the POST when active time runs out. If the answer was read all the
same (it was in the socket and the read finished without another checkpoint), the POST was answered:
turning it into an in-doubt job would hold — and invite paying again for — a task whose id we have.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import anyio
import httpx
import pytest

from runner.client import NovitaClient, SubmitOutcome

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_an_answer_read_as_the_deadline_fires_is_accepted() -> None:
    async def answer_despite_cancel(request: httpx.Request) -> httpx.Response:
        # The read completes without a checkpoint where the watcher's cancel could land.
        with anyio.CancelScope(shield=True):
            await anyio.sleep(0.15)
        return httpx.Response(200, json={"task_id": "task-answered"})

    timeout = httpx.Timeout(5.0, read=0.05)
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer_despite_cancel), timeout=timeout) as http:
        client = NovitaClient(http, base_url="https://api.novita.ai", api_key="sk-test-key", pause_tick=0.01)
        result = await client.submit("kling-v3.0-pro-t2v", {"prompt": "p"})
    assert result.outcome is SubmitOutcome.ACCEPTED, result.message
    assert result.task_id == "task-answered"


async def _submit(handler: Any, *, read: float, tick: float) -> Any:
    timeout = httpx.Timeout(5.0, read=read)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), timeout=timeout) as http:
        client = NovitaClient(http, base_url="https://api.novita.ai", api_key="sk-test-key", pause_tick=tick)
        return await client.submit("kling-v3.0-pro-t2v", {"prompt": "p"})


async def test_a_submit_on_asyncio_starts_no_task() -> None:
    """The deadline's watcher is an event-loop timer on asyncio, not a task and its task group (~0.1 ms a POST)."""
    loop = asyncio.get_running_loop()
    started: list[object] = []
    factory = loop.get_task_factory()

    def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        started.append(coro)
        return factory(loop, coro, **kwargs) if factory else asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(counting)
    try:
        result = await _submit(lambda r: httpx.Response(200, json={"task_id": "t"}), read=5, tick=0.01)
    finally:
        loop.set_task_factory(factory)
    assert result.outcome is SubmitOutcome.ACCEPTED
    assert started == []


async def test_a_post_with_no_answer_is_cut_off_by_active_time_and_in_doubt() -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(30)
        raise AssertionError("not cut off")

    result = await _submit(hang, read=0.05, tick=0.01)
    assert result.outcome is SubmitOutcome.AMBIGUOUS
    assert "active time" in result.message


async def test_time_the_process_was_stopped_and_time_connecting_do_not_count() -> None:
    """The event loop blocked 0.8 s (what a SIGSTOP looks like from inside) while the answer is on its way, under
    a 0.5 s read timeout: the tick after the pause counts two ticks, not 0.8 s, and the answer is kept. Time
    between the transport's connect events and its first request byte (0.6 s here) does not count either."""
    async def stopped_then_answered(request: httpx.Request) -> httpx.Response:
        trace = request.extensions["trace"]
        await trace("connection.connect_tcp.started", {})
        await anyio.sleep(0.6)  # connecting: httpx's connect timeout covers it
        await trace("http11.send_request_headers.started", {})
        await anyio.sleep(0.03)
        time.sleep(0.8)  # noqa: ASYNC251 -- the whole process stopped, timers included
        await anyio.sleep(0.03)
        return httpx.Response(200, json={"task_id": "task-after-pause"})

    result = await _submit(stopped_then_answered, read=0.5, tick=0.02)
    assert result.outcome is SubmitOutcome.ACCEPTED, result.message
