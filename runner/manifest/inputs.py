"""Media inputs named in a manifest: local files checked at plan time, resolved again at submit time.

A value of a media field (``image``, ``end_image``, motion control's ``video``) is either a URL
(``https://…``), sent as is, or the path of a local file relative to the manifest's folder; a ``data:`` URI is
refused (:func:`data_uri_refused`). At plan time :class:`InputFiles` reads each local file once, hashes it and checks
it against the provider's documented rules (:func:`runner.endpoints.probe.problems`); the job's
stored request then holds a :class:`~runner.endpoints.media.LocalFile` reference — path, sha256,
size, kind, MIME type — never the bytes, and the job key hashes only the sha256.

At submit time :class:`InputResolver` reads the file again: when it is missing or its bytes no
longer match the planned hash it raises :class:`~runner.endpoints.media.InputChanged` (nothing is
sent); otherwise it returns a ``data:<mime>;base64,…`` URI, or ``inputs.base_url`` + the path for
files the user hosts. The engine's resolver is ``deferred``: a file sent inline is an
:class:`~runner.endpoints.media.Inline`, read in pieces (and checked the same way) as the submit encodes the
body's bytes, before the job's write-ahead.
"""

from __future__ import annotations

import base64
import hashlib
import os
import posixpath
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote

from runner.endpoints.media import Inline, InputChanged, MediaKind
from runner.endpoints.probe import MAX_BYTES, NotMedia, probe, problems, too_large
from runner.manifest.files import NotAFile, open_regular, read_regular
from runner.manifest.matrix import Matrix

if TYPE_CHECKING:
    from runner.endpoints.local_file import LocalFile

__all__ = ["InputFiles", "InputProblem", "InputResolver", "data_uri_refused", "is_data_uri", "is_url", "media_values"]

URL_PREFIXES = ("https://", "http://", "data:")


def is_url(value: str) -> bool:
    """Whether a media value is a URL or a data URI rather than a file (a data URI is refused: :func:`data_uri_refused`)."""
    return value.lower().startswith(URL_PREFIXES)


def is_data_uri(value: str) -> bool:
    return value[:5].lower() == "data:"


def data_uri_refused(value: str) -> str:
    """Why a ``data:`` URI typed in a manifest is refused, and what to do instead.

    Kept, it would be stored whole in the ledger, in every job's request and variables (a 10 MB image is a 13 MB
    URI, per job, times the matrix), and sent as one string outside the cap on inline images' memory. A local file
    is stored as a reference and sent inline as the same ``data:`` URI, read at submit time within that cap.
    """
    return (f"a data: URI ({len(value):,} characters) is not taken in a manifest: it would be stored whole in the"
            " ledger for every job that uses it. Write the image to a file next to the manifest (the base64 decoded)"
            " and give its path instead: it is sent inline as the same data: URI, read when the job is submitted")


class InputProblem(ValueError):
    """A local input the plan refuses: missing, unreadable, or breaking a documented rule."""


def _relative(value: str, base_url: str | None) -> str:
    """The path as stored: POSIX, normalised; with a base URL, it must stay under the manifest's folder."""
    text = value.replace(os.sep, "/") if os.sep != "/" else value
    path = posixpath.normpath(text)
    if base_url is not None and (path.startswith("/") or path == ".." or path.startswith("../")):
        raise InputProblem(
            f"input {value}: with inputs.base_url, a file must be inside the manifest's folder (it is sent as"
            " base_url + its path)"
        )
    return path


def _on_disk(base: Path, path: str, listings: dict[Path, dict[str, str]] | None = None) -> str:
    """``path`` as the file system spells it. Values are planned in Unicode NFC (one job whatever the spelling),
    but a file copied from macOS keeps its name in NFD (``cafe\u0301.png``), and on Linux the NFC spelling does not
    open it: each part that does not exist is looked for among its folder's entries by its NFC form. The stored
    reference keeps the spelling found, so every later read opens the same file (the job's key follows the bytes,
    not the name). ``path`` as it is when nothing is found (the caller says the file is missing). ``listings`` keeps
    each folder's entries by NFC form, so a folder is listed once however many of its files are looked up (a folder
    of 100,000 names in NFD was listed and normalised again for each one: hours of plan)."""
    if path.isascii() or (base / path).exists():
        return path
    top = path.startswith("/")  # an absolute path (allowed without inputs.base_url): looked up from the root
    root = Path("/") if top else base
    parts: list[str] = []
    for part in path.lstrip("/").split("/"):
        here = root.joinpath(*parts)
        if not (here / part).exists():
            names = None if listings is None else listings.get(here)
            if names is None:
                try:
                    entries = os.listdir(here)
                except OSError:
                    return path
                names = {}
                for entry in entries:  # the first entry of an NFC form, as before (twins are refused elsewhere)
                    names.setdefault(unicodedata.normalize("NFC", entry), entry)
                if listings is not None:
                    listings[here] = names
            part = names.get(unicodedata.normalize("NFC", part), part)
        parts.append(part)
    return ("/" if top else "") + "/".join(parts)


def _sha256(path: Path) -> tuple[str, int, bytes]:
    """sha256, size and bytes of a file of at most MAX_BYTES (past it: its size, no hash and no bytes)."""
    data, size = read_regular(path, MAX_BYTES + 1)
    if size > MAX_BYTES or len(data) > MAX_BYTES:
        return "", max(size, len(data)), b""
    return hashlib.sha256(data).hexdigest(), len(data), data


@dataclass(slots=True)
class InputFiles:
    """The local inputs of one manifest: each file read, hashed and checked once per process."""

    base: Path
    base_url: str | None = None
    _seen: dict[tuple[str, MediaKind], dict[str, Any] | str] = field(default_factory=dict)
    _listings: dict[Path, dict[str, str]] = field(default_factory=dict)  # folders listed by NFC form (_on_disk)

    def reference(self, value: str, kind: MediaKind) -> dict[str, Any]:
        """The stored :class:`LocalFile` reference of the file ``value`` names; :class:`InputProblem` if refused."""
        path = _relative(value, self.base_url)
        found = self._seen.get((path, kind))
        if found is None:
            found = self._check(path, kind)
            self._seen[(path, kind)] = found
        if isinstance(found, str):
            raise InputProblem(found)
        return found

    def _check(self, path: str, kind: MediaKind) -> dict[str, Any] | str:
        path = _on_disk(self.base, path, self._listings)
        where = self.base / path
        try:
            sha, size, head = _sha256(where)
        except FileNotFoundError:
            return f"input {path}: no such file (looked for {where}; paths are relative to the manifest)"
        except IsADirectoryError:
            return f"input {path} is a folder; name a file, or make the folder an axis with {{glob: \"{path}/*.png\"}}"
        except NotAFile as exc:
            return f"input {path} is {exc.what}, not a regular file; name an image or video file"
        except OSError as exc:
            return f"input {path} cannot be read: {exc.strerror or exc}"
        if size > MAX_BYTES:
            return f"input {path} {too_large(size)}"
        try:
            info = probe(head)
        except NotMedia as exc:
            wanted = "jpg/jpeg/png" if kind == "image" else "mp4/mov"
            return f"input {path}: {exc}; this input takes {wanted}"
        found = problems(info, size, kind)
        if found:
            return f"input {path} " + "; ".join(found)
        seconds = info.duration if kind == "video" else None  # a reference video's length prices motion control
        from runner.endpoints.local_file import LocalFile  # pydantic: only a manifest with local inputs needs it

        return LocalFile(file=path, sha256=sha, size=size, kind=kind, mime=info.mime, duration=seconds).model_dump(
            exclude_none=True)

    def refusals(self, values: Iterable[tuple[str, MediaKind]]) -> list[str]:
        """One line per local file among ``values`` that the plan refuses."""
        refused: list[str] = []
        for value, kind in dict.fromkeys(values):
            try:
                self.reference(value, kind)
            except InputProblem as exc:
                refused.append(f"  {exc}")
        return refused

    def digest(self, values: Iterable[tuple[str, MediaKind]]) -> str:
        """A hash of the paths and contents of the local files among ``values`` (for re-planning).

        Each file is read once per process: the references made here serve the expansion too.
        """
        hasher = hashlib.sha256()
        for value, kind in sorted(set(values)):
            try:
                ref = self.reference(value, kind)
                mark = f"{ref['file']}\0{ref['sha256']}"
            except InputProblem as exc:  # expanding the manifest reports it, with its job and line
                mark = f"{value}\0refused: {exc}"
            hasher.update(f"{mark}\0".encode())
        return hasher.hexdigest()


def media_values(
    defaults: dict[str, Any], matrix: Matrix, media: dict[str, MediaKind]
) -> Iterator[tuple[str, MediaKind]]:
    """Every local file a manifest names in a media field: in ``defaults``, an axis, a rows column, an include."""
    for name, kind in media.items():
        value = defaults.get(name)
        if isinstance(value, str) and value and not is_url(value):
            yield value, kind
    for axis in matrix.axes:
        columns = [(index, media[name]) for index, name in enumerate(axis.names) if name in media]
        if not columns:
            continue
        for values, _, _ in axis.items():
            for index, kind in columns:
                value = values[index]
                if isinstance(value, str) and value and not is_url(value):
                    yield value, kind
    for include in matrix.includes:
        for name, kind in media.items():
            value = include.entry.get(name)
            if isinstance(value, str) and value and not is_url(value):
                yield value, kind


PIECE = 3 * 64 * 1024  # bytes of a deferred input read at a time (a multiple of 3: whole base64 quanta)


class InputResolver(NamedTuple):  # a record: no methods generated at every start (a dataclass costs ~1 ms)
    """Turns a stored local file reference into what is sent, at submit time; the engine's input resolver.

    ``deferred``: a file sent inline is returned as an :class:`~runner.endpoints.media.Inline`, read and checked
    in pieces as the body's bytes are encoded (the engine's, before the write-ahead); else as its data URI."""

    base: Path
    base_url: str | None = None
    deferred: bool = False

    def wire_value(self, ref: LocalFile) -> str | Inline:
        if self.deferred and self.base_url is None:
            return Inline(ref.file, ref.mime, ref.size, partial(self._pieces, ref))
        path = self.base / ref.file
        try:
            data, _ = read_regular(path, ref.size + 1)
        except OSError as exc:
            raise _unreadable(ref, path, exc) from exc
        if len(data) != ref.size or hashlib.sha256(data).hexdigest() != ref.sha256:
            raise _changed(ref)
        if self.base_url is not None:
            return self.base_url + quote(ref.file)
        return f"data:{ref.mime};base64," + base64.b64encode(data).decode("ascii")

    def _pieces(self, ref: LocalFile) -> Iterator[bytes]:
        """The file's bytes in pieces of :data:`PIECE`, opened as :func:`read_regular` opens it; InputChanged before
        a piece past the planned size, or after the last one when the bytes are not the planned ones."""
        path = self.base / ref.file
        hasher, total = hashlib.sha256(), 0
        try:
            handle = open_regular(path)
        except OSError as exc:
            raise _unreadable(ref, path, exc) from exc
        with handle:
            while True:
                try:
                    piece = handle.read(PIECE)
                except OSError as exc:
                    raise _unreadable(ref, path, exc) from exc
                if not piece:
                    break
                total += len(piece)
                if total > ref.size:
                    raise _changed(ref)
                hasher.update(piece)
                yield piece
        if total != ref.size or hasher.hexdigest() != ref.sha256:
            raise _changed(ref)


def _unreadable(ref: LocalFile, path: Path, exc: OSError) -> InputChanged:
    return InputChanged(
        f"input {ref.file} planned for this job cannot be read now ({exc.strerror or exc}; looked for {path});"
        " nothing was sent: put it back, or run again to plan with the files as they are"
    )


def _changed(ref: LocalFile) -> InputChanged:
    return InputChanged(
        f"input {ref.file} changed after it was planned (its bytes no longer match sha256 {ref.sha256[:12]}…);"
        " nothing was sent: run again to plan the new file as a new job"
    )
