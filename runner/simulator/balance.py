"""The simulated account balance: ``GET /openapi/v1/billing/balance/detail`` (Novita's documented route)
and ``GET /v3/user/balance`` (the older one third-party clients read), both Bearer-authenticated.

The body is Novita's: amounts as strings of 1/10000 USD — ``availableBalance`` (what may still be
spent), ``cashBalance``, ``creditLimit``, ``pendingCharges``, ``outstandingInvoices``
(``docs/provider.md`` §Balance). The amount is the ``balance_usd`` knob, less ``task_usd`` for each
task created (never drawn down when ``task_usd`` is None, the default: the simulator keeps no prices).
With ``balance_usd`` at None both routes answer 404 ``API_NOT_FOUND``, as a provider without the
endpoint would.
"""

from __future__ import annotations

from runner.simulator.asgi import Request, Response, envelope, json_response
from runner.simulator.auth import check_key
from runner.simulator.state import SimState

__all__ = ["BALANCE_PATHS", "balance"]

BALANCE_PATHS = ("/openapi/v1/billing/balance/detail", "/v3/user/balance")


def _units(usd: float) -> str:
    return str(round(usd * 10_000))


def balance(state: SimState, req: Request) -> Response:
    cfg = state.config
    left = state.balance_left()
    if left is None:
        state.count("balance", "api_not_found")
        return envelope(404, "API_NOT_FOUND", f"no API at {req.method} {req.path}")
    refused = check_key(req, cfg)
    if refused is not None:
        kind, response = refused
        state.count("balance", kind)
        return response
    state.count("balance", "ok")
    return json_response(200, {"availableBalance": _units(left), "cashBalance": _units(left),
                               "creditLimit": "0", "pendingCharges": "0", "outstandingInvoices": "0"})
