"""Pydantic models of the manifest file's keys, and their error messages.

Every model forbids unknown keys, so a typo fails loudly; the error is turned
into a :class:`~runner.errors.ManifestError` that names the file, the line of
the offending key and, for an unknown key, the closest known one.

:func:`runner.manifest.schema.parse_spec` reads a plain manifest without these models (issue 14:
start-up) and comes here for anything it cannot vouch for, so every error is still worded here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from runner.config import BY_NAME, DEFAULTS, convert
from runner.errors import ManifestError, UsageError
from runner.manifest.loader import LineMap
from runner.manifest.schema import DEFAULT_MODEL, DEFAULT_OUTPUT, MAX_JOBS, MAX_JOBS_CEILING, NAME_PATTERN
from runner.manifest.values import did_you_mean, shown

__all__ = ["InputsSpec", "Limits", "ManifestSpec", "PricingSpec", "ShotSpec", "validate_spec"]



def _setting(name: str, raw: Any) -> Any:
    """One manifest value read as the flag and the environment read it (runner.config), same ranges and words."""
    source = f"manifest {BY_NAME[name].manifest_key}"
    try:
        return convert(name, raw, source)
    except UsageError as exc:
        raise PydanticCustomError("setting", "{message}", {"message": str(exc)}) from None


class Limits(BaseModel):
    """How hard the runner may push: outstanding tasks, request rates, money.

    Defaults come from :data:`runner.config.DEFAULTS`; values are read by
    :func:`runner.config.convert`, so ``rpm: none`` lifts a cap here as
    ``--rpm none`` does, and a bad value is worded as for the flag.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    concurrency: int = Field(default=DEFAULTS.concurrency, description="tasks outstanding at the provider")
    rpm: float | None = Field(default=DEFAULTS.rpm, description="submits per minute; null = no cap")
    poll_rpm: float | None = Field(default=DEFAULTS.poll_rpm, description="task-result polls per minute; null = no cap")
    poll_interval: float = Field(default=DEFAULTS.poll_interval, description="seconds between polls of one task, at least")
    budget_usd: float | None = Field(default=DEFAULTS.budget_usd, description="stop submitting past this estimate")
    downloads: int | None = Field(default=DEFAULTS.downloads,
                                  description="concurrent downloads; null = one per 8 tasks outstanding (at least 4, at most 1024)")

    @field_validator("*", mode="before")
    @classmethod
    def _as_the_flag_reads_it(cls, raw: Any, info: ValidationInfo) -> Any:
        return _setting(str(info.field_name), raw)


class ShotSpec(BaseModel):
    """One shot of ``multi_prompt``; ``prompt`` (and a text ``duration``) are templates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str
    duration: int | str
    index: int | None = None


class PricingSpec(BaseModel):
    """USD per output second; sound defaults to 1.5 × silent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_second: float = Field(ge=0, allow_inf_nan=False)  # .inf: every estimate Infinity, invalid in JSON outputs
    per_second_sound: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class InputsSpec(BaseModel):
    """How local input files are sent: inline (``data:`` URIs, the default) or as ``base_url`` + path."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str | None = Field(default=None, pattern=r"^https://[^\s]+$")


class ManifestSpec(BaseModel):
    """The keys a manifest file may have (see ``docs/manifest.md``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, max_length=100)
    model: str = DEFAULT_MODEL
    defaults: dict[str, Any] = Field(default_factory=dict)
    prompt: str | None = None
    multi_prompt: list[ShotSpec] | None = None
    matrix: dict[str, Any] | None = None
    repeats: int = Field(default=1, ge=1)
    output: str = Field(default=DEFAULT_OUTPUT, min_length=1)
    limits: Limits = Field(default_factory=Limits)
    salt: str | None = None
    pricing: dict[str, Any] | None = None  # one PricingSpec, or {model: PricingSpec} (runner.manifest.models)
    inputs: InputsSpec = Field(default_factory=InputsSpec)
    max_jobs: int = Field(default=MAX_JOBS, ge=1)  # past MAX_JOBS_CEILING: read as it (runner.manifest.schema)
    in_doubt: Literal["hold", "resubmit"] = DEFAULTS.in_doubt

    @field_validator("in_doubt", mode="before")
    @classmethod
    def _in_doubt_as_the_flag_reads_it(cls, raw: Any) -> Any:
        return _setting("in_doubt", raw)
    retries: int = Field(default=0, ge=0)


_MODELS_AT: dict[str, type[BaseModel]] = {
    "limits": Limits, "pricing": PricingSpec, "multi_prompt": ShotSpec, "inputs": InputsSpec,
}

_HINTS = {
    "name": "use letters, digits, '.', '_' and '-', not starting with '.' or '-'",
    "in_doubt": "use 'hold' (default: wait for the operator) or 'resubmit' (pay again)",
    "max_jobs": f"a manifest plans 1 to {MAX_JOBS_CEILING:,} jobs (1,000,000 expand in about 15 s)",
    "inputs": "base_url is an https:// address where the input files are hosted, e.g. https://cdn.example.com/clips/",
}


def _model_for(loc: tuple[str | int, ...]) -> type[BaseModel]:
    names = [part for part in loc if isinstance(part, str)]
    return _MODELS_AT.get(names[0], ManifestSpec) if names else ManifestSpec


def _describe(loc: tuple[str | int, ...]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else (f".{part}" if i else part) for i, part in enumerate(loc))


def validate_spec(data: dict[Any, Any], lines: LineMap) -> ManifestSpec:
    """Validate the parsed YAML (a mapping); the first problem becomes a ManifestError."""
    try:
        return ManifestSpec.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        # A misspelt key also makes the right one "missing": report the typo.
        error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        loc = tuple(part for part in error["loc"] if isinstance(part, (str, int)))
        line = lines.line_of(*loc)
        kind = error["type"]
        if kind == "extra_forbidden":
            owner = _model_for(loc[:-1])
            where = f" in {_describe(loc[:-1])}" if loc[:-1] else ""
            unknown = str(loc[-1])
            message = f"unknown key {unknown!r}{where}{did_you_mean(unknown, owner.model_fields)}"
            rule = "unknown-key"
        elif kind == "setting":  # worded by runner.config, as for the flag and the variable
            message = str(error["msg"])
            rule = "schema:setting"
        elif kind == "missing":
            message = f"{_describe(loc)} is required"
            rule = "required-key"
        else:
            value = error.get("input")
            got = "" if isinstance(value, (dict, list)) else f" (got {shown(value)})"
            hint = _HINTS.get(str(loc[0]), "") if loc else ""
            message = f"{_describe(loc)}: {error['msg']}{got}" + (f"; {hint}" if hint else "")
            rule = f"schema:{kind}"
        raise ManifestError(message, path=lines.path, line=line, rule=rule) from exc
