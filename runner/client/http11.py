"""One HTTP/1.1 client connection: an asyncio Protocol whose answers httptools parses.

httptools is MagicStack's binding of llhttp (Node's C HTTP parser), the parser uvicorn uses. It is
here for CPU: a request's three HTTP exchanges were half of the runner's event-loop time, and most of
that was h11's pure-Python state machine plus an anyio stream and a cancel scope around each read.
Here the event loop hands bytes straight to the protocol (``data_received``), llhttp calls back with
the head and body pieces, and the awaiting task is woken once something it waits for is there.

What :mod:`runner.client.transport` (the pool) relies on:

* one request/response cycle at a time (``begin``, ``send``, ``head``, ``chunk``, ``finish``);
* the read timeout is httpx's: inactivity while waiting for the answer. One timer per cycle, armed at
  the first wait; ``data_received`` only notes the time, and the timer re-arms from it when it fires;
* backpressure: reading pauses once ``HIGH_WATER`` bytes of body wait unread and resumes when the
  consumer has taken them below ``LOW_WATER``, so a video never sits in memory whole (at most the
  high-water mark plus one read of the event loop);
* request bytes go out with flow control: ``send`` waits while the transport's buffer is full;
* every malformed or hostile answer is ``httpx.RemoteProtocolError`` (a parser error, a head over
  ``MAX_HEAD`` bytes, as many bytes of chunk framing or trailers with no body byte among them — httptools gathers
  a header's value whole, a trailer's too —, an unasked protocol switch, a body cut short); a connection lost before the
  answer began is "Server disconnected without sending a response."; a socket error is ``ReadError``;
* reuse: ``finish`` says whether the connection may serve another request (a complete answer the
  server lets us keep, nothing after it); bytes or EOF while idle, or a readable socket when taken
  (``stale``), mean it is never reused.
"""

from __future__ import annotations

import asyncio
import select
from collections import deque
from typing import cast

import anyio.lowlevel
import httptools
import httpx

__all__ = ["HIGH_WATER", "LOW_WATER", "MAX_HEAD", "Connection", "Origin"]

HIGH_WATER = 512 * 1024  # unread body bytes at which reading pauses
LOW_WATER = 128 * 1024  # ... and below which it resumes
MAX_HEAD = 64 * 1024  # the most bytes a response head (with any 1xx before it) may take
INF = float("inf")
Origin = tuple[bytes, bytes, int]


class _Hostile(Exception):
    """Raised inside a parser callback: the answer breaks a rule llhttp does not check."""


class Connection(asyncio.Protocol):
    """An HTTP/1.1 connection to one origin; ``expires`` is set by the pool when it goes idle."""

    def __init__(self, origin: Origin, loop: asyncio.AbstractEventLoop) -> None:
        self.origin = origin
        self.expires = 0.0
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._fd = -1
        self._parser = httptools.HttpResponseParser(self)
        self._active = True  # a new connection is made for a request: bytes are expected
        self._lost = self._spoiled = self._write_paused = False
        self._drained: asyncio.Future[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._error: httpx.TransportError | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._since = self._last_read = 0.0
        self._body: deque[bytes] = deque()
        self.buffered = 0  # body bytes received and not yet taken
        self._paused = False
        self._reset(INF, False)

    def _reset(self, read_timeout: float, head_only: bool) -> None:
        self._read_timeout = read_timeout
        self._head_only = head_only
        self._head_done = self._complete = self._keep = self._until_eof = False
        self._head_bytes = self._head_size = 0  # bytes fed while the head was incomplete; header bytes
        self._framing = self._fed_body = 0  # bytes of a body's framing since its last body byte; body bytes of a feed
        self.status = 0
        self.reason = b""
        self.version = b"HTTP/1.1"
        self.headers: list[tuple[bytes, bytes]] = []

    # -- the pool's side ------------------------------------------------------

    def begin(self, read_timeout: float, *, head_only: bool = False) -> None:
        """Start a request/response cycle (``head_only``: a HEAD request, whose answer has no body)."""
        self._active = True
        self._reset(read_timeout, head_only)

    def stale(self, now: float) -> bool:
        """Idle too long, closed, spoiled by unasked bytes, or readable now (EOF or bytes the loop has not read yet)."""
        if self._lost or self._spoiled or now >= self.expires:
            return True
        try:
            probe = select.poll()
            probe.register(self._fd, select.POLLIN)
            return bool(probe.poll(0))
        except (OSError, ValueError):
            return True

    async def send(self, data: bytes | memoryview, timeout: float) -> None:
        """Write request bytes; wait (at most ``timeout``) while the transport's buffer is above its high-water mark."""
        transport = self._transport
        if self._lost or self._error is not None or transport is None or transport.is_closing():
            raise self._error or httpx.WriteError("the connection was closed before the request was written")
        transport.write(data)
        if self._write_paused:
            drained = self._drained = self._loop.create_future()
            timer = self._loop.call_later(timeout, _expire, drained) if timeout != INF else None
            try:
                await drained
            finally:
                self._drained = None
                if timer is not None:
                    timer.cancel()
            if self._write_paused and not self._lost:  # the timer fired, not resume_writing
                self.close()
                raise httpx.WriteTimeout(f"the request could not be written within {timeout:g} s")
            if self._lost:
                raise httpx.WriteError("the connection closed while the request was being written")

    async def head(self) -> None:
        """Wait for the response head (``status``, ``reason``, ``headers``, ``version``); 1xx answers are skipped."""
        while not self._head_done:
            await self._wait()

    async def chunk(self) -> bytes | None:
        """The next piece of the body, or None at its end."""
        while True:
            if self._body:
                data = self._body.popleft()
                self.buffered -= len(data)
                if self._paused and self.buffered <= LOW_WATER and self._transport is not None:
                    self._paused = False
                    self._transport.resume_reading()
                return data
            if self._complete:
                return None
            await self._wait()
            # A body arriving as fast as it is read wakes each wait before anyio's cancel delivery looks (it never
            # cancels a task whose future is done): without this checkpoint a cancelled download reads on to its end.
            await anyio.lowlevel.checkpoint_if_cancelled()

    def finish(self) -> bool:
        """End the cycle; True when the connection may serve another request."""
        self._active = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return (self._complete and self._keep and not self._body and self._error is None
                and not self._lost and not self._spoiled)

    def close(self) -> None:
        """Close at once (never reused): a failed or abandoned cycle, or an idle connection let go."""
        self._spoiled = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.abort()

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        waiter = self._waiter = self._loop.create_future()
        self._since = now = self._loop.time()
        if self._timer is None and self._read_timeout != INF:
            self._timer = self._loop.call_at(now + self._read_timeout, self._on_timer)
        try:
            await waiter
        finally:
            self._waiter = None
        if self._error is not None:
            raise self._error

    def _on_timer(self) -> None:
        self._timer = None
        if self._waiter is None:  # not waiting now: the next wait arms it again
            return
        due = max(self._since, self._last_read) + self._read_timeout
        if self._loop.time() < due:
            self._timer = self._loop.call_at(due, self._on_timer)
            return
        self._fail(httpx.ReadTimeout(f"no bytes of the answer for {self._read_timeout:g} s"))

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: httpx.TransportError) -> None:
        if self._error is None:
            self._error = error
        self.close()
        self._wake()

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        self._fd = sock.fileno() if sock is not None else -1

    def data_received(self, data: bytes) -> None:
        if not self._active:  # unasked bytes while idle: never reused
            self.close()
            return
        self._last_read = self._loop.time()
        head_done, self._fed_body = self._head_done, 0
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            if self._complete:  # bytes past the end of the answer: the answer stands, the connection goes
                self.close()
                return
            cause = exc.__context__ if isinstance(exc, httptools.HttpParserCallbackError) else exc
            if isinstance(cause, _Hostile):
                self._fail(httpx.RemoteProtocolError(str(cause)))
            elif isinstance(exc, httptools.HttpParserUpgrade):
                self._fail(httpx.RemoteProtocolError("the server switched protocols, which no request asked for"))
            else:
                self._fail(httpx.RemoteProtocolError(f"malformed answer: {exc}"))
            return
        if not self._head_done:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD:
                self._fail(httpx.RemoteProtocolError(f"the response head is over {MAX_HEAD} bytes"))
        elif head_done and not self._complete:  # chunk sizes, extensions, trailers: bounded as a head is
            # A read with a body byte in it starts the count again (chunks of a few bytes are mostly framing, all of
            # it legal; what follows the read's last body byte escapes the count: one read at most); reads of none
            # add up.
            self._framing = 0 if self._fed_body else self._framing + len(data)
            if self._framing > MAX_HEAD:
                self._fail(httpx.RemoteProtocolError(f"over {MAX_HEAD} bytes of chunk framing or trailers"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        if not self._active or self._error is not None or self._complete:
            self._wake()
            return
        if exc is not None:  # a socket error (a reset): even a body delimited by the end of the connection is cut
            self._fail(httpx.ReadError(str(exc) or type(exc).__name__))
        elif self._head_done and self._until_eof:  # a clean end of stream ends a body delimited by it
            self._complete, self._keep = True, False
            self._wake()
        elif not self._head_done:
            self._fail(httpx.RemoteProtocolError("Server disconnected without sending a response."))
        else:
            self._fail(httpx.RemoteProtocolError("peer closed connection without sending complete message body"))

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # -- httptools callbacks -----------------------------------------------------

    def on_message_begin(self) -> None:
        if self._complete:
            raise _Hostile("bytes after the end of the answer")
        self.reason = b""
        self.headers = []

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._head_done:  # a chunked body's trailers are dropped
            self.headers.append((name, value))
            self._head_size += len(name) + len(value)
            if self._head_size > MAX_HEAD:
                raise _Hostile(f"the response head is over {MAX_HEAD} bytes")

    def on_headers_complete(self) -> None:
        parser = self._parser
        status = parser.get_status_code()
        if status < 200:
            if status == 101:
                raise _Hostile("the server switched protocols, which no request asked for")
            return  # informational (100 Continue, 103 Early Hints): skipped, the answer follows
        self.status = status
        self.version = b"HTTP/" + parser.get_http_version().encode()
        self._head_done = True
        if self._head_only:
            self._complete, self._keep = True, False  # llhttp would wait for a body: this connection goes
        elif not parser.should_keep_alive() and status not in (204, 304):
            framed = (b"content-length", b"transfer-encoding")
            self._until_eof = not any(name.lower() in framed for name, _ in self.headers)
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._fed_body += len(body)
        self._body.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self._head_done:  # the end of an informational answer
            return
        self._complete = True
        self._keep = self._parser.should_keep_alive()
        self._wake()


def _expire(drained: asyncio.Future[None]) -> None:
    if not drained.done():
        drained.set_result(None)
