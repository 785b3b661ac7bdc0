"""The submit's active-time deadline never throws away an answer that arrived (review of the issue-9 merge).

The deadline's watcher cancels the POST when active time runs out. If the answer was read all the
same (it was in the socket and the read finished without another checkpoint), the POST was answered:
turning it into an in-doubt job would hold — and invite paying again for — a task whose id we have.
"""

from __future__ import annotations

import asyncio
import contextlib
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


async def test_a_submit_waiting_for_a_pool_slot_is_not_cut_off_as_if_it_were_sent() -> None:
    """Review of round 6: time a submit waits for a free connection slot is not active time. One slot, held
    0.45 s by another request; the submit's read timeout is 0.3 s. Before, the wait counted (a reused connection
    says nothing before its request goes out), the deadline fired before a byte was sent and the submit was
    held in doubt; now the transport says it waits for a slot, and the submit is answered."""
    from runner.client.transport import LeanTransport

    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            await answer(reader, writer)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            await reader.readexactly(length)
            if head.startswith(b"GET /slow"):
                await asyncio.sleep(0.45)
            body = b'{"task_id": "task-after-the-wait"}'
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                         % (len(body), body))
            await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    timeout = httpx.Timeout(5.0, read=0.3)
    try:
        async with httpx.AsyncClient(transport=LeanTransport(max_connections=1), timeout=timeout) as http:
            client = NovitaClient(http, base_url=base, api_key="sk-test-key", pause_tick=0.01)
            results: list[Any] = []

            async def slow() -> None:
                response = await http.get(f"{base}/slow", timeout=httpx.Timeout(5.0))
                await response.aclose()

            async with anyio.create_task_group() as tg:
                tg.start_soon(slow)
                await anyio.sleep(0.05)  # the slow GET holds the only slot

                async def submit() -> None:
                    results.append(await client.submit("kling-v3.0-pro-t2v", {"prompt": "p"}))

                tg.start_soon(submit)
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()
    assert results[0].outcome is SubmitOutcome.ACCEPTED, results[0].message


async def test_a_large_body_on_a_slow_uplink_is_given_time_to_go_out_then_the_read_counts_from_zero(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The image-input sweep: four 9.9 MB images (13.2 MB bodies) through a 180 kB/s uplink: the read timeout
    counted from the first byte of the request, the upload used it up, and four paid tasks went in doubt. Here
    a 0.3 s read timeout; the body takes 0.4 s to go out, then the answer comes 0.2 s later: answered."""
    from runner.client import deadline

    monkeypatch.setattr(deadline, "UPLOAD_FLOOR_BPS", 1024)  # the ~60 kB body is given ~60 s to go out

    async def slow_uplink(request: httpx.Request) -> httpx.Response:
        trace = request.extensions["trace"]
        await trace("http11.send_request_headers.started", {})
        await anyio.sleep(0.4)  # the body going out
        await trace("http11.send_request_body.complete", {})
        await anyio.sleep(0.2)  # the provider's answer
        return httpx.Response(200, json={"task_id": "task-after-upload"})

    timeout = httpx.Timeout(5.0, read=0.3)
    async with httpx.AsyncClient(transport=httpx.MockTransport(slow_uplink), timeout=timeout) as http:
        client = NovitaClient(http, base_url="https://api.novita.ai", api_key="sk-test-key", pause_tick=0.01)
        result = await client.submit("kling-v3.0-pro-t2v", {"prompt": "p" * 60_000})
    assert result.outcome is SubmitOutcome.ACCEPTED, result.message

    async def no_answer_after_upload(request: httpx.Request) -> httpx.Response:
        trace = request.extensions["trace"]
        await trace("http11.send_request_headers.started", {})
        await trace("http11.send_request_body.complete", {})
        await anyio.sleep(30)
        raise AssertionError("not cut off")

    started = time.monotonic()
    result = await _submit(no_answer_after_upload, read=0.3, tick=0.01)  # a small body: the read timeout alone
    assert result.outcome is SubmitOutcome.AMBIGUOUS and time.monotonic() - started < 5
