"""The endpoint-spec seam: everything runner knows about one provider endpoint, and the registry.

An :class:`EndpointSpec` answers, for one slug (``POST /v3/async/<slug>``):

- **request**: which fields a job may set, every documented rule and default (``request_model``,
  strict); :meth:`~EndpointSpec.request_body` validates the fields and returns the *stored request*
  (defaults filled in, unset optionals left out) — what the ledger keeps and reports show;
- **templating**: which request fields a manifest writes as templates, and in which shape;
- **price**: the default rate and how a request is priced (a manifest's ``pricing:`` overrides it);
- **identity body**: what the job key hashes, derived from the stored request;
- **wire body**: what is POSTed, built from the stored request at submit time. It may add
  transport-only fields (a webhook URL, an image inlined as base64) that the identity body leaves
  out, so adding one never re-keys a job and never pays again;
- **media check**: what the fetch lane verifies of a downloaded result;
- **wire check**: the simulator's validation of a body it receives, so the simulator and the runner
  never disagree about what the provider accepts;
- **examples**: bodies the documented rules accept and refuse, which the contract suite starts from.

Adding an endpoint is one module (its request model and its spec) plus one line in
``runner/endpoints/__init__.py``; ``tests/contract/test_endpoint_specs.py`` then runs on it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from runner.endpoints.media import (
    URL_SCHEMES,
    Inline,
    InputNeedsUrl,
    InputResolver,
    MediaKind,
    identity_value,
    is_local_ref,
    wire_value,
)
from runner.errors import UsageError
from runner.pricing import Price

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = [
    "MP4_SIGNATURE",
    "EndpointSpec",
    "Examples",
    "JsonEndpoint",
    "PriceUnknown",
    "Templating",
    "UnknownEndpoint",
    "all_specs",
    "get",
    "mp4_problem",
    "register",
    "register_lazy",
    "slugs",
]

MP4_SIGNATURE = b"ftyp"  # an ISO-BMFF file starts with a box whose type, at bytes 4..8, is 'ftyp'


class UnknownEndpoint(UsageError):
    """runner does not know this endpoint."""


class PriceUnknown(UsageError):
    """No price is known for this endpoint."""


@dataclass(frozen=True, slots=True)
class Templating:
    """Which request fields a manifest writes as templates (``{var}``), and in which shape.

    ``prompt``: the field filled by the manifest's top-level ``prompt:`` text template (None: the
    endpoint takes no prompt). ``shots``: the field filled by the manifest's top-level
    ``multi_prompt:`` list — items ``{prompt, duration, index?}`` whose ``prompt`` (and a text
    ``duration``) are templates (None: no multi-shot). ``texts``: fields that are templates when
    given in ``defaults:``; a matrix value for one of them replaces it verbatim.
    """

    prompt: str | None = None
    shots: str | None = None
    texts: tuple[str, ...] = ()

    @property
    def top_level(self) -> frozenset[str]:
        """Fields only the manifest's top level sets (not ``defaults:`` nor a matrix axis)."""
        return frozenset(name for name in (self.prompt, self.shots) if name is not None)


class Examples:
    """Job fields the endpoint's documented rules accept (``valid``) and refuse (``invalid``).

    ``Examples(build=f)`` calls ``f() -> (valid, invalid)`` on first use: examples that hold generated
    images (:mod:`runner.testing`) cost nothing when a command only plans or runs.
    """

    __slots__ = ("_build", "_pair")

    def __init__(self, valid: tuple[Mapping[str, Any], ...] = (), invalid: tuple[Mapping[str, Any], ...] = (), *,
                 build: Callable[[], tuple[tuple[Mapping[str, Any], ...], tuple[Mapping[str, Any], ...]]] | None
                 = None) -> None:
        self._build = build
        self._pair = (valid, invalid)

    def _load(self) -> tuple[tuple[Mapping[str, Any], ...], tuple[Mapping[str, Any], ...]]:
        if self._build is not None:
            self._pair, self._build = self._build(), None
        return self._pair

    @property
    def valid(self) -> tuple[Mapping[str, Any], ...]:
        return self._load()[0]

    @property
    def invalid(self) -> tuple[Mapping[str, Any], ...]:
        return self._load()[1]


class EndpointSpec(Protocol):
    """One provider endpoint; see the module docstring for what each part means."""

    @property
    def slug(self) -> str: ...

    @property
    def request_model(self) -> type[BaseModel]:
        """The strict model of a job's request: every documented field, rule and default."""
        ...

    @property
    def wire_model(self) -> type[BaseModel]:
        """The strict model of a body the provider accepts (what the simulator validates)."""
        ...

    @property
    def templating(self) -> Templating: ...

    @property
    def default_price(self) -> Price | None:
        """The price used without a manifest ``pricing:``; None when no price is known."""
        ...

    @property
    def examples(self) -> Examples: ...

    @property
    def media_fields(self) -> Mapping[str, MediaKind]:
        """Request fields that carry a media input (a URL, or a local file by reference)."""
        ...

    @property
    def url_only(self) -> frozenset[str]:
        """Media fields the provider takes only as a URL: a local file there needs ``inputs: base_url``."""
        ...

    @property
    def output_extension(self) -> str:
        """The extension of the result's file (``.mp4``): what a manifest's ``output`` names end in."""
        ...

    def request_body(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Validate a job's fields; the stored request. Raises ``pydantic.ValidationError``."""
        ...

    def identity_body(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """What the job key hashes, from a stored request (no transport-only field)."""
        ...

    def wire_body(self, request: Mapping[str, Any], inputs: InputResolver | None = None) -> dict[str, Any]:
        """What is POSTed, from a stored request; built at submit time.

        Local media inputs are turned into what the provider takes by ``inputs``; raises
        :class:`runner.endpoints.media.InputChanged` (nothing may be sent) when one is not as planned.
        """
        ...

    def price(self, override: Price | None = None) -> Price:
        """The price for estimates: ``override`` (a manifest's ``pricing:``) or the default.

        Raises :class:`PriceUnknown` when neither is known.
        """
        ...

    def estimate_usd(self, request: Mapping[str, Any], price: Price) -> float:
        """Estimated USD cost of one task of this stored request at ``price``."""
        ...

    @property
    def at_most_why(self) -> str | None:
        """Why some requests are estimated at the most they may cost (``None``: every estimate is the price)."""
        ...

    def estimated_at_most(self, request: Mapping[str, Any]) -> bool:
        """Whether :meth:`estimate_usd` of this request is the most it may cost, not its price (see ``at_most_why``)."""
        ...

    def check_wire(self, body: Mapping[str, Any]) -> None:
        """The provider's validation of a received body (the simulator's); raises ``pydantic.ValidationError``."""
        ...

    def check_media(self, head: bytes) -> str | None:
        """What is wrong with a result whose file starts with ``head`` (≥ 8 bytes); None if it looks right."""
        ...


@dataclass(frozen=True, slots=True)
class JsonEndpoint:
    """An endpoint whose body is flat JSON validated by pydantic models and whose result is one MP4.

    The stored request is the request model's JSON dump (defaults filled, unset optionals left
    out). By default the identity body and the wire body are both that request (a copy each); an
    endpoint with transport-only fields overrides :meth:`wire_body` (or subclasses) and keeps them
    out of :meth:`identity_body`. ``media_fields`` name the inputs (:mod:`runner.endpoints.media`):
    the identity body keeps a local file's hash only, the wire body its resolved form. Prices are per output second, with a sound tier
    (:meth:`runner.pricing.Price.estimate`).
    """

    slug: str
    request_model: type[BaseModel]
    templating: Templating
    default_price: Price | None
    examples: Examples
    wire: type[BaseModel] | None = field(default=None)  # None: the wire model is the request model
    media_fields: Mapping[str, MediaKind] = field(default_factory=dict)
    url_only: frozenset[str] = field(default_factory=frozenset)
    output_extension: str = ".mp4"  # the result is one MP4 (check_media)

    @property
    def wire_model(self) -> type[BaseModel]:
        return self.request_model if self.wire is None else self.wire

    def request_body(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        return self.request_model.model_validate(fields).model_dump(mode="json", exclude_none=True)

    def identity_body(self, request: Mapping[str, Any]) -> dict[str, Any]:
        body = request if isinstance(request, dict) else dict(request)
        if not self.media_fields or not any(name in body for name in self.media_fields):
            return body
        return {name: identity_value(value) if name in self.media_fields else value for name, value in body.items()}

    def wire_body(self, request: Mapping[str, Any], inputs: InputResolver | None = None) -> dict[str, Any]:
        if not self.media_fields:
            return dict(request)
        body = {
            name: wire_value(value, inputs) if name in self.media_fields else value for name, value in request.items()
        }
        for name in self.url_only:
            value = body.get(name)
            if isinstance(value, Inline) or (isinstance(value, str) and not value.startswith(URL_SCHEMES)):
                source = request[name]["file"] if is_local_ref(request[name]) else "the value"
                raise InputNeedsUrl(
                    f"{self.slug} takes {name} only as an https:// URL, but {source} would be sent inline; "
                    "host the file and set inputs: base_url in the manifest"
                )
        return body

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
        self.wire_model.model_validate(body)

    def check_media(self, head: bytes) -> str | None:
        return mp4_problem(head)


def price_for(slug: str, default: Price | None, override: Price | None) -> Price:
    """A spec's price: the manifest's ``pricing:`` if it gives one, else the spec's default, else an error."""
    if override is not None:
        return override
    if default is None:
        raise PriceUnknown(f"no price known for model {slug!r}; set pricing: in the manifest")
    return default


def mp4_problem(head: bytes) -> str | None:
    """What is wrong with a result that should be one MP4 and starts with ``head``; None if it looks right."""
    if head[4:8] == MP4_SIGNATURE:
        return None
    return f"not an MP4 (no 'ftyp' box at bytes 4..8; got {head[:8]!r})"


# ------------------------------------------------------------------ the registry

_SPECS: dict[str, EndpointSpec] = {}
_LAZY: dict[str, Callable[[], EndpointSpec]] = {}  # slug -> loader: the module (and its models) built on first use


def register(spec: EndpointSpec) -> EndpointSpec:
    """Make ``spec`` known by its slug; a slug registered twice is a programming error."""
    if spec.slug in _SPECS or spec.slug in _LAZY:
        raise ValueError(f"endpoint {spec.slug!r} is registered twice")
    _SPECS[spec.slug] = spec
    return spec


def register_lazy(slug: str, load: Callable[[], EndpointSpec]) -> None:
    """Make ``slug`` known now and its spec built by ``load()`` when first asked for.

    A command that plans a text-to-video manifest then never builds the pydantic models of the
    image-to-video or motion-control endpoints (issue 14: start-up).
    """
    if slug in _SPECS or slug in _LAZY:
        raise ValueError(f"endpoint {slug!r} is registered twice")
    _LAZY[slug] = load


def get(slug: str) -> EndpointSpec:
    """The spec of ``slug``; :class:`UnknownEndpoint` naming the known slugs otherwise."""
    try:
        return _SPECS[slug]
    except (KeyError, TypeError):
        pass
    load = _LAZY.get(slug) if isinstance(slug, str) else None
    if load is not None:
        spec = load()
        if spec.slug != slug:
            raise ValueError(f"endpoint {slug!r} loaded as {spec.slug!r}")
        _SPECS[slug] = spec
        return spec
    known = slugs()
    close = difflib.get_close_matches(str(slug), list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise UnknownEndpoint(f"unknown model {slug!r}{hint} (known: {', '.join(known)})")


def slugs() -> tuple[str, ...]:
    """Every registered slug, sorted (loaded or not)."""
    return tuple(sorted({*_SPECS, *_LAZY}))


def all_specs() -> tuple[EndpointSpec, ...]:
    """Every registered spec, sorted by slug (this builds them all)."""
    return tuple(get(slug) for slug in slugs())
