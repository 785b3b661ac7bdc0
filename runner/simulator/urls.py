"""Presigned video URLs, like the S3 URLs the real API hands out.

A URL carries its expiry (on the simulator's clock), a sequence number that
makes every task-result call's URL fresh even when the clock stands still,
and an HMAC over both and the task id. No Bearer key is needed to fetch it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

__all__ = ["VIDEO_PREFIX", "SignedUrlCheck", "UrlSigner", "video_task_id"]

VIDEO_PREFIX = "/_sim/videos/"
_VIDEO_PATH = re.compile(r"^/_sim/videos/(?P<task_id>[A-Za-z0-9_-]{1,128})\.mp4$")


def video_task_id(path: str) -> str | None:
    """The task id in ``/_sim/videos/<task_id>.mp4``, or None if the path is not a video."""
    match = _VIDEO_PATH.match(path)
    return match["task_id"] if match else None


@dataclass(frozen=True, slots=True)
class SignedUrlCheck:
    """Outcome of checking a presigned URL: ``ok``, or the S3 error code and message."""

    ok: bool
    code: str = ""
    message: str = ""


class UrlSigner:
    """Signs and checks video URLs with a secret that lives as long as the simulator."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self._sequence = 0

    def _sig(self, task_id: str, expires: str, n: str) -> str:
        message = f"{task_id}\n{expires}\n{n}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def sign(self, base_url: str, task_id: str, *, expires: float) -> str:
        """An absolute URL for the task's video, valid until ``expires`` (simulator clock)."""
        self._sequence += 1
        expires_s = f"{expires:.3f}"
        n = str(self._sequence)
        query = urlencode({"expires": expires_s, "n": n, "sig": self._sig(task_id, expires_s, n)})
        return f"{base_url}{VIDEO_PREFIX}{task_id}.mp4?{query}"

    def check(self, task_id: str, query: dict[str, str], *, now: float) -> SignedUrlCheck:
        """Is this URL genuine and still valid at ``now``?"""
        expires, n, sig = query.get("expires", ""), query.get("n", ""), query.get("sig", "")
        if not (expires and n and sig) or not hmac.compare_digest(sig, self._sig(task_id, expires, n)):
            return SignedUrlCheck(
                False,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        try:
            expired = float(expires) <= now
        except ValueError:
            expired = True
        if expired:
            return SignedUrlCheck(False, "AccessDenied", "Request has expired")
        return SignedUrlCheck(True)
