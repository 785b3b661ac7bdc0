"""Downloading a result video from its presigned URL, verified and atomic.

The URL points at a storage host, so the request carries **no** Authorization
header. The body streams into a temporary file beside the destination
(``.<name>.part-<random>``) while its sha256 and size are computed; the file is
flushed and fsynced, its size checked against Content-Length and its MP4
signature (``ftyp`` at bytes 4..8) checked, then it is renamed over the
destination and the directory is fsynced. The temporary file is created with
``O_EXCL | O_NOFOLLOW``. Given a ``beside`` name, an existing destination is
never overwritten: if it holds the same bytes (a run killed after the rename,
before its record) it is adopted, else the file goes to ``beside``. On any failure — cancellation
included — the temporary file is removed and the destination is untouched.

Errors: an expired or refused URL (401/403/410, or an S3-style XML body saying
AccessDenied / ExpiredToken / Request has expired) raises
:class:`~runner.errors.UrlExpired` at once; a truncated body, a network error
or a 5xx/429 is retried with backoff on the same URL and then raises
:class:`~runner.errors.DownloadError`; a bad signature or another status
raises DownloadError at once. Local disk errors (``OSError``: disk full, no
permission) are not the provider's fault and propagate unchanged, after the
temporary file has been removed.

Bounds (:class:`DownloadLimits`): a Content-Length above the size cap (2 GiB
by default, ``RUNNER_DOWNLOAD_MAX_BYTES``) is refused before reading, and a
body growing past it is cut off; each attempt has an overall deadline of
``max(120 s, size / 100 kB/s)`` (the minimum is ``RUNNER_DOWNLOAD_TIMEOUT``),
so a server that trickles one byte a second cannot hold a download forever.
Both raise DownloadError naming the URL's host, never its query string
(a presigned URL carries credentials).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import anyio
import httpx

from runner.client.retry import backoff_delay
from runner.errors import DownloadError, UrlExpired
from runner.files import TEMP_TOKEN_HEX, temp_name

__all__ = [
    "MAX_BYTES_ENV",
    "TIMEOUT_ENV",
    "Download",
    "DownloadLimits",
    "fetch_video",
    "file_sha256",
    "safe_url",
    "url_host",
]

log = logging.getLogger("runner.client")

EXPIRED_STATUSES = frozenset({401, 403, 410})
EXPIRED_MARKERS = (b"AccessDenied", b"ExpiredToken", b"Request has expired", b"TokenRefreshRequired")
ERROR_BODY_PEEK = 64 * 1024
MP4_SIGNATURE = b"ftyp"
MAX_BYTES_ENV = "RUNNER_DOWNLOAD_MAX_BYTES"
TIMEOUT_ENV = "RUNNER_DOWNLOAD_TIMEOUT"

# Errors worth trying again on the same URL.
_TRANSIENT: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.DecodingError,
)


@dataclass(frozen=True, slots=True)
class Download:
    """A stored, verified result file."""

    path: Path
    sha256: str
    bytes: int
    adopted: bool = False  # an identical file was already in place (kept; the download was dropped)


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


def safe_url(url: str) -> str:
    """``url`` without its query string (a presigned URL's signature stays out of messages)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def url_host(url: str) -> str:
    """The host (and port) of ``url``, for messages: never its path or query (credentials)."""
    try:
        return urlsplit(url).netloc.rpartition("@")[2] or "<no host>"
    except ValueError:
        return "<invalid URL>"


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


def _finish(handle: BinaryIO, tmp: Path, dest: Path) -> None:
    """Flush, fsync, rename over ``dest`` and fsync the directory (runs in a worker thread)."""
    try:
        handle.flush()
        os.fsync(handle.fileno())
    finally:
        handle.close()
    os.replace(tmp, dest)
    _sync_dir(dest.parent)


def _sync_dir(folder: Path) -> None:
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(dir_fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on directories
        pass
    finally:
        os.close(dir_fd)


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes (read in chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _place(handle: BinaryIO, tmp: Path, dest: Path, beside: Path | None, sha256: str) -> tuple[Path, bool]:
    """Put the finished ``tmp`` in place; returns where, and whether an identical file was adopted.

    Without ``beside``: rename over ``dest``. With it, ``dest`` is never
    overwritten: when it already holds these very bytes (a run killed between
    the rename and its record) it is adopted and ``tmp`` dropped; when it holds
    another video, the same goes for ``beside``, which is this job's own name.
    """
    if beside is None:
        _finish(handle, tmp, dest)
        return dest, False
    try:
        handle.flush()
        os.fsync(handle.fileno())
    finally:
        handle.close()
    for target in (dest, beside):
        if os.path.lexists(target) and file_sha256(target) == sha256:
            tmp.unlink(missing_ok=True)
            return target, True
        if target is beside or not os.path.lexists(target):
            os.replace(tmp, target)
            _sync_dir(target.parent)
            return target, False
    raise AssertionError("unreachable")  # pragma: no cover


def _open_temp(tmp: Path) -> BinaryIO:
    """A new file at ``tmp``: never an existing one, never through a symlink."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, 0o644)
    return os.fdopen(fd, "wb")


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length")
    if value is None or not value.strip().isdigit() or len(value.strip()) > 20:
        return None
    return int(value)


async def _attempt(
    http: httpx.AsyncClient,
    url: str,
    dest: Path,
    beside: Path | None,
    limits: DownloadLimits,
    clock: Callable[[], float],
) -> Download:
    """One download attempt; raises _Retry, DownloadError or UrlExpired on failure."""
    where = safe_url(url)
    host = url_host(url)
    try:
        request = http.build_request("GET", url)
    except httpx.InvalidURL as exc:
        raise DownloadError(f"the result URL {where} is not a valid URL") from exc
    # A presigned URL goes to a storage host: never send the provider key there.
    request.headers.pop("Authorization", None)
    started, loop_started = clock(), anyio.current_time()
    response: httpx.Response | None = None
    tmp = temp_name(dest, secrets.token_hex(TEMP_TOKEN_HEX // 2))
    digest = hashlib.sha256()
    size = 0
    handle: BinaryIO | None = None
    done = False
    budget = limits.seconds_for(None)
    try:
        # The overall deadline, in the event loop's time: a server that trickles (or never sends
        # its headers) is cut off even between two chunks. Extended once the size is known.
        with anyio.CancelScope(deadline=loop_started + budget) as scope:
            try:
                response = await http.send(request, stream=True, follow_redirects=True)
            except _TRANSIENT as exc:
                raise _Retry(f"{type(exc).__name__} while fetching {where}") from exc
            except httpx.HTTPError as exc:
                raise DownloadError(f"cannot fetch {where}: {type(exc).__name__}") from exc
            status = response.status_code
            if status != 200:
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

            expected = _content_length(response)
            if expected is not None and expected > limits.max_bytes:
                raise DownloadError(
                    f"the download from {host} announces {expected:,} bytes, more than the cap of "
                    f"{limits.max_bytes:,} bytes ({MAX_BYTES_ENV}); refused before reading it",
                    status=status,
                )
            budget = limits.seconds_for(expected)
            scope.deadline = loop_started + budget
            head = b""
            await anyio.to_thread.run_sync(lambda: dest.parent.mkdir(parents=True, exist_ok=True))
            handle = _open_temp(tmp)
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
                    digest.update(chunk)
                    if len(head) < 8:
                        head = (head + chunk)[:8]
                    handle.write(chunk)
            except _TRANSIENT as exc:
                raise _Retry(f"{type(exc).__name__}: body of {where} cut off after {size} bytes") from exc
            except httpx.HTTPError as exc:
                raise DownloadError(f"cannot read {where}: {type(exc).__name__}", status=status) from exc
            if not scope.cancel_called:
                if expected is not None and response.num_bytes_downloaded != expected:
                    raise _Retry(
                        f"body of {where} is truncated: {response.num_bytes_downloaded} of {expected} bytes",
                        status=status,
                    )
                if head[4:8] != MP4_SIGNATURE:
                    raise DownloadError(
                        f"{where} is not an MP4 (no 'ftyp' box at bytes 4..8; got {head[:8]!r}, {size} bytes)",
                        status=status,
                    )
        if scope.cancel_called:
            raise DownloadError(
                f"the download from {host} was too slow: {size:,} bytes in {budget:.0f} s, its deadline "
                f"(at least {limits.min_rate / 1000:g} kB/s expected; {TIMEOUT_ENV} raises the minimum of "
                f"{limits.timeout_s:g} s); nothing was stored",
                status=200,
            )
        to_finish, handle = handle, None
        assert to_finish is not None
        # Shielded: once the file is complete, its rename is never cut in half by a stop.
        sha256 = digest.hexdigest()
        with anyio.CancelScope(shield=True):
            placed, adopted = await anyio.to_thread.run_sync(lambda: _place(to_finish, tmp, dest, beside, sha256))
        done = True
    finally:
        if handle is not None:
            handle.close()
        if not done:
            tmp.unlink(missing_ok=True)
        if response is not None:
            with anyio.CancelScope(shield=True):
                await response.aclose()
    return Download(path=placed, sha256=sha256, bytes=size, adopted=adopted)


async def fetch_video(
    http: httpx.AsyncClient,
    url: str,
    dest: Path,
    *,
    attempts: int,
    backoff_base: float,
    backoff_max: float,
    sleep: Callable[[float], Awaitable[None]],
    rng: random.Random,
    beside: Path | None = None,
    limits: DownloadLimits | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Download:
    """Download ``url`` into ``dest`` (see the module docstring); at most ``attempts`` tries.

    ``limits`` bound each attempt's time and size; ``clock`` measures the time (tests inject one).
    With ``beside``, an existing ``dest`` is never overwritten (see :func:`_place`).
    """
    limits = limits if limits is not None else DownloadLimits()
    dest = Path(dest)
    attempts = max(1, attempts)
    last: _Retry | None = None
    for attempt in range(attempts):
        if attempt:
            delay = backoff_delay(attempt - 1, base=backoff_base, cap=backoff_max, rng=rng)
            log.info("download retry %d/%d in %.2f s: %s", attempt + 1, attempts, delay, last)
            await sleep(delay)
        try:
            return await _attempt(http, url, dest, beside, limits, clock)
        except _Retry as exc:
            last = exc
    assert last is not None
    raise DownloadError(
        f"{last.message} (gave up after {attempts} attempts)", status=last.status
    ) from last
