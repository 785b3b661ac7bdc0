"""Kling v3.0 motion control: ``POST /v3/async/kling-v3.0-motion-control`` (``docs/provider.md``).

A character (``image``) performs the motion of a reference clip (``video``). Required: ``image``
(an https URL, a ``data:image/…`` URI or a local file), ``video`` (an https URL only, **[doc]**
"URL only"; a local video is sent as ``base_url + path`` and refused before sending otherwise)
and ``model_name`` (the tier). No ``duration``, ``cfg_scale`` nor ``sound``.

Output length: ``character_orientation: image`` gives 5 s; ``video`` follows the reference, up to
30 s. Neither ``character_orientation`` nor ``keep_original_sound`` has a documented default, so
runner sends them only when set (``ORIENTATION_DEFAULT``, ``KEEP_SOUND_DEFAULT``) and estimates an
unset orientation as the longer output.

Price: none is known (``PriceUnknown`` unless a manifest's ``pricing:`` gives one). The estimate is
``seconds × per_second × MODEL_TIERS[model_name]``: a ``pricing:`` gives the Std tier's rate and a
Pro job costs 4/3 of it (Pro/Std of the published text-to-video prices). ``seconds`` is 5 for
``character_orientation: image``; else the reference's length when known (a local file probed at
planning carries it), rounded up, at most 30; else 30 (a URL: the safe maximum).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from runner.endpoints import probe
from runner.endpoints.api import Examples, JsonEndpoint, Templating
from runner.endpoints.inputs import VIDEO_INLINE, ImageInput, ImageString, VideoInput, VideoString, data_uri_bytes
from runner.endpoints.kling import KlingBody, Prompt, data_uri, wire_twin
from runner.endpoints.media import MediaKind, is_local_ref
from runner.pricing import Price

__all__ = [
    "IMAGE_OUTPUT_SECONDS",
    "MOTION_CONTROL",
    "KlingV3MotionControl",
    "MotionControlEndpoint",
    "output_seconds",
    "reference_seconds",
]

IMAGE_OUTPUT_SECONDS = 5  # character_orientation: image -> a 5 s video [doc]
REFERENCE_MAX_SECONDS = 30  # character_orientation: video -> as long as the reference, at most 30 s [doc]
ORIENTATION_DEFAULT: Literal["image", "video"] | None = None  # [decision] default not documented: unset
KEEP_SOUND_DEFAULT: bool | None = None  # [decision] default cut off on the page (true on the twin [3p]): unset
MODEL_TIERS = {"kling-v3-0-std": 1.0, "kling-v3-0-pro": 0.112 / 0.084}  # [decision] Pro/Std as for T2V
MOTION_INPUTS: dict[str, MediaKind] = {"image": "image", "video": "video"}


class KlingV3MotionControl(KlingBody):
    """``POST /v3/async/kling-v3.0-motion-control`` — Kling v3.0 motion control."""

    image: ImageInput
    video: VideoInput
    model_name: Literal["kling-v3-0-std", "kling-v3-0-pro"]
    prompt: Prompt | None = None
    negative_prompt: Prompt | None = None
    character_orientation: Literal["image", "video"] | None = ORIENTATION_DEFAULT
    keep_original_sound: bool | None = KEEP_SOUND_DEFAULT


def reference_seconds(video: Any) -> float | None:
    """The length of a reference video when the request tells it (a probed local file, a data URI)."""
    if is_local_ref(video):
        seconds = video.get("duration")
        return float(seconds) if isinstance(seconds, int | float) else None
    if isinstance(video, str):
        decoded = data_uri_bytes(video)
        if decoded is not None:
            try:
                return probe.probe(decoded[1]).duration
            except probe.NotMedia:
                return None
    return None


def output_seconds(request: Mapping[str, Any]) -> int:
    """Seconds of output a motion-control request pays for (the safe maximum when unknown)."""
    if request.get("character_orientation") == "image":
        return IMAGE_OUTPUT_SECONDS
    seconds = reference_seconds(request.get("video"))
    if seconds is None:
        return REFERENCE_MAX_SECONDS
    return max(1, min(REFERENCE_MAX_SECONDS, math.ceil(seconds - 1e-6)))


@dataclass(frozen=True, slots=True)
class MotionControlEndpoint(JsonEndpoint):
    """Motion control's spec: priced by output length and tier, not by ``duration`` and ``sound``."""

    def estimate_usd(self, request: Mapping[str, Any], price: Price) -> float:
        tier = MODEL_TIERS.get(str(request.get("model_name")), max(MODEL_TIERS.values()))
        return round(output_seconds(request) * price.per_second * tier, 6)

    @property
    def at_most_why(self) -> str | None:
        return (f"priced at {REFERENCE_MAX_SECONDS} s, the longest output: runner cannot know their reference video's"
                " length before the result (a URL); the bill follows its real length")

    def estimated_at_most(self, request: Mapping[str, Any]) -> bool:
        return request.get("character_orientation") != "image" and reference_seconds(request.get("video")) is None


IMAGE = "https://example.com/characters/dancer.png"
VIDEO = "https://example.com/moves/salsa.mp4"


def _examples() -> tuple[tuple[dict[str, Any], ...], tuple[dict[str, Any], ...]]:
    """Built on first use: the generated images would cost every command that imports this module."""
    from runner.testing import make_png  # test assets: only the examples need them

    png = data_uri(make_png(400, 800), "image/png")
    valid: tuple[dict[str, Any], ...] = (
        {"image": IMAGE, "video": VIDEO, "model_name": "kling-v3-0-std"},
        {"image": png, "video": VIDEO, "model_name": "kling-v3-0-pro", "prompt": "a dancer on a rooftop",
         "negative_prompt": "blur", "character_orientation": "image", "keep_original_sound": False},
        {"image": IMAGE, "video": VIDEO, "model_name": "kling-v3-0-std", "character_orientation": "video",
         "keep_original_sound": True, "prompt": ""},
    )
    invalid: tuple[dict[str, Any], ...] = (
        {},
        {"video": VIDEO, "model_name": "kling-v3-0-std"},
        {"image": IMAGE, "model_name": "kling-v3-0-std"},
        {"image": IMAGE, "video": VIDEO},
        {"image": IMAGE, "video": VIDEO, "model_name": "kling-v3-0-4k"},
        {"image": IMAGE, "video": VIDEO, "model_name": "kling-v3.0-pro-t2v"},
        {"image": IMAGE, "video": VIDEO, "model_name": "kling-v3-0-std", "duration": 5},
        {"image": IMAGE, "video": VIDEO, "model_name": "kling-v3-0-std", "sound": True},
        {"image": IMAGE, "video": VIDEO, "model_name": "kling-v3-0-std", "cfg_scale": 0.5},
        {"image": IMAGE, "video": VIDEO, "model_name": "kling-v3-0-std", "character_orientation": "both"},
        {"image": IMAGE, "video": VIDEO, "model_name": "kling-v3-0-std", "multi_prompt": [{"prompt": "a", "duration": 5}]},
        {"image": IMAGE, "video": VIDEO, "model_name": "kling-v3-0-std", "prompt": "x" * 2501},
        {"image": IMAGE, "video": "http://example.com/moves/salsa.mp4", "model_name": "kling-v3-0-std"},
        {"image": IMAGE, "video": "data:video/mp4;base64,AAAA", "model_name": "kling-v3-0-std"},
        {"image": VIDEO[:-4], "video": png, "model_name": "kling-v3-0-std"},
        {"image": data_uri(make_png(120, 120), "image/png"), "video": VIDEO, "model_name": "kling-v3-0-std"},
    )
    return valid, invalid


MOTION_EXAMPLES = Examples(build=_examples)

MOTION_CONTROL = MotionControlEndpoint(
    slug="kling-v3.0-motion-control",
    request_model=KlingV3MotionControl,
    templating=Templating(prompt="prompt", texts=("negative_prompt",)),
    default_price=None,  # [?] no USD price found for motion control: a manifest's pricing: must give one
    examples=MOTION_EXAMPLES,
    wire=wire_twin(KlingV3MotionControl, image=ImageString, video=VideoString),
    media_fields=MOTION_INPUTS,
    url_only=frozenset() if VIDEO_INLINE else frozenset({"video"}),
)
