"""How a media input is written in a request: an ``https://`` URL, a ``data:`` URI, or a local file.

The Kling v3.0 endpoints take ``image``, ``end_image`` and (motion control) ``video`` as JSON
strings (``docs/provider.md`` §"The Kling v3.0 family"). A job's request may hold, for each:

- an ``https://`` URL, sent as is and never fetched by runner (the provider fetches it);
- a ``data:image/png|jpeg;base64,…`` URI, decoded and checked against the documented input rules
  (:func:`runner.endpoints.probe.problems`) — here and in the simulator, with the same code;
- a :class:`~runner.endpoints.media.LocalFile` reference (request only: the wire body resolves it
  to one of the two forms above at submit time).

Decisions where the docs are silent (each a one-line constant, listed in ``docs/provider.md``):
plain ``http://`` is refused (``URL_SCHEMES``); a video input is a URL only, never inline
(``VIDEO_INLINE``), because motion control's page says "URL only".
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, PlainSerializer, PlainValidator, ValidationError

from runner.endpoints import probe
from runner.endpoints.local_file import LocalFile
from runner.endpoints.media import URL_SCHEMES, MediaKind

__all__ = [
    "URL_SCHEMES",
    "VIDEO_INLINE",
    "ImageInput",
    "ImageString",
    "VideoInput",
    "VideoString",
    "check_media_string",
    "data_uri_bytes",
]

VIDEO_INLINE = False  # [decision] motion control's `video` is "URL only" [doc]: no data: URI video
_DATA_URI = re.compile(r"^data:(?P<mime>[a-z]+/[a-z0-9.+-]+);base64,(?P<payload>.*)$", re.IGNORECASE | re.DOTALL)
_MIME_FORMATS = {
    "image": {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg"},
    "video": {"video/mp4": "mp4", "video/quicktime": "mov"},
}


def data_uri_bytes(value: str) -> tuple[str, bytes] | None:
    """``(mime, bytes)`` of a base64 ``data:`` URI; None when ``value`` is not one (or not decodable)."""
    match = _DATA_URI.match(value)
    if match is None:
        return None
    try:
        data = base64.b64decode(match["payload"], validate=True)
    except (binascii.Error, ValueError):
        return None
    return match["mime"].lower(), data


def check_media_string(value: str, kind: MediaKind, *, inline: bool = True) -> str:
    """``value`` if it is an input the provider takes as ``kind``; ``ValueError`` saying why not."""
    if value.startswith(URL_SCHEMES):
        if len(value) <= len("https://"):
            raise ValueError("a URL needs a host and a path")
        return value
    if value.startswith("http://"):
        raise ValueError("plain http:// is refused; use an https:// URL")
    if not value.lower().startswith("data:"):
        forms = "an https:// URL" + (f" or a data:{kind}/…;base64, URI" if inline else "")
        raise ValueError(f"an {kind} input must be {forms}" if kind == "image" else f"a {kind} input must be {forms}")
    if not inline:
        raise ValueError(f"this {kind} input takes an https:// URL only, not a data: URI")
    decoded = data_uri_bytes(value)
    if decoded is None:
        raise ValueError("not a base64 data: URI (expected data:<mime>;base64,<payload>)")
    mime, data = decoded
    formats = _MIME_FORMATS[kind]
    if mime not in formats:
        raise ValueError(f"data: URI of type {mime}; this {kind} input takes {', '.join(sorted(formats))}")
    try:
        info = probe.probe(data)
    except probe.NotMedia as exc:
        raise ValueError(f"data: URI of type {mime} is {exc}") from None
    if info.kind == kind and info.format != formats[mime]:
        raise ValueError(f"data: URI says {mime} but holds a {info.format} file")
    found = probe.problems(info, len(data), kind)
    if found:
        raise ValueError(f"the {kind} in the data: URI " + "; ".join(found))
    return value


def _image(value: str) -> str:
    return check_media_string(value, "image")


def _video(value: str) -> str:
    return check_media_string(value, "video", inline=VIDEO_INLINE)


ImageString = Annotated[str, AfterValidator(_image)]
"""An image input on the wire: an https URL or a checked ``data:image/…;base64,`` URI."""

VideoString = Annotated[str, AfterValidator(_video)]
"""A video input on the wire: an https URL (or, with ``VIDEO_INLINE``, a checked data URI)."""


def _request_input(kind: MediaKind, wire: Callable[[str], str]) -> Callable[[Any], str | LocalFile]:
    def validate(value: Any) -> str | LocalFile:
        if isinstance(value, str):
            return wire(value)
        if isinstance(value, LocalFile):
            ref = value
        elif isinstance(value, Mapping):
            try:
                ref = LocalFile.model_validate(value)
            except ValidationError as exc:
                fields = ", ".join(".".join(map(str, err["loc"])) or "?" for err in exc.errors(include_url=False))
                raise ValueError(f"not a local file reference {{file, sha256, size, kind, mime}} (bad: {fields})") from None
        else:
            raise ValueError(f"this {kind} input takes a string (an https:// URL or a data: URI) or a local file")
        if ref.kind != kind:
            raise ValueError(f"{ref.file} is a {ref.kind} file; this input takes {'an image' if kind == 'image' else 'a video'}")
        return ref

    return validate


def _dump(value: str | LocalFile) -> Any:
    return value.model_dump(mode="json", exclude_none=True) if isinstance(value, LocalFile) else value


ImageInput = Annotated[str | LocalFile, PlainValidator(_request_input("image", _image)), PlainSerializer(_dump)]
"""An image input in a job's request: a wire string, or a local image file by reference."""

VideoInput = Annotated[str | LocalFile, PlainValidator(_request_input("video", _video)), PlainSerializer(_dump)]
"""A video input in a job's request: a wire string, or a local video file by reference."""
