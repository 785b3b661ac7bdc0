"""Kling v3.0 text-to-video: ``POST /v3/async/kling-v3.0-{std,pro,4k}-t2v`` (``docs/provider.md``).

The request models are strict (``extra="forbid"``): a typo must fail before money is spent. Every
documented field is filled with its documented default, so the stored request is also the body
the job key hashes and the body that is sent: text-to-video has no transport-only field.

- **Std**: ``prompt`` required, no ``multi_prompt``.
- **Pro**: ``prompt`` or ``multi_prompt`` (exactly one). Its model and keys are those of the
  original endpoint and must never change (``tests/unit/test_job_keys_golden.py``).
- **4K**: as Std; its page shows no ``cfg_scale`` default, so none is filled in (``CFG_SCALE_4K``).

Prices (estimates, USD per output second) quote Novita's pricing page **[3p]**: Std $0.084 silent,
$0.126 with sound; Pro $0.112 / $0.168; 4K unknown (a manifest's ``pricing:`` must give one).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from runner.endpoints.api import Examples, JsonEndpoint
from runner.endpoints.kling import (
    PROMPT_MAX,
    SHOT_PROMPT_MAX,
    SHOTS_MAX,
    AspectRatio,
    CfgScale,
    Duration,
    KlingBody,
    Prompt,
    Shot,
    shots,
)
from runner.endpoints.kling_plain import CFG_SCALE_4K, PRO_PRICE, SINGLE_SHOT, STD_PRICE, TEXT_TO_VIDEO

__all__ = [
    "CFG_SCALE_4K",
    "FOURK_T2V",
    "PRO_T2V",
    "STD_T2V",
    "KlingV3FourKT2V",
    "KlingV3ProT2V",
    "KlingV3StdT2V",
    "Shot",
]


class KlingV3ProT2V(KlingBody):
    """``POST /v3/async/kling-v3.0-pro-t2v`` — Kling v3.0 Pro text-to-video."""

    prompt: Prompt | None = None
    multi_prompt: list[Shot] | None = Field(default=None, min_length=1, max_length=SHOTS_MAX)
    negative_prompt: Prompt | None = None
    duration: Duration = 5
    cfg_scale: CfgScale = 0.5
    aspect_ratio: AspectRatio = "16:9"
    sound: bool = False


class KlingV3StdT2V(KlingBody):
    """``POST /v3/async/kling-v3.0-std-t2v`` — Kling v3.0 Std text-to-video (no ``multi_prompt``)."""

    prompt: Prompt
    negative_prompt: Prompt | None = None
    duration: Duration = 5
    cfg_scale: CfgScale = 0.5
    aspect_ratio: AspectRatio = "16:9"
    sound: bool = False


class KlingV3FourKT2V(KlingBody):
    """``POST /v3/async/kling-v3.0-4k-t2v`` — Kling v3.0 4K text-to-video (no ``multi_prompt``)."""

    prompt: Prompt
    negative_prompt: Prompt | None = None
    duration: Duration = 5
    cfg_scale: CfgScale | None = CFG_SCALE_4K
    aspect_ratio: AspectRatio = "16:9"
    sound: bool = False



_SINGLE_VALID: tuple[dict[str, Any], ...] = (
    {"prompt": "a red fox in the snow"},
    {"prompt": "", "duration": 3, "cfg_scale": 0, "aspect_ratio": "9:16"},
    {"prompt": "x" * PROMPT_MAX, "negative_prompt": "blur", "duration": 15, "cfg_scale": 1,
     "aspect_ratio": "1:1", "sound": True},
)
_COMMON_INVALID: tuple[dict[str, Any], ...] = (
    {},
    {"negative_prompt": "no prompt"},
    {"prompt": "p", "duration": 2},
    {"prompt": "p", "duration": 16},
    {"prompt": "p", "duration": 5.5},
    {"prompt": "p", "cfg_scale": 1.01},
    {"prompt": "p", "cfg_scale": -0.1},
    {"prompt": "p", "aspect_ratio": "4:3"},
    {"prompt": "x" * (PROMPT_MAX + 1)},
    {"prompt": "p", "negative_prompt": "x" * (PROMPT_MAX + 1)},
    {"prompt": "p", "seed": 1},
    {"prompt": "p", "image": "https://example.com/a.png"},
)

PRO_T2V_EXAMPLES = Examples(
    valid=(
        *_SINGLE_VALID,
        {"multi_prompt": shots(2, 3), "duration": 5},
        {"multi_prompt": [{"prompt": "a", "duration": "4", "index": 0}, *shots(1, 1, 1, 1, 2)], "duration": 10},
    ),
    invalid=(
        *_COMMON_INVALID,
        {"prompt": "both", "multi_prompt": shots(5)},
        {"multi_prompt": shots(2, 2), "duration": 5},
        {"multi_prompt": shots(1, 1, 1, 1, 1, 1, 1), "duration": 7},
        {"multi_prompt": [], "duration": 5},
        {"multi_prompt": [{"prompt": "x" * (SHOT_PROMPT_MAX + 1), "duration": 5}], "duration": 5},
        {"multi_prompt": [{"prompt": "a", "duration": 5, "camera": "pan"}], "duration": 5},
    ),
)

SINGLE_SHOT_EXAMPLES = Examples(
    valid=_SINGLE_VALID,
    invalid=(
        *_COMMON_INVALID,
        {"multi_prompt": shots(5)},
        {"multi_prompt": shots(2, 3), "duration": 5},
        {"prompt": "p", "multi_prompt": shots(5)},
    ),
)

PRO_T2V = JsonEndpoint(
    slug="kling-v3.0-pro-t2v",
    request_model=KlingV3ProT2V,
    templating=TEXT_TO_VIDEO,
    default_price=PRO_PRICE,
    examples=PRO_T2V_EXAMPLES,
)

STD_T2V = JsonEndpoint(
    slug="kling-v3.0-std-t2v",
    request_model=KlingV3StdT2V,
    templating=SINGLE_SHOT,
    default_price=STD_PRICE,
    examples=SINGLE_SHOT_EXAMPLES,
)

FOURK_T2V = JsonEndpoint(
    slug="kling-v3.0-4k-t2v",
    request_model=KlingV3FourKT2V,
    templating=SINGLE_SHOT,
    default_price=None,  # [?] no USD price found for 4K: a manifest's pricing: must give one
    examples=SINGLE_SHOT_EXAMPLES,
)
