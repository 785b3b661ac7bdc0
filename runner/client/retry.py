"""Small retry helpers for the idempotent GETs: Retry-After and jittered backoff.

Only GETs are retried here (task-result, downloads). The submit POST is never
retried by the client; see :mod:`runner.client.submit`.

Kept rather than stamina: stamina sleeps with asyncio/trio itself and jitters with the global
``random``, so tests could not inject the sleep and seeded rng they use to check Retry-After and
backoff without waiting (docs/architecture.md, "Libraries, and what stays hand-written").
"""

from __future__ import annotations

import math
import random
import time
from email.utils import parsedate_to_datetime

__all__ = ["MAX_RETRY_AFTER_S", "backoff_delay", "parse_retry_after"]

# The longest wait a Retry-After may ask: past it the answer is a mistake or hostile (`Retry-After: 1e300` parked a
# run forever, hostile-data sweep 2026-12-05); a limit that truly lasts longer answers 429 again, and is waited again.
MAX_RETRY_AFTER_S = 600.0


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header, or None when absent or unreadable.

    Accepts delta-seconds (``"3"``, also ``"1.5"``) and an HTTP-date
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``, compared with ``now``, Unix seconds,
    default the wall clock). A date in the past gives 0; any wait is capped at :data:`MAX_RETRY_AFTER_S`.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds) and seconds >= 0:
            return min(seconds, MAX_RETRY_AFTER_S)
        return None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        return None
    current = time.time() if now is None else now
    return min(MAX_RETRY_AFTER_S, max(0.0, when.timestamp() - current))


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)].

    ``attempt`` counts retries from 0 (the first retry waits up to ``base``).
    """
    ceiling = min(cap, base * (2.0 ** min(attempt, 62)))
    return rng.uniform(0.0, max(0.0, ceiling))
