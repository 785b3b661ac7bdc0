"""Resuming a video download cut off part-way: what one attempt hands the next, and when an answer may be
written on.

A presigned storage URL (S3's) answers with a strong ``ETag`` and ``Accept-Ranges: bytes``. When such a body is cut
off, the attempt keeps its sink (:class:`Partial`, carried to the next attempt by a :class:`Carry`), and the next one
asks ``Range: bytes=<have>-`` with ``If-Range: <etag>``. It writes on only when the 206 names exactly that range of
that object, with the Content-Length of that range (:func:`range_problem`); anything else drops the part and starts
over, so two versions of a file are never spliced. The download itself is :mod:`runner.client.download`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from runner.client.mp4walk import BoxWalk
from runner.storage.api import Sink

__all__ = ["Carry", "Partial", "range_problem", "resumable"]


@dataclass(slots=True)
class Partial:
    """A body cut off part-way that the next attempt may resume: its open sink and what was read into it."""

    sink: Sink
    total: int  # the whole file's size
    etag: str  # the object's strong validator, sent back as If-Range
    head: bytes  # the file's first bytes (for the media check)
    boxes: BoxWalk

    @property
    def size(self) -> int:
        return self.sink.size


class Carry:
    """What one attempt hands the next: a :class:`Partial`, or nothing."""

    __slots__ = ("partial",)

    def __init__(self) -> None:
        self.partial: Partial | None = None

    def drop(self) -> None:
        if self.partial is not None:
            self.partial.sink.abort()
            self.partial = None


def resumable(response: httpx.Response, total: int | None) -> str | None:
    """The strong ETag under which ``response``'s body, cut off, may be resumed; None when it may not be."""
    etag = str(response.headers.get("etag", ""))
    coding = response.headers.get("content-encoding", "identity").strip().lower()
    if (total is None or not etag or etag.startswith("W/") or coding not in ("", "identity")
            or (response.status_code == 200 and response.headers.get("accept-ranges", "").strip().lower() != "bytes")):
        return None
    return etag


def range_problem(response: httpx.Response, partial: Partial, length: int | None) -> str | None:
    """What is wrong with a 206 answering ``Range: bytes=<partial.size>-`` (None: it is the rest of that file)."""
    want = f"bytes {partial.size}-{partial.total - 1}/{partial.total}"
    got = response.headers.get("content-range", "").strip()
    if got != want:
        return f"a range {got!r} where {want!r} was asked"
    if length != partial.total - partial.size:  # the body's framing: its end must be the file's
        return f"a Content-Length of {response.headers.get('content-length')!r} for the range {want!r}"
    if response.headers.get("etag", partial.etag) != partial.etag:
        return "another version of the file (its ETag changed)"
    if resumable(response, partial.total) is None:
        return "a range that may not be resumed (weak or no ETag, or a content coding)"
    return None
