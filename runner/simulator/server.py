"""A small HTTP/1.1 server for the simulator: anyio TCP listeners plus h11.

We own this server (rather than using uvicorn) because the simulator must be
able to close a connection *before* answering, or part-way through a body,
exactly as a flaky network does: when the app raises
:class:`~runner.simulator.asgi.DropConnection`, the socket is closed at once.

Keep-alive and Content-Length bodies are supported; that is all the
simulator needs. :class:`SimulatorThread` serves on a loopback port from a
background thread, for tests that want a real socket.
"""

from __future__ import annotations

import logging
import signal
import sys
from functools import partial
from types import TracebackType
from typing import Any, Self
from urllib.parse import unquote

import anyio
import anyio.abc
import h11
from anyio.abc import SocketAttribute
from anyio.from_thread import BlockingPortal, start_blocking_portal

from runner.simulator.app import Simulator
from runner.simulator.asgi import MAX_BODY_BYTES, DropConnection, Message

__all__ = ["SimulatorThread", "serve", "serve_until_signalled"]

log = logging.getLogger(__name__)

_RECEIVE_BYTES = 65536
_MAX_HEADER_BYTES = 64 * 1024
_LINGER_SECONDS = 2.0
_SOCKET_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, OSError)


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _Exchange:
    """One request/response cycle of an h11 connection, seen by the app as ASGI."""

    def __init__(self, conn: h11.Connection, stream: anyio.abc.SocketStream, body: bytes) -> None:
        self._conn = conn
        self._stream = stream
        self._body: bytes | None = body
        self.started = False
        self.finished = False

    async def receive(self) -> Message:
        if self._body is not None:
            body, self._body = self._body, None
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
            event: h11.Event = h11.Response(status_code=message["status"], headers=headers)
            self.started = True
            await self._stream.send(self._conn.send(event) or b"")
        elif message["type"] == "http.response.body":
            body = bytes(message.get("body", b""))
            if body:
                await self._stream.send(self._conn.send(h11.Data(data=body)) or b"")
            if not message.get("more_body", False):
                await self._stream.send(self._conn.send(h11.EndOfMessage()) or b"")
                self.finished = True


async def _read_request(
    conn: h11.Connection, stream: anyio.abc.SocketStream
) -> tuple[h11.Request, bytes] | None:
    """The next request and its body, or None when the client closed the connection."""
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            try:
                data = await stream.receive(_RECEIVE_BYTES)
            except _SOCKET_ERRORS:
                data = b""  # h11 turns this into ConnectionClosed, or an error mid-request
            conn.receive_data(data)
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY_BYTES:
                raise h11.RemoteProtocolError("request body too large", error_status_hint=413)
        elif isinstance(event, h11.EndOfMessage):
            assert request is not None
            return request, bytes(body)
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None


def _scope(request: h11.Request, stream: anyio.abc.SocketStream) -> dict[str, Any]:
    target = bytes(request.target)
    raw_path, _, query = target.partition(b"?")
    local = stream.extra(SocketAttribute.local_address)
    remote = stream.extra(SocketAttribute.remote_address)
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": request.http_version.decode(),
        "method": request.method.decode("ascii"),
        "scheme": "http",
        "path": unquote(raw_path.decode("latin-1")),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": [(bytes(k).lower(), bytes(v)) for k, v in request.headers],
        "client": tuple(remote[:2]) if isinstance(remote, tuple) else None,
        "server": tuple(local[:2]) if isinstance(local, tuple) else None,
    }


async def _send_error(conn: h11.Connection, stream: anyio.abc.SocketStream, status: int) -> None:
    body = f"{status} error\n".encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    try:
        await stream.send(conn.send(h11.Response(status_code=status, headers=headers)) or b"")
        await stream.send(conn.send(h11.Data(data=body)) or b"")
        await stream.send(conn.send(h11.EndOfMessage()) or b"")
    except (h11.LocalProtocolError, *_SOCKET_ERRORS):
        pass


async def _linger(stream: anyio.abc.SocketStream) -> None:
    """Close politely: send EOF, then read until the client closes (at most _LINGER_SECONDS).

    Closing a socket that still has unread input sends a TCP reset, which can
    destroy the answer before the client reads it (say a 400 to a request
    followed by more bytes). Draining the input first avoids that.
    """
    with anyio.move_on_after(_LINGER_SECONDS):
        try:
            await stream.send_eof()
            while True:
                await stream.receive(_RECEIVE_BYTES)
        except _SOCKET_ERRORS:
            pass


async def _converse(sim: Simulator, conn: h11.Connection, stream: anyio.abc.SocketStream) -> bool:
    """Serve requests until the connection must end; True to close politely, False to abort."""
    while True:
        try:
            received = await _read_request(conn, stream)
        except h11.RemoteProtocolError as exc:
            await _send_error(conn, stream, exc.error_status_hint)
            return True
        if received is None:
            return False
        request, body = received
        exchange = _Exchange(conn, stream, body)
        try:
            await sim(_scope(request, stream), exchange.receive, exchange.send)
        except DropConnection:
            return False  # abort: no (further) response bytes
        except _SOCKET_ERRORS:
            return False  # the client went away
        except Exception:
            log.exception("simulator app failed on %s %s", request.method, request.target)
            if exchange.started:
                return False
            await _send_error(conn, stream, 500)
            return True
        if not exchange.finished:
            return False
        if conn.our_state is h11.MUST_CLOSE:
            return True
        conn.start_next_cycle()


async def _serve_connection(sim: Simulator, stream: anyio.abc.SocketStream) -> None:
    """Serve one connection until either side closes it, or the app drops it."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEADER_BYTES)
    async with stream:
        try:
            polite = await _converse(sim, conn, stream)
        except _SOCKET_ERRORS:
            return
        except h11.ProtocolError as exc:
            log.debug("closing a connection after an HTTP protocol error: %s", exc)
            return
        if polite:
            await _linger(stream)


async def serve(
    sim: Simulator,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    announce: bool = False,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``sim`` over HTTP/1.1 on ``host:port`` until cancelled.

    ``port=0`` picks a free port; ``task_status.started()`` reports the actual
    one (``port = await tg.start(partial(serve, sim, port=0))``). With
    ``announce``, prints ``simulator listening on http://HOST:PORT`` to stderr.
    """
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    async with listener:
        actual = int(listener.extra(SocketAttribute.local_port))
        if announce:
            print(f"simulator listening on {_url(host, actual)}", file=sys.stderr, flush=True)
        task_status.started(actual)
        await listener.serve(partial(_serve_connection, sim))


async def serve_until_signalled(sim: Simulator, *, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve ``sim`` (announcing the URL on stderr) until SIGINT or SIGTERM; then return."""
    async with anyio.create_task_group() as tg:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            await tg.start(partial(serve, sim, host=host, port=port, announce=True))
            async for _ in signals:
                tg.cancel_scope.cancel()
                break


class SimulatorThread:
    """Serve a simulator on a real loopback port from a background thread.

    >>> with SimulatorThread(Simulator()) as server:
    ...     httpx.get(f"{server.base_url}/_sim/stats")
    """

    def __init__(self, sim: Simulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sim = sim
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._portal_cm: Any = None
        self._portal: BlockingPortal | None = None
        self._future: Any = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the simulator thread is not running; use it as a context manager")
        return self._port

    @property
    def base_url(self) -> str:
        return _url(self.host, self.port)

    def start(self) -> Self:
        if self._portal is not None:
            raise RuntimeError("the simulator thread is already running")
        self._portal_cm = start_blocking_portal()
        self._portal = self._portal_cm.__enter__()
        try:
            self._future, self._port = self._portal.start_task(
                partial(serve, self.sim, host=self.host, port=self._requested_port), name="simulator"
            )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop serving (open connections are closed) and join the thread. Idempotent."""
        if self._future is not None:
            self._future.cancel()
            self._future = None
        if self._portal_cm is not None:
            cm, self._portal_cm, self._portal = self._portal_cm, None, None
            cm.__exit__(None, None, None)
        self._port = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None else "stopped"
        return f"SimulatorThread({where})"
