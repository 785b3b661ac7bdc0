"""A body carrying local files inline is encoded to exactly the bytes httpx's ``json=`` sends, in one allocation.

The engine's resolver defers a local file (an ``Inline``); ``runner.client.body`` writes its base64 straight into
the body's bytes. Not a byte may differ from what the eager path sent (the ledger's, the simulator's and the crash
torture's body digests compare them), and a file that is not the one planned must fail the build, unsent.
"""

from __future__ import annotations

import base64
import hashlib
import math
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner import endpoints
from runner.client.body import InlineBody, inline_body
from runner.endpoints.local_file import LocalFile
from runner.endpoints.media import Inline, InputChanged
from runner.manifest.inputs import PIECE, InputResolver
from runner.testing import make_png


def json_bytes(body: dict[str, Any]) -> bytes:
    """What httpx's ``json=`` sends for ``body``."""
    return httpx.Request("POST", "http://x/", json=body).content


def inline_of(data: bytes, mime: str = "image/png", piece: int = PIECE) -> Inline:
    def pieces() -> Iterator[bytes]:
        for start in range(0, len(data), piece):
            yield data[start:start + piece]

    return Inline("frames/x.png", mime, len(data), pieces)


def uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 1000, PIECE - 1, PIECE, PIECE + 1, 3 * PIECE + 2])
@pytest.mark.parametrize("piece", [PIECE, 7, 1])
def test_the_bytes_are_json_s_whatever_the_size_and_the_pieces(size: int, piece: int) -> None:
    if piece == 1 and size > 5000:
        pytest.skip("a byte at a time: small files only")
    data = os.urandom(size)
    body = {"prompt": "a fox", "image": inline_of(data, piece=piece), "duration": 5}
    encoded = inline_body(body)
    assert isinstance(encoded, InlineBody)
    want = json_bytes({"prompt": "a fox", "image": uri(data), "duration": 5})
    assert encoded.size == len(want), "the size is known before any file is read"
    assert encoded.encode() == want


def test_escapes_unicode_two_files_and_nesting_are_json_s() -> None:
    first, last = os.urandom(10_001), os.urandom(20_000)
    prompt = 'quote " backslash \\ tab \t newline \n NUL-free, é, 漢字, emoji 🦊, "data:x" and inline-0'
    body = {"prompt": prompt, "image": inline_of(first), "end_image": inline_of(last, "image/jpeg"),
            "multi_prompt": [{"prompt": "shot", "duration": 2}], "cfg_scale": 0.5, "sound": False, "none": None}
    encoded = inline_body(body)
    assert isinstance(encoded, InlineBody)
    plain = {**body, "image": uri(first), "end_image": uri(last, "image/jpeg")}
    assert encoded.encode() == json_bytes(plain)
    nested = inline_body({"a": [{"b": inline_of(first)}, inline_of(last)]})
    assert isinstance(nested, InlineBody)
    assert nested.encode() == json_bytes({"a": [{"b": uri(first)}, uri(last)]})


def test_a_body_without_inline_files_is_left_as_it_is() -> None:
    body = {"prompt": "a fox", "image": "https://cdn.example.com/fox.png"}
    assert inline_body(body) is body


def test_a_body_json_cannot_encode_comes_back_whole_for_the_client_to_refuse() -> None:
    """A NaN: json= refuses it, so the client refuses the body unsent, as before; the URI is there in full."""
    data = os.urandom(300)
    body = inline_body({"prompt": "p", "cfg_scale": math.nan, "image": inline_of(data)})
    assert isinstance(body, dict) and body["image"] == uri(data)
    with pytest.raises(ValueError):
        json_bytes(body)


def test_a_file_shorter_or_longer_than_planned_fails_the_build() -> None:
    data = os.urandom(1000)
    for wrong in (data[:-1], data + b"x"):
        lying = Inline("frames/x.png", "image/png", len(data), lambda wrong=wrong: iter([wrong]))
        encoded = inline_body({"image": lying})
        assert isinstance(encoded, InlineBody)
        with pytest.raises(InputChanged, match=r"frames/x\.png is (999|1001) bytes, not the 1000 planned"):
            encoded.encode()


def test_the_body_is_one_allocation_of_its_size() -> None:
    """tracemalloc's peak while a 6 MB file is read, checked and encoded: the body's bytes and a few pieces,
    where the eager path (the URI as a string, then json=) held about five times the file."""
    data = os.urandom(6_000_000)
    encoded = inline_body({"prompt": "p", "image": inline_of(data)})
    assert isinstance(encoded, InlineBody)
    tracemalloc.start()
    try:
        body = encoded.encode()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(body) == encoded.size
    assert peak < encoded.size + 4 * PIECE, (peak, encoded.size)


# ------------------------------------------------------------- the manifest's deferred resolver


def planned(tmp_path: Path, data: bytes) -> LocalFile:
    (tmp_path / "frames").mkdir(exist_ok=True)
    (tmp_path / "frames" / "a.png").write_bytes(data)
    return LocalFile(file="frames/a.png", sha256=hashlib.sha256(data).hexdigest(), size=len(data), kind="image",
                     mime="image/png")


def test_the_deferred_resolver_reads_nothing_until_the_body_is_encoded_and_sends_the_same_bytes(tmp_path: Path) -> None:
    png = make_png(640, 360) + os.urandom(PIECE * 2 + 5)  # bytes after IEND: more than one piece
    ref = planned(tmp_path, png)
    spec = endpoints.get("kling-v3.0-std-i2v")
    request = spec.request_body({"prompt": "push in", "image": ref.model_dump(exclude_none=True)})
    eager = spec.wire_body(request, InputResolver(tmp_path))
    (tmp_path / "frames" / "a.png").rename(tmp_path / "away.png")
    deferred = inline_body(spec.wire_body(request, InputResolver(tmp_path, deferred=True)))  # nothing read yet
    assert isinstance(deferred, InlineBody)
    (tmp_path / "away.png").rename(tmp_path / "frames" / "a.png")
    assert deferred.encode() == json_bytes(eager)


@pytest.mark.parametrize("change", ["edited", "grown", "shrunk", "removed", "fifo"])
def test_a_deferred_input_not_as_planned_fails_the_build(tmp_path: Path, change: str) -> None:
    png = make_png(640, 360)
    ref = planned(tmp_path, png)
    inline = InputResolver(tmp_path, deferred=True).wire_value(ref)
    assert isinstance(inline, Inline) and inline.length == len(uri(png))
    path = tmp_path / "frames" / "a.png"
    if change == "edited":
        path.write_bytes(make_png(640, 360, seed=9))
    elif change == "grown":
        path.write_bytes(png + b"x")
    elif change == "shrunk":
        path.write_bytes(png[:-1])
    else:
        path.unlink()
        if change == "fifo":
            os.mkfifo(path)
    encoded = inline_body({"image": inline})
    assert isinstance(encoded, InlineBody)
    words = "cannot be read now" if change in ("removed", "fifo") else "changed after it was planned"
    with pytest.raises(InputChanged, match=rf"input frames/a\.png .*{words}"):
        encoded.encode()


def test_a_hosted_input_is_read_and_checked_at_once_as_before(tmp_path: Path) -> None:
    ref = planned(tmp_path, make_png(640, 360))
    hosted = InputResolver(tmp_path, "https://cdn.example.com/in/", deferred=True)
    assert hosted.wire_value(ref) == "https://cdn.example.com/in/frames/a.png"
    (tmp_path / "frames" / "a.png").write_bytes(make_png(640, 360, seed=3))
    with pytest.raises(InputChanged, match="changed after it was planned"):
        hosted.wire_value(ref)


def test_an_inline_input_where_the_provider_takes_a_url_only_is_refused_unread(tmp_path: Path) -> None:
    """Motion control's ``video`` is URL-only: a deferred local video is refused as the eager data URI was."""
    from runner.endpoints.media import InputNeedsUrl

    spec = endpoints.get("kling-v3.0-motion-control")
    ref = {"file": "clips/a.mp4", "sha256": "ab" * 32, "size": 10, "kind": "video", "mime": "video/mp4",
           "duration": 5.0}
    request = {"image": "https://cdn.example.com/a.png", "video": ref, "character_orientation": "video"}
    with pytest.raises(InputNeedsUrl, match="takes video only as an https:// URL"):
        spec.wire_body(request, InputResolver(tmp_path, deferred=True))


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_encoded_bytes_on_a_slow_uplink_are_given_time_to_go_out(
    monkeypatch: pytest.MonkeyPatch, anyio_backend: str
) -> None:
    """As for a json= body (test_client_deadline_answer.py): the body's length, from its Content-Length, gives the
    upload its time before the read timeout counts, though the request does not keep the bytes."""
    import anyio

    from runner.client import NovitaClient, SubmitOutcome, deadline

    monkeypatch.setattr(deadline, "UPLOAD_FLOOR_BPS", 1024)  # the ~60 kB body is given ~60 s to go out
    seen: list[bytes] = []

    async def slow_uplink(request: httpx.Request) -> httpx.Response:
        trace = request.extensions["trace"]
        await trace("http11.send_request_headers.started", {})
        seen.append(await request.aread())
        await anyio.sleep(0.4)  # the body going out
        await trace("http11.send_request_body.complete", {})
        await anyio.sleep(0.2)  # the provider's answer
        return httpx.Response(200, json={"task_id": "task-after-upload"})

    body = json_bytes({"prompt": "p" * 60_000})
    async with httpx.AsyncClient(transport=httpx.MockTransport(slow_uplink), timeout=httpx.Timeout(5.0, read=0.3)) as http:
        client = NovitaClient(http, base_url="https://api.novita.ai", api_key="sk-test-key", pause_tick=0.01)
        result = await client.submit("kling-v3.0-pro-t2v", body)
    assert result.outcome is SubmitOutcome.ACCEPTED, result.message
    assert seen == [body]
