"""A lean HTTP/1.1 keep-alive transport under httpx: asyncio connections, one idle stack per origin.

httpx's default transport (httpcore's pool) walks every connection of the pool on each request and
again on each response close — checking each idle one's socket for readability through anyio's
typed attributes, and counting the idle ones once per idle one (quadratic in the pool) — so its
CPU per request grows with the concurrency: at C=200 it was most of the runner's CPU per job.
Here a request takes the most recently used idle connection of its origin (checked alone:
expiry, what the event loop saw while it was idle, and a zero-timeout readability probe of its
socket), or opens one; a finished response puts it back. O(1) per request, whatever the pool size.
Each connection is an asyncio Protocol parsing answers with httptools (:mod:`runner.client.http11`:
why, and its timeouts, backpressure and hostile-answer rules); the runner runs on anyio's asyncio
backend, and a request cancelled by an anyio cancel scope closes its connection. A request body up to
:data:`BODY_PIECE` goes out with its head in one write; a larger one (images inline) in pieces of that size
under the connection's flow control, so the transport's buffer never holds a copy of the whole body.

The failures are httpx's own classes, raised where httpcore raises them, because the submit path's
classification rests on them (``runner.client.submit``): only a failure to connect (``ConnectError``,
``ConnectTimeout``: DNS, refused, TLS handshake) or to get a pool slot (``PoolTimeout``) means
nothing was sent; any failure once the request's first byte may have left is ``WriteError``,
``WriteTimeout``, ``ReadError``, ``ReadTimeout`` or ``RemoteProtocolError`` (a server that closes a
kept-alive connection is "disconnected without sending a response": in doubt, never resent — no
retry on another connection, as httpcore with ``retries=0``). A request cancelled midway closes its
connection. Timeouts come from ``request.extensions["timeout"]`` with httpx's meaning (read: the
longest wait for the next bytes). The ``trace`` extension gets ``connection.connect_tcp.*`` and
``http11.send_request_headers.*`` and ``http11.send_request_body.complete`` events as httpcore names them, and ``connection.pool_wait.started``
when a request must wait for a slot (the submit's active-time deadline reads them: nothing is sent
while connecting or waiting). No proxies (with one in the environment, :func:`~runner.client.connection.make_http_client` gives httpx's own
transport, which follows it; a proxy's refusal of the tunnel is ``ProxyError``, raised before the request's first
byte: nothing sent), no HTTP/2.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import httpx

from runner.client.http11 import Connection, Origin

__all__ = ["BODY_PIECE", "LeanTransport"]

BODY_PIECE = 256 * 1024  # a request body larger than this is written in pieces of this size

Trace = Callable[[str, dict[str, Any]], Awaitable[None]]


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
        self._idle: dict[Origin, list[Connection]] = {}
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
            if trace is not None:  # nothing is sent while waiting: the submit's active-time deadline stops counting
                await trace("connection.pool_wait.started", {})
            try:
                with anyio.fail_after(_timeout(timeouts, "pool")):
                    await slots.acquire()
            except TimeoutError:
                raise httpx.PoolTimeout("no connection of the pool became free in time") from None
        conn: Connection | None = None
        try:
            conn = self._take_idle(origin)
            if conn is None:
                conn = await self._connect(origin, _timeout(timeouts, "connect"), trace)
            return await self._exchange(conn, request, timeouts, trace)
        except BaseException:
            if conn is None:
                slots.release()
            else:
                self._abort(conn)
            raise

    def _take_idle(self, origin: Origin) -> Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.stale(now):
                return conn
            conn.close()
        return None

    async def _connect(self, origin: Origin, timeout: float, trace: Trace | None) -> Connection:
        scheme, host, port = origin
        name = host.decode("ascii")
        if trace is not None:
            await trace("connection.connect_tcp.started", {"host": name, "port": port})
        loop = asyncio.get_running_loop()
        tls = scheme == b"https"
        try:
            with anyio.fail_after(timeout):
                if tls and trace is not None:
                    await trace("connection.start_tls.started", {"server_hostname": name})
                _, conn = await loop.create_connection(
                    lambda: Connection(origin, loop), name, port,
                    ssl=self._ssl_context() if tls else None, server_hostname=name if tls else None,
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or f"connecting to {name}:{port} timed out") from exc
        except (OSError, ssl.SSLError, ssl.CertificateError) as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        if trace is not None:
            await trace("connection.connect_tcp.complete", {"host": name, "port": port})
        return conn

    async def _exchange(self, conn: Connection, request: httpx.Request, timeouts: dict[str, float | None],
                        trace: Trace | None) -> httpx.Response:
        conn.begin(_timeout(timeouts, "read"), head_only=request.method == "HEAD")
        if trace is not None:
            await trace("http11.send_request_headers.started", {"request": request})
        head = _request_head(request)
        write = _timeout(timeouts, "write")
        stream = request.stream
        if isinstance(stream, httpx.ByteStream):  # the whole body is in memory (json=, content=)
            body = b"".join(stream)  # the body itself: a ByteStream yields its one bytes object, joined without a copy
            if len(body) <= BODY_PIECE:
                await conn.send(head + body, write)  # one write
            else:  # pieces of it: the transport's buffer copies at most one piece, never the whole body
                await conn.send(head, write)
                view = memoryview(body)
                for start in range(0, len(body), BODY_PIECE):
                    await conn.send(view[start:start + BODY_PIECE], write)
        else:
            assert isinstance(stream, httpx.AsyncByteStream)
            await conn.send(head, write)
            await _send_body(conn, request, stream, write)
        if trace is not None:  # the head and the body went out together
            await trace("http11.send_request_headers.complete", {"request": request})
            await trace("http11.send_request_body.complete", {"request": request})
        await conn.head()
        return httpx.Response(
            conn.status, headers=conn.headers, stream=_Body(self, conn),
            extensions={"http_version": conn.version, "reason_phrase": conn.reason},
        )

    def _release(self, conn: Connection) -> None:
        """A response closed: its connection back on its origin's idle stack if reusable, else closed."""
        if conn.finish() and not self._closed:
            conn.expires = time.monotonic() + self._expiry
            self._idle.setdefault(conn.origin, []).append(conn)
        else:
            conn.close()
        assert self._slots is not None
        self._slots.release()

    def _abort(self, conn: Connection) -> None:
        conn.finish()
        conn.close()
        assert self._slots is not None
        self._slots.release()

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()


def _request_head(request: httpx.Request) -> bytes:
    """The request line and headers, refusing a CR, LF or NUL inside any of them (a header injected into the request)."""
    raw = request.headers.raw
    parts = [request.method.encode("ascii"), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
    for name, value in raw:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    head = b"".join(parts)
    lines = len(raw) + 2
    if head.count(b"\n") != lines or head.count(b"\r") != lines or b"\0" in head:
        raise httpx.LocalProtocolError("a CR, LF or NUL in the request line or a header")
    return head


async def _send_body(conn: Connection, request: httpx.Request, stream: httpx.AsyncByteStream, write: float) -> None:
    """A streamed request body: chunked when the request says so, else exactly its Content-Length."""
    chunked = "chunked" in request.headers.get("transfer-encoding", "").lower()
    length = request.headers.get("content-length")
    sent = 0
    async for chunk in stream:
        if chunk:
            sent += len(chunk)
            await conn.send(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk, write)
    if chunked:
        await conn.send(b"0\r\n\r\n", write)
    elif sent != int(length or 0):
        raise httpx.LocalProtocolError(f"the request body was {sent} bytes, its Content-Length says {length or 0}")


class _Body(httpx.AsyncByteStream):
    """A response body read from its connection; closing it gives the connection back (or closes it)."""

    def __init__(self, pool: LeanTransport, conn: Connection) -> None:
        self._pool = pool
        self._conn: Connection | None = conn

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None:
            raise httpx.StreamClosed()
        try:
            while (chunk := await conn.chunk()) is not None:
                yield chunk
        except BaseException:  # a failure, a cancel, or the consumer gave up midway: the connection goes
            # ... unless aclose() has given it back already (a consumer that stopped reading, then closed the
            # response: this generator is finalised later by the event loop): its slot is not freed twice, and a
            # connection kept alive and serving another request by now is not closed under it.
            if self._conn is conn:
                self._conn = None
                self._pool._abort(conn)
            raise

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool._release(conn)
