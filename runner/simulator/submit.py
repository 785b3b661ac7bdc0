"""The simulated submit, ``POST /v3/async/<slug>``: auth, the endpoint's validation, rpm, faults.

The body is validated by the endpoint's own spec (:mod:`runner.endpoints`, the rules the runner
plans with; :mod:`~runner.simulator.validation`), then the rpm window and the seeded faults decide
the answer. A fault that creates a task first (a gateway page, a dropped connection, a slow or
malformed answer) is charged like any other: that is why the client treats it as ambiguous.
"""

from __future__ import annotations

import enum
import threading
from typing import Any

import anyio

from runner import endpoints
from runner.simulator.asgi import DropConnection, Request, Response, envelope, html_page, json_response, raw_response
from runner.simulator.auth import caller_key, check_key
from runner.simulator.config import SimConfig
from runner.simulator.state import SimState, account_of
from runner.simulator.validation import check_body

__all__ = ["LONG_TASK_ID", "submit"]

LONG_TASK_ID = 64 * 1024
_IMAGE_FIELDS = ("image", "end_image")
ROUTE = "submit"
_RELEASE_POLL_SECONDS = 0.05
_MALFORMED_BODIES: tuple[tuple[str, bytes], ...] = (
    ("application/json", b'{"task_id": "'),
    ("application/json", b""),
    ("application/json", b'{"task_id": null}'),
    ("application/json", b'{"code": 0, "data": {}}'),
    ("text/html", b"<html><body>OK</body></html>"),
)


class _After(enum.Enum):
    """What the async part of a submit does once the decision is taken."""

    RESPOND = "respond"
    DROP = "drop"
    SLOW = "slow"


def seconds_header(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def _inline_image(body: dict[str, Any]) -> str | None:
    """The first image field of ``body`` written as a ``data:`` URI (``data_uri_images`` off refuses it), if any."""
    for name in _IMAGE_FIELDS:
        value = body.get(name)
        if isinstance(value, str) and value[:5].lower() == "data:":
            return name
    return None


async def submit(state: SimState, req: Request, slug: str) -> Response:
    """Answer one submit POST to ``/v3/async/<slug>``."""
    response, after, delay = _decide(state, req, slug)
    if after is _After.DROP:
        raise DropConnection("submit: task created, connection dropped before the response")
    if after is _After.SLOW:
        await _held(state, delay)
    return response


async def _held(state: SimState, seconds: float) -> None:
    """Wait ``seconds``, or less once a test releases the held answers (``Simulator.release_slow``, from any thread).

    The wait is the event loop's own (a virtual clock skips it as it skips a sleep); the release is looked at every
    ``_RELEASE_POLL_SECONDS`` of it: it may come from a test's thread, which cannot set an ``anyio.Event`` of this
    loop (anyio >= 4.4 gives it no token for that), and a worker thread's wait would be wall time on a virtual clock."""
    answer = threading.Event()
    state.hold(answer)
    try:
        with anyio.move_on_after(seconds):
            while not answer.is_set():  # noqa: ASYNC110 (see above)
                await anyio.sleep(_RELEASE_POLL_SECONDS)
    finally:
        state.unhold(answer)


def _decide(state: SimState, req: Request, slug: str) -> tuple[Response, _After, float]:
    denied = check_key(req, state.config)
    if denied is not None:
        kind, response = denied
        state.count(ROUTE, kind)
        return response, _After.RESPOND, 0.0
    if slug not in endpoints.slugs():
        state.count(ROUTE, "api_not_found")
        return envelope(404, "API_NOT_FOUND", f"unknown API /v3/async/{slug}"), _After.RESPOND, 0.0
    with state.lock:
        cfg = state.config
        now = state.clock()
        if cfg.rpm is not None and not state.admit(now, cfg.rpm):
            state.count(ROUTE, "rpm_limited")
            send = cfg.retry_after_header and cfg.retry_after is not None
            headers = [("Retry-After", seconds_header(cfg.retry_after or 0.0))] if send else []
            message = f"rate limit exceeded: at most {cfg.rpm} requests per minute"
            return envelope(429, "RATE_LIMIT_EXCEEDED", message, headers=headers), _After.RESPOND, 0.0
        parsed, problem = check_body(endpoints.get(slug), req.body)
        if problem is not None:
            state.count(ROUTE, "invalid_body")
            response = envelope(400, "INVALID_REQUEST_BODY", problem.message, metadata={"errors": problem.errors})
            return response, _After.RESPOND, 0.0
        inline = None if cfg.data_uri_images else _inline_image(parsed)
        if inline is not None:
            state.count(ROUTE, "invalid_body")
            message = f"{inline} must be the URL of an image; a base64 data: URI is not accepted"
            errors = [{"field": inline, "message": message}]
            return envelope(400, "INVALID_REQUEST_BODY", message, metadata={"errors": errors}), _After.RESPOND, 0.0
        account = account_of(caller_key(req))
        if cfg.max_concurrent is not None and state.outstanding(account, now) >= cfg.max_concurrent:
            state.count(ROUTE, "concurrency_limited")
            send = cfg.retry_after_header and cfg.retry_after is not None
            headers = [("Retry-After", seconds_header(cfg.retry_after or 0.0))] if send else []
            message = f"rate limit exceeded: at most {cfg.max_concurrent} tasks in progress at once"
            return envelope(429, "RATE_LIMIT_EXCEEDED", message, headers=headers), _After.RESPOND, 0.0
        left = state.balance_left()
        if cfg.task_usd is not None and left is not None and left < cfg.task_usd:
            state.count(ROUTE, "balance_not_enough")
            message = f"balance {left:.4f} USD is not enough for a task of {cfg.task_usd:.4f} USD"
            return envelope(400, "BILLING_BALANCE_NOT_ENOUGH", message), _After.RESPOND, 0.0
        return _faults(state, slug, parsed, cfg, now, account)


def _faults(state: SimState, slug: str, body: dict[str, Any], cfg: SimConfig, now: float,
            account: str) -> tuple[Response, _After, float]:
    roll, count = state.roll, state.count
    if roll(cfg.p_rate_limit):
        count(ROUTE, "rate_limit")
        retry_after = seconds_header(cfg.retry_after if cfg.retry_after is not None else 1.0)
        headers = [("Retry-After", retry_after)] if cfg.retry_after_header else []
        return envelope(429, "RATE_LIMIT_EXCEEDED", "rate limit exceeded", headers=headers), _After.RESPOND, 0.0
    if roll(cfg.p_rate_limit_no_retry_after):
        count(ROUTE, "rate_limit_no_retry_after")
        return envelope(429, "RATE_LIMIT_EXCEEDED", "rate limit exceeded"), _After.RESPOND, 0.0
    if roll(cfg.p_refused):
        code, reason = cfg.refusal.split(" ", 1)
        count(ROUTE, f"refused_{code}_{reason.lower()}")
        return envelope(int(code), reason, f"request refused: {reason}"), _After.RESPOND, 0.0
    if roll(cfg.p_create_failed):
        created = roll(cfg.create_failed_created_fraction)
        if created:
            state.create(slug, body, cfg, now, account)
        count(ROUTE, "create_failed" + ("_created" if created else ""))
        return envelope(500, "CREATE_TASK_FAILED", "failed to create task"), _After.RESPOND, 0.0
    if roll(cfg.p_gateway):
        status = state.rng.choice((502, 504))
        created = roll(cfg.gateway_created_fraction)
        if created:
            state.create(slug, body, cfg, now, account)
        count(ROUTE, f"gateway_{status}" + ("_created" if created else ""))
        return html_page(status), _After.RESPOND, 0.0
    task = state.create(slug, body, cfg, now, account)
    ok = json_response(200, {"task_id": task.task_id})
    if roll(cfg.p_drop):
        count(ROUTE, "drop")
        return ok, _After.DROP, 0.0
    if roll(cfg.p_slow):
        count(ROUTE, "slow")
        return ok, _After.SLOW, cfg.slow_seconds
    if roll(cfg.p_long_task_id):
        count(ROUTE, "long_task_id")
        return json_response(200, {"task_id": task.task_id + "0" * LONG_TASK_ID}), _After.RESPOND, 0.0
    if roll(cfg.p_malformed):
        count(ROUTE, "malformed")
        content_type, raw = state.rng.choice(_MALFORMED_BODIES)
        return raw_response(200, content_type, raw), _After.RESPOND, 0.0
    if state.last_answered is not None and roll(cfg.p_duplicate_task_id):
        count(ROUTE, "duplicate_task_id")
        return json_response(200, {"task_id": state.last_answered}), _After.RESPOND, 0.0
    count(ROUTE, "ok")
    state.answered(task, account, now)
    return ok, _After.RESPOND, 0.0
