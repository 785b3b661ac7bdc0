"""The manifest file's keys, read into plain values (:class:`Spec`), and their error messages.

A manifest whose every key holds a value of the exact type its model takes (a ``str``, an ``int``
within bounds, a mapping with text keys, limits as :func:`runner.config.convert` reads them) is read
here with plain Python: planning it imports no pydantic (issue 14: start-up). Anything else goes
through the pydantic models of :mod:`runner.manifest.spec_models` — every error is theirs, worded as
before — and their result is read into the same plain values.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from runner.config import BY_NAME, DEFAULTS, convert
from runner.errors import ManifestError, UsageError
from runner.layout import OUTPUTS_DIR, RESERVED_FOLDERS
from runner.manifest.loader import LineMap
from runner.storage.api import caseless

if TYPE_CHECKING:
    from runner.manifest.spec_models import ManifestSpec, PricingSpec

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_OUTPUT",
    "InputsSpec",
    "Limits",
    "ManifestSpec",
    "PricingSpec",
    "ShotSpec",
    "Spec",
    "parse_spec",
]

DEFAULT_MODEL = "kling-v3.0-pro-t2v"
DEFAULT_OUTPUT = "{key}.mp4"
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9._-]*$"
NAME_MAX = 100
MAX_JOBS = 100_000
#: The most a manifest plans: ten times the largest batch measured (docs/benchmarks.md, "Scale": 1M jobs, `plan`
#: ~20 s, the first run's planning ~1 min), so a batch that ran before still plans. A ``max_jobs`` past it reads as
#: it (a manifest written before the ceiling, ``max_jobs: 1000000000`` over a few jobs, plans as it did): a matrix
#: past it (a typo, 10^13 jobs, planned for days) is refused, and told to split into several manifests.
MAX_JOBS_CEILING = 10_000_000

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")  # NAME_PATTERN, read as a whole text (no "$" before a newline)
_BASE_URL = re.compile(r"https://[!-~]+")  # within the model's ^https://[^\s]+$: printable ASCII, no space
_MISSING: Any = object()


# Records, not dataclasses: a dataclass costs ~1 ms to define (its methods are generated), on every start.

_LIMITS = ("concurrency", "rpm", "poll_rpm", "poll_interval", "budget_usd", "downloads")
_WHOLE = frozenset({"concurrency", "downloads"})  # the int fields; the others are float


class Limits:
    """How hard the runner may push (``limits:``); defaults are :data:`runner.config.DEFAULTS`'.

    Immutable; ``given`` names the keys the file gave (:meth:`said`) and is not part of the value.
    """

    __slots__ = (*_LIMITS, "given")
    concurrency: int
    rpm: float | None
    poll_rpm: float | None
    poll_interval: float
    budget_usd: float | None
    downloads: int | None
    given: frozenset[str]

    def __init__(self, concurrency: int = DEFAULTS.concurrency, rpm: float | None = DEFAULTS.rpm,
                 poll_rpm: float | None = DEFAULTS.poll_rpm, poll_interval: float = DEFAULTS.poll_interval,
                 budget_usd: float | None = DEFAULTS.budget_usd, downloads: int | None = DEFAULTS.downloads,
                 given: frozenset[str] = frozenset()) -> None:
        for name, value in zip(self.__slots__, (concurrency, rpm, poll_rpm, poll_interval, budget_usd, downloads,
                                                given), strict=True):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Limits are immutable (cannot set {name!r})")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _LIMITS)

    def __eq__(self, other: object) -> bool:
        return self._values() == other._values() if isinstance(other, Limits) else NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return f"Limits({', '.join(f'{name}={getattr(self, name)!r}' for name in _LIMITS)})"

    def said(self) -> dict[str, Any]:
        """The limits the file gave, in the table's order (None is a lifted limit)."""
        return {name: getattr(self, name) for name in _LIMITS if name in self.given}


class ShotSpec:
    """One shot of ``multi_prompt``; ``prompt`` (and a text ``duration``) are templates."""

    __slots__ = ("duration", "index", "prompt")

    def __init__(self, prompt: str, duration: int | str, index: int | None = None) -> None:
        self.prompt = prompt
        self.duration = duration
        self.index = index

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ShotSpec):
            return NotImplemented
        return (self.prompt, self.duration, self.index) == (other.prompt, other.duration, other.index)

    def __hash__(self) -> int:
        return hash((self.prompt, self.duration, self.index))

    def __repr__(self) -> str:
        return f"ShotSpec(prompt={self.prompt!r}, duration={self.duration!r}, index={self.index!r})"


class InputsSpec(NamedTuple):
    """How local input files are sent: inline (the default) or as ``base_url`` + path."""

    base_url: str | None = None


class Spec(NamedTuple):
    """The keys of a manifest file (see ``docs/manifest.md``), checked; every one given (its default filled in)."""

    name: str
    model: str
    defaults: dict[str, Any]
    prompt: str | None
    multi_prompt: tuple[ShotSpec, ...] | None
    matrix: dict[str, Any] | None
    repeats: int
    output: str
    limits: Limits
    salt: str | None
    pricing: dict[str, Any] | None
    inputs: InputsSpec
    max_jobs: int
    in_doubt: Literal["hold", "resubmit"]
    retries: int


_KEYS = frozenset(Spec._fields)


def parse_spec(data: Any, lines: LineMap) -> Spec:
    """Validate the parsed YAML; the first problem becomes a ManifestError."""
    if not isinstance(data, dict):
        raise ManifestError(
            "a manifest is a YAML mapping (name:, prompt:, matrix: …)", path=lines.path, line=1, rule="manifest-shape"
        )
    spec = _plain(data)
    if spec is None:
        from runner.manifest.spec_models import validate_spec  # pydantic: it words the error, or reads the odd value

        spec = _from_model(validate_spec(data, lines))
    _check_name(spec.name, lines)
    return spec


def _check_name(name: str, lines: LineMap) -> None:
    """Refuse a ``name:`` that is (or, on a case-insensitive disk, is one file with) a folder the runner keeps
    beside the manifests' own under ``outputs/``: its videos would mix with the ones the runner moves there."""
    folded = caseless(name)
    taken = next((folder for folder in RESERVED_FOLDERS if caseless(folder) == folded), None)
    if taken is not None:
        folds = "" if name == taken else f", and a case-insensitive disk reads {name} as {taken}"
        raise ManifestError(
            f"name {name!r} is reserved: runner keeps its own videos in folders named"
            f" {' and '.join(RESERVED_FOLDERS)} under {OUTPUTS_DIR}/, where this manifest's would mix with them"
            f"{folds}; give this manifest another name:",
            path=lines.path, line=lines.line_of("name"), rule="reserved-name",
        )


def _from_model(model: ManifestSpec) -> Spec:
    limits = model.limits
    return Spec(
        name=model.name, model=model.model, defaults=model.defaults, prompt=model.prompt,
        multi_prompt=None if model.multi_prompt is None else tuple(
            ShotSpec(shot.prompt, shot.duration, shot.index) for shot in model.multi_prompt),
        matrix=model.matrix, repeats=model.repeats, output=model.output,
        limits=Limits(**{name: getattr(limits, name) for name in _LIMITS},
                      given=frozenset(limits.model_fields_set)),
        salt=model.salt, pricing=model.pricing, inputs=InputsSpec(model.inputs.base_url),
        max_jobs=min(model.max_jobs, MAX_JOBS_CEILING),
        in_doubt=model.in_doubt, retries=model.retries,
    )


# ------------------------------------------------------------------ the plain reading (None: ask the models)


def _text(value: Any) -> bool:
    if type(value) is not str:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _count(value: Any, low: int) -> bool:
    return type(value) is int and value >= low


def _mapping(value: Any) -> bool:
    return type(value) is dict and all(type(key) is str for key in value)


def _optional_text(data: dict[Any, Any], key: str) -> tuple[bool, str | None]:
    value = data.get(key)
    return value is None or _text(value), value


def _plain(data: dict[Any, Any]) -> Spec | None:
    """``data`` read as the models read it, when every value is one they take as it is; None otherwise."""
    if not _KEYS.issuperset(data):
        return None
    name = data.get("name", _MISSING)
    if not (_text(name) and len(name) <= NAME_MAX and _NAME.fullmatch(name)):
        return None
    model = data.get("model", DEFAULT_MODEL)
    defaults = data.get("defaults", _MISSING)
    matrix, pricing = data.get("matrix"), data.get("pricing")
    repeats, max_jobs, retries = data.get("repeats", 1), data.get("max_jobs", MAX_JOBS), data.get("retries", 0)
    output = data.get("output", DEFAULT_OUTPUT)
    (prompt_ok, prompt), (salt_ok, salt) = _optional_text(data, "prompt"), _optional_text(data, "salt")
    if not (_text(model) and prompt_ok and salt_ok and _text(output) and output
            and (defaults is _MISSING or _mapping(defaults)) and (matrix is None or _mapping(matrix))
            and (pricing is None or _mapping(pricing))
            and _count(repeats, 1) and _count(max_jobs, 1) and _count(retries, 0)):
        return None
    shots = _shots(data.get("multi_prompt"))
    limits = _limits(data.get("limits", _MISSING))
    inputs = _inputs(data.get("inputs", _MISSING))
    in_doubt = _in_doubt(data.get("in_doubt", _MISSING))
    if shots is _MISSING or limits is None or inputs is None or in_doubt is None:
        return None
    return Spec(name=name, model=model, defaults={} if defaults is _MISSING else dict(defaults), prompt=prompt,
                multi_prompt=shots, matrix=None if matrix is None else dict(matrix), repeats=repeats, output=output,
                limits=limits, salt=salt, pricing=None if pricing is None else dict(pricing), inputs=inputs,
                max_jobs=min(max_jobs, MAX_JOBS_CEILING), in_doubt=in_doubt, retries=retries)


def _shots(raw: Any) -> Any:
    """The shots of ``multi_prompt`` (None when absent); ``_MISSING`` when only the model may read them."""
    if raw is None:
        return None
    if type(raw) is not list:
        return _MISSING
    shots = []
    for item in raw:
        if type(item) is not dict or not {"prompt", "duration"} <= item.keys() <= {"prompt", "duration", "index"}:
            return _MISSING
        prompt, duration, index = item["prompt"], item["duration"], item.get("index")
        if not (_text(prompt) and (type(duration) is int or _text(duration)) and (index is None or type(index) is int)):
            return _MISSING
        shots.append(ShotSpec(prompt, duration, index))
    return tuple(shots)


def _limits(raw: Any) -> Limits | None:
    if raw is _MISSING:
        return Limits()
    if type(raw) is not dict or not set(_LIMITS).issuperset(raw):
        return None
    values: dict[str, Any] = {}
    for name, value in raw.items():
        try:
            value = convert(name, value, f"manifest {BY_NAME[name].manifest_key}")
        except UsageError:
            return None  # the model words it
        if value is None and name not in ("rpm", "poll_rpm", "budget_usd", "downloads"):
            return None
        if name in _WHOLE:
            if value is not None and type(value) is not int:
                return None
        elif value is not None:
            if type(value) not in (int, float):
                return None
            value = float(value)
        values[name] = value
    return Limits(**values, given=frozenset(values))


def _inputs(raw: Any) -> InputsSpec | None:
    if raw is _MISSING:
        return InputsSpec()
    if type(raw) is not dict or not {"base_url"}.issuperset(raw):
        return None
    base_url = raw.get("base_url")
    if base_url is not None and not (type(base_url) is str and _BASE_URL.fullmatch(base_url)):
        return None
    return InputsSpec(base_url)


def _in_doubt(raw: Any) -> Literal["hold", "resubmit"] | None:
    if raw is _MISSING:
        return DEFAULTS.in_doubt
    try:
        value = convert("in_doubt", raw, f"manifest {BY_NAME['in_doubt'].manifest_key}")
    except UsageError:
        return None
    return "hold" if value == "hold" else "resubmit" if value == "resubmit" else None


def __getattr__(name: str) -> Any:
    """The pydantic models (:mod:`runner.manifest.spec_models`), imported on first use."""
    if name in ("ManifestSpec", "PricingSpec"):
        from runner.manifest import spec_models

        return getattr(spec_models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
