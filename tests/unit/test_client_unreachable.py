"""The cause of a connection that could not be made, in words (:mod:`runner.client.unreachable`)."""

from __future__ import annotations

import socket
import ssl

import httpx

from runner.client.unreachable import connect_cause

REQUEST = httpx.Request("POST", "https://api.novita.ai/v3/async/kling")


def _raised(cause: BaseException, kind: type[httpx.TransportError] = httpx.ConnectError) -> httpx.TransportError:
    try:
        try:
            raise cause
        except BaseException as exc:
            raise kind(str(exc), request=REQUEST) from exc
    except httpx.TransportError as wrapped:
        return wrapped


def _untrusted(message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {message}")
    error.verify_message = message
    return error


def test_a_certificate_not_yet_valid_says_check_the_clock() -> None:
    """A clock behind the certificate's start (a VM restored from a snapshot): the clock is named before the CA."""
    cause = connect_cause(_raised(_untrusted("certificate is not yet valid")))
    assert cause is not None
    assert cause.startswith("the TLS certificate of api.novita.ai was not accepted (certificate is not yet valid)")
    assert "date -u" in cause and "SSL_CERT_FILE" in cause


def test_a_name_mismatch_names_the_host_and_the_fault() -> None:
    cause = connect_cause(_raised(_untrusted("Hostname mismatch, certificate is not valid for 'api.novita.ai'.")))
    assert cause is not None and "Hostname mismatch" in cause and "date -u" not in cause


def test_dns_and_a_proxy_refusal_are_named_and_a_plain_refusal_is_left_as_it_is() -> None:
    dns = connect_cause(_raised(socket.gaierror(socket.EAI_NONAME, "Name or service not known")))
    assert dns == ("the host api.novita.ai does not resolve (DNS: Name or service not known); check the host in"
                   " --base-url / NOVITA_BASE_URL and this machine's network and DNS")
    proxy = connect_cause(httpx.ProxyError("407 Proxy Authentication Required", request=REQUEST))
    assert proxy is not None and "not the provider" in proxy and "407 Proxy Authentication Required" in proxy
    assert connect_cause(_raised(ConnectionRefusedError(111, "Connection refused"))) is None


def test_a_proxy_that_cannot_reach_the_provider_is_not_told_to_give_a_password() -> None:
    """A 502/503 to the CONNECT is the proxy failing to reach the provider, not a refusal of this user: the line said
    to put user:password in the variable, which fixes nothing (found by the evening's review)."""
    upstream = connect_cause(httpx.ProxyError("502 Bad Gateway", request=REQUEST))
    assert upstream is not None and "502 Bad Gateway" in upstream and "could not reach api.novita.ai itself" in upstream
    assert "user:password" not in upstream
    auth = connect_cause(httpx.ProxyError("407 Proxy Authentication Required", request=REQUEST))
    assert auth is not None and "user:password" in auth and "let the host through" not in auth
    forbidden = connect_cause(httpx.ProxyError("403 Forbidden", request=REQUEST))
    assert forbidden is not None and "let the host through" in forbidden
