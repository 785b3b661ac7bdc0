"""Why a connection to the provider could not be made, in the operator's words: DNS, TLS, a proxy's refusal.

A failure to connect sends nothing (:mod:`runner.client.submit`); what the operator needs then is the cause and
its fix, not ``ConnectError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate in
certificate chain (_ssl.c:1006)``. :func:`connect_cause` reads the exception's cause chain (httpx and the
transport raise ``from`` the socket's or the TLS layer's own error) and says it in one sentence naming the host —
or the proxy, when the environment sends the request through one (a name that does not resolve, a port that does
not answer, is then the proxy's); None when it knows nothing better than the exception's own words.
"""

from __future__ import annotations

import socket
import ssl

import httpx

from runner.client.connection import proxy_for

__all__ = ["connect_cause", "tunnel_cause"]


def _url(exc: Exception) -> httpx.URL | None:
    try:
        return exc.request.url if isinstance(exc, httpx.RequestError) else None
    except RuntimeError:  # an error raised without its request (tests)
        return None


def _proxy_of(url: httpx.URL | None) -> tuple[str, str] | None:
    """:func:`~runner.client.connection.proxy_for` ``url``, None when it cannot say."""
    try:
        return proxy_for(url) if url is not None else None
    except ValueError:  # an environment httpx itself read at start: never expected; the words go without the proxy
        return None


def _proxy_named(via: tuple[str, str] | None) -> str:
    return f"{via[1]} in {via[0]}" if via is not None else "(HTTPS_PROXY/ALL_PROXY)"


def tunnel_cause(url: httpx.URL, exc: Exception) -> str:
    """One sentence for a proxy that closed, reset or never answered the ``CONNECT`` of a request to ``url``."""
    return (f"the proxy {_proxy_named(_proxy_of(url))}, not the provider, did not open a tunnel to {url.host}"
            f" ({type(exc).__name__}: {str(exc)[:80] or 'no answer'}); check the proxy, or exempt the host with"
            " NO_PROXY")


def connect_cause(exc: Exception) -> str | None:
    """One sentence for a connection that could not be made (``exc``: httpx's ConnectError, ProxyError…)."""
    url = _url(exc)
    host = (url.host if url is not None else "") or "the provider"
    via = _proxy_of(url)
    if isinstance(exc, httpx.ProxyError):
        where = _proxy_named(via)
        said = str(exc)[:60]
        status = said.split(" ", 1)[0]
        if status.isdigit() and status.startswith("5"):  # the proxy answered but could not reach the provider itself
            fix = f"the proxy could not reach {host} itself: check the network beyond it, or run again later"
        elif status == "407":
            fix = "put its user:password in the variable (http://user:password@host:port)"
        else:
            fix = ("put its user:password in the variable (http://user:password@host:port) or have it let the host"
                   " through")
        return f"the proxy {where}, not the provider, refused a tunnel to {host}: {said or 'no reason'}; {fix}"
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, socket.gaierror) and via is not None:  # the proxy's name is the one looked up
            return (f"the proxy {via[1]} in {via[0]} does not resolve (DNS: {seen.strerror or seen}); check"
                    f" {via[0]}, or exempt {host} with NO_PROXY")
        if isinstance(seen, socket.gaierror):
            return (f"the host {host} does not resolve (DNS: {seen.strerror or seen}); check the host in --base-url"
                    " / NOVITA_BASE_URL and this machine's network and DNS")
        if isinstance(seen, ssl.SSLCertVerificationError):
            what = seen.verify_message or seen.reason or str(seen)
            hint = "; a TLS-inspecting proxy's root certificate goes in SSL_CERT_FILE (a PEM file) or SSL_CERT_DIR"
            if "not yet valid" in what or "expired" in what:
                hint = "; check this machine's clock (date -u)" + hint
            return f"the TLS certificate of {host} was not accepted ({what}){hint}"
        if isinstance(seen, ssl.SSLError):
            return f"the TLS handshake with {host} failed ({seen.reason or seen}); a proxy or firewall in the way?"
        seen = seen.__cause__ or seen.__context__
    if via is not None and isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return (f"the proxy {via[1]} in {via[0]}, which the connection to {host} goes through, could not be reached"
                f" ({str(exc)[:80] or type(exc).__name__}); check {via[0]}, or exempt {host} with NO_PROXY")
    return None
