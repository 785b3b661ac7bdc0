"""The simulator's key check, answered as Novita's error table says (or 401, by a knob).

No ``Authorization: Bearer <key>`` → 400 ``MISSING_API_KEY``; a key other than the configured one
→ 403 ``INVALID_API_KEY`` (``docs/provider.md`` §Errors). Novita's general guide says 401 for
both; ``SimConfig.auth_401`` answers that way instead. Novita's JS SDK sends ``Authorization: <key>`` with no
scheme (whether the real API takes it is unknown): ``SimConfig.bare_key`` takes it. The key is never echoed.
"""

from __future__ import annotations

import hmac

from runner.simulator.asgi import Request, Response, envelope
from runner.simulator.config import SimConfig

__all__ = ["check_key"]


def _sent_key(req: Request, cfg: SimConfig) -> str:
    """The key of ``Authorization: Bearer <key>`` ("" when there is none); with ``bare_key``, also of
    ``Authorization: <key>``."""
    header = req.headers.get("authorization", "").strip()
    scheme, _, key = header.partition(" ")
    if scheme.lower() == "bearer":
        return key.strip()
    return header if cfg.bare_key and header and " " not in header else ""


def check_key(req: Request, cfg: SimConfig) -> tuple[str, Response] | None:
    """None when the Bearer key is acceptable, else (the response kind, the answer to send)."""
    key = _sent_key(req, cfg)
    if not key:
        status = 401 if cfg.auth_401 else 400
        message = "missing API key: send the header 'Authorization: Bearer <key>'"
        return "missing_key", envelope(status, "MISSING_API_KEY", message)
    expected = cfg.api_key
    if expected is not None and not hmac.compare_digest(key.encode(), expected.encode()):
        return "invalid_key", envelope(401 if cfg.auth_401 else 403, "INVALID_API_KEY", "invalid API key")
    return None


def caller_key(req: Request) -> str:
    """The key the caller sent (its account in the accounting, and the ``echo_key`` fault)."""
    header = req.headers.get("authorization", "").strip()
    scheme, _, key = header.partition(" ")
    return key.strip() if scheme.lower() == "bearer" else header
