"""How the client connects: the API key, the base URL and the HTTP client.

The CLI calls these to build what it passes into :class:`~runner.client.NovitaClient`:

* :func:`api_key_from_env` reads ``NOVITA_API_KEY`` and checks that it can be
  sent as a header (a key with a space or a non-ASCII character would make
  the HTTP layer raise an error *quoting the key*);
* :func:`base_url_from_env` applies the precedence flag > ``NOVITA_BASE_URL`` >
  ``https://api.novita.ai``, and refuses plain ``http://`` to any host but a
  loopback one (the key would cross the network in clear);
* :func:`provider_identity` is the form of a base URL a ledger records, so
  that one ledger is never used with two providers;
* :func:`make_http_client` builds an ``httpx.AsyncClient`` with explicit
  timeouts and **zero transport retries** (the submit POST must never be sent
  twice by a layer below us).

The key is held as a ``pydantic.SecretStr`` (no repr, str or log line shows
it; the library does this as well as the class we used to write ourselves);
:func:`redact` scrubs it from any foreign text we pass on.
"""

from __future__ import annotations

import functools
import importlib.util
import ipaddress
import os
import re
import sys
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from runner.client.names import API_KEY_ENV, BASE_URL_ENV, DEFAULT_BASE_URL
from runner.errors import UsageError

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "api_key_from_env",
    "base_url_from_env",
    "environment_proxies",
    "exchange_deadline",
    "is_loopback",
    "make_http_client",
    "provider_identity",
    "proxy_for",
    "redact",
    "validate_api_key",
]

REDACTED = "***"
SHORT_SECRET = 8  # shorter keys are redacted only as whole tokens, not inside words


def redact(text: str, secret: SecretStr | str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``***``, raw or percent-encoded (a URL echo).

    A secret shorter than :data:`SHORT_SECRET` characters is replaced only where it stands as a whole token
    (not inside a word or a longer id), so that a short test key does not turn "rate limit exceeded" into
    "rate limit e***ceeded". A percent escape (``%20``) or a JSON escape (``\\n``, ``\\u00e9``) just before it
    still ends the token before it: ``q=a%20KEY`` and ``"line\\nKEY"`` are scrubbed.
    """
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if not value or (value not in text and "%" not in text):
        return text
    pattern = _secret_pattern(value)
    if len(value) < SHORT_SECRET:
        pattern = rf"{_TOKEN_START}{pattern}{_TOKEN_END}"
    return re.sub(pattern, REDACTED, text)


# Before a short secret: no letter or digit, unless that ends an escape (%XX, \n, \uXXXX); after it: no letter
# or digit unless a percent escape starts there.
_TOKEN_START = r"(?:(?<![A-Za-z0-9])|(?<=%[0-9A-Fa-f]{2})|(?<=\\[nrtbf])|(?<=\\u[0-9A-Fa-f]{4}))"
_TOKEN_END = r"(?:(?![A-Za-z0-9])|(?=%[0-9A-Fa-f]{2}))"
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _secret_pattern(value: str) -> str:
    """A regex matching ``value`` with any of its reserved characters percent-encoded (escapes in either case)."""
    parts: list[str] = []
    for char in value:
        if char in _UNRESERVED:
            parts.append(re.escape(char))
            continue
        encoded = "".join(f"%{byte:02X}" for byte in char.encode("utf-8"))
        parts.append(f"(?:{re.escape(char)}|(?i:{re.escape(encoded)}))")
    return "".join(parts)


def validate_api_key(key: str) -> str:
    """Return ``key`` stripped; UsageError if it is blank or cannot be sent as a header.

    The message never quotes the key.
    """
    key = key.strip()
    if not key:
        raise UsageError(f"{API_KEY_ENV} is empty; export {API_KEY_ENV}=<your Novita API key>")
    if any(not ("\x21" <= ch <= "\x7e") for ch in key):
        raise UsageError(
            f"the API key in {API_KEY_ENV} contains spaces, control or non-ASCII characters "
            f"({len(key)} characters long); copy it again from the Novita console"
        )
    return key


def api_key_from_env(environ: Mapping[str, str] = os.environ) -> str:
    """The API key from ``NOVITA_API_KEY``; UsageError naming the variable when missing or blank."""
    raw = environ.get(API_KEY_ENV)
    if raw is None or not raw.strip():
        raise UsageError(
            f"{API_KEY_ENV} is not set; export {API_KEY_ENV}=<your Novita API key>"
        )
    return validate_api_key(raw)


def _validate_base_url(url: str, source: str) -> str:
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise UsageError(f"{source}: {url!r} is not a valid URL ({exc})") from exc
    del port
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"{source}: {url!r} is not an http(s) URL with a host; "
            f"expected something like {DEFAULT_BASE_URL} or http://127.0.0.1:8765"
        )
    if parts.query or parts.fragment:
        raise UsageError(f"{source}: {url!r} must not carry a query or fragment")
    if parts.username is not None or parts.password is not None:
        raise UsageError(f"{source}: the base URL must not carry user:password@; use {API_KEY_ENV}")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise UsageError(
            f"{source}: {url!r} is plain http:// to {parts.hostname}, which would send the API key over the"
            " network unencrypted; use https:// (plain http:// is only for a loopback host: 127.0.0.1, ::1,"
            " localhost). Nothing was sent."
        )
    return url.rstrip("/")


@functools.lru_cache(maxsize=64)
def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine: 127.0.0.0/8, ::1 (also IPv4-mapped) or ``localhost``. Remembered: every
    request asks (:meth:`_ApiClient._transport_for_url`), for the one or two hosts of a run."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def provider_identity(base_url: str) -> str:
    """The form of a base URL a ledger records: scheme and host lower-cased, default port and
    trailing slash dropped (``HTTPS://API.novita.ai:443/`` → ``https://api.novita.ai``)."""
    parts = urlsplit(base_url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    default = {"http": 80, "https": 443}.get(scheme)
    netloc = host if port is None or port == default else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def base_url_from_env(flag: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """The provider base URL: ``flag`` > ``NOVITA_BASE_URL`` > ``https://api.novita.ai``.

    Blank values count as unset. The result has no trailing slash. UsageError
    when the chosen value is not an http(s) URL with a host.
    """
    if flag is not None and flag.strip():
        return _validate_base_url(flag, "--base-url")
    env = environ.get(BASE_URL_ENV)
    if env is not None and env.strip():
        return _validate_base_url(env, BASE_URL_ENV)
    return DEFAULT_BASE_URL


def exchange_deadline(timeout: httpx.Timeout) -> float | None:
    """Seconds a whole GET may take — a connection from the pool, the headers and the whole body — under
    ``timeout``: its pool, connect and read timeouts together (None: no read timeout, no deadline). A body that
    trickles a byte at a time never trips httpx's timeout of each read; this deadline ends it."""
    if timeout.read is None:
        return None
    return timeout.read + (timeout.connect or 0.0) + (timeout.pool or 0.0)


def make_http_client(
    *,
    connect: float = 10,
    read: float = 60,
    write: float = 30,
    pool: float = 30,
    max_connections: int = 100,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` with explicit timeouts and no transport retries.

    No default headers are set: the client adds the Authorization header per
    request, so a download from a storage host never carries the key. Redirects
    are not followed by default (a redirected submit must not be re-sent).
    ``transport`` replaces the network (tests pass a MockTransport or the
    simulator's transport).
    """
    _skip_sniffio_probe()
    timeout = httpx.Timeout(connect=connect, read=read, write=write, pool=pool)
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    if transport is None and not environment_proxies():
        from runner.client.transport import LeanTransport

        transport = LeanTransport(max_connections=max_connections)
    return _ApiClient(
        timeout=timeout,
        limits=limits,
        transport=transport,
        follow_redirects=False,
        headers={"Accept-Encoding": "identity"},  # no answer is worth inflating (a few MB of gzip: gigabytes)
        event_hooks={"response": [_bounded]},
    )


MAX_ANSWER_BYTES = 4 << 20  # the most an API answer may be: Novita's are a few kB (a download has its own cap)
DOWNLOAD = "runner_download"  # a request's extension: a video's GET, streamed and bounded by the download itself


async def _bounded(response: httpx.Response) -> None:
    """Every answer is read plain (an encoded one is refused: a gzip or deflate bomb would inflate without
    bound) and, unless it is a download's, at most :data:`MAX_ANSWER_BYTES` (a never-ending or 100 MB answer grew
    the process until the OOM killer came; hostile-data sweep, 2026-12-05). A download's redirect is capped too:
    httpx reads a redirect's body whole before it follows the Location, and only the video's own body is counted by
    the download (an endless 302 body grew memory until the attempt's deadline). Raised as a protocol error: a
    submit whose answer breaks these is in doubt, a poll or a download is tried again."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise httpx.RemoteProtocolError(f"the answer is encoded ({encoding[:40]}), which no request asked for")
    if not response.request.extensions.get(DOWNLOAD) or response.has_redirect_location:
        response.stream = _Capped(response.stream, MAX_ANSWER_BYTES)


class _Capped(httpx.AsyncByteStream):
    """An answer's body, refused past ``cap`` bytes."""

    def __init__(self, stream: httpx.SyncByteStream | httpx.AsyncByteStream, cap: int) -> None:
        self._stream = stream
        self._cap = cap

    async def __aiter__(self) -> AsyncIterator[bytes]:
        read = 0
        assert isinstance(self._stream, httpx.AsyncByteStream)
        async for chunk in self._stream:
            read += len(chunk)
            if read > self._cap:
                raise httpx.RemoteProtocolError(f"the answer is over {self._cap:,} bytes")
            yield chunk

    async def aclose(self) -> None:
        if isinstance(self._stream, httpx.AsyncByteStream):
            await self._stream.aclose()


class _NoCookies(httpx.Cookies):
    """Cookies that an answer never sets: the provider API is stateless, and httpx parses every answer's
    headers through :mod:`http.cookiejar` (two compatibility objects and a URL parse, ~25 us an answer)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _ApiClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` that neither keeps nor sends cookies (:class:`_NoCookies`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._no_cookies = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:  # none are ever sent
        pass

    def _transport_for_url(self, url: httpx.URL) -> httpx.AsyncBaseTransport:
        """A loopback host is never reached through a proxy: a proxy elsewhere cannot reach this machine's port,
        and a plain http:// base URL is allowed only because the key never leaves the machine — through
        HTTP_PROXY it crossed the network in clear (and a local simulator's every submit came back a proxy's
        502, in doubt)."""
        if is_loopback(url.host):
            return self._transport
        return super()._transport_for_url(url)


PROXY_VARIABLES = {"http://": "HTTP_PROXY", "https://": "HTTPS_PROXY", "all://": "ALL_PROXY"}


def environment_proxies() -> dict[str, str]:
    """The proxies httpx follows, by URL pattern (``https://``: HTTPS_PROXY…), as httpx itself reads the environment
    (NO_PROXY=* leaves none); a proxy is followed by httpx's own transport (ours has none). UsageError for one that is
    not an http(s):// proxy: ALL_PROXY=socks5://… (``ssh -D`` setups, desktops) ended the run in a traceback naming a
    package, and the runner speaks SOCKS to none."""
    from httpx._utils import get_environment_proxies  # httpx's own reading, so that both agree

    found: dict[str, str] = {}
    for pattern, url in get_environment_proxies().items():
        name = PROXY_VARIABLES.get(pattern)
        if name is None or url is None:  # a NO_PROXY entry
            continue
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https"):
            raise UsageError(
                f"{name} (or {name.lower()}) names a {scheme}:// proxy, which the runner cannot use: it goes through"
                " HTTP proxies only (http://host:port). Nothing was sent. Set HTTPS_PROXY to an HTTP proxy, or run"
                f" without this one: env -u {name} -u {name.lower()} runner …")
        found[pattern] = url
    return found


def proxy_for(url: httpx.URL) -> tuple[str, str] | None:
    """The variable and the proxy (``host:port``, never its user or password) a request to ``url`` goes through, as
    httpx picks it (the most specific pattern first, NO_PROXY's included); None when it goes direct."""
    from httpx._utils import URLPattern, get_environment_proxies

    if is_loopback(url.host):  # never through a proxy (_ApiClient._transport_for_url)
        return None
    patterns = sorted(((URLPattern(key), value) for key, value in get_environment_proxies().items()),
                      key=lambda item: item[0])
    for pattern, proxy in patterns:
        if pattern.matches(url):
            if proxy is None:
                return None
            parts = urlsplit(proxy)
            where = parts.hostname or proxy
            return PROXY_VARIABLES.get(pattern.pattern, "a proxy variable"), (
                f"{where}:{parts.port}" if parts.port else where)
    return None


def _skip_sniffio_probe() -> None:
    """Make httpcore's per-request ``import sniffio`` probe cheap when sniffio is not installed.

    httpcore asks ``import sniffio`` each time it creates a lock (about 24 times
    a job); anyio >= 4.12 no longer brings sniffio, and each failed import
    searches all of ``sys.path`` — 10-15 % of the runner's CPU per job. A
    ``None`` entry in ``sys.modules`` makes the import fail at once, which is
    what httpcore expects (it then assumes asyncio).
    """
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]
