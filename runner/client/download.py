"""Downloading a result video from its presigned URL into an output store's sink, verified.

The URL points at a storage host, so the request carries **no** Authorization
header. The body streams into a :class:`~runner.storage.api.Sink` opened for
the attempt (the store computes its sha256 and size as it is written; the
client knows no paths); its size is checked against Content-Length and its MP4
signature (``ftyp`` at bytes 4..8) checked, then the sink is committed,
shielded from cancellation: the store makes it durable and never overwrites
another file (an identical one is adopted, another video sends it to its
beside name). On any failure — cancellation included — the sink is aborted
and the store is untouched.

Errors: an expired or refused URL (401/403/410, or an S3-style XML body saying
AccessDenied / ExpiredToken / Request has expired) raises
:class:`~runner.errors.UrlExpired` at once; a truncated body, a network error
or a 5xx/429 is retried with backoff on the same URL and then raises
:class:`~runner.errors.DownloadError`. A body cut off part-way is resumed, not
fetched again from its start, when its answer allows it (a strong ``ETag``,
``Accept-Ranges: bytes``, no content coding, its size known): the next attempt
keeps the sink and asks ``Range: bytes=<have>-`` with ``If-Range: <etag>``, and
writes on only when a 206 names exactly that range of that object, its Content-Length too (a 200
starts over; anything else drops the part and starts over); a bad signature or another status
raises DownloadError at once, and so does a URL that is not http or https (``file:``, ``ftp:``, ``data:``:
refused before any request). Local disk errors (``OSError``: disk full, no
permission) are not the provider's fault and propagate unchanged, after the
temporary file has been removed.

Bounds (:class:`DownloadLimits`): a Content-Length above the size cap (2 GiB
by default, ``RUNNER_DOWNLOAD_MAX_BYTES``) is refused before reading, and a
body growing past it is cut off; each attempt has an overall deadline of
``max(120 s, size / 100 kB/s)`` (the minimum is ``RUNNER_DOWNLOAD_TIMEOUT``),
so a server that trickles one byte a second cannot hold a download forever.
Both raise DownloadError naming the URL's host, never its query string
(a presigned URL carries credentials); a message shows at most 200 characters
of a URL (a task result may name one of megabytes).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio
import httpx

from runner.client.connection import DOWNLOAD
from runner.client.mp4walk import BoxWalk
from runner.client.resume import Carry, Partial, range_problem, resumable
from runner.client.retry import backoff_delay
from runner.errors import DownloadError, UrlExpired
from runner.storage.api import Sink, Stored

__all__ = [
    "MAX_BYTES_ENV",
    "TIMEOUT_ENV",
    "DownloadLimits",
    "OpenSink",
    "fetch_video",
    "safe_url",
    "url_host",
]

log = logging.getLogger("runner.client")

EXPIRED_STATUSES = frozenset({401, 403, 410})
EXPIRED_MARKERS = (b"AccessDenied", b"ExpiredToken", b"Request has expired", b"TokenRefreshRequired")
ERROR_BODY_PEEK = 64 * 1024
MP4_SIGNATURE = b"ftyp"
MediaCheck = Callable[[bytes], "str | None"]  # a file's first bytes → what is wrong with it, or None


def is_mp4(head: bytes) -> str | None:
    """The default media check: an ISO-BMFF file has its 'ftyp' box type at bytes 4..8."""
    if head[4:8] == MP4_SIGNATURE:
        return None
    return f"not an MP4 (no 'ftyp' box at bytes 4..8; got {head[:8]!r})"
MAX_BYTES_ENV = "RUNNER_DOWNLOAD_MAX_BYTES"
URL_SHOWN_MAX = 200  # characters of a URL a message shows
TIMEOUT_ENV = "RUNNER_DOWNLOAD_TIMEOUT"

# Errors worth trying again on the same URL.
_TRANSIENT: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.DecodingError,
)


OpenSink = Callable[[], Sink]  # a new sink for one attempt (the store and the name are the caller's)


@dataclass(frozen=True, slots=True)
class DownloadLimits:
    """Bounds of one download attempt.

    ``max_bytes``: a Content-Length above it is refused before reading; a body
    that grows past it is cut off. The attempt's deadline is
    ``max(timeout_s, size / min_rate)`` seconds (``timeout_s`` until the size
    is known), so a server that trickles cannot hold a download slot forever.
    """

    max_bytes: int = 2 * 1024**3
    timeout_s: float = 120.0
    min_rate: float = 100_000.0  # bytes per second

    def seconds_for(self, size: int | None) -> float:
        """The deadline of a download of ``size`` bytes (None: not known yet)."""
        if size is None:
            return self.timeout_s
        return max(self.timeout_s, size / self.min_rate)


class _Retry(Exception):
    """Internal: this attempt failed in a way worth retrying."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.message = message
        self.status = status
        super().__init__(message)


def _short(text: str, whole: str) -> str:
    """``text`` cut at :data:`URL_SHOWN_MAX` characters, with the length of ``whole`` (a megabyte URL: a short message)."""
    return text if len(text) <= URL_SHOWN_MAX else f"{text[:URL_SHOWN_MAX]}… (a URL of {len(whole):,} characters)"


def safe_url(url: str) -> str:
    """``url`` without its query string and userinfo (a presigned URL's signature stays out of messages), cut short."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    return _short(f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}", url)


def url_host(url: str) -> str:
    """The host (and port) of ``url``, for messages: never its path or query (credentials)."""
    try:
        return _short(urlsplit(url).netloc.rpartition("@")[2], url) or "<no host>"
    except ValueError:
        return "<invalid URL>"


def _scheme(url: str) -> str | None:
    try:
        return urlsplit(url).scheme.lower()
    except ValueError:
        return None  # not a URL at all: said as such where httpx refuses it


def _looks_expired(body: bytes) -> bool:
    return any(marker in body for marker in EXPIRED_MARKERS)


async def _peek_body(response: httpx.Response) -> bytes:
    peek = bytearray()
    try:
        async for chunk in response.aiter_bytes():
            peek += chunk
            if len(peek) >= ERROR_BODY_PEEK:
                break
    except httpx.HTTPError:
        pass
    return bytes(peek)


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length")
    if value is None or not value.strip().isdigit() or len(value.strip()) > 20:
        return None
    return int(value)


async def _attempt(
    http: httpx.AsyncClient,
    url: str,
    open_sink: OpenSink,
    limits: DownloadLimits,
    clock: Callable[[], float],
    check_media: MediaCheck,
    carry: Carry,
) -> Stored:
    """One download attempt; raises _Retry, DownloadError or UrlExpired on failure.

    ``carry`` brings the part an earlier attempt read, if any (this attempt asks for the rest) and takes back
    what this one read when it is cut off and may be resumed; a part not taken back is aborted.
    """
    where = safe_url(url)
    host = url_host(url)
    if _scheme(url) not in ("http", "https", None):  # file:, ftp:, data:… : what a transport knows is not asked
        carry.drop()
        raise DownloadError(f"the result URL {where} is not an http or https URL; the runner fetches videos over http(s)"
                            " only (ask the provider why the task names this one)")
    partial, carry.partial = carry.partial, None
    try:
        request = http.build_request("GET", url, extensions={DOWNLOAD: True})  # bounded here, not as an answer
    except (httpx.InvalidURL, ValueError) as exc:  # ValueError: a host IDNA refuses (idna.IDNAError, not InvalidURL)
        if partial is not None:
            partial.sink.abort()
        raise DownloadError(f"the result URL {where} is not a valid URL") from exc
    # A presigned URL goes to a storage host: never send the provider key there.
    request.headers.pop("Authorization", None)
    if partial is not None:
        request.headers["Range"] = f"bytes={partial.size}-"
        request.headers["If-Range"] = partial.etag
    started, loop_started = clock(), anyio.current_time()
    response: httpx.Response | None = None
    sink: Sink | None = None if partial is None else partial.sink
    size = 0 if partial is None else partial.size
    budget = limits.seconds_for(None)
    try:
        # The overall deadline, in the event loop's time: a server that trickles (or never sends
        # its headers) is cut off even between two chunks. Extended once the size is known.
        with anyio.CancelScope(deadline=loop_started + budget) as scope:
            try:
                response = await http.send(request, stream=True, follow_redirects=True)
            except _TRANSIENT as exc:
                carry.partial, sink = partial, None  # nothing more was read: the next attempt asks again
                raise _Retry(f"{type(exc).__name__} while fetching {where}") from exc
            except httpx.HTTPError as exc:
                raise DownloadError(f"cannot fetch {where}: {type(exc).__name__}") from exc
            except ValueError as exc:  # a redirect to a host IDNA refuses: httpx lets idna.IDNAError through
                raise DownloadError(f"cannot fetch {where}: a redirect to an invalid URL ({type(exc).__name__})") from exc
            status = response.status_code
            if partial is not None and (status != 206 or (problem := range_problem(response, partial, _content_length(response))) is not None):
                # Not the rest of the file this attempt holds the start of: drop that part.
                partial.sink.abort()
                sink, size, partial = None, 0, None
                if status == 206:
                    raise _Retry(f"{where} answered {problem}; starting over", status=status)
                if status == 416:
                    raise _Retry(f"{where} refused the rest of the file (HTTP 416); starting over", status=status)
            if status not in (200, 206) or (status == 206 and partial is None):
                body = await _peek_body(response)
                if status in EXPIRED_STATUSES or _looks_expired(body):
                    raise UrlExpired(
                        f"the result URL {where} has expired or is refused (HTTP {status}); "
                        "ask task-result for a fresh URL",
                        status=status,
                    )
                if status == 429 or status >= 500:
                    raise _Retry(f"HTTP {status} while fetching {where}", status=status)
                raise DownloadError(f"HTTP {status} while fetching {where}", status=status)

            expected = _content_length(response)  # of this answer's body (a 206: the rest)
            total = expected if partial is None else partial.total
            if total is not None and total > limits.max_bytes:
                raise DownloadError(
                    f"the download from {host} announces {total:,} bytes, more than the cap of "
                    f"{limits.max_bytes:,} bytes ({MAX_BYTES_ENV}); refused before reading it",
                    status=status,
                )
            budget = limits.seconds_for(expected)
            scope.deadline = loop_started + budget
            etag = resumable(response, total)
            head = b"" if partial is None else partial.head
            boxes = BoxWalk() if partial is None else partial.boxes  # whole MP4 boxes only (see mp4walk)
            if partial is not None:
                log.info("download of %s resumed at %d of %d bytes", where, partial.size, partial.total)
            if sink is None:
                sink = open_sink()
            try:
                try:
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > limits.max_bytes:
                            raise DownloadError(
                                f"the download from {host} grew past the cap of {limits.max_bytes:,} bytes "
                                f"({MAX_BYTES_ENV}) and was cut off; nothing was stored",
                                status=status,
                            )
                        if clock() - started > budget:
                            scope.cancel()
                            break
                        if len(head) < 8:
                            head = (head + chunk)[:8]
                        boxes.feed(chunk)
                        sink.write(chunk)
                    if not scope.cancel_called and expected is not None and response.num_bytes_downloaded != expected:
                        raise _Retry(
                            f"body of {where} is truncated: {response.num_bytes_downloaded} of {expected} bytes",
                            status=status,
                        )
                except _TRANSIENT as exc:
                    raise _Retry(f"{type(exc).__name__}: body of {where} cut off after {size} bytes") from exc
                except httpx.HTTPError as exc:
                    raise DownloadError(f"cannot read {where}: {type(exc).__name__}", status=status) from exc
            except _Retry:
                if etag is not None and total is not None and 0 < sink.size < total:
                    carry.partial = Partial(sink, total, etag, head, boxes)  # the next attempt asks for the rest
                    sink = None
                raise
            if not scope.cancel_called:
                problem = check_media(head)
                if problem is not None:
                    raise DownloadError(f"{where} is {problem} ({size} bytes)", status=status)
                cut = boxes.problem()
                if cut is not None:  # the connection's end (or a short Content-Length) ended it: try again
                    raise _Retry(f"body of {where} is not a whole MP4 ({size:,} bytes): {cut}", status=status)
        if scope.cancel_called:
            raise DownloadError(
                f"the download from {host} was too slow: {size:,} bytes in {budget:.0f} s, its deadline "
                f"(at least {limits.min_rate / 1000:g} kB/s expected; {TIMEOUT_ENV} raises the minimum of "
                f"{limits.timeout_s:g} s); nothing was stored",
                status=200,
            )
        to_commit, sink = sink, None
        assert to_commit is not None
        # Shielded: once the file is complete, its placing is never cut in half by a stop.
        with anyio.CancelScope(shield=True):
            stored = await anyio.to_thread.run_sync(to_commit.commit)
    finally:
        if sink is not None:
            sink.abort()
        if response is not None:
            with anyio.CancelScope(shield=True):
                await response.aclose()
    return stored


async def fetch_video(
    http: httpx.AsyncClient,
    url: str,
    open_sink: OpenSink,
    *,
    attempts: int,
    backoff_base: float,
    backoff_max: float,
    sleep: Callable[[float], Awaitable[None]],
    rng: random.Random,
    limits: DownloadLimits | None = None,
    clock: Callable[[], float] = anyio.current_time,
    check_media: MediaCheck | None = None,
) -> Stored:
    """Download ``url`` into a sink from ``open_sink`` (see the module docstring); at most ``attempts`` tries.

    ``limits`` bound each attempt's time and size; ``clock`` measures the time (tests inject one).
    Each attempt opens its own sink; one that fails is aborted. ``check_media`` judges the file's
    first bytes (the endpoint's rule; by default an MP4 signature).
    """
    limits = limits if limits is not None else DownloadLimits()
    attempts = max(1, attempts)
    last: _Retry | None = None
    carry = Carry()
    try:
        for attempt in range(attempts):
            if attempt:
                delay = backoff_delay(attempt - 1, base=backoff_base, cap=backoff_max, rng=rng)
                log.info("download retry %d/%d in %.2f s: %s", attempt + 1, attempts, delay, last)
                await sleep(delay)
            try:
                return await _attempt(http, url, open_sink, limits, clock, check_media or is_mp4, carry)
            except _Retry as exc:
                last = exc
    finally:
        carry.drop()  # a part never finished (given up, cancelled, or another error) leaves nothing
    assert last is not None
    raise DownloadError(
        f"{last.message} (gave up after {attempts} attempts)", status=last.status
    ) from last
