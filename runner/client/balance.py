"""The account balance: Novita's ``GET /openapi/v1/billing/balance/detail``, read with the GET retry rules.

The documented route answers ``{"availableBalance", "cashBalance", "creditLimit", "pendingCharges",
"outstandingInvoices"}``, each a string of 1/10000 USD (``"10000"`` is 1.00 USD); third-party
clients read the same ``availableBalance`` from the older ``GET /v3/user/balance``, tried when the
first answers 404 (``docs/provider.md`` §Balance). Transient failures (network errors, 429 with
its Retry-After, 5xx, an unreadable body) are retried as task-result's are; anything else, or
giving up, raises a :class:`~runner.errors.ProviderError` the caller treats as "balance unknown"; so does
a connection refused (not retried: the run's own calls report an unreachable provider).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

from runner.client.connection import exchange_deadline
from runner.client.retry import backoff_delay, parse_retry_after
from runner.client.untrusted import MalformedBody, load_json
from runner.errors import ProviderError

__all__ = ["BALANCE_PATHS", "Balance", "parse_balance", "read_balance"]

log = logging.getLogger("runner.client")

BALANCE_PATHS = ("/openapi/v1/billing/balance/detail", "/v3/user/balance")
UNITS_PER_USD = 10_000
BALANCE_TIMEOUT_S = 10.0  # one attempt's timeout: a slow balance route must not hold the run's start long


@dataclass(frozen=True, slots=True)
class Balance:
    """What the account may still spend (``available_usd``) and the rest of the answer, in USD."""

    available_usd: float
    cash_usd: float | None = None
    credit_limit_usd: float | None = None
    path: str = BALANCE_PATHS[0]


def _usd(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number / UNITS_PER_USD if number == number and abs(number) != float("inf") else None


def parse_balance(data: Any, path: str = BALANCE_PATHS[0]) -> Balance:
    """The balance in a route's JSON body; :class:`MalformedBody` without a readable ``availableBalance``."""
    if not isinstance(data, dict):
        raise MalformedBody("not a JSON object")
    available = _usd(data.get("availableBalance"))
    if available is None:
        raise MalformedBody("no readable availableBalance")
    return Balance(available_usd=available, cash_usd=_usd(data.get("cashBalance")),
                   credit_limit_usd=_usd(data.get("creditLimit")), path=path)


class _Retry(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


async def _once(http: httpx.AsyncClient, url: str, path: str, auth: dict[str, str]) -> Balance | None:
    """One GET: the balance, None for a 404 (no such route), or :class:`_Retry` / ProviderError."""
    deadline = exchange_deadline(httpx.Timeout(BALANCE_TIMEOUT_S))  # a body that trickles never ends otherwise
    try:
        with anyio.fail_after(deadline):
            response = await http.get(url, headers=auth, timeout=BALANCE_TIMEOUT_S)
    except TimeoutError:
        raise _Retry(f"no whole answer within {deadline:g} s") from None
    except httpx.ConnectError as exc:  # nothing answers: the run's own calls will say so; no waiting here
        raise ProviderError(f"cannot connect for the balance ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise _Retry(type(exc).__name__) from exc
    status = response.status_code
    if status == 404:
        return None
    if status == 429 or status >= 500:
        raise _Retry(f"HTTP {status}", parse_retry_after(response.headers.get("retry-after")))
    if not 200 <= status < 300:
        raise ProviderError(f"the balance route {path} answered HTTP {status}", status=status)
    try:
        return parse_balance(load_json(response.content), path)
    except MalformedBody as exc:
        raise _Retry(f"HTTP {status} with a malformed balance body ({exc})") from None


async def _route(http: httpx.AsyncClient, url: str, path: str, auth: dict[str, str], *, attempts: int,
                 backoff_base: float, backoff_max: float, sleep: Callable[[float], Awaitable[None]],
                 rng: random.Random) -> Balance | None:
    """One route, retried: the balance, or None when the route does not exist (404)."""
    last: _Retry | None = None
    for attempt in range(attempts):
        if last is not None:
            delay = last.retry_after if last.retry_after is not None else backoff_delay(
                attempt - 1, base=backoff_base, cap=backoff_max, rng=rng)
            if delay > backoff_max:
                raise ProviderError(f"the balance route {path} asks to wait {delay:g} s ({last})")
            log.info("balance: retry %d/%d in %.2f s after %s", attempt + 1, attempts, delay, last)
            await sleep(delay)
        try:
            return await _once(http, url, path, auth)
        except _Retry as exc:
            last = exc
    raise ProviderError(f"the balance route {path} failed {attempts} time(s) (last: {last})")


async def read_balance(http: httpx.AsyncClient, base_url: str, auth: dict[str, str], *, attempts: int,
                       backoff_base: float, backoff_max: float, sleep: Callable[[float], Awaitable[None]],
                       rng: random.Random) -> Balance:
    """The account balance from the first route that has one; ProviderError when none can tell."""
    for path in BALANCE_PATHS:
        found = await _route(http, f"{base_url}{path}", path, auth, attempts=max(1, attempts),
                             backoff_base=backoff_base, backoff_max=backoff_max, sleep=sleep, rng=rng)
        if found is not None:
            return found
    raise ProviderError(f"no balance route at {base_url} ({' and '.join(BALANCE_PATHS)} answered 404)")
