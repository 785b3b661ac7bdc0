"""Cost estimates: a price per second of output video, silent and with sound.

Each endpoint's default price lives with its spec (:mod:`runner.endpoints`);
Novita's own prices are mostly not published, so every figure derived from
them is an *estimate*. A manifest may override the price with
``pricing: {per_second: …, per_second_sound: …}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Price"]


@dataclass(frozen=True, slots=True)
class Price:
    """USD per second of output video, silent and with sound."""

    per_second: float
    per_second_sound: float

    def estimate(self, request: Mapping[str, Any]) -> float:
        seconds = int(request.get("duration", 5))
        rate = self.per_second_sound if request.get("sound") else self.per_second
        return round(seconds * rate, 6)
