"""A lean HTTP/1.1 keep-alive transport under httpx: h11 on anyio sockets, one idle stack per origin.

httpx's default transport (httpcore's pool) walks every connection of the pool on each request and
again on each response close — checking each idle one's socket for readability through anyio's
typed attributes, and counting the idle ones once per idle one (quadratic in the pool) — so its
CPU per request grows with the concurrency: at C=200 it was most of the runner's CPU per job.
Here a request takes the most recently used idle connection of its origin (checked alone:
expiry and a zero-timeout readability probe of its socket), or opens one; a finished response
puts it back. O(1) per request, whatever the pool size.

The failures are httpx's own classes, raised where httpcore raises them, because the submit path's
classification rests on them (``runner.client.submit``): only a failure to connect (``ConnectError``,
``ConnectTimeout``: DNS, refused, TLS handshake) or to get a pool slot (``PoolTimeout``) means
nothing was sent; any failure once the request's first byte may have left is ``WriteError``,
``WriteTimeout``, ``ReadError``, ``ReadTimeout`` or ``RemoteProtocolError`` (a server that closes a
kept-alive connection is "disconnected without sending a response": in doubt, never resent — no
retry on another connection, as httpcore with ``retries=0``). A request cancelled midway closes its
connection. The ``trace`` extension gets ``connection.connect_tcp.*`` and
``http11.send_request_headers.*`` events as httpcore names them (the submit's active-time deadline
reads them). No proxies, no HTTP/2 (the runner used neither).
"""

from __future__ import annotations

import select
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import h11
import httpx
from anyio.streams.tls import TLSStream

__all__ = ["LeanTransport"]

READ_SIZE = 65536
Origin = tuple[bytes, bytes, int]
Trace = Callable[[str, dict[str, Any]], Awaitable[None]]


class _Conn:
    __slots__ = ("expires", "origin", "sock", "state", "stream")

    def __init__(self, origin: Origin, stream: anyio.abc.ByteStream, sock: socket.socket) -> None:
        self.origin = origin
        self.stream = stream
        self.sock = sock
        self.state = h11.Connection(h11.CLIENT)
        self.expires = 0.0

    def stale(self, now: float) -> bool:
        """Expired, or readable while idle (the server closed it, or sent something unasked)."""
        fd = self.sock.fileno()
        if now >= self.expires or fd < 0:
            return True
        try:
            probe = select.poll()
            probe.register(fd, select.POLLIN)
            return bool(probe.poll(0))
        except (OSError, ValueError):
            return True

    async def close(self) -> None:
        await anyio.aclose_forcefully(self.stream)


def _timeout(timeouts: dict[str, float | None], name: str) -> float:
    value = timeouts.get(name)
    return float("inf") if value is None else value


class LeanTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with keep-alive, at most ``max_connections`` open at once (a pool slot per request)."""

    def __init__(self, *, max_connections: int = 100, keepalive_expiry: float = 5.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self._max = max(1, max_connections)
        self._expiry = keepalive_expiry
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Conn]] = {}
        self._slots: anyio.Semaphore | None = None
        self._closed = False

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()
            self._ssl.set_alpn_protocols(["http/1.1"])
        return self._ssl

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.raw_scheme
        if scheme not in (b"http", b"https"):
            raise httpx.UnsupportedProtocol(f"Request URL has an unsupported protocol '{url.scheme}://'.")
        if self._closed:
            raise RuntimeError("the transport is closed")
        timeouts: dict[str, float | None] = request.extensions.get("timeout") or {}
        trace: Trace | None = request.extensions.get("trace")
        origin: Origin = (scheme, url.raw_host, url.port or (443 if scheme == b"https" else 80))
        if self._slots is None:
            self._slots = anyio.Semaphore(self._max, fast_acquire=True)
        slots = self._slots
        try:
            slots.acquire_nowait()  # a free slot: no pool timeout to arm (a cancel scope and a timer a request)
        except anyio.WouldBlock:
            try:
                with anyio.fail_after(_timeout(timeouts, "pool")):
                    await slots.acquire()
            except TimeoutError:
                raise httpx.PoolTimeout("no connection of the pool became free in time") from None
        conn: _Conn | None = None
        try:
            conn = await self._take_idle(origin)
            if conn is None:
                conn = await self._connect(origin, _timeout(timeouts, "connect"), trace)
            response = await self._exchange(conn, request, timeouts, trace)
        except BaseException:
            if conn is not None:
                await conn.close()
            slots.release()
            raise
        return response

    async def _take_idle(self, origin: Origin) -> _Conn | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.stale(now):
                return conn
            await conn.close()
        return None

    async def _connect(self, origin: Origin, timeout: float, trace: Trace | None) -> _Conn:
        scheme, host, port = origin
        name = host.decode("ascii")
        if trace is not None:
            await trace("connection.connect_tcp.started", {"host": name, "port": port})
        try:
            with anyio.fail_after(timeout):
                stream: anyio.abc.ByteStream = await anyio.connect_tcp(name, port)
                sock: socket.socket = stream.extra(anyio.abc.SocketAttribute.raw_socket)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if scheme == b"https":
                    if trace is not None:
                        await trace("connection.start_tls.started", {"server_hostname": name})
                    try:
                        stream = await TLSStream.wrap(stream, hostname=name, ssl_context=self._ssl_context(),
                                                      standard_compatible=False)
                    except BaseException:
                        await anyio.aclose_forcefully(stream)
                        raise
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or f"connecting to {name}:{port} timed out") from exc
        except (OSError, anyio.BrokenResourceError, ssl.SSLError) as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        if trace is not None:
            await trace("connection.connect_tcp.complete", {"host": name, "port": port})
        return _Conn(origin, stream, sock)

    async def _exchange(self, conn: _Conn, request: httpx.Request, timeouts: dict[str, float | None],
                        trace: Trace | None) -> httpx.Response:
        state = conn.state
        target = request.url.raw_path
        try:
            if trace is not None:
                await trace("http11.send_request_headers.started", {"request": request})
            head = state.send(h11.Request(method=request.method, target=target, headers=request.headers.raw))
            body: list[bytes] = [head or b""]
            stream = request.stream
            if isinstance(stream, httpx.ByteStream):
                content = b"".join(stream)  # the whole body is in memory (json=, content=): one write
                if content:
                    body.append(state.send(h11.Data(data=content)) or b"")
            else:
                assert isinstance(stream, httpx.AsyncByteStream)
                await self._write(conn, b"".join(body), timeouts)
                body = []
                async for chunk in stream:
                    if chunk:
                        await self._write(conn, state.send(h11.Data(data=chunk)) or b"", timeouts)
            body.append(state.send(h11.EndOfMessage()) or b"")
            await self._write(conn, b"".join(body), timeouts)
            if trace is not None:
                await trace("http11.send_request_headers.complete", {"request": request})
            while True:
                event = await self._next(conn, timeouts)
                if isinstance(event, h11.Response):
                    break
                if not isinstance(event, h11.InformationalResponse):
                    raise httpx.RemoteProtocolError(f"unexpected {type(event).__name__} before the response")
        except h11.RemoteProtocolError as exc:
            raise httpx.RemoteProtocolError(str(exc)) from exc
        except h11.LocalProtocolError as exc:
            raise httpx.LocalProtocolError(str(exc)) from exc
        return httpx.Response(
            event.status_code, headers=event.headers.raw_items(), stream=_Body(self, conn, timeouts),
            extensions={"http_version": b"HTTP/" + event.http_version, "reason_phrase": event.reason},
        )

    async def _write(self, conn: _Conn, data: bytes, timeouts: dict[str, float | None]) -> None:
        if not data:
            return
        try:
            with anyio.fail_after(_timeout(timeouts, "write")):
                await conn.stream.send(data)
        except TimeoutError as exc:
            raise httpx.WriteTimeout(str(exc) or "writing the request timed out") from exc
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise httpx.WriteError(str(exc) or type(exc).__name__) from exc

    async def _next(self, conn: _Conn, timeouts: dict[str, float | None]) -> Any:
        state = conn.state
        while True:
            event = state.next_event()
            if event is not h11.NEED_DATA:
                return event
            try:
                with anyio.fail_after(_timeout(timeouts, "read")):
                    data = await conn.stream.receive(READ_SIZE)
            except anyio.EndOfStream:
                data = b""
            except TimeoutError as exc:
                raise httpx.ReadTimeout(str(exc) or "reading the response timed out") from exc
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                raise httpx.ReadError(str(exc) or type(exc).__name__) from exc
            if not data and state.their_state is h11.SEND_RESPONSE:
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
            state.receive_data(data)

    async def _release(self, conn: _Conn | None) -> None:
        """A response closed: its connection back on its origin's idle stack if reusable, else closed."""
        if conn is not None:
            state = conn.state
            if (not self._closed and state.our_state is h11.DONE and state.their_state is h11.DONE):
                state.start_next_cycle()
                conn.expires = time.monotonic() + self._expiry
                self._idle.setdefault(conn.origin, []).append(conn)
            else:
                await conn.close()
        assert self._slots is not None
        self._slots.release()

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                await conn.close()


class _Body(httpx.AsyncByteStream):
    """A response body read from its connection; closing it gives the connection back (or closes it)."""

    def __init__(self, pool: LeanTransport, conn: _Conn, timeouts: dict[str, float | None]) -> None:
        self._pool = pool
        self._conn: _Conn | None = conn
        self._timeouts = timeouts
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None:
            raise httpx.StreamClosed()
        try:
            while not self._done:
                event = await self._pool._next(conn, self._timeouts)
                if isinstance(event, h11.Data):
                    yield bytes(event.data)
                elif isinstance(event, (h11.EndOfMessage, h11.PAUSED)):
                    self._done = True
                else:  # ConnectionClosed before the end: h11 raises for a short body; this is the rest
                    raise httpx.RemoteProtocolError(f"unexpected {type(event).__name__} in the response body")
        except h11.RemoteProtocolError as exc:
            await self._abort()
            raise httpx.RemoteProtocolError(str(exc)) from exc
        except BaseException:
            await self._abort()
            raise

    async def _abort(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()
            assert self._pool._slots is not None
            self._pool._slots.release()

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if not self._done:
            conn.state = h11.Connection(h11.CLIENT)  # not read to the end: never reused
            await conn.close()
            assert self._pool._slots is not None
            self._pool._slots.release()
            return
        await self._pool._release(conn)
