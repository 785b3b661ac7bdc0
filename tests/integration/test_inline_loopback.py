"""A body with an image inline goes over real loopback TCP as the very bytes the eager path sent.

The engine's body carrying a local file is encoded bytes (``runner.client.body``), POSTed with ``content=``; the
runner's transport writes a body larger than ``BODY_PIECE`` in pieces. What a server receives must be, byte for
byte, what httpx's ``json=`` sent for the eager body (the data URI as a string), with the same Content-Type; and
the simulator accepts it as the same request.
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import SocketStream

from runner import endpoints
from runner.client import NovitaClient, SubmitOutcome, make_http_client
from runner.client.body import InlineBody, inline_body
from runner.client.transport import BODY_PIECE
from runner.jobs import canonical_json
from runner.manifest.inputs import InputResolver
from runner.simulator import Simulator, SimulatorThread
from runner.testing import make_png

pytestmark = pytest.mark.anyio
SLUG = "kling-v3.0-pro-i2v"


def _image(tmp_path: Path) -> dict[str, Any]:
    """A 1.5 MB PNG (an ancillary chunk of noise the probe skips) in ``tmp_path/frames``, and the job's request."""
    png = make_png(640, 360)
    noise = random.Random(2).randbytes(1_500_000)
    png = png[:33] + len(noise).to_bytes(4, "big") + b"zzZz" + noise + b"\0\0\0\0" + png[33:]
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "a.png").write_bytes(png)
    ref = {"file": "frames/a.png", "sha256": hashlib.sha256(png).hexdigest(), "size": len(png), "kind": "image",
           "mime": "image/png"}
    spec = endpoints.get(SLUG)
    return spec.request_body({"image": ref, "prompt": "she turns, « lentement »", "negative_prompt": "blur"})


def _bodies(tmp_path: Path) -> tuple[dict[str, Any], bytes]:
    request, spec = _image(tmp_path), endpoints.get(SLUG)
    eager = spec.wire_body(request, InputResolver(tmp_path))
    encoded = inline_body(spec.wire_body(request, InputResolver(tmp_path, deferred=True)))
    assert isinstance(encoded, InlineBody)
    return eager, encoded.encode()


async def test_the_server_receives_the_bytes_json_sent(tmp_path: Path) -> None:
    eager, body = _bodies(tmp_path)
    assert len(body) > 4 * BODY_PIECE
    received: list[tuple[bytes, bytes]] = []

    async def serve(stream: SocketStream) -> None:
        async with stream:
            data = b""
            while b"\r\n\r\n" not in data:
                data += await stream.receive()
            head, _, rest = data.partition(b"\r\n\r\n")
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            while len(rest) < length:
                rest += await stream.receive()
            received.append((head, rest))
            answer = b'{"task_id":"t-1"}'
            await stream.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
                              % (len(answer), answer))

    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with make_http_client() as http:
            client = NovitaClient(http, base_url=f"http://127.0.0.1:{port}", api_key="sk-test-simulator-key")
            for sent in (eager, body):
                result = await client.submit(SLUG, sent)
                assert result.outcome is SubmitOutcome.ACCEPTED, result.message
        tg.cancel_scope.cancel()
    (head_eager, from_eager), (head_bytes, from_bytes) = received
    assert from_bytes == from_eager == httpx.Request("POST", "http://x/", json=eager).content
    for head in (head_eager, head_bytes):
        assert b"\r\ncontent-type: application/json" in head.lower()
        assert f"\r\ncontent-length: {len(from_eager)}".encode() in head.lower()


async def test_the_simulator_accepts_it_as_the_same_request(
    sim: Simulator, sim_server: SimulatorThread, sim_api_key: str, tmp_path: Path
) -> None:
    eager, body = _bodies(tmp_path)
    async with make_http_client() as http:
        client = NovitaClient(http, base_url=sim_server.base_url, api_key=sim_api_key, rng=random.Random(0))
        result = await client.submit(SLUG, body)
    assert result.outcome is SubmitOutcome.ACCEPTED, result.message
    assert result.task_id is not None
    task = sim.task(result.task_id)
    assert task.body == eager
    assert task.body_sha256 == hashlib.sha256(canonical_json(eager).encode("utf-8")).hexdigest()
    assert os.path.getsize(tmp_path / "frames" / "a.png") == 1_500_000 + len(make_png(640, 360)) + 12


async def test_the_request_lets_the_bytes_go_once_sent() -> None:
    """httpx keeps an answer in a reference cycle with its request until the cyclic collector runs: a body the
    request held would outlive its POST (and the room the engine gave back for it). With the collector off, the
    bytes of a 4 MB body are freed as soon as the POST returns and the caller drops them."""
    import gc
    import tracemalloc

    async def serve(stream: SocketStream) -> None:  # reads and forgets the body
        async with stream:
            data = b""
            while b"\r\n\r\n" not in data:
                data += await stream.receive()
            head, _, rest = data.partition(b"\r\n\r\n")
            left = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")) - len(rest)
            while left > 0:
                left -= len(await stream.receive())
            answer = b'{"task_id":"t-2"}'
            await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(answer), answer))

    enabled = gc.isenabled()
    gc.disable()
    tracemalloc.start()
    try:
        async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, serve)
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            async with make_http_client() as http:
                client = NovitaClient(http, base_url=f"http://127.0.0.1:{port}", api_key="sk-test-simulator-key")
                await client.submit(SLUG, b"{}")  # the connection and the first-use allocations
                before = tracemalloc.get_traced_memory()[0]
                body = b'{"image":"data:image/png;base64,' + b"A" * 4_000_000 + b'"}'
                result = await client.submit(SLUG, body)
                del body
                after = tracemalloc.get_traced_memory()[0]
            tg.cancel_scope.cancel()
    finally:
        tracemalloc.stop()
        if enabled:
            gc.enable()
    assert result.outcome is SubmitOutcome.ACCEPTED, result.message
    assert after - before < 1_000_000, (before, after)
