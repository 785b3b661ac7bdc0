"""A video download cut off part-way is resumed with a range request, never spliced from two objects.

A presigned URL is a storage host's (S3's): its answers carry a strong ``ETag`` and ``Accept-Ranges: bytes``.
A body cut off part-way keeps its sink; the next attempt asks ``Range: bytes=<have>-`` with ``If-Range`` and
writes on only when a 206 names exactly that range of that object. Everything else starts over, and whatever
happens, nothing but a whole, verified file ever reaches the store.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx
import pytest

from runner import endpoints
from runner.client import NovitaClient, OpenSink, make_http_client
from runner.errors import DownloadError
from runner.simulator import ManualClock, SimConfig, Simulator, SimulatorThread
from runner.simulator.media import Video
from runner.storage.local import LocalStore

KEY = "sk_sim_key_123"
BASE = "http://sim.test"
MODEL = "kling-v3.0-pro-t2v"
FILE = Video("resume-test", min_bytes=300_000).read()
URL = "https://storage.test/videos/v.mp4?X-Amz-Signature=secret"
ETAG = '"0123456789abcdef"'


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def into(dest: Path) -> OpenSink:
    return lambda: LocalStore(dest.parent).open_sink(dest.name)


class _Cut(httpx.AsyncByteStream):
    """``data``, cut off by a dropped connection after ``cut`` bytes (None: whole)."""

    def __init__(self, data: bytes, cut: int | None) -> None:
        self._data, self._cut = data, cut

    async def __aiter__(self) -> AsyncIterator[bytes]:
        end = len(self._data) if self._cut is None else self._cut
        for at in range(0, end, 65536):
            yield self._data[at : min(at + 65536, end)]
        if self._cut is not None:
            raise httpx.ReadError("connection reset by peer")


@dataclass
class Storage:
    """A fake storage host: each request is answered by the next of ``answers`` (a function of the request)."""

    answers: list[Callable[[httpx.Request], httpx.Response]]
    seen: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return self.answers[len(self.seen) - 1](request)


def whole(data: bytes = FILE, *, cut: int | None = None, etag: str | None = ETAG,
          ranges: bool = True) -> Callable[[httpx.Request], httpx.Response]:
    headers = {"content-length": str(len(data)), "content-type": "video/mp4"}
    if etag is not None:
        headers["etag"] = etag
    if ranges:
        headers["accept-ranges"] = "bytes"
    return lambda request: httpx.Response(200, headers=headers, stream=_Cut(data, cut))


def rest(start: int, *, data: bytes = FILE, content_range: str | None = None, etag: str = ETAG,
         cut: int | None = None) -> Callable[[httpx.Request], httpx.Response]:
    named = content_range or f"bytes {start}-{len(data) - 1}/{len(data)}"
    headers = {"content-length": str(len(data) - start), "content-type": "video/mp4", "etag": etag,
               "accept-ranges": "bytes", "content-range": named}
    return lambda request: httpx.Response(206, headers=headers, stream=_Cut(data[start:], cut))


async def fetch(storage: Storage, dest: Path, *, attempts: int = 4) -> str:
    """Download URL from ``storage`` into ``dest``; the stored file's sha256."""
    async def no_sleep(_: float) -> None:
        return None

    async with make_http_client(transport=httpx.MockTransport(storage)) as http:
        client = NovitaClient(http, base_url=BASE, api_key=KEY, get_attempts=attempts, sleep=no_sleep,
                              rng=random.Random(0))
        stored = await client.download(URL, into(dest))
    return stored.sha256


@pytest.mark.anyio
async def test_a_body_cut_off_is_resumed_from_where_it_stopped(tmp_path: Path) -> None:
    half = len(FILE) // 2
    storage = Storage([whole(cut=half), rest(half)])
    digest = await fetch(storage, tmp_path / "v.mp4")
    assert digest == hashlib.sha256(FILE).hexdigest()
    assert (tmp_path / "v.mp4").read_bytes() == FILE
    assert [r.headers.get("range") for r in storage.seen] == [None, f"bytes={half}-"]
    assert storage.seen[1].headers["if-range"] == ETAG
    assert all("authorization" not in r.headers for r in storage.seen)


@pytest.mark.anyio
async def test_resumed_twice(tmp_path: Path) -> None:
    a, b = 100_000, 250_000
    storage = Storage([whole(cut=a), rest(a, cut=b - a), rest(b)])
    await fetch(storage, tmp_path / "v.mp4")
    assert (tmp_path / "v.mp4").read_bytes() == FILE
    assert [r.headers.get("range") for r in storage.seen] == [None, f"bytes={a}-", f"bytes={b}-"]


@pytest.mark.anyio
async def test_a_whole_answer_to_a_range_request_starts_over(tmp_path: Path) -> None:
    """The object changed (If-Range did not match), so the server sends the whole new file: no splice."""
    other = Video("replaced", min_bytes=300_000).read()
    storage = Storage([whole(cut=1000), whole(other, etag='"another"')])
    await fetch(storage, tmp_path / "v.mp4")
    assert (tmp_path / "v.mp4").read_bytes() == other


@pytest.mark.parametrize("problem", ["another range", "another etag"])
@pytest.mark.anyio
async def test_a_206_not_naming_the_asked_range_of_that_object_is_never_written_on(tmp_path: Path,
                                                                                   problem: str) -> None:
    half = len(FILE) // 2
    wrong = (rest(half - 10, content_range=f"bytes {half - 10}-{len(FILE) - 1}/{len(FILE)}")
             if problem == "another range" else rest(half, etag='"another"'))
    storage = Storage([whole(cut=half), wrong, whole()])
    await fetch(storage, tmp_path / "v.mp4")
    assert (tmp_path / "v.mp4").read_bytes() == FILE
    assert [r.headers.get("range") for r in storage.seen] == [None, f"bytes={half}-", None]


@pytest.mark.parametrize("answer", [
    pytest.param(dict(etag=None), id="no ETag"),
    pytest.param(dict(etag='W/"weak"'), id="a weak ETag"),
    pytest.param(dict(ranges=False), id="no Accept-Ranges"),
])
@pytest.mark.anyio
async def test_no_range_is_asked_of_an_answer_that_cannot_be_resumed(tmp_path: Path, answer: dict[str, object]) -> None:
    storage = Storage([whole(cut=5000, **answer), whole(**answer)])  # type: ignore[arg-type]
    await fetch(storage, tmp_path / "v.mp4")
    assert (tmp_path / "v.mp4").read_bytes() == FILE
    assert [r.headers.get("range") for r in storage.seen] == [None, None]


@pytest.mark.anyio
async def test_a_part_never_finished_leaves_nothing_behind(tmp_path: Path) -> None:
    half = len(FILE) // 2
    storage = Storage([whole(cut=half), rest(half, cut=10), rest(half + 10, cut=10)])
    with pytest.raises(DownloadError, match="gave up after 3 attempts"):
        await fetch(storage, tmp_path / "v.mp4", attempts=3)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.anyio
async def test_a_part_held_while_waiting_to_resume_is_dropped_when_the_download_is_cancelled(tmp_path: Path) -> None:
    storage = Storage([whole(cut=len(FILE) // 2)])
    waiting = anyio.Event()

    async def sleep_forever(_: float) -> None:
        waiting.set()
        await anyio.sleep_forever()

    async with make_http_client(transport=httpx.MockTransport(storage)) as http:
        client = NovitaClient(http, base_url=BASE, api_key=KEY, get_attempts=3, sleep=sleep_forever,
                              rng=random.Random(0))
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.download, URL, into(tmp_path / "v.mp4"))
            await waiting.wait()
            assert any(p.name.startswith(".v.mp4.part-") for p in tmp_path.iterdir())  # the part is held
            tg.cancel_scope.cancel()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.anyio
async def test_the_simulator_on_a_socket_serves_ranges_as_s3_does(tmp_path: Path) -> None:
    """Over a real loopback socket: a download cut off (p_truncated) is resumed with a 206, and the file is the
    task's, byte for byte."""
    clock = ManualClock()
    sim = Simulator(SimConfig(api_key=KEY, task_seconds=1.0, seed=7, video_bytes=400_000), clock=clock)

    async def sleep(_: float) -> None:  # between attempts, the storage host recovers
        sim.configure(p_truncated=0.0)

    with SimulatorThread(sim) as server:
        async with make_http_client(connect=5, read=10, write=5, pool=5) as http:
            client = NovitaClient(http, base_url=server.base_url, api_key=KEY, get_attempts=3, sleep=sleep,
                                  rng=random.Random(0))
            body = endpoints.get(MODEL).request_body({"prompt": "a red fox in the snow", "duration": 5})
            task_id = (await client.submit(MODEL, body)).task_id
            assert task_id
            clock.advance(5)
            url = (await client.task_result(task_id)).videos[0].video_url
            sim.configure(p_truncated=1.0)
            stored = await client.download(url, into(tmp_path / "v.mp4"))
    responses = sim.stats()["responses"]
    assert responses["download:truncated"] == 1 and responses["download:resumed"] == 1
    assert sim.stats()["downloads"] == 2  # the second answer carried the rest of the file, not all of it
    assert stored.sha256 == sim.stats()["tasks"][task_id]["video_sha256"]
    assert (tmp_path / "v.mp4").read_bytes() == sim.video(task_id)


def _runs_to_end(data: bytes) -> bytes:
    """``data`` with its last top-level box's size set to 0 ("runs to the end of the file", as ISO BMFF allows)."""
    at = 0
    while True:
        size = int.from_bytes(data[at : at + 4], "big")
        if at + size >= len(data):
            return data[:at] + bytes(4) + data[at + 4 :]
        at += size


@pytest.mark.anyio
async def test_a_206_whose_length_is_short_of_its_range_is_never_written_on(tmp_path: Path) -> None:
    """Content-Range names the rest of the file, Content-Length (the body's framing) fewer bytes: the body ends
    cleanly at its length, and nothing else tells a last box that runs to the end of the file apart from the whole
    one. Such a 206 is not the rest of the file: the part is dropped and the next attempt starts over."""
    data = _runs_to_end(FILE)
    half = len(data) // 2
    short = len(data) - half - 1000

    def short_rest(request: httpx.Request) -> httpx.Response:
        headers = {"content-length": str(short), "content-type": "video/mp4", "etag": ETAG, "accept-ranges": "bytes",
                   "content-range": f"bytes {half}-{len(data) - 1}/{len(data)}"}
        return httpx.Response(206, headers=headers, stream=_Cut(data[half : half + short], None))

    storage = Storage([whole(data, cut=half), short_rest, whole(data)])
    digest = await fetch(storage, tmp_path / "v.mp4")
    assert (tmp_path / "v.mp4").read_bytes() == data
    assert digest == hashlib.sha256(data).hexdigest()
    assert [r.headers.get("range") for r in storage.seen] == [None, f"bytes={half}-", None]
