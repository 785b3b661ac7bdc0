"""The Kling v3.0 text-to-video endpoints in plain Python (:mod:`runner.endpoints.plain`), and the constants
the family's pydantic models (:mod:`~runner.endpoints.kling`, :mod:`~runner.endpoints.kling_t2v`) share
with them, so each number is written once."""

from __future__ import annotations

from runner.endpoints.api import Templating
from runner.endpoints.plain import PlainField, PlainSpec
from runner.pricing import Price

__all__ = ["FOURK_T2V", "PRO_T2V", "STD_T2V"]

PROMPT_MAX = 2500
SHOT_PROMPT_MAX = 512
SHOTS_MAX = 6
DURATION_DEFAULT = 5
DURATION_MIN, DURATION_MAX = 3, 15
CFG_SCALE_DEFAULT = 0.5
ASPECT_RATIOS = ("16:9", "9:16", "1:1")
ASPECT_RATIO_DEFAULT = "16:9"
TEXT_ALONE = frozenset({"prompt", "negative_prompt"})

CFG_SCALE_4K: float | None = None  # [decision] 4K's page shows no cfg_scale default: send none unless set

STD_PRICE = Price(per_second=0.084, per_second_sound=0.126)
PRO_PRICE = Price(per_second=0.112, per_second_sound=0.168)

#: Top-level ``prompt:`` and ``multi_prompt:`` templates; ``defaults.negative_prompt`` is a template too.
TEXT_TO_VIDEO = Templating(prompt="prompt", shots="multi_prompt", texts=("negative_prompt",))
#: Std and 4K: no ``multi_prompt:``.
SINGLE_SHOT = Templating(prompt="prompt", texts=("negative_prompt",))


def _fields(*, pro: bool, cfg_scale: float | None) -> tuple[PlainField, ...]:
    prompt = PlainField("prompt", "text", required=not pro, nullable=pro, high=PROMPT_MAX)
    shots = (PlainField("multi_prompt", "model", nullable=True),) if pro else ()
    return (
        prompt,
        *shots,
        PlainField("negative_prompt", "text", nullable=True, high=PROMPT_MAX),
        PlainField("duration", "int", default=DURATION_DEFAULT, low=DURATION_MIN, high=DURATION_MAX),
        PlainField("cfg_scale", "number", nullable=cfg_scale is None, default=cfg_scale, low=0, high=1),
        PlainField("aspect_ratio", "choice", default=ASPECT_RATIO_DEFAULT, choices=frozenset(ASPECT_RATIOS)),
        PlainField("sound", "bool", default=False),
    )


_T2V = "runner.endpoints.kling_t2v"  # the full specs, with their pydantic models

PRO_T2V = PlainSpec("kling-v3.0-pro-t2v", TEXT_TO_VIDEO, PRO_PRICE, _fields(pro=True, cfg_scale=CFG_SCALE_DEFAULT),
                    (_T2V, "PRO_T2V"), one_of=("prompt", "multi_prompt"), text_alone=TEXT_ALONE)
STD_T2V = PlainSpec("kling-v3.0-std-t2v", SINGLE_SHOT, STD_PRICE, _fields(pro=False, cfg_scale=CFG_SCALE_DEFAULT),
                    (_T2V, "STD_T2V"), text_alone=TEXT_ALONE)
FOURK_T2V = PlainSpec("kling-v3.0-4k-t2v", SINGLE_SHOT, None, _fields(pro=False, cfg_scale=CFG_SCALE_4K),
                      (_T2V, "FOURK_T2V"), text_alone=TEXT_ALONE)
