"""Cost estimates. Novita's own price for Kling v3.0 Pro is not published;
the defaults are Kling's rate as quoted by resellers (provider-api.md) and
every figure derived from them is an *estimate*. A manifest may override the
table with ``pricing: {per_second: …, per_second_sound: …}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_PRICES", "Price", "estimate_usd", "price_for"]


@dataclass(frozen=True, slots=True)
class Price:
    """USD per second of output video, silent and with sound."""

    per_second: float
    per_second_sound: float

    def estimate(self, request: dict[str, Any]) -> float:
        seconds = int(request.get("duration", 5))
        rate = self.per_second_sound if request.get("sound") else self.per_second
        return round(seconds * rate, 6)


DEFAULT_PRICES: dict[str, Price] = {
    "kling-v3.0-pro-t2v": Price(per_second=0.112, per_second_sound=0.168),
}


def price_for(model: str, override: Price | None = None) -> Price:
    if override is not None:
        return override
    try:
        return DEFAULT_PRICES[model]
    except KeyError:
        raise KeyError(f"no price known for model {model!r}; set pricing: in the manifest") from None


def estimate_usd(model: str, request: dict[str, Any], override: Price | None = None) -> float:
    """Estimated cost of one task of ``model`` with this request body."""
    return price_for(model, override).estimate(request)
