"""Unit tests of download: verification, atomic rename, retries, and cleanup on every failure."""

from __future__ import annotations

import hashlib
import random
import struct
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import anyio
import httpx
import pytest

from runner.client import NovitaClient, OpenSink
from runner.errors import DownloadError, UrlExpired
from runner.storage import Stored
from runner.storage.local import LocalStore
from runner.testing import make_mp4

KEY = "sk_test_SECRET_0123456789"
BASE = "https://api.example.test"
URL = "https://store.example.test/videos/t-1.mp4?X-Amz-Signature=abcdef&X-Amz-Expires=3600"
_MDAT = bytes(range(256)) * 40
MP4 = make_mp4() + struct.pack(">I4s", 8 + len(_MDAT), b"mdat") + _MDAT  # whole MP4 boxes, as a download must be
EXPIRED_XML = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Request has expired</Message></Error>"
)

Handler = Callable[[httpx.Request], httpx.Response]


def into(dest: Path) -> OpenSink:
    """Sinks for ``dest``, through a local store rooted at its folder."""
    return lambda: LocalStore(dest.parent).open_sink(dest.name)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Chunks(httpx.AsyncByteStream):
    """A response body sent in chunks, optionally failing after them."""

    def __init__(self, chunks: Sequence[bytes], error: Exception | None = None) -> None:
        self.chunks = chunks
        self.error = error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.error is not None:
            raise self.error


class FakeSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def ok(data: bytes = MP4, chunk: int = 1000) -> httpx.Response:
    parts = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    return httpx.Response(200, headers={"Content-Length": str(len(data))}, stream=Chunks(parts))


def truncated() -> httpx.Response:
    return httpx.Response(
        200,
        headers={"Content-Length": str(len(MP4))},
        stream=Chunks([MP4[:500]], httpx.RemoteProtocolError("peer closed connection")),
    )


class Rig:
    """A client over a MockTransport answering ``responses`` in order (the last repeats)."""

    def __init__(self, *responses: httpx.Response | Handler, attempts: int = 3) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []
        self.sleep = FakeSleep()
        # Even if someone configures a default Authorization header, downloads must drop it.
        self.http = httpx.AsyncClient(
            transport=httpx.MockTransport(self.handle), headers={"Authorization": f"Bearer {KEY}"}
        )
        self.client = NovitaClient(
            self.http, base_url=BASE, api_key=KEY, get_attempts=attempts, sleep=self.sleep, rng=random.Random(3)
        )

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        item = self.responses[min(len(self.requests) - 1, len(self.responses) - 1)]
        return item(request) if callable(item) else item

    async def download(self, dest: Path) -> Stored:
        async with self.http:
            return await self.client.download(URL, into(dest))


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".part-" in p.name) if directory.exists() else []


@pytest.mark.anyio
async def test_download_stores_verified_file_without_the_key(tmp_path: Path) -> None:
    """A good download lands at dest with its sha256 and size, creating parents, and never sends the key."""
    rig = Rig(ok())
    dest = tmp_path / "out" / "nested" / "video.mp4"
    result = await rig.download(dest)
    assert result == Stored(rel="video.mp4", sha256=hashlib.sha256(MP4).hexdigest(), bytes=len(MP4))
    assert dest.read_bytes() == MP4
    assert leftovers(dest.parent) == []
    (request,) = rig.requests
    assert "authorization" not in request.headers
    assert str(request.url) == URL


@pytest.mark.anyio
async def test_signature_found_across_tiny_chunks(tmp_path: Path) -> None:
    """The MP4 signature check works when the body arrives a few bytes at a time."""
    rig = Rig(ok(chunk=3))
    result = await rig.download(tmp_path / "v.mp4")
    assert result.bytes == len(MP4)


@pytest.mark.anyio
async def test_download_never_replaces_an_existing_file(tmp_path: Path) -> None:
    """A download never replaces another file at dest (the store refuses; its beside name is the way out)."""
    dest = tmp_path / "v.mp4"
    dest.write_bytes(b"old")
    with pytest.raises(FileExistsError):
        await Rig(ok()).download(dest)
    assert dest.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(403, content=EXPIRED_XML, headers={"content-type": "application/xml"}),
        httpx.Response(401, text="unauthorized"),
        httpx.Response(410, text="gone"),
        httpx.Response(400, content=b"<Error><Code>ExpiredToken</Code></Error>"),
    ],
    ids=["403-xml", "401", "410", "400-expired-token"],
)
async def test_expired_url_raises_url_expired_without_retry(response: httpx.Response, tmp_path: Path) -> None:
    """An expired or refused URL raises UrlExpired at once, leaves dest untouched and no temp file."""
    rig = Rig(response)
    dest = tmp_path / "v.mp4"
    dest.write_bytes(b"previous")
    with pytest.raises(UrlExpired) as info:
        await rig.download(dest)
    assert info.value.status == response.status_code
    assert "X-Amz-Signature" not in str(info.value)
    assert len(rig.requests) == 1
    assert rig.sleep.delays == []
    assert dest.read_bytes() == b"previous"
    assert leftovers(tmp_path) == []


@pytest.mark.anyio
async def test_truncated_body_is_retried_then_fails(tmp_path: Path) -> None:
    """A body cut off mid-stream is retried up to get_attempts, then DownloadError; nothing left behind."""
    rig = Rig(lambda r: truncated(), attempts=3)
    dest = tmp_path / "v.mp4"
    with pytest.raises(DownloadError) as info:
        await rig.download(dest)
    assert type(info.value) is DownloadError
    assert "3 attempts" in str(info.value)
    assert len(rig.requests) == 3
    assert len(rig.sleep.delays) == 2
    assert not dest.exists()
    assert leftovers(tmp_path) == []


@pytest.mark.anyio
async def test_truncated_then_complete_succeeds(tmp_path: Path) -> None:
    """A truncated first attempt followed by a full one stores the full file."""
    rig = Rig(truncated(), ok())
    dest = tmp_path / "v.mp4"
    result = await rig.download(dest)
    assert result.bytes == len(MP4)
    assert dest.read_bytes() == MP4
    assert len(rig.requests) == 2
    assert leftovers(tmp_path) == []


@pytest.mark.anyio
@pytest.mark.parametrize("framing", ["end-of-connection", "short-content-length"])
async def test_a_body_cut_short_with_nothing_to_tell_is_never_stored(tmp_path: Path, framing: str) -> None:
    """No Content-Length and a clean end of the connection after 50 bytes, or a Content-Length smaller than the
    video: the body was "complete" as framed, its first bytes a right ftyp — and a 50-byte file was recorded done,
    the real video lost once its URL expired (hostile-data sweep, 2026-12-05). The MP4's own boxes tell: a body
    that ends inside one is tried again, then the job stays succeeded, nothing stored."""
    cut = MP4[:len(MP4) // 2]

    def short(request: httpx.Request) -> httpx.Response:
        headers = {} if framing == "end-of-connection" else {"Content-Length": str(len(cut))}
        return httpx.Response(200, headers=headers, stream=Chunks([cut]))

    rig = Rig(short, attempts=2)
    dest = tmp_path / "v.mp4"
    with pytest.raises(DownloadError, match="not a whole MP4"):
        await rig.download(dest)
    assert not dest.exists() and leftovers(tmp_path) == []
    assert len(rig.requests) == 2  # tried again: a cut is transient


@pytest.mark.anyio
async def test_size_mismatch_with_content_length_is_an_error(tmp_path: Path) -> None:
    """A body shorter than its Content-Length is treated as truncated and never stored."""
    def short(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Length": str(len(MP4) + 10)}, stream=Chunks([MP4]))

    rig = Rig(short, attempts=2)
    dest = tmp_path / "v.mp4"
    with pytest.raises(DownloadError) as info:
        await rig.download(dest)
    assert "truncated" in str(info.value)
    assert len(rig.requests) == 2
    assert not dest.exists()
    assert leftovers(tmp_path) == []


@pytest.mark.anyio
@pytest.mark.parametrize("body", [b"<html>hello</html>" * 3, b"", b"\x00\x00\x00\x18moov"])
async def test_bad_signature_is_rejected_without_retry(body: bytes, tmp_path: Path) -> None:
    """A body that is not an MP4 raises DownloadError at once; dest untouched, no temp file."""
    rig = Rig(ok(body))
    dest = tmp_path / "v.mp4"
    dest.write_bytes(b"previous")
    with pytest.raises(DownloadError) as info:
        await rig.download(dest)
    assert "not an MP4" in str(info.value)
    assert len(rig.requests) == 1
    assert dest.read_bytes() == b"previous"
    assert leftovers(tmp_path) == []


@pytest.mark.anyio
async def test_the_endpoints_media_check_decides(tmp_path: Path) -> None:
    """A media check given by the caller (the endpoint's rule) refuses a valid MP4 it does not accept."""
    rig = Rig(ok(MP4))
    dest = tmp_path / "v.webm"
    async with rig.http:
        with pytest.raises(DownloadError) as info:
            await rig.client.download(URL, into(dest), check_media=lambda head: "not a WebM (no EBML header)")
    assert "not a WebM (no EBML header)" in str(info.value)
    assert not dest.exists() and leftovers(tmp_path) == []


@pytest.mark.anyio
async def test_other_4xx_is_download_error_with_status(tmp_path: Path) -> None:
    """A 404 from storage is a DownloadError with the status, not retried."""
    rig = Rig(httpx.Response(404, text="NoSuchKey"))
    with pytest.raises(DownloadError) as info:
        await rig.download(tmp_path / "v.mp4")
    assert type(info.value) is DownloadError
    assert info.value.status == 404
    assert len(rig.requests) == 1


@pytest.mark.anyio
async def test_5xx_and_network_errors_are_retried(tmp_path: Path) -> None:
    """Storage 5xx and connection errors are retried on the same URL."""

    def connect_error(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    rig = Rig(httpx.Response(503, text="slow down"), connect_error, ok(), attempts=5)
    result = await rig.download(tmp_path / "v.mp4")
    assert result.bytes == len(MP4)
    assert len(rig.requests) == 3
    assert all(str(r.url) == URL for r in rig.requests)
    assert len(rig.sleep.delays) == 2


@pytest.mark.anyio
async def test_persistent_5xx_gives_download_error_with_status(tmp_path: Path) -> None:
    """A storage host that keeps failing ends in DownloadError with its last status."""
    rig = Rig(httpx.Response(500, text="oops"), attempts=2)
    with pytest.raises(DownloadError) as info:
        await rig.download(tmp_path / "v.mp4")
    assert info.value.status == 500
    assert len(rig.requests) == 2


@pytest.mark.anyio
async def test_cancellation_mid_stream_removes_temp_file(tmp_path: Path) -> None:
    """Cancelling a download half-way leaves no temp file and does not create dest."""
    part_seen: list[str] = []
    halfway = anyio.Event()

    class Stalling(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield MP4[:100]
            part_seen.extend(leftovers(tmp_path))  # the first chunk has been written by now
            halfway.set()
            await anyio.sleep_forever()
            yield b""  # pragma: no cover

    rig = Rig(httpx.Response(200, headers={"Content-Length": str(len(MP4))}, stream=Stalling()))
    dest = tmp_path / "v.mp4"
    async with anyio.create_task_group() as tg:
        tg.start_soon(rig.download, dest)
        with anyio.fail_after(10):
            await halfway.wait()
        tg.cancel_scope.cancel()
    assert len(part_seen) == 1 and part_seen[0].startswith(".v.mp4.part-")
    assert leftovers(tmp_path) == []
    assert not dest.exists()


@pytest.mark.anyio
@pytest.mark.parametrize("url", ["not-a-url", "http://[::1", "ftp://store.test/v.mp4"])
async def test_unusable_url_is_download_error(url: str, tmp_path: Path) -> None:
    """A result URL that cannot be fetched at all raises DownloadError (no httpx error escapes)."""
    async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport()) as http:
        client = NovitaClient(http, base_url=BASE, api_key=KEY, get_attempts=2, sleep=FakeSleep())
        with pytest.raises(DownloadError):
            await client.download(url, into(tmp_path / "v.mp4"))
    assert list(tmp_path.iterdir()) == []
