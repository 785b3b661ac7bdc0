"""The API client's ``send`` (runner.client.connection._ApiClient): httpx's per-request layers (auth flow,
redirect loop, timer) skipped once the client is open, with the same requests on the wire and the same
answers as httpx's own ``send`` — compared here against a plain ``httpx.AsyncClient`` on the same mock."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from runner.client import make_http_client

SOURCE = "http://127.0.0.1:9/v3/async/task-result?task_id=t1"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _server(seen: list[tuple[str, str, str | None, Any]]) -> httpx.MockTransport:
    """Redirects /r/<n> to /r/<n-1> (/r/0 to another origin's /end), answers 200 elsewhere; /boom fails to connect."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, str(request.url), request.headers.get("authorization"),
                     request.extensions.get("timeout")))
        path = request.url.path
        if path == "/boom":
            raise httpx.ConnectError("refused")
        if path.startswith("/r/"):
            n = int(path.rsplit("/", 1)[1])
            target = "http://other.test/end" if n == 0 else f"/r/{n - 1}"
            return httpx.Response(302, headers={"Location": target})
        return httpx.Response(200, content=b'{"ok": true}')

    return httpx.MockTransport(handler)


def _plain(transport: httpx.MockTransport) -> httpx.AsyncClient:
    reference = make_http_client(transport=transport)
    return httpx.AsyncClient(transport=transport, timeout=reference.timeout, follow_redirects=False)


async def _scenario(client: httpx.AsyncClient, seen: list[Any]) -> list[Any]:
    """What a caller can observe of a few requests, and what the server saw of them."""
    out: list[Any] = []
    headers = {"Authorization": "Bearer k"}
    async with client:
        for url, follow in ((SOURCE, False), ("http://127.0.0.1:9/r/2", True), ("http://127.0.0.1:9/r/1", False)):
            response = await client.send(client.build_request("GET", url, headers=headers), follow_redirects=follow)
            out.append((response.status_code, str(response.url), response.content, response.request.method,
                        [(r.status_code, str(r.url)) for r in response.history],
                        None if response.next_request is None else str(response.next_request.url),
                        response.is_closed))
        streamed = await client.send(client.build_request("GET", SOURCE), stream=True)
        out.append(("stream", streamed.is_stream_consumed, await streamed.aread(), streamed.is_closed))
        with pytest.raises(httpx.TooManyRedirects) as too_many:
            await client.send(client.build_request("GET", "http://127.0.0.1:9/r/30"), follow_redirects=True)
        out.append(("too many", str(too_many.value.request.url)))
        with pytest.raises(httpx.ConnectError) as refused:
            await client.send(client.build_request("GET", "http://127.0.0.1:9/boom"))
        out.append(("refused", str(refused.value.request.url)))
    return [out, list(seen)]


@pytest.mark.anyio
async def test_send_observes_as_httpx_does() -> None:
    """Same answers, histories, next requests, errors with their request, timeouts and Authorization
    dropped on a redirect to another origin, as httpx's own send."""
    seen_lean: list[Any] = []
    seen_plain: list[Any] = []
    lean = await _scenario(make_http_client(transport=_server(seen_lean)), seen_lean)
    plain = await _scenario(_plain(_server(seen_plain)), seen_plain)
    assert lean == plain
    assert ("GET", "http://other.test/end", None, lean[1][0][3]) in lean[1]  # the key stayed home


@pytest.mark.anyio
async def test_send_skips_httpx_layers_once_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """After the first request, a request goes to the transport without httpx's auth and redirect layers."""
    layers = 0
    original = httpx.AsyncClient._send_handling_auth

    async def counted(self: httpx.AsyncClient, *args: Any, **kwargs: Any) -> httpx.Response:
        nonlocal layers
        layers += 1
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(httpx.AsyncClient, "_send_handling_auth", counted)
    seen: list[Any] = []
    client = make_http_client(transport=_server(seen))  # not entered: the first request opens it
    for _ in range(5):
        assert (await client.get(SOURCE)).status_code == 200
    assert (await client.send(client.build_request("GET", "http://127.0.0.1:9/r/1"),
                              follow_redirects=True)).status_code == 200
    await client.aclose()
    assert len(seen) == 8
    assert layers == 1  # only the first request, which opens the client, went through httpx's send


@pytest.mark.anyio
async def test_send_keeps_httpx_for_auth_hooks_and_a_closed_client() -> None:
    """An auth, an event hook or a closed client: httpx's own send, with its behaviour."""
    seen: list[Any] = []
    hooked: list[str] = []

    async def hook(request: httpx.Request) -> None:
        hooked.append(str(request.url))

    client = make_http_client(transport=_server(seen))
    async with client:
        await client.get(SOURCE)
        client.event_hooks = {"request": [hook]}
        await client.get(SOURCE)
        client.event_hooks = {}
        await client.get(SOURCE, auth=("user", "pass"))
        await client.get("http://u:p@127.0.0.1:9/x")
    assert hooked == [SOURCE]
    assert [auth for _, _, auth, _ in seen[2:]] == ["Basic dXNlcjpwYXNz", "Basic dTpw"]
    with pytest.raises(RuntimeError, match="closed"):
        await client.get(SOURCE)
