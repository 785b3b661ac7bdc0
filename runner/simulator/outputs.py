"""What a simulated task outputs: the display size and length of its video, from the request.

The real Kling v3.0 models output a video whose aspect ratio is the request's ``aspect_ratio``
(text-to-video) or the input image's (image-to-video, motion control), at a height set by the tier,
as long as the request's ``duration`` — or, for motion control, 5 s with ``character_orientation:
image`` and the reference clip's length with ``video``. The simulator writes that size and length
into the headers of its sample MP4 (:func:`runner.simulator.media.shaped_video`), so probing a
result (:func:`runner.endpoints.probe.probe`) reports what the request asked for.

The simulator never fetches a URL: an image given by URL gives a 16:9 output, and a motion-control
reference given by URL lasts ``SimConfig.reference_seconds`` (the real length is unknown to it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runner.endpoints import probe
from runner.endpoints.inputs import data_uri_bytes
from runner.simulator.config import SimConfig

__all__ = ["IMAGE_ORIENTATION_SECONDS", "SHORT_SIDE", "VideoShape", "output_shape"]

SHORT_SIDE = {"std": 720, "pro": 1080, "4k": 2160}  # px of the shorter side per tier [guess: 720p/1080p/2160p]
IMAGE_ORIENTATION_SECONDS = 5.0
REFERENCE_MAX_SECONDS = 30.0
_ASPECTS = {"16:9": (16, 9), "9:16": (9, 16), "1:1": (1, 1)}
_MOTION_TIERS = {"kling-v3-0-std": "std", "kling-v3-0-pro": "pro"}


@dataclass(frozen=True, slots=True)
class VideoShape:
    """Display size (px) and length (s) written into a result's MP4 headers."""

    width: int
    height: int
    seconds: float


def _probed(value: Any) -> probe.MediaInfo | None:
    """What a ``data:`` URI input holds; None for a URL (never fetched) or anything unreadable."""
    if not isinstance(value, str):
        return None
    decoded = data_uri_bytes(value)
    if decoded is None:
        return None
    try:
        return probe.probe(decoded[1])
    except probe.NotMedia:
        return None


def _size(tier: str, ratio: tuple[int, int]) -> tuple[int, int]:
    short = SHORT_SIDE.get(tier, SHORT_SIDE["std"])
    wide, tall = ratio
    if wide >= tall:
        return 2 * round(short * wide / tall / 2), short
    return short, 2 * round(short * tall / wide / 2)


def output_shape(slug: str, body: Mapping[str, Any], cfg: SimConfig) -> VideoShape:
    """The size and length of the video a task of ``slug`` with ``body`` outputs."""
    motion = slug.endswith("motion-control")
    parts = slug.split("-")
    tier = _MOTION_TIERS.get(str(body.get("model_name")), "std") if motion else (parts[2] if len(parts) > 3 else "std")
    if "image" in body:
        image = _probed(body["image"])
        ratio = (image.width, image.height) if image is not None and image.height > 0 else _ASPECTS["16:9"]
    else:
        ratio = _ASPECTS.get(str(body.get("aspect_ratio", "16:9")), _ASPECTS["16:9"])
    width, height = _size(tier, ratio)
    if not motion:
        duration = body.get("duration", 5)
        seconds = float(duration) if isinstance(duration, int | float) else 5.0
    elif body.get("character_orientation") == "image":
        seconds = IMAGE_ORIENTATION_SECONDS
    else:  # "video", or unset (the provider's default is unknown: the longer reading)
        reference = _probed(body.get("video"))
        known = reference.duration if reference is not None else None
        seconds = min(REFERENCE_MAX_SECONDS, known if known is not None else cfg.reference_seconds)
    return VideoShape(width, height, seconds)
