"""A proxy that takes a submit's CONNECT and never answers it (closes, resets, or hangs): the POST's first byte
never left, so nothing was created — the job stays pending, not in doubt (held for a person, "may have been paid")."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from runner.client import NovitaClient, SubmitOutcome, make_http_client

KEY = "sk_test_SECRET_0123456789"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["close", "reset", "hang"])
async def test_a_tunnel_the_proxy_never_opened_is_nothing_sent(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bytes] = []
    release = asyncio.Event()

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append((await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")[0])
        if mode == "reset":
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif mode == "hang":
            await release.wait()
        writer.close()

    server = await asyncio.start_server(proxy, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    asked: list[bool] = []
    try:
        async with make_http_client(read=0.2, connect=5) as http:
            client = NovitaClient(http, base_url="https://api.novita.test", api_key=KEY, pause_tick=0.01)
            result = await client.submit("kling-v3.0-t2v", {"prompt": "x"}, may_send=lambda: asked.append(True) or True)
    finally:
        release.set()
        server.close()
    assert seen == [b"CONNECT api.novita.test:443 HTTP/1.1"]  # the proxy got the CONNECT, never the POST
    assert result.outcome is SubmitOutcome.REFUSED, result
    assert result.retryable and result.http_status is None  # counted as a failed connect: pending, tried again
    assert f"127.0.0.1:{port}" in result.message and "nothing was created" in result.message
    assert KEY not in result.message
