"""The provider client: HTTP to Novita's async video API (layer 2).

    NovitaClient(http, *, base_url, api_key, ...)
    ├── submit(model, body)   -> SubmitResult   POST once; never raises for HTTP/network outcomes
    ├── task_result(task_id)  -> TaskResult     GET, retried with jittered backoff
    └── download(url, sink)   -> Stored         GET without the key, verified, into an output store's sink

    make_http_client(...)      an httpx.AsyncClient with explicit timeouts, no transport retries
    api_key_from_env(environ)  NOVITA_API_KEY, validated
    base_url_from_env(flag)    flag > NOVITA_BASE_URL > https://api.novita.ai (no plain http off loopback)
    provider_identity(url)     the form of a base URL a ledger records

No httpx exception escapes this package: GET failures become
:mod:`runner.errors` types, submit failures a classified :class:`SubmitResult`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.lazy import lazy_exports

if TYPE_CHECKING:  # the names below are imported on first use (start-up time: issue 14)
    from runner.client.connection import (
        API_KEY_ENV,
        BASE_URL_ENV,
        DEFAULT_BASE_URL,
        api_key_from_env,
        base_url_from_env,
        make_http_client,
        provider_identity,
    )
    from runner.client.download import DownloadLimits, OpenSink
    from runner.client.novita import NovitaClient
    from runner.client.retry import parse_retry_after
    from runner.client.submit import SubmitOutcome, SubmitResult

# name -> the module that defines it; `from runner.client import X` imports X's module only
_WHERE: dict[str, str] = {
    "API_KEY_ENV": "runner.client.names",
    "BASE_URL_ENV": "runner.client.names",
    "DEFAULT_BASE_URL": "runner.client.names",
    "api_key_from_env": "runner.client.connection",
    "base_url_from_env": "runner.client.connection",
    "make_http_client": "runner.client.connection",
    "provider_identity": "runner.client.connection",
    "DownloadLimits": "runner.client.download",
    "OpenSink": "runner.client.download",
    "NovitaClient": "runner.client.novita",
    "parse_retry_after": "runner.client.retry",
    "SubmitOutcome": "runner.client.submit",
    "SubmitResult": "runner.client.submit",
}

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "DownloadLimits",
    "NovitaClient",
    "OpenSink",
    "SubmitOutcome",
    "SubmitResult",
    "api_key_from_env",
    "base_url_from_env",
    "make_http_client",
    "parse_retry_after",
    "provider_identity",
]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, __all__, globals())
