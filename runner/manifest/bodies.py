"""Validated request bodies by shape: the request model runs once per shape, not once per job.

A big batch is mostly one body with another prompt: a million jobs of one manifest differ in the
text of ``prompt`` (and perhaps ``negative_prompt``) and share a handful of values for every other
field. :class:`Bodies` validates the first request of each *shape* — the request with its free-text
fields reduced to their presence — through the endpoint's request model, exactly as before, and
keeps the result. A later request of a known shape takes that body with its own texts, each text
checked against its field's own rules (type ``str``, length); the canonical JSON of the body is
spliced from the shape's pieces and the text's JSON, and the estimate is the shape's.

It is exact, never an approximation of the model:

* a text field is free only when the request model says so (``TEXT_ALONE``: its cross-field rules
  read those fields for presence only, see :class:`runner.endpoints.kling.KlingBody`) and the field
  is a plain ``str`` whose only constraints are lengths, with no validator of its own and no
  string option in the model's config;
* anything the fast path cannot vouch for — another type, a text out of bounds, a lone surrogate,
  a media field, an endpoint that overrides how bodies are built — goes through the full model,
  which gives the body and the error of the code before this module;
* a shape is kept only if the model returned each text as given and the spliced JSON of the first
  body is byte-identical to :func:`runner.jobs.canonical_json` of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from json.encoder import encode_basestring  # the string encoder canonical_json uses (ensure_ascii=False)
from types import NoneType, UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from runner.endpoints import EndpointSpec, JsonEndpoint
from runner.endpoints.plain import PlainSpec, encodable
from runner.jobs import canonical_json
from runner.pricing import Price

__all__ = ["MAX_SHAPES", "Bodies", "Known"]

#: Shapes kept per endpoint; past it, new shapes are validated in full every time (memory stays bounded).
MAX_SHAPES = 4096

_SCALARS = (str, int, float, bool, NoneType)
_TEXT = object()  # a free text's place in a shape
_CONFIG_OFF = ("str_strip_whitespace", "str_to_lower", "str_to_upper", "str_min_length", "str_max_length",
               "strict", "coerce_numbers_to_str", "regex_engine")

Known = tuple[dict[str, Any], str, float, bool]  # (body, canonical JSON of the identity body, estimate, JSON = request's)


class _Shape:
    __slots__ = ("body", "estimate", "pieces", "slots")

    def __init__(self, body: dict[str, Any], estimate: float, pieces: list[str], slots: list[str]) -> None:
        self.body = body
        self.estimate = estimate
        self.pieces = pieces  # literal JSON around the text slots: len(pieces) == len(slots) + 1
        self.slots = slots  # the text fields, in the JSON's (sorted) order

    def json_of(self, texts: Mapping[str, str]) -> str:
        pieces = self.pieces
        if len(pieces) == 2:  # one text (the prompt): the usual case
            return pieces[0] + encode_basestring(texts[self.slots[0]]) + pieces[1]
        out = [pieces[0]]
        for index, name in enumerate(self.slots, 1):
            out.append(encode_basestring(texts[name]))
            out.append(pieces[index])
        return "".join(out)


class Bodies:
    """The bodies of one endpoint (at one price), by shape; see the module docstring."""

    def __init__(self, spec: EndpointSpec, price: Price | None, media: Mapping[str, Any]) -> None:
        self.spec = spec
        self.price = price
        self.media = frozenset(media)
        self.texts = _free_texts(spec)  # field -> (min length, max length); empty: no fast path
        self.text_names = tuple(self.texts)
        # Price.estimate reads duration and sound, never a text: one estimate per shape. An endpoint with
        # its own estimator (motion control) is asked for each job.
        self.shared_estimate = price is None or isinstance(spec, PlainSpec) or type(spec).estimate_usd is JsonEndpoint.estimate_usd
        self.shapes: dict[tuple[Any, ...], _Shape] = {}
        self.by_sig: dict[Any, tuple[Any, ...]] | None = None  # shapes by the caller's sig (use_sigs)

    def use_sigs(self, templated: set[str], matrix_names: Iterable[str]) -> None:
        """Let :meth:`known` find a request's shape by the caller's *sig* (the model, the values of the matrix's
        request fields and their types): sound when every templated request field is a free text, no matrix
        variable is one (a text's presence would vary with its value) and no field is a media file."""
        free = set(self.text_names)
        if free and templated <= free and not self.media and not free.intersection(matrix_names):
            self.by_sig = {}

    # ------------------------------------------------------------- the fast path

    def known(self, request: Mapping[str, Any], sig: Any = None) -> Known | None:
        """The body, JSON and estimate of ``request`` when its shape is known and its texts pass; else None.

        With ``sig`` (see :meth:`use_sigs`), the shape worked out for the first request of that sig is reused."""
        texts = self.texts
        if not texts:
            return None
        by_sig = self.by_sig
        try:
            if sig is None or by_sig is None:
                shape = self.shape_of(request)
            elif (shape := by_sig.get(sig)) is None:  # type: ignore[assignment]
                shape = self.shape_of(request)
                if len(by_sig) < MAX_SHAPES:
                    by_sig[sig] = shape
            found = self.shapes.get(shape)
        except TypeError:  # a list or a dict in the request (shots, a file reference): the full model
            return None
        if found is None:
            return None
        body = found.body.copy()
        for name in found.slots:
            value: str = request[name]
            low, high = texts[name]
            if not low <= len(value) <= high or not (value.isascii() or encodable(value)):
                return None
            body[name] = value
        estimate = found.estimate if self.shared_estimate else self.spec.estimate_usd(body, self.price)  # type: ignore[arg-type]
        return body, found.json_of(request), estimate, True

    def shape_of(self, request: Mapping[str, Any]) -> tuple[Any, ...]:
        """The request with each free text (a ``str`` in a free-text field) replaced by a marker, and the type
        of every value (``1``, ``1.0`` and ``True`` are equal keys otherwise). Kept shapes hold scalars only
        (:meth:`_keep`), so a request holding anything else never matches one."""
        probe = dict(request)
        for name in self.text_names:
            if type(probe.get(name)) is str:
                probe[name] = _TEXT
        return tuple(probe.items()), tuple(map(type, probe.values()))

    # ------------------------------------------------------------- the full path

    def learn(self, request: Mapping[str, Any], body: dict[str, Any]) -> Known:
        """``body`` (the request model's, for ``request``) with its JSON and estimate; its shape is kept if it may be."""
        spec = self.spec
        identity = spec.identity_body(body)
        body_json = canonical_json(identity)
        estimate = spec.estimate_usd(body, self.price) if self.price is not None else 0.0
        plain = identity is body
        if self.texts and plain and len(self.shapes) < MAX_SHAPES:
            self._keep(request, body, body_json, estimate)
        return body, body_json, estimate, plain

    def _keep(self, request: Mapping[str, Any], body: dict[str, Any], body_json: str, estimate: float) -> None:
        if self.media & body.keys() or not all(type(value) in _SCALARS for value in (*request.values(),
                                                                                     *body.values())):
            return  # a body holding a list or a dict is never shared between jobs
        shape = self.shape_of(request)
        slots = sorted(name for name in request if name in self.texts and type(request[name]) is str)
        if any(body.get(name) != request[name] for name in slots):
            return  # the model changed a text: the fast path could not reproduce it
        pieces: list[str] = []
        current = "{"
        for index, name in enumerate(sorted(body)):
            current += ("," if index else "") + encode_basestring(name) + ":"
            if name in slots:
                pieces.append(current)
                current = ""
            else:
                current += canonical_json(body[name])
        pieces.append(current + "}")
        found = _Shape(dict(body), estimate, pieces, slots)
        if found.json_of(body) == body_json:
            self.shapes[shape] = found




def _free_texts(spec: EndpointSpec) -> dict[str, tuple[int, int]]:
    """The fields of ``spec``'s request model whose text may vary per job without a full validation."""
    if isinstance(spec, PlainSpec):  # told in plain (tests/contract/test_plain_specs.py: the same as its model's)
        return spec.text_bounds()
    if not isinstance(spec, JsonEndpoint) or any(
        getattr(type(spec), name) is not getattr(JsonEndpoint, name) for name in ("request_body", "identity_body")
    ):
        return {}
    model = spec.request_model
    alone: frozenset[str] = getattr(model, "TEXT_ALONE", frozenset())
    config = model.model_config
    if not alone or any(config.get(option) for option in _CONFIG_OFF):
        return {}
    validated = {name for decorator in model.__pydantic_decorators__.field_validators.values()
                 for name in decorator.info.fields}
    free: dict[str, tuple[int, int]] = {}
    for name in alone:
        info = model.model_fields.get(name)
        if info is None or name in validated or name in spec.media_fields:
            continue
        bounds = _text_bounds(info.annotation, list(info.metadata))
        if bounds is not None:
            free[name] = bounds
    return free


def _text_bounds(annotation: Any, rules: list[Any]) -> tuple[int, int] | None:
    """(min, max) length of a ``str`` or ``str | None`` field (``Annotated`` lengths included); None otherwise."""
    if get_origin(annotation) in (Union, UnionType):
        args = [arg for arg in get_args(annotation) if arg is not NoneType]
        if len(args) != 1 or len(get_args(annotation)) != 2:
            return None
        annotation = args[0]
    if get_origin(annotation) is Annotated:
        from pydantic.fields import FieldInfo  # a full spec's model is built: pydantic is imported already

        annotation, *extra = get_args(annotation)
        for item in extra:
            if isinstance(item, FieldInfo):
                rules.extend(item.metadata)
            else:
                rules.append(item)
    if annotation is not str:
        return None
    low, high = 0, 1 << 62
    for rule in rules:
        kind = type(rule).__name__
        if kind == "MaxLen":
            high = min(high, int(rule.max_length))
        elif kind == "MinLen":
            low = max(low, int(rule.min_length))
        else:
            return None  # a pattern, strictness, a validator…: only the full model knows
    return low, high
