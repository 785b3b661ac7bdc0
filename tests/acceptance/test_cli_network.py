"""Corporate and hostile networks between the runner and the provider: proxies, TLS inspection, DNS.

A proxy (:mod:`netproxy`) and the simulator run on loopback; the runner's base URL is ``https://api.novita.test``,
a name only the proxy "resolves" (it relays every tunnel to the simulator), so each of these runs goes through it.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from netproxy import Certs, Proxy, make_certs

from test_cli_support import (
    FAST,
    Provider,
    ProviderFactory,
    counts,
    finish_cli,
    provider,
    run_args,
    run_cli,
    start_cli,
    wait_for,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest

BEHIND = "https://api.novita.test"  # reached only through the test proxy
PROXY_NAMES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def net_env(**given: str) -> dict[str, str | None]:
    """The proxy and CA variables exactly as ``given`` (upper case), none of the test host's own."""
    env: dict[str, str | None] = {name: None for name in PROXY_NAMES}
    env.update({name.lower(): None for name in PROXY_NAMES})
    env.update(given)
    return env


@pytest.fixture
def sim(provider: ProviderFactory) -> Iterator[Provider]:
    yield provider()


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_a_loopback_base_url_is_never_sent_through_a_proxy(tmp_path: Path, sim: Provider, variable: str) -> None:
    """HTTP_PROXY set on the host (most corporate ones): a local http:// base URL was sent through the proxy, the
    API key in clear across the network, and each submit came back the proxy's 502: every job in doubt (exit 4).
    A loopback host is reached directly: the batch is done and the proxy saw nothing."""
    manifest = write_manifest(tmp_path)
    with Proxy("refuse") as proxy:
        result = run_cli(*run_args("run", manifest, tmp_path / "state", *sim.engine_args()), cwd=tmp_path,
                         env=net_env(**{variable: proxy.url}))
    assert result.code == 0, str(result)
    assert proxy.seen == []
    assert counts(tmp_path / "state") == {"done": 3}


@pytest.mark.parametrize("status", [407, 403])
def test_a_proxy_refusing_the_tunnel_sends_nothing_and_says_it_is_the_proxy(tmp_path: Path, sim: Provider,
                                                                            status: int) -> None:
    """A proxy that refuses the CONNECT (407: it wants credentials; 403: the host is not allowed) refused before any
    byte of the POST left: each job was held in doubt all the same (exit 4, "may have been created and paid for"),
    waiting for a person's decision. They stay pending, the run stops as unreachable (exit 5) and says it was the
    proxy, not the provider."""
    manifest = write_manifest(tmp_path)
    with Proxy("refuse", refuse_status=status) as proxy:
        result = run_cli(*run_args("run", manifest, tmp_path / "state", "--base-url", BEHIND, *FAST), cwd=tmp_path,
                         env=net_env(HTTPS_PROXY=proxy.url))
    assert result.code == 5, str(result)
    assert proxy.seen and all(line.startswith("CONNECT api.novita.test:443") for line in proxy.seen)
    assert counts(tmp_path / "state") == {"pending": 3}
    assert sim.accepted() == 0
    assert f"not the provider, refused a tunnel to api.novita.test: {status}" in result.stderr
    assert "user:password" in result.stderr
    assert "in doubt" not in result.stderr.lower()


def test_a_tunnel_dropped_after_the_post_went_out_is_in_doubt_and_never_resent(tmp_path: Path, sim: Provider,
                                                                              certs: Certs) -> None:
    """The proxy reads the whole POST and closes the tunnel unanswered: in doubt, each POST sent once, and the next
    run sends none of them again."""
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    env = net_env(SSL_CERT_FILE=str(certs.ca))
    with Proxy("drop", certs=certs) as proxy:
        env["HTTPS_PROXY"] = proxy.url
        first = run_cli(*run_args("run", manifest, state, "--base-url", BEHIND, *FAST), cwd=tmp_path, env=env)
        posts = [line for line in proxy.tunnelled if line.startswith("POST ")]
        assert first.code == 4, str(first)
        held = counts(state)
        assert held.get("in_doubt", 0) == len(posts) >= 1, (held, proxy.tunnelled)
        assert len(set(posts)) == 1  # one model, one route
        again = run_cli(*run_args("run", manifest, state, "--base-url", BEHIND, *FAST), cwd=tmp_path, env=env)
        assert again.code == 4, str(again)
        assert counts(state).get("in_doubt", 0) == len(posts)
        assert len([line for line in proxy.tunnelled if line.startswith("POST ")]) == len(posts)


def test_through_a_tls_inspecting_proxy_whose_root_is_trusted_each_task_is_paid_once(
        tmp_path: Path, sim: Provider, certs: Certs) -> None:
    """HTTPS_PROXY and SSL_CERT_FILE (the inspecting proxy's root): the submits go through the tunnel, each paid once."""
    manifest = write_manifest(tmp_path)
    with Proxy("inspect", certs=certs, upstream=("127.0.0.1", sim.server.port)) as proxy:
        proc = start_cli(*run_args("run", manifest, tmp_path / "state", "--base-url", BEHIND, *FAST), cwd=tmp_path,
                         env=net_env(HTTPS_PROXY=proxy.url, SSL_CERT_FILE=str(certs.ca)))
        try:
            wait_for(lambda: sim.accepted() == 3, what="three tasks accepted through the proxy")
            wait_for(lambda: counts(tmp_path / "state").get("pending", 0) == 0, what="no job pending")
        finally:
            proc.send_signal(signal.SIGTERM)
            stderr = finish_cli(proc)
    assert "Traceback" not in stderr, stderr
    assert sim.max_per_body() == 1
    assert "in_doubt" not in counts(tmp_path / "state")
    assert any(line.startswith("CONNECT api.novita.test:443") for line in proxy.seen)


def test_a_certificate_not_trusted_sends_nothing_and_names_ssl_cert_file(tmp_path: Path, sim: Provider,
                                                                        certs: Certs) -> None:
    """A TLS-inspecting proxy whose root this machine does not trust: nothing sent, and the run said only
    "ConnectError"; it names the host, the certificate's fault and SSL_CERT_FILE."""
    manifest = write_manifest(tmp_path)
    with Proxy("inspect", certs=certs, upstream=("127.0.0.1", sim.server.port)) as proxy:
        result = run_cli(*run_args("run", manifest, tmp_path / "state", "--base-url", BEHIND, *FAST), cwd=tmp_path,
                         env=net_env(HTTPS_PROXY=proxy.url))
    assert result.code == 5, str(result)
    assert counts(tmp_path / "state") == {"pending": 3}
    assert sim.accepted() == 0
    error = result.stderr.strip().splitlines()[-1]
    assert "the TLS certificate of api.novita.test was not accepted (" in error, error
    assert "SSL_CERT_FILE" in error and "nothing was sent" in error


def test_a_provider_behind_tls_is_reached_with_ssl_cert_file_and_refused_plainly_without(
        tmp_path: Path, sim: Provider, certs: Certs) -> None:
    """No proxy, the runner's own transport: a certificate signed by a root this machine does not trust sends nothing
    and says so (it said "ConnectError"); with SSL_CERT_FILE naming the root, the submits go through, each paid once."""
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    with Proxy("tls", certs=certs, upstream=("127.0.0.1", sim.server.port)) as front:
        base = ["--base-url", front.url.replace("http://", "https://"), *FAST]
        refused = run_cli(*run_args("run", manifest, state, *base), cwd=tmp_path, env=net_env())
        assert refused.code == 5, str(refused)
        assert counts(state) == {"pending": 3}
        error = refused.stderr.strip().splitlines()[-1]
        assert "the TLS certificate of 127.0.0.1 was not accepted (" in error and "SSL_CERT_FILE" in error, error
        proc = start_cli(*run_args("run", manifest, state, *base), cwd=tmp_path,
                         env=net_env(SSL_CERT_FILE=str(certs.ca)))
        try:
            wait_for(lambda: sim.accepted() == 3, what="three tasks accepted over TLS")
        finally:
            proc.send_signal(signal.SIGTERM)
            stderr = finish_cli(proc)
    assert "Traceback" not in stderr, stderr
    assert sim.max_per_body() == 1


def test_a_host_that_does_not_resolve_sends_nothing_and_names_the_host(tmp_path: Path) -> None:
    """DNS fails for the base URL's host: exit 5, the jobs pending, the host and DNS named (it said "ConnectError")."""
    manifest = write_manifest(tmp_path)
    result = run_cli(*run_args("run", manifest, tmp_path / "state", "--base-url", "https://nowhere.invalid", *FAST),
                     cwd=tmp_path, env=net_env())
    assert result.code == 5, str(result)
    assert counts(tmp_path / "state") == {"pending": 3}
    error = result.stderr.strip().splitlines()[-1]
    assert "the host nowhere.invalid does not resolve (DNS" in error, error


@pytest.mark.parametrize("url", ["socks5://127.0.0.1:1080", "socks5h://127.0.0.1:1080", "socks://127.0.0.1:1080/"])
def test_a_socks_proxy_is_refused_in_one_line(tmp_path: Path, url: str) -> None:
    """ALL_PROXY=socks5://… (ssh -D, desktops): the run ended in a traceback naming a Python package; it says the
    runner goes through HTTP proxies only, which variable, that nothing was sent, and how to run without it."""
    manifest = write_manifest(tmp_path)
    result = run_cli(*run_args("run", manifest, tmp_path / "state", "--base-url", BEHIND, *FAST), cwd=tmp_path,
                     env=net_env(all_proxy=url))
    assert result.code == 2, str(result)
    error = result.stderr.strip().splitlines()[-1]
    assert "ALL_PROXY" in error and "HTTP proxies only" in error and "Nothing was sent" in error, error
    assert counts(tmp_path / "state") == {"pending": 3}


@pytest.mark.parametrize(("proxy", "said"), [
    ("http://user:s3cretpw@127.0.0.1:9", "the proxy 127.0.0.1:9 in HTTPS_PROXY, which the connection to"
                                         " api.novita.test goes through, could not be reached ("),
    ("http://user:s3cretpw@proxy.nowhere.invalid:3128", "the proxy proxy.nowhere.invalid:3128 in HTTPS_PROXY does"
                                                        " not resolve (DNS"),
], ids=["down", "dns"])
def test_a_proxy_that_cannot_be_reached_is_named_not_the_provider(tmp_path: Path, proxy: str, said: str) -> None:
    """The proxy is down or its name does not resolve: the run said only "ConnectError" of the provider (and a DNS
    failure is the proxy's name, not the provider's, which the proxy resolves); it names the proxy and its variable,
    never its password."""
    manifest = write_manifest(tmp_path)
    result = run_cli(*run_args("run", manifest, tmp_path / "state", "--base-url", BEHIND, *FAST), cwd=tmp_path,
                     env=net_env(HTTPS_PROXY=proxy))
    assert result.code == 5, str(result)
    assert counts(tmp_path / "state") == {"pending": 3}
    error = result.stderr.strip().splitlines()[-1]
    assert said in error, error
    assert "s3cretpw" not in result.stderr
