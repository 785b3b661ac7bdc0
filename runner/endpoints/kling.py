"""Field rules shared by every Kling v3.0 endpoint (``docs/provider.md`` §"The Kling v3.0 family").

Each endpoint module (:mod:`~runner.endpoints.kling_t2v`, :mod:`~runner.endpoints.kling_i2v`,
:mod:`~runner.endpoints.kling_motion`) declares its fields with the types below and subclasses
:class:`KlingBody`, which enforces the rules that span fields:

- ``prompt`` and ``multi_prompt`` are mutually exclusive, and one of them is required, on every
  endpoint that has both;
- the shots of ``multi_prompt`` add up to ``duration`` exactly (Kling's rule **[3p]**);
- ``end_image`` and ``multi_prompt`` are mutually exclusive **[doc]**.

:func:`wire_twin` derives the model of what the provider accepts from a request model: the same
rules, but a media input must be the string sent (a local file reference is the runner's own).
"""

from __future__ import annotations

import base64
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from runner.endpoints.kling_plain import (
    DURATION_DEFAULT,
    DURATION_MAX,
    DURATION_MIN,
    PROMPT_MAX,
    SHOT_PROMPT_MAX,
    SHOTS_MAX,
    TEXT_ALONE,
)

__all__ = [
    "DURATION_DEFAULT",
    "PROMPT_MAX",
    "SHOTS_MAX",
    "SHOT_PROMPT_MAX",
    "AspectRatio",
    "CfgScale",
    "Duration",
    "ImageShot",
    "KlingBody",
    "Prompt",
    "Shot",
    "data_uri",
    "shots",
    "wire_twin",
]

IMAGE_SHOT_MIN = 3  # [decision] per-shot minimum is unknown (1 s or 3 s); Std/4K I2V document 3-15 s

Prompt = Annotated[str, Field(max_length=PROMPT_MAX)]
Duration = Annotated[int, Field(ge=DURATION_MIN, le=DURATION_MAX)]
CfgScale = Annotated[float, Field(ge=0, le=1)]
AspectRatio = Literal["16:9", "9:16", "1:1"]  # kling_plain.ASPECT_RATIOS (tests/contract/test_plain_specs.py)


class Shot(BaseModel):
    """One shot of a multi-shot text-to-video: ``{prompt, duration, index?}`` (Kling's shape **[3p]**)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=SHOT_PROMPT_MAX)
    duration: int = Field(ge=1)
    index: int | None = Field(default=None, ge=0)


class ImageShot(BaseModel):
    """One shot of a multi-shot image-to-video: ``{prompt, duration}``, duration 3-15 s, default 5 **[doc]**."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=SHOT_PROMPT_MAX)
    duration: int = Field(default=DURATION_DEFAULT, ge=IMAGE_SHOT_MIN, le=15)


class KlingBody(BaseModel):
    """Base of the Kling v3.0 request models: strict, with the cross-field rules of the family."""

    model_config = ConfigDict(extra="forbid")

    #: Text fields the rules below read for presence only (None or not), never for their content: a
    #: manifest may validate a body's other fields once and each job's text alone (runner.manifest.bodies).
    TEXT_ALONE: ClassVar[frozenset[str]] = TEXT_ALONE

    @model_validator(mode="after")
    def _family_rules(self) -> KlingBody:
        fields = type(self).model_fields
        prompt = getattr(self, "prompt", None)
        multi = getattr(self, "multi_prompt", None)
        if "prompt" in fields and "multi_prompt" in fields and (prompt is None) == (multi is None):
            raise ValueError("exactly one of prompt and multi_prompt is required (they are mutually exclusive)")
        if multi is not None:
            duration = getattr(self, "duration", DURATION_DEFAULT)
            total = sum(shot.duration for shot in multi)
            if total != duration:
                raise ValueError(f"shot durations sum to {total} s but duration is {duration} s; they must be equal")
            if getattr(self, "end_image", None) is not None:
                raise ValueError("end_image and multi_prompt are mutually exclusive; drop one of them")
        return self


def wire_twin(model: type[BaseModel], **media: Any) -> type[BaseModel]:
    """``model`` with each field named in ``media`` retyped to the given wire annotation.

    The request model accepts a local file reference for a media input; the provider receives only
    strings. A field optional in ``model`` stays optional (``annotation | None``, same default).
    """
    overrides: dict[str, Any] = {}
    for name, annotation in media.items():
        info = model.model_fields[name]
        overrides[name] = (annotation, ...) if info.is_required() else (annotation | None, info.default)
    twin: type[BaseModel] = create_model(
        f"{model.__name__}Wire", __base__=model, __module__=model.__module__, **overrides
    )
    return twin


# ------------------------------------------------------------------ helpers for the examples


def shots(*durations: int) -> list[dict[str, Any]]:
    """Shots ``{prompt, duration}`` of the given durations."""
    return [{"prompt": f"shot {n}", "duration": d} for n, d in enumerate(durations, 1)]


def data_uri(data: bytes, mime: str) -> str:
    """``data:<mime>;base64,<data>``."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
