"""Request-body validation of the simulated submit, with helpful 400 messages.

The body is checked by the endpoint's spec (``runner.endpoints``:
:meth:`~runner.endpoints.EndpointSpec.check_wire`), the same rules the runner
plans with, so the simulator refuses exactly what the documented rules refuse.
The message names each offending field, what is wrong and the value that was
sent (shortened).
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from runner.endpoints import EndpointSpec

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


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as ``list[Shot] | None``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _owner(model: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[type[BaseModel], str | None]:
    """The model holding the field at ``loc`` and the field that nests it (None at the top)."""
    owner, nested = model, None
    for part in loc[:-1]:
        if isinstance(part, str) and part in owner.model_fields:
            inner = _model_in(owner.model_fields[part].annotation)
            if inner is not None:
                owner, nested = inner, part
    return owner, nested


def _unknown_field(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    owner, nested = _owner(model, loc)
    allowed = ", ".join(sorted(owner.model_fields))
    if nested is None:
        return f"unknown field; allowed fields: {allowed}"
    item = "a shot" if nested == "multi_prompt" else f"an item of {nested}"
    return f"unknown field in {item}; allowed fields: {allowed}"


def _describe(endpoint: EndpointSpec, exc: ValidationError) -> BodyProblem:
    errors: list[dict[str, str]] = []
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        where = _location(loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            text = _unknown_field(endpoint.wire_model, loc)
        else:
            text = str(err["msg"]).removeprefix("Value error, ")
            if loc and kind != "missing":
                text += f" (got {_shown(err.get('input'))})"
        errors.append({"field": where, "message": text})
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return BodyProblem(f"invalid request body for {endpoint.slug}: {summary}", errors)


def check_body(endpoint: EndpointSpec, raw: bytes) -> tuple[Any, BodyProblem | None]:
    """Parse and validate a submit body: ``(parsed JSON, None)`` or ``(parsed or None, problem)``."""
    try:
        parsed = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, BodyProblem(f"request body is not valid JSON: {exc}", [{"field": "body", "message": str(exc)}])
    if not isinstance(parsed, dict):
        message = f"request body must be a JSON object, got {type(parsed).__name__}"
        return parsed, BodyProblem(message, [{"field": "body", "message": message}])
    try:
        endpoint.check_wire(parsed)
    except ValidationError as exc:
        return parsed, _describe(endpoint, exc)
    return parsed, None
