"""Media inputs of a request (``image``, ``end_image``, ``video``): a URL, or a local file by reference.

A manifest names an input either as an ``https://`` URL, sent as is, or as a local file relative to
the manifest. A local file is stored in the job's request as a :class:`LocalFile` reference — its
path, the sha256 and size of its bytes, its kind and MIME type — never as megabytes of base64:

- the **identity body** (what the job key hashes) keeps only ``{"sha256": …}`` of a local file, so
  renaming or moving an input folder never re-keys a job, and editing one image's pixels re-keys
  exactly the jobs that use it (:func:`identity_value`);
- the **wire body** (what is POSTed) is built at submit time by an :class:`InputResolver`, which
  reads the file again, refuses it with :class:`InputChanged` when its bytes no longer match the
  recorded hash (nothing is sent), and returns the string the provider takes: a
  ``data:<mime>;base64,`` URI, or ``base_url + path`` for files the user hosts. The engine's resolver
  returns an :class:`Inline` instead of the URI: the file not read yet, read, checked and base64-encoded
  straight into the request's bytes by :mod:`runner.client.body` (a 10 MB image is then one 13 MB body in
  memory, not five full-size copies of it).

The resolver is supplied by whoever knows where the manifest lives (the manifest layer); the engine
only passes it to :meth:`runner.endpoints.EndpointSpec.wire_body`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

from runner.errors import RunnerError

if TYPE_CHECKING:
    from runner.endpoints.local_file import LocalFile

__all__ = [
    "Inline",
    "InputChanged",
    "InputNeedsUrl",
    "InputResolver",
    "LocalFile",
    "MediaKind",
    "identity_value",
    "is_local_ref",
    "wire_value",
]

MediaKind = Literal["image", "video"]

URL_SCHEMES = ("https://",)  # [decision] plain http:// is refused: the docs only ever show https URLs


class InputChanged(RunnerError):
    """A local input file is missing, unreadable, or no longer the bytes that were planned."""


class InputNeedsUrl(InputChanged):
    """A local file resolved to an inline ``data:`` URI for an input the provider takes only as a URL."""


class Inline:
    """A local file sent inline as a ``data:<mime>;base64,`` URI, not read yet: what a deferring resolver returns.

    ``pieces()`` reads the file in pieces and raises :class:`InputChanged` (after its last piece at the latest,
    before any piece past the planned size) when it is not the file planned; :mod:`runner.client.body` writes
    their base64 straight into the body's bytes, whose size is known before anything is read (:attr:`length`).
    """

    __slots__ = ("file", "mime", "pieces", "size")

    def __init__(self, file: str, mime: str, size: int, pieces: Callable[[], Iterator[bytes]]) -> None:
        self.file = file  # as the job's reference names it (messages)
        self.mime = mime
        self.size = size  # bytes of the file, as planned
        self.pieces = pieces

    @property
    def prefix(self) -> str:
        return f"data:{self.mime};base64,"

    @property
    def length(self) -> int:
        """Characters of the URI: the prefix and the base64 of ``size`` bytes."""
        return len(self.prefix) + 4 * ((self.size + 2) // 3)

    def text(self) -> str:
        """The URI itself, as an eager resolver returns it (whole copies: for a body that is not encoded here)."""
        import base64

        return self.prefix + base64.b64encode(b"".join(self.pieces())).decode("ascii")

    def __repr__(self) -> str:
        return f"Inline({self.file!r}, {self.mime!r}, {self.size})"


class InputResolver(Protocol):
    """Turns a local file reference into the string the provider receives, at submit time."""

    def wire_value(self, ref: LocalFile) -> str | Inline:
        """The wire form of ``ref`` (an :class:`Inline`: read later, when the body is encoded); raises
        :class:`InputChanged` when the file is not as planned."""
        ...


def is_local_ref(value: object) -> bool:
    """Whether a stored request value is a :class:`LocalFile` reference (a dict with a sha256)."""
    return isinstance(value, Mapping) and "sha256" in value and "file" in value


def identity_value(value: Any) -> Any:
    """What the job key hashes of one media value: a local file's content hash, a URL as is."""
    if is_local_ref(value):
        return {"sha256": value["sha256"]}
    return value


def wire_value(value: Any, resolver: InputResolver | None) -> Any:
    """What is sent for one media value: a URL as is; a local file through ``resolver``."""
    if not is_local_ref(value):
        return value
    from runner.endpoints.local_file import LocalFile  # pydantic: only a run that sends a local file needs it

    ref = LocalFile.model_validate(value)
    if resolver is None:
        raise InputChanged(f"input {ref.file} is a local file but no input resolver was given to send it")
    return resolver.wire_value(ref)


def __getattr__(name: str) -> Any:
    """:class:`LocalFile` (a pydantic model) is imported on first use: planning a text-to-video manifest
    imports no pydantic (issue 14: start-up)."""
    if name == "LocalFile":
        from runner.endpoints.local_file import LocalFile

        return LocalFile
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
