"""The lean HTTP/1.1 transport over real loopback sockets: keep-alive at O(1) work per request, and every
failure raised as the httpx class the submit classification expects (nothing sent vs in doubt)."""

from __future__ import annotations

import contextlib
import select
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

from runner.client import SubmitOutcome, make_http_client
from runner.client.submit import classify_exception
from runner.client.transport import LeanTransport

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class RawServer:
    """A loopback HTTP/1.1 server on a thread; ``mode`` says how it answers. Counts the connections it accepted."""

    def __init__(self, mode: str = "ok", tls: ssl.SSLContext | None = None) -> None:
        self.mode = mode
        self.accepted = 0
        self.tls = tls
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://{'localhost' if tls else '127.0.0.1'}:{self.port}"
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.1)
        while not self._stop:
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except (OSError, ssl.SSLError):
                return
        with conn:
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buf) < length:
                    buf += conn.recv(65536)
                buf = buf[length:]
                if self.mode == "drop":  # read the request, close without a word
                    return
                if self.mode == "silent":  # read the request, never answer
                    threading.Event().wait(5)
                    return
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}")
                if self.mode == "close-after":  # answer, then close the kept-alive connection
                    return

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self.listener.close()


@pytest.fixture
def server() -> Iterator[RawServer]:
    s = RawServer()
    yield s
    s.close()


async def test_keep_alive_costs_one_socket_probe_per_request_whatever_the_pool_size(
    server: RawServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """50 connections opened at once then idle: each later request probes at most one idle socket (httpcore's
    pool probed every idle connection of the pool on each request and each response close: ≥ 50 here)."""
    probes = 0
    real_poll = select.poll

    def counting_poll() -> Any:
        nonlocal probes
        probes += 1
        return real_poll()

    async with make_http_client(max_connections=100) as http:
        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(http.get, server.url)
        assert server.accepted == 50
        monkeypatch.setattr(select, "poll", counting_poll)
        for _ in range(20):
            assert (await http.get(server.url)).status_code == 200
    assert server.accepted == 50  # kept alive: no new connection
    assert probes <= 20


async def test_a_free_pool_slot_is_taken_without_arming_a_pool_timeout(
    server: RawServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A timeout scope (a cancel scope and a timer) per await was most of the transport's plumbing: the pool wait
    gets one only when no slot is free, and a kept-alive GET none at all (its connection's read timeout is one
    event-loop timer, re-armed from the time of the last bytes rather than around each read)."""
    async with make_http_client(max_connections=4) as http:
        assert (await http.get(server.url)).status_code == 200
        armed: list[float] = []
        real = anyio.fail_after

        def counting(delay: float | None, *args: Any, **kwargs: Any) -> Any:
            armed.append(float("inf") if delay is None else delay)
            return real(delay, *args, **kwargs)

        monkeypatch.setattr(anyio, "fail_after", counting)
        for _ in range(10):
            assert (await http.get(server.url)).status_code == 200
    assert armed == []  # before: the write's and each read's (and earlier the pool's too)
    assert server.accepted == 1


async def test_a_connection_the_server_closed_while_idle_is_replaced_not_used() -> None:
    """The server closes each connection after its answer: the next request sees it readable (EOF) and opens a
    new one instead of sending into a dead socket (which would make a submit in doubt)."""
    server = RawServer("close-after")
    try:
        async with make_http_client() as http:
            for _ in range(3):
                assert (await http.post(server.url, json={"a": 1})).status_code == 200
                await anyio.sleep(0.05)  # the FIN arrives
        assert server.accepted == 3
    finally:
        server.close()


async def test_failures_are_the_httpx_classes_the_submit_classification_expects() -> None:
    """Refused connection: ConnectError (nothing sent, retryable). Request read and the socket closed without an
    answer: RemoteProtocolError (in doubt). Request read, no answer within the read timeout: ReadTimeout (in
    doubt). A pool with no free connection in time: PoolTimeout (nothing sent)."""
    free = socket.create_server(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    async with make_http_client(connect=2, read=0.5, pool=0.2, max_connections=1) as http:
        with pytest.raises(httpx.ConnectError) as refused:
            await http.post(f"http://127.0.0.1:{port}/v3/async/x", json={})
        assert classify_exception(refused.value).outcome is SubmitOutcome.REFUSED
        for mode, error in (("drop", httpx.RemoteProtocolError), ("silent", httpx.ReadTimeout)):
            server = RawServer(mode)
            try:
                with pytest.raises(error) as caught:
                    await http.post(server.url, json={"prompt": "x"})
                assert classify_exception(caught.value).outcome is SubmitOutcome.AMBIGUOUS
            finally:
                server.close()
        server = RawServer("silent")
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_swallow, http.post(server.url, json={}))  # holds the only connection
                await anyio.sleep(0.05)
                with pytest.raises(httpx.PoolTimeout) as pooled:
                    await http.post(server.url, json={})
                assert classify_exception(pooled.value).outcome is SubmitOutcome.REFUSED
        finally:
            server.close()


async def _swallow(call: Any) -> None:
    with contextlib.suppress(httpx.HTTPError):
        await call


@pytest.fixture
def certificate(tmp_path: Any) -> tuple[str, str]:
    """A self-signed certificate for localhost (cert.pem, key.pem)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


async def test_https_keep_alive_over_loopback(certificate: tuple[str, str]) -> None:
    """TLS (the production path: the API and the video host are https): answers, keeps the connection alive, and an
    untrusted certificate is a ConnectError (nothing sent)."""
    cert, key = certificate
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    server = RawServer(tls=server_ctx)
    try:
        trusted = ssl.create_default_context(cafile=cert)
        async with httpx.AsyncClient(transport=LeanTransport(ssl_context=trusted)) as http:
            for _ in range(3):
                response = await http.post(server.url, json={"prompt": "x"})
                assert response.status_code == 200 and response.json() == {}
        assert server.accepted == 1
        async with httpx.AsyncClient(transport=LeanTransport()) as http:  # the default trust store: not this cert
            with pytest.raises(httpx.ConnectError) as untrusted:
                await http.post(server.url, json={})
        assert classify_exception(untrusted.value).outcome is SubmitOutcome.REFUSED
    finally:
        server.close()
