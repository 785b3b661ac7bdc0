"""Request-body validation of the simulated submit, with helpful 400 messages.

The body is checked by the same wire model the client uses
(``runner.models``), so the simulator refuses exactly what the documented
rules refuse. The message names each offending field, what is wrong and the
value that was sent (shortened).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from runner.models import Endpoint

__all__ = ["BodyProblem", "check_body"]

_INPUT_SHOWN = 60


@dataclass(frozen=True, slots=True)
class BodyProblem:
    """Why a body was refused: a one-line message and one entry per broken rule."""

    message: str
    errors: list[dict[str, str]]


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > _INPUT_SHOWN:
        text = f"{text[:_INPUT_SHOWN]}… ({len(value) if isinstance(value, str | list) else '?'} long)"
    return text


def _allowed(model: type[BaseModel]) -> str:
    return ", ".join(sorted(model.model_fields))


def _describe(endpoint: Endpoint, exc: ValidationError) -> BodyProblem:
    errors: list[dict[str, str]] = []
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        where = _location(loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            text = f"unknown field; allowed fields: {_allowed(endpoint.request_model)}"
            if "multi_prompt" in loc:
                text = "unknown field in a shot; allowed fields: duration, index, prompt"
        else:
            text = str(err["msg"]).removeprefix("Value error, ")
            if loc and kind != "missing":
                text += f" (got {_shown(err.get('input'))})"
        errors.append({"field": where, "message": text})
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return BodyProblem(f"invalid request body for {endpoint.slug}: {summary}", errors)


def check_body(endpoint: Endpoint, raw: bytes) -> tuple[Any, BodyProblem | None]:
    """Parse and validate a submit body: ``(parsed JSON, None)`` or ``(parsed or None, problem)``."""
    try:
        parsed = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, BodyProblem(f"request body is not valid JSON: {exc}", [{"field": "body", "message": str(exc)}])
    if not isinstance(parsed, dict):
        message = f"request body must be a JSON object, got {type(parsed).__name__}"
        return parsed, BodyProblem(message, [{"field": "body", "message": message}])
    try:
        endpoint.request_model.model_validate(parsed)
    except ValidationError as exc:
        return parsed, _describe(endpoint, exc)
    return parsed, None
