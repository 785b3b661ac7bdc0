"""The model as a variable: which endpoints a manifest's jobs use, and the price of each.

A job's endpoint is its ``model`` variable — from a matrix axis (``model: [kling-v3.0-std-t2v,
kling-v3.0-pro-t2v]``), a ``rows`` column or an ``include`` — or, without one (or with an empty
value), the manifest's top-level ``model:``. :func:`manifest_models` lists every endpoint some job
may use, checking each value against the registry where it is written, so an unknown model is
refused with its file and line before a job is built.

``pricing:`` is either one price for every job (``{per_second, per_second_sound}``, today's form)
or one per model (``{kling-v3.0-4k-t2v: {per_second: …}}``); :func:`parse_pricing` reads both.
A model that neither the manifest nor the endpoint prices has *no known price*: its jobs are
planned with an estimate of 0 and said to be unpriced, and a run with a budget refuses them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from runner import endpoints
from runner.endpoints.media import MediaKind
from runner.errors import ManifestError
from runner.manifest.loader import LineMap
from runner.manifest.matrix import Matrix
from runner.manifest.values import did_you_mean, shown
from runner.pricing import Price

__all__ = ["MODEL_VAR", "JobEndpoint", "Pricing", "check_model", "manifest_models", "parse_pricing", "union_fields"]

#: The variable that picks a job's endpoint.
MODEL_VAR = "model"

_INF = float("inf")
_PRICE_KEYS = frozenset({"per_second", "per_second_sound"})  # PricingSpec's fields (runner.manifest.spec_models)


class Pricing(NamedTuple):  # a record: no methods generated at every start (a dataclass costs ~1 ms)
    """A manifest's ``pricing:``: one price for every model (``single``) and/or one per model."""

    single: Price | None = None
    per_model: Mapping[str, Price] = MappingProxyType({})  # read only: one shared empty mapping

    def override(self, model: str) -> Price | None:
        """The manifest's price for ``model``, if it gives one."""
        return self.per_model.get(model, self.single)

    def price_for(self, model: str) -> Price | None:
        """The price used for ``model``'s estimates: the manifest's, else the endpoint's; None when unknown."""
        override = self.override(model)
        return override if override is not None else endpoints.get(model).default_price


class JobEndpoint(NamedTuple):  # a record: no methods generated at every start (a dataclass costs ~1 ms)
    """What expanding a job needs of its model, prepared once per model."""

    slug: str
    spec: endpoints.EndpointSpec
    fields: frozenset[str]  # the request fields a variable may set
    price: Price | None
    prompt_field: str
    shots_field: str
    media: Mapping[str, MediaKind]

    @classmethod
    def of(cls, slug: str, fields: frozenset[str], price: Price | None) -> JobEndpoint:
        spec = endpoints.get(slug)
        templating = spec.templating
        return cls(slug, spec, fields, price, templating.prompt or "prompt", templating.shots or "multi_prompt",
                   spec.media_fields)


def check_model(value: Any, *, path: str, line: int | None, job: str | None = None) -> str:
    """``value`` as a known endpoint slug, or a ManifestError naming the known ones (rule ``unknown-model``)."""
    slug = str(value)
    known = endpoints.slugs()
    if slug in known:
        return slug
    raise ManifestError(
        f"unknown model {shown(value)}{did_you_mean(slug, known)} (known: {', '.join(known)})",
        path=path,
        line=line,
        job=job,
        rule="unknown-model",
    )


def _price(raw: Any, where: str, lines: LineMap, *key: str) -> Price:
    if not isinstance(raw, dict):
        raise ManifestError(
            f"{where} must be a mapping {{per_second: …, per_second_sound: …}} (USD per output second)",
            path=lines.path, line=lines.line_of(*key), rule="schema:pricing",
        )
    plain = _plain_price(raw)
    if plain is not None:
        return plain
    from pydantic_core import ValidationError  # pydantic: it words the error, or reads the odd value

    from runner.manifest.spec_models import PricingSpec

    try:
        spec = PricingSpec.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])  # a typo, not "missing"
        name = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            message = f"unknown key {name!r} in {where}{did_you_mean(name, _PRICE_KEYS)}"
            rule = "unknown-key"
        else:
            message = f"{where}.{name}: {error['msg']}"
            rule = f"schema:{error['type']}"
        raise ManifestError(message, path=lines.path, line=lines.line_of(*key, name), rule=rule) from exc
    sound = spec.per_second_sound
    return Price(per_second=spec.per_second, per_second_sound=spec.per_second * 1.5 if sound is None else sound)


def _plain_price(raw: dict[Any, Any]) -> Price | None:
    """``raw`` as :class:`PricingSpec` reads it, when its values are finite numbers ≥ 0 as they are; None otherwise."""
    if "per_second" not in raw or not _PRICE_KEYS.issuperset(raw):
        return None
    per_second, sound = raw["per_second"], raw.get("per_second_sound")
    if not (type(per_second) in (int, float) and 0 <= per_second < _INF) or not (
            sound is None or (type(sound) in (int, float) and 0 <= sound < _INF)):
        return None
    per_second = float(per_second)
    return Price(per_second=per_second, per_second_sound=per_second * 1.5 if sound is None else float(sound))


def parse_pricing(raw: Mapping[str, Any] | None, lines: LineMap) -> Pricing:
    """``pricing:`` as one price (keys ``per_second``/``per_second_sound``) or a price per model slug."""
    if raw is None:
        return Pricing()
    if not raw or set(raw) & _PRICE_KEYS or not all(isinstance(value, dict) for value in raw.values()):
        return Pricing(single=_price(dict(raw), "pricing", lines, "pricing"))
    per_model: dict[str, Price] = {}
    for slug, value in raw.items():
        check_model(slug, path=lines.path, line=lines.line_of("pricing", slug))
        per_model[slug] = _price(value, f"pricing.{slug}", lines, "pricing", slug)
    return Pricing(per_model=per_model)


def manifest_models(default: str, matrix: Matrix, lines: LineMap) -> tuple[str, ...]:
    """Every endpoint some job of the manifest may use (sorted); each value is checked where it is written."""
    found: set[str] = set()
    uses_default = True
    for axis in matrix.axes:
        if MODEL_VAR not in axis.names:
            continue
        uses_default = False
        column = axis.names.index(MODEL_VAR)
        for values, _, line in axis.items():
            value = values[column]
            if value == "":
                uses_default = True
            else:
                found.add(check_model(value, path=axis.path, line=line))
    for include in matrix.includes:
        value = include.entry.get(MODEL_VAR, "")
        if value != "":
            found.add(check_model(value, path=lines.path, line=include.key_lines.get(MODEL_VAR, include.line)))
        elif not matrix.extends[include.index]:
            uses_default = True  # a new combination without a model of its own
    if uses_default or not found:
        found.add(default)
    return tuple(sorted(found))


def union_fields(models: Iterable[str], fields: Any) -> frozenset[str]:
    """The union of ``fields(model)`` over ``models``."""
    return frozenset().union(*(fields(model) for model in models))
