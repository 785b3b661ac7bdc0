"""Unit tests of the client's edges: key and base URL from the environment, the HTTP client."""

from __future__ import annotations

import httpx
import pytest

from runner.client import (
    DEFAULT_BASE_URL,
    NovitaClient,
    api_key_from_env,
    base_url_from_env,
    make_http_client,
    provider_identity,
)
from runner.client.connection import proxy_for
from runner.client.transport import LeanTransport
from runner.errors import UsageError

KEY = "sk_test_SECRET_0123456789"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_api_key_read_and_stripped() -> None:
    """NOVITA_API_KEY is read from the given environment, surrounding whitespace removed."""
    assert api_key_from_env({"NOVITA_API_KEY": f"  {KEY}\n"}) == KEY


@pytest.mark.parametrize("environ", [{}, {"NOVITA_API_KEY": ""}, {"NOVITA_API_KEY": "   "}])
def test_api_key_missing_or_blank_names_the_variable(environ: dict[str, str]) -> None:
    """A missing or blank key raises UsageError naming NOVITA_API_KEY."""
    with pytest.raises(UsageError, match="NOVITA_API_KEY"):
        api_key_from_env(environ)


@pytest.mark.parametrize("bad", ["sk_with space_SECRETPART", "sk_SECRETPART\x00x", "sk_SECRETPARTé"])
def test_api_key_unsendable_is_refused_without_quoting_it(bad: str) -> None:
    """A key that cannot be sent as a header is refused, and the message does not quote it."""
    with pytest.raises(UsageError) as info:
        api_key_from_env({"NOVITA_API_KEY": bad})
    assert "SECRETPART" not in str(info.value)
    assert "NOVITA_API_KEY" in str(info.value)


def test_base_url_precedence_flag_env_default() -> None:
    """The base URL comes from the flag, else NOVITA_BASE_URL, else https://api.novita.ai."""
    env = {"NOVITA_BASE_URL": "http://127.0.0.1:9000/"}
    assert base_url_from_env("https://proxy.example.test/novita/", env) == "https://proxy.example.test/novita"
    assert base_url_from_env(None, env) == "http://127.0.0.1:9000"
    assert base_url_from_env("", env) == "http://127.0.0.1:9000"
    assert base_url_from_env(None, {}) == DEFAULT_BASE_URL == "https://api.novita.ai"
    assert base_url_from_env(None, {"NOVITA_BASE_URL": "  "}) == DEFAULT_BASE_URL


@pytest.mark.parametrize(
    "bad", ["api.novita.ai", "ftp://api.novita.ai", "http://", "https://h:99999", "http://h/?q=1",
            "http://user:pw@h"]
)
def test_base_url_invalid_raises_usage_error(bad: str) -> None:
    """A base URL that is not a plain http(s) URL with a host raises UsageError naming its source."""
    with pytest.raises(UsageError, match="--base-url"):
        base_url_from_env(bad, {})
    with pytest.raises(UsageError, match="NOVITA_BASE_URL"):
        base_url_from_env(None, {"NOVITA_BASE_URL": bad})


PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.mark.anyio
async def test_http_client_has_explicit_timeouts_and_no_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """make_http_client sets every timeout, zero transport retries, no redirects and no default auth."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    async with make_http_client(connect=1, read=2, write=3, pool=4) as http:
        assert http.timeout == httpx.Timeout(connect=1, read=2, write=3, pool=4)
        assert http.follow_redirects is False
        assert "authorization" not in http.headers
        transport = http._transport  # private: the point is to check what is really used
        assert isinstance(transport, LeanTransport)  # it never resends a request: it has no retry at all


@pytest.mark.anyio
async def test_a_proxy_in_the_environment_is_followed(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPS_PROXY set (a corporate network): httpx's own transport, which sends through the proxy, with no retries."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    async with make_http_client() as http:
        assert not isinstance(http._transport, LeanTransport)
        proxied = [t for pattern, t in http._mounts.items() if pattern.scheme == "https" and t is not None]
        assert proxied, http._mounts
        assert all(t._pool._retries == 0 for t in proxied)  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_http_client_uses_given_transport() -> None:
    """A test transport passed to make_http_client is the one that answers."""
    transport = httpx.MockTransport(lambda r: httpx.Response(204))
    async with make_http_client(transport=transport) as http:
        assert (await http.get("http://x.test/")).status_code == 204


@pytest.mark.anyio
async def test_client_repr_and_vars_hide_the_key() -> None:
    """Neither repr(client) nor a dump of its attributes shows the API key."""
    async with make_http_client(transport=httpx.MockTransport(lambda r: httpx.Response(200))) as http:
        client = NovitaClient(http, base_url="https://api.example.test/", api_key=KEY)
        assert KEY not in repr(client)
        assert KEY not in str(client)
        assert KEY not in repr(vars(client))
        assert "api.example.test" in repr(client)
        assert client.base_url == "https://api.example.test"


def test_client_refuses_blank_key() -> None:
    """Constructing a client with a blank key fails at once with UsageError."""
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    with pytest.raises(UsageError):
        NovitaClient(http, base_url="https://api.example.test", api_key="  ")


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8765", "http://127.8.9.10", "http://[::1]:9000", "http://localhost:1/api",
            "http://LOCALHOST.", "http://[::ffff:127.0.0.1]:80", "https://api.novita.ai", "https://10.0.0.1"]
)
def test_plain_http_is_allowed_to_loopback_and_https_anywhere(url: str) -> None:
    """The simulator on loopback needs plain http; https goes anywhere."""
    assert base_url_from_env(url, {}) == url.rstrip("/")


@pytest.mark.parametrize(
    "url", ["http://api.novita.ai", "http://10.0.0.1:8080", "http://192.168.1.5", "http://[2001:db8::1]",
            "http://127.0.0.1.nip.io", "http://localhost.example.com", "http://0.0.0.0:8765"]
)
def test_plain_http_to_another_host_is_refused(url: str) -> None:
    """The key must not cross the network in clear: http:// off loopback is a UsageError naming the source."""
    with pytest.raises(UsageError, match="https://") as info:
        base_url_from_env(url, {})
    assert "--base-url" in str(info.value) and "loopback" in str(info.value)
    with pytest.raises(UsageError, match="NOVITA_BASE_URL"):
        base_url_from_env(None, {"NOVITA_BASE_URL": url})


def test_provider_identity_ignores_spelling_only() -> None:
    """Case of scheme and host, a default port and a trailing slash do not make another provider."""
    same = {provider_identity(u) for u in ("https://api.novita.ai", "HTTPS://API.Novita.AI:443/",
                                            "https://api.novita.ai/")}
    assert same == {"https://api.novita.ai"}
    assert provider_identity("http://127.0.0.1:8765/") == "http://127.0.0.1:8765"
    assert provider_identity("http://[::1]:80") == "http://[::1]"
    assert provider_identity("https://proxy.test/novita/") == "https://proxy.test/novita"
    assert provider_identity("http://127.0.0.1:8766") != provider_identity("http://127.0.0.1:8765")


@pytest.mark.anyio
async def test_a_set_cookie_answer_is_neither_kept_nor_sent_back() -> None:
    """The provider API is stateless: a Set-Cookie is ignored (not parsed on every answer, never echoed)."""
    sent: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers.get("cookie"))
        return httpx.Response(200, headers={"set-cookie": "session=abc; Path=/"}, json={})

    async with make_http_client(transport=httpx.MockTransport(handler)) as http:
        await http.get("http://api.test/v3/async/task-result?task_id=t1")
        await http.get("http://api.test/v3/async/task-result?task_id=t2")
        assert not http.cookies
    assert sent == [None, None]


@pytest.mark.anyio
async def test_a_loopback_url_is_not_mounted_on_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY set: a loopback URL goes to the direct transport (the key never leaves the machine), others to
    the proxy's; NO_PROXY=* leaves no proxy at all."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALL_PROXY", "http://proxy.internal:3128")
    async with make_http_client() as http:
        for url in ("http://127.0.0.1:8765/x", "http://localhost:1/x", "http://[::1]:2/x", "http://127.0.0.9/x"):
            assert http._transport_for_url(httpx.URL(url)) is http._transport, url
        assert http._transport_for_url(httpx.URL("https://api.novita.ai/x")) is not http._transport
    monkeypatch.setenv("NO_PROXY", "*")
    async with make_http_client() as http:
        assert isinstance(http._transport, LeanTransport)


def test_proxy_for_names_the_variable_and_the_proxy_as_httpx_picks_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The proxy a URL goes through, without its password; NO_PROXY and a loopback host go direct."""
    for name in (*PROXY_VARS, "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://me:pw@proxy.internal:3128")
    monkeypatch.setenv("ALL_PROXY", "http://other.internal:8080")
    assert proxy_for(httpx.URL("https://api.novita.ai/x")) == ("HTTPS_PROXY", "proxy.internal:3128")
    assert proxy_for(httpx.URL("http://files.example/x")) == ("ALL_PROXY", "other.internal:8080")
    assert proxy_for(httpx.URL("https://127.0.0.1:9/x")) is None
    monkeypatch.setenv("NO_PROXY", "novita.ai")
    assert proxy_for(httpx.URL("https://api.novita.ai/x")) is None
