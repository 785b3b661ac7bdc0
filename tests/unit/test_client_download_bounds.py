"""Downloads are bounded: a size cap (Content-Length and actual bytes) and an overall deadline."""

from __future__ import annotations

import random
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest

from runner.client.download import DownloadLimits, fetch_video
from runner.errors import DownloadError
from runner.storage.local import LocalStore
from runner.testing import make_mp4

URL = "https://store.example.test/videos/t-1.mp4?X-Amz-Signature=SIGNED-SECRET&X-Amz-Expires=3600"
MP4_HEAD = make_mp4() + struct.pack(">I4s", 0, b"mdat")  # the chunks after it: an mdat that runs to the end
pytestmark = pytest.mark.timeout(20)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Body(httpx.AsyncByteStream):
    """A body of ``chunk`` bytes repeated (forever by default); counts what was read; advances a clock."""

    def __init__(self, chunk: bytes, *, count: int | None = None, clock: FakeClock | None = None,
                 seconds_per_chunk: float = 0.0, stall: float = 0.0) -> None:
        self.chunk, self.count, self.clock = chunk, count, clock
        self.seconds_per_chunk, self.stall = seconds_per_chunk, stall
        self.read = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.stall:
            await anyio.sleep(self.stall)
        sent = 0
        while self.count is None or sent < self.count:
            if self.clock is not None:
                self.clock.now += self.seconds_per_chunk
            self.read += 1
            sent += 1
            yield MP4_HEAD + self.chunk if sent == 1 else self.chunk


async def _fetch(response: httpx.Response | None, dest: Path, limits: DownloadLimits,
                 clock: FakeClock | None = None, *, stall_headers: float = 0.0) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        if stall_headers:
            await anyio.sleep(stall_headers)
        assert response is not None
        return response

    async def no_sleep(seconds: float) -> None:
        return None

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        await fetch_video(http, URL, lambda: LocalStore(dest.parent).open_sink(dest.name), attempts=3, backoff_base=0.01, backoff_max=0.01, sleep=no_sleep,
                          rng=random.Random(0), limits=limits, clock=clock or time.monotonic)


def _assert_clean(error: DownloadError, directory: Path) -> None:
    text = str(error)
    assert "store.example.test" in text  # the host is named…
    assert "SIGNED-SECRET" not in text and "X-Amz" not in text  # …never the presigned query
    assert list(directory.iterdir()) == []  # no destination, no temporary file


@pytest.mark.anyio
async def test_a_content_length_above_the_cap_is_refused_before_reading(tmp_path: Path) -> None:
    """Content-Length over max_bytes: DownloadError at once, not a byte of the body read."""
    body = Body(b"x" * 1000)
    response = httpx.Response(200, headers={"Content-Length": str(50 * 1024**3)}, stream=body)
    with pytest.raises(DownloadError, match="cap") as info:
        await _fetch(response, tmp_path / "v.mp4", DownloadLimits(max_bytes=10_000))
    assert body.read == 0
    assert "53,687,091,200 bytes" in str(info.value) and "RUNNER_DOWNLOAD_MAX_BYTES" in str(info.value)
    _assert_clean(info.value, tmp_path)


@pytest.mark.anyio
async def test_a_body_growing_past_the_cap_is_cut_off(tmp_path: Path) -> None:
    """No Content-Length and an endless body: cut off just past max_bytes, nothing stored."""
    body = Body(b"x" * 65_536)
    with pytest.raises(DownloadError, match="grew past the cap") as info:
        await _fetch(httpx.Response(200, stream=body), tmp_path / "v.mp4", DownloadLimits(max_bytes=1024**2))
    assert body.read <= 1024**2 // 65_536 + 1
    _assert_clean(info.value, tmp_path)


@pytest.mark.anyio
async def test_a_download_trickling_one_byte_a_second_ends_at_its_deadline(tmp_path: Path) -> None:
    """1 byte/s (on an injected clock): DownloadError after the 120 s minimum, not never."""
    clock = FakeClock()
    body = Body(b"x", clock=clock, seconds_per_chunk=1.0)
    with pytest.raises(DownloadError, match="too slow") as info:
        await _fetch(httpx.Response(200, stream=body), tmp_path / "v.mp4", DownloadLimits(), clock)
    assert 120 <= body.read <= 122
    _assert_clean(info.value, tmp_path)


@pytest.mark.anyio
async def test_the_deadline_grows_with_the_announced_size(tmp_path: Path) -> None:
    """A 30 MB body gets 300 s at 100 kB/s: a steady 150 kB/s finishes, 50 kB/s does not."""
    limits = DownloadLimits()
    assert limits.seconds_for(None) == 120 and limits.seconds_for(30_000_000) == 300
    size, chunk = 30_000_000, b"x" * 150_000
    count = size // len(chunk)
    for pace, ok in ((1.0, True), (3.0, False)):  # seconds per 150 kB chunk
        clock = FakeClock()
        body = Body(chunk, count=count, clock=clock, seconds_per_chunk=pace)
        length = len(MP4_HEAD) + count * len(chunk)
        response = httpx.Response(200, headers={"Content-Length": str(length)}, stream=body)
        dest = tmp_path / f"{pace}.mp4"
        if ok:
            await _fetch(response, dest, limits, clock)
            assert dest.stat().st_size == length
        else:
            with pytest.raises(DownloadError, match="too slow"):
                await _fetch(response, dest, limits, clock)
            assert not dest.exists()


@pytest.mark.anyio
@pytest.mark.parametrize("where", ["headers", "body"])
async def test_a_server_that_stalls_is_cut_off_by_the_real_deadline(tmp_path: Path, where: str) -> None:
    """No bytes at all (headers or body held back): the deadline holds between chunks, in real time."""
    limits = DownloadLimits(timeout_s=0.3)
    body = Body(b"x", count=1, stall=30.0 if where == "body" else 0.0)
    started = time.monotonic()
    with pytest.raises(DownloadError, match="too slow") as info:
        await _fetch(httpx.Response(200, stream=body), tmp_path / "v.mp4", limits,
                     stall_headers=30.0 if where == "headers" else 0.0)
    assert time.monotonic() - started < 3.0
    _assert_clean(info.value, tmp_path)


@pytest.mark.anyio
async def test_a_redirects_body_is_bounded_like_an_answer(tmp_path: Path) -> None:
    """A storage host answering 302 with an endless body: httpx reads a redirect's body whole before it follows
    the Location, and a download's answers had no cap (only its 200's body is counted), so memory grew until the
    attempt's deadline (120 s at loopback speed: gigabytes). The redirect's body is refused past the answer cap."""
    from runner.client.connection import MAX_ANSWER_BYTES, make_http_client

    chunk = b"r" * 65_536
    endless = Body(chunk, count=4 * MAX_ANSWER_BYTES // len(chunk))  # 16 MB here; a hostile host sends no end

    followed: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("t-1.mp4"):
            return httpx.Response(302, headers={"Location": "https://other.example.test/v.mp4"}, stream=endless)
        followed.append(str(request.url))
        return httpx.Response(200, stream=Body(b"v" * 1000, count=1))

    async def no_sleep(seconds: float) -> None:
        return None

    async with make_http_client(transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(DownloadError, match="RemoteProtocolError while fetching"):
            await fetch_video(http, URL, lambda: LocalStore(tmp_path).open_sink("v.mp4"), attempts=1,
                              backoff_base=0.01, backoff_max=0.01, sleep=no_sleep, rng=random.Random(0))
    assert endless.read * len(chunk) <= MAX_ANSWER_BYTES + 2 * len(chunk), f"{endless.read * len(chunk):,} bytes read"
    assert list(tmp_path.iterdir()) == []
    assert followed == []


@pytest.mark.anyio
@pytest.mark.parametrize(("url", "location"), [
    ("https://xn--/v.mp4", None), ("https://xn--a.test/v.mp4", None),  # httpx raises idna's errors, not InvalidURL
    (URL, "https://xn--/v.mp4"), (URL, "https://xn--a.test/v.mp4"),  # … for a redirect's Location too
])
async def test_a_result_url_whose_host_is_no_valid_name_is_a_download_error(
    tmp_path: Path, url: str, location: str | None
) -> None:
    """A video URL (or a redirect) to a host IDNA refuses raised idna.IDNAError out of the download: the fetch lane
    crashed the run, and every later run at the same stored URL. It is a DownloadError (the job stays succeeded)."""
    from runner.client.connection import make_http_client

    def handler(request: httpx.Request) -> httpx.Response:
        assert location is not None
        return httpx.Response(302, headers={"Location": location})

    async def no_sleep(seconds: float) -> None:
        return None

    async with make_http_client(transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(DownloadError) as info:
            await fetch_video(http, url, lambda: LocalStore(tmp_path).open_sink("v.mp4"), attempts=2,
                              backoff_base=0.01, backoff_max=0.01, sleep=no_sleep, rng=random.Random(0))
    assert "SIGNED-SECRET" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.anyio
async def test_a_result_urls_user_and_password_stay_out_of_the_message(tmp_path: Path) -> None:
    """A presigned URL may carry its credentials as userinfo (``https://user:secret@host/…``) as well as in its query:
    the message (logged, and kept in the ledger's events) named the URL without its query but with them."""
    from runner.client.connection import make_http_client

    async def no_sleep(seconds: float) -> None:
        return None

    async with make_http_client(transport=httpx.MockTransport(lambda request: httpx.Response(404))) as http:
        with pytest.raises(DownloadError) as info:
            await fetch_video(http, "https://AKIA:SIGNED-SECRET@store.example.test/v.mp4?X-Amz-Signature=SIGNED-SECRET",
                              lambda: LocalStore(tmp_path).open_sink("v.mp4"), attempts=1, backoff_base=0.01,
                              backoff_max=0.01, sleep=no_sleep, rng=random.Random(0))
    _assert_clean(info.value, tmp_path)
    assert "AKIA" not in str(info.value)


@pytest.mark.anyio
@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://store.example.test/v.mp4", "data:video/mp4;base64,AAAA",
                                 "store.example.test/v.mp4"])
async def test_a_result_url_that_is_not_http_is_refused_before_any_request(tmp_path: Path, url: str) -> None:
    """The download fetched whatever URL the task result named: a transport that knows ``file:`` or ``ftp:`` (a test's,
    a proxy's) would have stored it, ours said only 'cannot fetch …: UnsupportedProtocol'. The runner fetches videos
    over http and https; another URL is refused before any request, and the message says so."""
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(200, content=MP4_HEAD + b"\0" * 64)

    async def no_sleep(seconds: float) -> None:
        return None

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(DownloadError) as info:
            await fetch_video(http, url, lambda: LocalStore(tmp_path).open_sink("v.mp4"), attempts=2,
                              backoff_base=0.01, backoff_max=0.01, sleep=no_sleep, rng=random.Random(0))
    assert asked == [] and list(tmp_path.iterdir()) == []
    assert "is not an http or https URL" in str(info.value), info.value


@pytest.mark.anyio
@pytest.mark.parametrize("url", ["data:video/mp4;base64," + "A" * 1_000_000,
                                 "https://store.example.test/" + "v" * 1_000_000 + ".mp4?X-Amz-Signature=SIGNED-SECRET",
                                 "https://" + "h" * 1_000_000 + ".test/v.mp4"])
async def test_a_megabyte_result_url_makes_a_short_message(tmp_path: Path, url: str) -> None:
    """A task result may name a URL of megabytes (an answer is capped at 4 MB, not its URL): each failed download
    put all of it in its message, logged and kept in the ledger's events, once per attempt of every run. The message
    names the URL cut short, with its length."""
    from runner.client.connection import make_http_client

    async def no_sleep(seconds: float) -> None:
        return None

    async with make_http_client(transport=httpx.MockTransport(lambda request: httpx.Response(404))) as http:
        with pytest.raises(DownloadError) as info:
            await fetch_video(http, url, lambda: LocalStore(tmp_path).open_sink("v.mp4"), attempts=1,
                              backoff_base=0.01, backoff_max=0.01, sleep=no_sleep, rng=random.Random(0))
    assert len(str(info.value)) < 500 and "characters)" in str(info.value), str(info.value)[:600]
    assert "SIGNED-SECRET" not in str(info.value)
