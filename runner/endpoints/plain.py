"""An endpoint told in plain Python: what planning needs of it without building its pydantic models.

Issue 14 (start-up): importing pydantic and building the request models is most of what ``runner
plan`` costs before it reads a byte. A :class:`PlainSpec` is an :class:`~runner.endpoints.EndpointSpec`
whose light parts (templating, price, field names, output extension) are plain data, and whose
:meth:`~PlainSpec.request_body` checks a request with plain Python when it can vouch for it:

* each field's value is of the exact type the model takes without conversion (``int`` for an
  integer, ``int``/``float`` for a number, ``str`` for a text or a choice, ``bool``) and within the
  model's bounds, or a text a CSV cell gives that the model reads the same way (``"10"``, ``"0.5"``,
  ``"true"``; plain digits only); a field the plain rules do not describe (``multi_prompt``) must be
  absent or None;
* the body is built as the model dumps it: fields in the model's order, defaults filled in,
  ``None`` left out.

Anything else — a missing required field, an unknown field, a value of another type, out of bounds or
not valid UTF-8 — goes to the endpoint's request model (:func:`runner.endpoints.get`, imported then),
which gives the body or the error of the code before this module, word for word. Everything else
(the models, the wire body, the examples, the media check) is the full spec's, built on first use.
``tests/contract/test_plain_specs.py`` holds each plain spec to its full spec.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from runner.endpoints.api import EndpointSpec, Examples, Templating, mp4_problem, price_for
from runner.endpoints.media import InputResolver, MediaKind
from runner.pricing import Price

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["PlainField", "PlainSpec", "field_names"]

_DIGITS = re.compile(r"0|[1-9][0-9]{0,5}")  # an integer as a CSV cell writes it (no sign, space, "_" or ".")
_DECIMAL = re.compile(r"(?:0|[1-9][0-9]{0,5})(?:\.[0-9]{1,9})?")  # a number likewise (no exponent)
_BOOLS = {"true": True, "false": False}

Kind = Literal["text", "int", "number", "choice", "bool", "model"]  # "model": only the model checks a value


class PlainField(NamedTuple):  # a record, not a dataclass: no methods generated at every start
    """One request field: its kind, bounds (lengths for a text), choices, default (None: left out)."""

    name: str
    kind: Kind
    required: bool = False
    nullable: bool = False  # None is accepted (and left out of the body)
    default: Any = None
    low: float = 0
    high: float = float("inf")
    choices: frozenset[str] = frozenset()

    def check(self, value: Any) -> tuple[bool, Any]:
        """(True, the value as the model dumps it) when the plain rules vouch for ``value``; (False, None) otherwise."""
        kind, t = self.kind, type(value)
        if kind == "text":
            ok = t is str and self.low <= len(value) <= self.high and (value.isascii() or encodable(value))
        elif kind == "int":
            if t is str and _DIGITS.fullmatch(value):
                value, t = int(value), int
            ok = t is int and self.low <= value <= self.high
        elif kind == "number":
            if t is str and _DECIMAL.fullmatch(value):
                value, t = float(value), float
            ok = (t is int or t is float) and self.low <= value <= self.high
            value = float(value) if ok else None
        elif kind == "choice":
            ok = t is str and value in self.choices
        else:
            if t is str and value in _BOOLS:
                value, t = _BOOLS[value], bool
            ok = kind == "bool" and t is bool
        return ok, value


class PlainSpec:
    """An endpoint without media inputs whose requests plain rules can check; see the module docstring.

    Immutable (a plain class, not a dataclass: nothing is generated at every start)."""

    __slots__ = ("default_price", "fields", "full_at", "media_fields", "names", "one_of", "output_extension", "slug",
                 "templating", "text_alone", "url_only")
    slug: str
    templating: Templating
    default_price: Price | None
    fields: tuple[PlainField, ...]  # in the request model's order
    full_at: tuple[str, str]  # (module, name) of the full spec, a JsonEndpoint without media fields
    one_of: tuple[str, str] | None  # exactly one of these two is given (not None)
    text_alone: frozenset[str]  # the model's TEXT_ALONE (runner.manifest.bodies)
    output_extension: str
    media_fields: Mapping[str, MediaKind]  # none: a plain spec takes no media
    url_only: frozenset[str]
    names: frozenset[str]

    def __init__(self, slug: str, templating: Templating, default_price: Price | None,
                 fields: tuple[PlainField, ...], full_at: tuple[str, str], *, one_of: tuple[str, str] | None = None,
                 text_alone: frozenset[str] = frozenset()) -> None:
        values = {"slug": slug, "templating": templating, "default_price": default_price, "fields": fields,
                  "full_at": full_at, "one_of": one_of, "text_alone": text_alone, "output_extension": ".mp4",
                  "media_fields": {}, "url_only": frozenset(), "names": frozenset(f.name for f in fields)}
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"a PlainSpec is immutable (cannot set {name!r})")

    def __repr__(self) -> str:
        return f"PlainSpec({self.slug!r})"

    @property
    def full(self) -> EndpointSpec:
        """The full spec (its module imported, and its pydantic models built, now)."""
        spec: EndpointSpec = getattr(importlib.import_module(self.full_at[0]), self.full_at[1])
        return spec

    @property
    def request_model(self) -> type[BaseModel]:
        return self.full.request_model

    @property
    def wire_model(self) -> type[BaseModel]:
        return self.full.wire_model

    @property
    def examples(self) -> Examples:
        return self.full.examples

    def plain_body(self, fields: Mapping[str, Any]) -> dict[str, Any] | None:
        """The stored request of ``fields`` when the plain rules vouch for every field; None otherwise."""
        if not self.names.issuperset(fields):
            return None
        body: dict[str, Any] = {}
        for spec in self.fields:
            value = fields.get(spec.name)
            if value is None:
                if (spec.name in fields and not spec.nullable) or spec.required:
                    return None
                if spec.default is not None:
                    body[spec.name] = spec.default
                continue
            ok, value = spec.check(value)
            if not ok:
                return None
            body[spec.name] = value
        if self.one_of is not None and (self.one_of[0] in body) == (self.one_of[1] in body):
            return None
        return body

    def text_bounds(self) -> dict[str, tuple[int, int]]:
        """The free texts (``text_alone`` fields that are plain texts) and their length bounds."""
        return {f.name: (int(f.low), int(min(f.high, 1 << 62))) for f in self.fields
                if f.name in self.text_alone and f.kind == "text"}

    def request_body(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        body = self.plain_body(fields)
        return body if body is not None else self.full.request_body(fields)

    def identity_body(self, request: Mapping[str, Any]) -> dict[str, Any]:
        return request if isinstance(request, dict) else dict(request)  # no media field: the request itself

    def wire_body(self, request: Mapping[str, Any], inputs: InputResolver | None = None) -> dict[str, Any]:
        return dict(request)  # no media field: the request itself, as JsonEndpoint sends it

    def price(self, override: Price | None = None) -> Price:
        return price_for(self.slug, self.default_price, override)

    def estimate_usd(self, request: Mapping[str, Any], price: Price) -> float:
        return price.estimate(request)

    @property
    def at_most_why(self) -> str | None:
        return None

    def estimated_at_most(self, request: Mapping[str, Any]) -> bool:
        return False

    def check_wire(self, body: Mapping[str, Any]) -> None:
        self.full.check_wire(body)

    def check_media(self, head: bytes) -> str | None:
        return mp4_problem(head)


def field_names(spec: EndpointSpec) -> tuple[str, ...]:
    """The request fields of ``spec``, in its model's order (a plain spec's without building the model)."""
    if isinstance(spec, PlainSpec):
        return tuple(f.name for f in spec.fields)
    return tuple(spec.request_model.model_fields)


def encodable(text: str) -> bool:
    """No lone surrogate (the request model would refuse it; the full path says how)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
