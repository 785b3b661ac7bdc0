"""The input media of a job — ``image``, ``end_image``, motion control's ``video`` — for pages and exports.

A job's stored request holds each input as the endpoint took it (:mod:`runner.endpoints.inputs`):
an ``https://`` URL, a ``data:`` URI, or a local file by reference (path relative to the manifest's
folder, sha256, size, MIME type). :func:`job_inputs` lists them; :func:`input_bytes` reads a local
or inline one back, but only when its bytes still hash to what was recorded, so a page or dataset
never shows an image the video was not made from. URLs are never fetched.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from runner import endpoints
from runner.endpoints.inputs import data_uri_bytes
from runner.endpoints.media import MediaKind, is_local_ref
from runner.endpoints.probe import MAX_BYTES
from runner.ledger import JobRecord
from runner.reporting.whole_file import open_new, temp_name

__all__ = ["JobInput", "input_bytes", "job_inputs", "write_input"]

_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/jpg": "jpg", "video/mp4": "mp4",
               "video/quicktime": "mov"}


@dataclass(frozen=True, slots=True)
class JobInput:
    """One media input of a job: a URL (``url``), or bytes known by ``sha256`` (a local file or a data URI)."""

    field: str
    kind: MediaKind
    url: str | None = None
    file: str | None = None  # a local file, relative to the manifest's folder
    sha256: str | None = None
    mime: str | None = None
    inline: bytes | None = None  # the bytes of a data: URI given in the request itself

    @property
    def extension(self) -> str:
        return _EXTENSIONS.get(self.mime or "", "bin")

    @property
    def label(self) -> str:
        """How to name it to a person: the file name, the URL, or "inline"."""
        return self.file or self.url or "inline data"


def job_inputs(job: JobRecord) -> list[JobInput]:
    """The media inputs of ``job``, in its endpoint's field order ([] for an unknown endpoint)."""
    try:
        spec = endpoints.get(job.model)
    except endpoints.UnknownEndpoint:
        return []
    found: list[JobInput] = []
    for name, kind in spec.media_fields.items():
        value = job.request.get(name)
        if is_local_ref(value):
            assert isinstance(value, dict)
            found.append(JobInput(name, kind, file=str(value["file"]), sha256=str(value["sha256"]),
                                  mime=str(value.get("mime") or "")))
        elif isinstance(value, str) and value.startswith("data:"):
            decoded = data_uri_bytes(value)
            if decoded is not None:
                mime, data = decoded
                found.append(JobInput(name, kind, sha256=hashlib.sha256(data).hexdigest(), mime=mime, inline=data))
        elif isinstance(value, str) and value:
            found.append(JobInput(name, kind, url=value))
    return found


def input_bytes(item: JobInput, root: Path | None) -> bytes | None:
    """The bytes of an inline or local input; None for a URL, a local file without ``root`` (the
    manifest's folder), or a file that is gone or no longer hashes to the recorded sha256."""
    if item.inline is not None:
        return item.inline
    if item.file is None or root is None:
        return None
    from runner.manifest.files import read_regular  # only an export of local inputs needs the manifest package

    path = root / PurePosixPath(item.file)
    try:  # a FIFO or a device there now is refused, never waited on nor read endlessly; a planned input is <= MAX_BYTES
        data, _ = read_regular(path, MAX_BYTES + 1)
    except OSError:
        return None
    return data if hashlib.sha256(data).hexdigest() == item.sha256 else None


def write_input(item: JobInput, root: Path | None, dest: Path) -> bool:
    """Write the input's verified bytes to ``dest`` (atomically; kept if already there); False when
    they are not available (see :func:`input_bytes`)."""
    if item.sha256 is not None and _holds(dest, item.sha256):
        return True
    data = input_bytes(item, root)
    if data is None:
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(dest)  # made new, never through a link planted there (its target was overwritten)
    try:
        with open(open_new(tmp), "wb") as out:
            out.write(data)
        os.replace(tmp, dest)
    except BaseException:  # a full disk: no temporary file left on it
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return True


def _holds(dest: Path, sha256: str) -> bool:
    """Whether ``dest`` is a regular file of these bytes (a FIFO there is not waited on, nor read: it is replaced)."""
    from runner.manifest.files import read_regular

    try:
        data, _ = read_regular(dest, MAX_BYTES + 1)
    except OSError:
        return False
    return hashlib.sha256(data).hexdigest() == sha256
