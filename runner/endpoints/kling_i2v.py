"""Kling v3.0 image-to-video: ``POST /v3/async/kling-v3.0-{std,pro,4k}-i2v`` (``docs/provider.md``).

``image`` (required) is the first frame and ``end_image`` (optional) the last; each is an
``https://`` URL, a ``data:image/…;base64,`` URI, or a local file by reference
(:mod:`runner.endpoints.inputs`). The output follows the image's aspect ratio, so there is **no
``aspect_ratio``** field. ``prompt`` and ``multi_prompt`` (shots ``{prompt, duration}``, 3-15 s
each, adding up to ``duration``) are mutually exclusive, one required; ``end_image`` excludes
``multi_prompt``. Pro's shot shape is not documented: it is sent as Std's **[guess]**. 4K's page
shows no ``cfg_scale`` default, so none is filled in (as for 4K text-to-video).

Prices (estimates, USD per output second): Std $0.084 silent / $0.126 with sound, Pro $0.112 /
$0.168 **[3p]**; 4K unknown. A manifest's ``pricing:`` overrides them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from runner.endpoints.api import Examples, JsonEndpoint, Templating
from runner.endpoints.inputs import ImageInput, ImageString
from runner.endpoints.kling import (
    SHOT_PROMPT_MAX,
    SHOTS_MAX,
    CfgScale,
    Duration,
    ImageShot,
    KlingBody,
    Prompt,
    data_uri,
    shots,
    wire_twin,
)
from runner.endpoints.kling_plain import CFG_SCALE_4K, PRO_PRICE, STD_PRICE
from runner.endpoints.media import MediaKind

__all__ = ["FOURK_I2V", "PRO_I2V", "STD_I2V", "KlingV3FourKI2V", "KlingV3I2V"]

IMAGE_INPUTS: dict[str, MediaKind] = {"image": "image", "end_image": "image"}


class KlingV3I2V(KlingBody):
    """``POST /v3/async/kling-v3.0-{std,pro}-i2v`` — Kling v3.0 image-to-video."""

    image: ImageInput
    end_image: ImageInput | None = None
    prompt: Prompt | None = None
    multi_prompt: list[ImageShot] | None = Field(default=None, min_length=1, max_length=SHOTS_MAX)
    negative_prompt: Prompt | None = None
    duration: Duration = 5
    cfg_scale: CfgScale = 0.5
    sound: bool = False


class KlingV3FourKI2V(KlingBody):
    """``POST /v3/async/kling-v3.0-4k-i2v`` — Kling v3.0 4K image-to-video (no ``cfg_scale`` default)."""

    image: ImageInput
    end_image: ImageInput | None = None
    prompt: Prompt | None = None
    multi_prompt: list[ImageShot] | None = Field(default=None, min_length=1, max_length=SHOTS_MAX)
    negative_prompt: Prompt | None = None
    duration: Duration = 5
    cfg_scale: CfgScale | None = CFG_SCALE_4K
    sound: bool = False


def _wire(model: type[BaseModel]) -> type[BaseModel]:
    return wire_twin(model, image=ImageString, end_image=ImageString)


#: Top-level ``prompt:`` and ``multi_prompt:`` templates; ``defaults.negative_prompt`` is a template too.
IMAGE_TO_VIDEO = Templating(prompt="prompt", shots="multi_prompt", texts=("negative_prompt",))

URL = "https://example.com/frames/first.png"


def _examples() -> tuple[tuple[dict[str, Any], ...], tuple[dict[str, Any], ...]]:
    """Built on first use: the generated images would cost every command that imports this module."""
    from runner.testing import make_jpeg, make_png  # test assets: only the examples need them

    png = data_uri(make_png(640, 360), "image/png")
    jpeg = data_uri(make_jpeg(300, 750), "image/jpeg")  # 1:2.5, the narrowest allowed
    wide = data_uri(make_png(750, 300), "image/png")  # 2.5:1, the widest allowed
    valid: tuple[dict[str, Any], ...] = (
        {"image": URL, "prompt": "the fox turns its head"},
        {"image": png, "prompt": "", "duration": 3, "cfg_scale": 0},
        {"image": jpeg, "end_image": wide, "prompt": "x" * 2500, "negative_prompt": "blur", "duration": 15,
         "cfg_scale": 1, "sound": True},
        {"image": URL, "end_image": "https://example.com/frames/last.jpg", "prompt": "dawn to dusk"},
        {"image": png, "multi_prompt": shots(3, 4), "duration": 7},
        {"image": URL, "multi_prompt": [{"prompt": "one long shot", "duration": "5"}]},
        {"image": URL, "multi_prompt": shots(3, 3, 3, 3, 3), "duration": 15},
    )
    invalid: tuple[dict[str, Any], ...] = (
        {},
        {"prompt": "no image"},
        {"image": URL},
        {"image": URL, "prompt": "p", "aspect_ratio": "16:9"},
        {"image": URL, "prompt": "both", "multi_prompt": shots(5)},
        {"image": URL, "end_image": URL, "multi_prompt": shots(5)},
        {"image": URL, "multi_prompt": shots(2, 3), "duration": 5},
        {"image": URL, "multi_prompt": shots(3, 3), "duration": 5},
        {"image": URL, "multi_prompt": shots(16), "duration": 15},
        {"image": URL, "multi_prompt": [{"prompt": "a", "duration": 5, "index": 0}]},
        {"image": URL, "multi_prompt": [{"prompt": "x" * (SHOT_PROMPT_MAX + 1), "duration": 5}]},
        {"image": URL, "multi_prompt": []},
        {"image": URL, "prompt": "p", "duration": 2},
        {"image": URL, "prompt": "p", "duration": 16},
        {"image": URL, "prompt": "p", "cfg_scale": 1.5},
        {"image": URL, "prompt": "p", "seed": 1},
        {"image": "http://example.com/a.png", "prompt": "plain http"},
        {"image": "example.com/a.png", "prompt": "no scheme"},
        {"image": "", "prompt": "empty"},
        {"image": 5, "prompt": "a number"},
        {"image": data_uri(make_png(299, 400), "image/png"), "prompt": "too small"},
        {"image": data_uri(make_png(300, 751), "image/png"), "prompt": "too narrow"},
        {"image": data_uri(make_png(640, 360), "image/gif"), "prompt": "wrong type"},
        {"image": data_uri(make_png(640, 360), "image/jpeg"), "prompt": "says jpeg, holds png"},
        {"image": "data:image/png;base64,@@@", "prompt": "not base64"},
        {"image": data_uri(b"hello", "image/png"), "prompt": "not an image"},
        {"image": URL, "end_image": data_uri(make_png(200, 200), "image/png"), "prompt": "small end"},
    )
    return valid, invalid


I2V_EXAMPLES = Examples(build=_examples)

_I2V_WIRE = _wire(KlingV3I2V)  # one wire model for Std and Pro, which share their request model

STD_I2V = JsonEndpoint(
    slug="kling-v3.0-std-i2v",
    request_model=KlingV3I2V,
    templating=IMAGE_TO_VIDEO,
    default_price=STD_PRICE,
    examples=I2V_EXAMPLES,
    wire=_I2V_WIRE,
    media_fields=IMAGE_INPUTS,
)

PRO_I2V = JsonEndpoint(
    slug="kling-v3.0-pro-i2v",
    request_model=KlingV3I2V,
    templating=IMAGE_TO_VIDEO,
    default_price=PRO_PRICE,
    examples=I2V_EXAMPLES,
    wire=_I2V_WIRE,
    media_fields=IMAGE_INPUTS,
)

FOURK_I2V = JsonEndpoint(
    slug="kling-v3.0-4k-i2v",
    request_model=KlingV3FourKI2V,
    templating=IMAGE_TO_VIDEO,
    default_price=None,  # [?] no USD price found for 4K: a manifest's pricing: must give one
    examples=I2V_EXAMPLES,
    wire=_wire(KlingV3FourKI2V),
    media_fields=IMAGE_INPUTS,
)
