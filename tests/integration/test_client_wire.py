"""The transport's connections (runner.client.http11) against scripted loopback servers: backpressure, the
read timeout as inactivity, cancellation, what a failure says about what was sent, and hostile answers."""

from __future__ import annotations

import gc
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import h11
import httpx
import pytest

from runner.client import SubmitOutcome, make_http_client
from runner.client.connection import DOWNLOAD
from runner.client.http11 import HIGH_WATER, MAX_HEAD
from runner.client.submit import classify_exception

pytestmark = pytest.mark.anyio

Reply = bytes | Callable[[socket.socket], bool | None] | None  # None: close without answering; a callable: False closes
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
LOOP_READ = 256 * 1024  # the most an asyncio socket transport reads at once


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Scripted:
    """A loopback server on threads. Each request (read whole with h11) gets the next reply of the script, on
    whichever connection it came; raw bytes are sent as they are. Past the script every connection closes."""

    def __init__(self, *replies: Reply, tls: Any = None) -> None:
        self.replies = list(replies)
        self.requests: list[tuple[h11.Request, bytes]] = []
        self.received: list[bytes] = []  # every byte each connection received, by connection
        self.accepted = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/x"
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.05)
        while not self._stop:
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            self.received.append(b"")
            threading.Thread(target=self._handle, args=(conn, len(self.received) - 1), daemon=True).start()

    def _next_request(self, conn: socket.socket, state: h11.Connection, index: int) -> bool:
        body = b""
        while True:
            event = state.next_event()
            if event is h11.NEED_DATA:
                data = conn.recv(65536)
                self.received[index] += data
                state.receive_data(data)
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                self.requests.append((request, body))
                return True
            else:
                return False

    def _handle(self, conn: socket.socket, index: int) -> None:
        with conn:
            state = h11.Connection(h11.SERVER)
            try:
                while self._next_request(conn, state, index):
                    with self._lock:
                        reply = self.replies.pop(0) if self.replies else None
                    if reply is None:
                        return
                    if isinstance(reply, bytes):
                        conn.sendall(reply)
                    elif reply(conn) is False:
                        return
                    state = h11.Connection(h11.SERVER)  # the client's framing is what is tested, not ours
            except (OSError, h11.ProtocolError):
                return

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self.listener.close()


@pytest.fixture
def scripted() -> Iterator[Callable[..., Scripted]]:
    servers: list[Scripted] = []

    def start(*replies: Reply) -> Scripted:
        servers.append(Scripted(*replies))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def closing(answer: bytes) -> Callable[[socket.socket], bool]:
    """A reply that sends ``answer`` and closes the connection."""

    def reply(conn: socket.socket) -> bool:
        conn.sendall(answer)
        return False

    return reply


class Stream:
    """A reply of ``total`` body bytes sent in 64 KiB pieces; ``sent`` says how far the server got."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent = 0
        self.finished = threading.Event()

    def __call__(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % self.total)
        piece = b"v" * 65536
        try:
            while self.sent < self.total:
                conn.sendall(piece)
                self.sent += len(piece)
        finally:
            self.finished.set()


async def test_a_large_body_read_slowly_buffers_at_most_the_high_water_mark_plus_a_read(scripted: Any) -> None:
    """32 MiB answered to a consumer that stops after its first piece: reading pauses, the server blocks (the
    bytes stay in its socket, not in our memory), and never more than the high-water mark plus one read waits."""
    body = Stream(32 * 1024 * 1024)
    server = scripted(body)
    bound = HIGH_WATER + LOOP_READ
    # a download's GET (an API answer is refused past MAX_ANSWER_BYTES)
    async with make_http_client() as http, http.stream("GET", server.url, extensions={DOWNLOAD: True}) as response:
        conn = response.stream._stream._conn  # type: ignore[attr-defined]
        pieces = response.aiter_raw()
        got = len(await pieces.__anext__())
        last, still = -1, 0
        while still < 10 and not body.finished.is_set():  # until the server has sent nothing for 0.2 s
            await anyio.sleep(0.02)
            assert conn.buffered <= bound
            still, last = (still + 1, last) if body.sent == last else (0, body.sent)
        assert not body.finished.is_set(), "the whole body was taken in while nobody read it"
        async for piece in pieces:
            got += len(piece)
            assert conn.buffered <= bound
            await anyio.sleep(0.001)  # a slow consumer
    assert got == body.total


def _trickle(pieces: int, every: float) -> Callable[[socket.socket], None]:
    def reply(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % pieces)
        for _ in range(pieces):
            time.sleep(every)
            conn.sendall(b"x")

    return reply


def _stall(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345")
    time.sleep(3)


async def test_the_read_timeout_is_inactivity_not_the_whole_answer(scripted: Any) -> None:
    """A body trickling a byte every 50 ms for 0.75 s is read under a 0.4 s read timeout; a server that stops
    halfway is a ReadTimeout (in doubt for a submit)."""
    server = scripted(_trickle(15, 0.05), _stall)
    async with make_http_client(read=0.4) as http:
        assert (await http.get(server.url)).content == b"x" * 15
        with pytest.raises(httpx.ReadTimeout) as stalled:
            await http.post(server.url, json={})
    assert classify_exception(stalled.value).outcome is SubmitOutcome.AMBIGUOUS


async def test_a_request_cancelled_mid_body_closes_its_connection_and_frees_its_slot(scripted: Any) -> None:
    body = Stream(32 * 1024 * 1024)
    server = scripted(body, OK)
    got = 0
    async with make_http_client(max_connections=1, pool=1) as http:
        with anyio.move_on_after(5) as scope:
            async with http.stream("GET", server.url) as response:
                async for piece in response.aiter_raw():
                    got += len(piece)
                    scope.cancel()
        assert scope.cancelled_caught
        assert got <= 2 * (HIGH_WATER + LOOP_READ)  # what was buffered, then the cancel lands (not the whole body)
        assert (await http.get(server.url)).status_code == 200  # the only slot is free again
    assert server.accepted == 2  # a new connection: the cancelled one was not reused
    body.finished.wait(5)
    assert body.sent < body.total  # the server's writes failed: that connection is closed


async def test_a_connect_failure_is_connect_error_and_nothing_was_written(scripted: Any) -> None:
    free = socket.create_server(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (the kernel does), never speaks TLS
    try:
        async with make_http_client(connect=0.3) as http:
            with pytest.raises(httpx.ConnectError) as refused:
                await http.post(f"http://127.0.0.1:{port}/x", json={})
            with pytest.raises(httpx.ConnectTimeout) as handshake:
                await http.post(f"https://localhost:{silent.getsockname()[1]}/x", json={"prompt": "p"})
        peer, _ = silent.accept()
        peer.setblocking(False)
        hello = peer.recv(65536)
        peer.close()
    finally:
        silent.close()
    assert hello[:1] == b"\x16" and b"prompt" not in hello  # a TLS ClientHello, no byte of the request
    for caught in (refused, handshake):
        assert classify_exception(caught.value).outcome is SubmitOutcome.REFUSED


async def test_a_kept_alive_connection_closed_under_a_request_is_in_doubt_and_not_retried(scripted: Any) -> None:
    server = scripted(OK, None)
    async with make_http_client() as http:
        assert (await http.get(server.url)).status_code == 200
        with pytest.raises(httpx.RemoteProtocolError, match="disconnected without sending a response") as caught:
            await http.post(server.url, json={"prompt": "p"})
    assert classify_exception(caught.value).outcome is SubmitOutcome.AMBIGUOUS
    assert server.accepted == 1 and len(server.requests) == 2  # sent once, on the kept-alive connection only


HOSTILE = {
    "garbage status line": b"HTTP/1.1 two hundred OK\r\n\r\n",
    "not HTTP at all": b"\x00\x01\x02 hello\r\n\r\n",
    "a huge header": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (MAX_HEAD + 1) + b"\r\nContent-Length: 0\r\n\r\n",
    "endless 1xx": b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" * (MAX_HEAD // 30),
    "a bad chunk size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "a body shorter than its Content-Length": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345",
    "a chunked body cut short": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc",
    "two Content-Lengths that disagree": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    "an unasked protocol switch": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
    # httptools gathers a header's value whole (quadratically) before handing it over, and trailers came after the
    # head's cap: an endless one grew memory and burnt the loop until the exchange's deadline (a 100 s poll: GBs)
    # (16 caps: what follows a read's last body byte, or a head ending in the read, escapes the count, one read at
    # most, and a read takes up to 256 KiB: 4 caps fitted in one on a loaded machine and nothing was refused)
    "a trailer over the head's cap": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nX-T: "
                                     + b"a" * (16 * MAX_HEAD) + b"\r\n\r\n",
    "trailers over the head's cap": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n"
                                    + b"X-T: a\r\n" * MAX_HEAD + b"\r\n",
    "a chunk extension over the head's cap": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;e="
                                             + b"a" * (16 * MAX_HEAD) + b"\r\n{}\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("answer", HOSTILE.values(), ids=HOSTILE.keys())
async def test_hostile_answers_are_remote_protocol_errors(scripted: Any, answer: bytes) -> None:
    server = scripted(closing(answer), OK)
    async with make_http_client(read=2) as http:
        with pytest.raises(httpx.RemoteProtocolError) as caught:
            await http.post(server.url, json={})
        assert classify_exception(caught.value).outcome is SubmitOutcome.AMBIGUOUS
        assert (await http.get(server.url)).status_code == 200  # the slot was freed
    assert server.accepted == 2  # that connection was never reused


async def test_a_body_of_many_tiny_chunks_is_read_whole(scripted: Any) -> None:
    """Chunks of one byte are mostly framing (6 bytes a body byte), all of it legal: the bound on framing with no body
    among it (review of the hostile sweep's fix: 400,000 such chunks were refused as over the head's cap)."""
    body = bytes(range(256)) * 1600  # 409,600 bytes, one chunk each
    answer = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
              + b"".join(b"1\r\n" + body[i:i + 1] + b"\r\n" for i in range(len(body))) + b"0\r\n\r\n")
    server = scripted(answer)
    async with make_http_client() as http:
        assert (await http.get(server.url)).content == body


async def test_framings_1xx_and_reuse(scripted: Any) -> None:
    """Chunked (trailers dropped), 1xx skipped, close-delimited to EOF; kept alive only while the server allows."""
    server = scripted(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}extra",  # bytes past the answer: it stands, the conn goes
        closing(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"),
        OK,
    )
    async with make_http_client() as http:
        first = await http.get(server.url)
        assert (first.status_code, first.content, first.headers.get("x-trailer")) == (200, b"abcde", None)
        assert (await http.get(server.url)).status_code == 204
        assert (await http.get(server.url)).content == b"{}"
        assert server.accepted == 1
        assert (await http.get(server.url)).content == b"until the end"
        assert server.accepted == 2
        assert (await http.get(server.url)).content == b"{}"
    assert server.accepted == 3


async def test_request_bodies_flow_control_and_framing(scripted: Any) -> None:
    """A streamed body goes chunked; a body the server never reads is a WriteTimeout, not bytes piling up
    in our buffer and a read timeout later."""
    def sink(conn: socket.socket) -> None:
        time.sleep(3)

    async def pieces() -> AsyncIterator[bytes]:
        for piece in (b"ab", b"", b"cd"):
            yield piece

    server = scripted(OK)
    async with make_http_client() as http:
        assert (await http.post(server.url, content=pieces())).status_code == 200
    request, body = server.requests[0]
    assert (dict(request.headers).get(b"transfer-encoding"), body) == (b"chunked", b"abcd")

    listener = socket.create_server(("127.0.0.1", 0))  # accepts, never reads
    try:
        async with make_http_client(write=0.3, read=30) as http:
            with pytest.raises(httpx.WriteTimeout):
                await http.post(f"http://127.0.0.1:{listener.getsockname()[1]}/x", content=b"z" * (64 << 20))
    finally:
        listener.close()


async def test_a_header_with_a_line_break_is_refused_before_anything_is_sent(scripted: Any) -> None:
    server = scripted(OK)
    async with make_http_client() as http:
        with pytest.raises(httpx.LocalProtocolError):
            await http.get(server.url, headers={"X-A": "b\r\nX-Injected: 1"})


async def _finalise_abandoned_generators() -> None:
    """Let the event loop run the ``aclose`` it schedules for async generators dropped mid-iteration."""
    gc.collect()
    for _ in range(20):
        await anyio.lowlevel.checkpoint()


async def test_a_body_left_midway_then_closed_frees_its_slot_once(scripted: Any) -> None:
    """A consumer that stops reading (a break, a cap, its own error) and then closes the response frees the slot
    once: the abandoned body's generator, finalised later by the event loop, must not free it a second time."""
    first, held = Stream(4 * 1024 * 1024), Stream(4 * 1024 * 1024)
    server = scripted(first, held, OK)
    async with make_http_client(max_connections=1, pool=0.3) as http:
        async with http.stream("GET", server.url) as response:
            async for _ in response.aiter_raw():
                break
        await _finalise_abandoned_generators()
        async with http.stream("GET", server.url):  # takes the one slot and keeps it
            with pytest.raises(httpx.PoolTimeout):
                await http.get(server.url)  # no second slot: max_connections=1
    assert server.accepted == 2


async def test_a_body_left_after_its_last_byte_does_not_close_the_next_request_on_its_connection(
        scripted: Any) -> None:
    """A whole body came in one piece and the consumer stopped before the end marker: the connection is kept
    and serves the next request, which the late finalisation of the first body must not cut (an answered
    POST would be in doubt)."""
    server = scripted(OK, OK)
    async with make_http_client(max_connections=1) as http:
        async with http.stream("GET", server.url) as response:
            async for _ in response.aiter_raw():
                break
        answer = await http.post(server.url, json={"prompt": "p"})
        assert answer.status_code == 200
        await _finalise_abandoned_generators()
    assert server.accepted == 1 and len(server.requests) == 2


def resetting(answer: bytes) -> Callable[[socket.socket], bool]:
    """A reply that sends ``answer`` and then resets the connection (RST, not a clean end of stream)."""

    def reply(conn: socket.socket) -> bool:
        conn.sendall(answer)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return False

    return reply


async def test_a_body_delimited_by_the_end_of_the_connection_cut_by_a_reset_is_a_read_error(scripted: Any) -> None:
    """Only a clean end of stream ends a close-delimited body: a reset cuts it (httpcore: ReadError), else a
    truncated video without Content-Length would be stored as complete."""
    server = scripted(resetting(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"v" * 1000))
    async with make_http_client(read=5) as http:
        with pytest.raises(httpx.ReadError):
            await http.get(server.url)
