"""Kling v3.0 text-to-video: ``POST /v3/async/kling-v3.0-pro-t2v`` (``docs/provider.md``).

The request model is strict (``extra="forbid"``): a typo must fail before money is spent. Every
documented field is filled with its documented default, so the stored request is also the body
the job key hashes and the body that is sent: Pro T2V has no transport-only field.

Prices (estimates, USD per output second): $0.112 silent, $0.168 with sound — Kling's rate as
quoted by resellers; Novita's own is not published. A manifest's ``pricing:`` overrides them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from runner.endpoints.api import Examples, JsonEndpoint, Templating
from runner.pricing import Price

__all__ = ["PRO_T2V", "KlingV3ProT2V", "Shot"]

PROMPT_MAX = 2500
SHOT_PROMPT_MAX = 512
SHOTS_MAX = 6


class Shot(BaseModel):
    """One shot of a multi-shot video: ``{prompt, duration, index?}``."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=SHOT_PROMPT_MAX)
    duration: int = Field(ge=1)
    index: int | None = Field(default=None, ge=0)


class KlingV3ProT2V(BaseModel):
    """``POST /v3/async/kling-v3.0-pro-t2v`` — Kling v3.0 Pro text-to-video."""

    model_config = ConfigDict(extra="forbid")

    prompt: str | None = Field(default=None, max_length=PROMPT_MAX)
    multi_prompt: list[Shot] | None = Field(default=None, min_length=1, max_length=SHOTS_MAX)
    negative_prompt: str | None = Field(default=None, max_length=PROMPT_MAX)
    duration: int = Field(default=5, ge=3, le=15)
    cfg_scale: float = Field(default=0.5, ge=0, le=1)
    aspect_ratio: Literal["16:9", "9:16", "1:1"] = "16:9"
    sound: bool = False

    @model_validator(mode="after")
    def _prompt_xor_multi_prompt(self) -> KlingV3ProT2V:
        if (self.prompt is None) == (self.multi_prompt is None):
            raise ValueError("exactly one of prompt and multi_prompt is required (they are mutually exclusive)")
        if self.multi_prompt is not None:
            total = sum(shot.duration for shot in self.multi_prompt)
            if total != self.duration:
                raise ValueError(
                    f"shot durations sum to {total} s but duration is {self.duration} s; they must be equal"
                )
        return self


#: Top-level ``prompt:`` and ``multi_prompt:`` templates; ``defaults.negative_prompt`` is a template too.
TEXT_TO_VIDEO = Templating(prompt="prompt", shots="multi_prompt", texts=("negative_prompt",))

def _shots(*durations: int) -> list[dict[str, Any]]:
    return [{"prompt": f"shot {n}", "duration": d} for n, d in enumerate(durations, 1)]


PRO_T2V_EXAMPLES = Examples(
    valid=(
        {"prompt": "a red fox in the snow"},
        {"prompt": "", "duration": 3, "cfg_scale": 0, "aspect_ratio": "9:16"},
        {"prompt": "x" * PROMPT_MAX, "negative_prompt": "blur", "duration": 15, "cfg_scale": 1,
         "aspect_ratio": "1:1", "sound": True},
        {"multi_prompt": _shots(2, 3), "duration": 5},
        {"multi_prompt": [{"prompt": "a", "duration": "4", "index": 0}, *_shots(1, 1, 1, 1, 2)], "duration": 10},
    ),
    invalid=(
        {},
        {"negative_prompt": "no prompt"},
        {"prompt": "both", "multi_prompt": _shots(5)},
        {"prompt": "p", "duration": 2},
        {"prompt": "p", "duration": 16},
        {"prompt": "p", "duration": 5.5},
        {"prompt": "p", "cfg_scale": 1.01},
        {"prompt": "p", "aspect_ratio": "4:3"},
        {"prompt": "x" * (PROMPT_MAX + 1)},
        {"prompt": "p", "seed": 1},
        {"multi_prompt": _shots(2, 2), "duration": 5},
        {"multi_prompt": _shots(1, 1, 1, 1, 1, 1, 1), "duration": 7},
        {"multi_prompt": [], "duration": 5},
        {"multi_prompt": [{"prompt": "x" * (SHOT_PROMPT_MAX + 1), "duration": 5}], "duration": 5},
        {"multi_prompt": [{"prompt": "a", "duration": 5, "camera": "pan"}], "duration": 5},
    ),
)

PRO_T2V = JsonEndpoint(
    slug="kling-v3.0-pro-t2v",
    request_model=KlingV3ProT2V,
    templating=TEXT_TO_VIDEO,
    default_price=Price(per_second=0.112, per_second_sound=0.168),
    examples=PRO_T2V_EXAMPLES,
)
