"""The output store seam: where a paid-for video is written, found, linked and checked.

The engine, the reporting and the exports never compose paths under the state
directory: they name a video by its path *relative to the store* (the ledger's
``path`` column, e.g. ``outputs/batch/fox.mp4``) and ask an :class:`OutputStore`.

Writing goes through a :class:`Sink`: bytes are written into it (their sha256
and size computed as they pass), then :meth:`Sink.commit` makes them durable
and visible at the name in one step, or :meth:`Sink.abort` drops them. Until a
commit returns, nothing is at the name: an abort, an exception or a crash
leaves the store as it was. A commit never overwrites an existing file: an
identical file already at the name (a run killed after its rename, before its
record) is adopted; another video there sends this one to its ``beside`` name.

Names are checked by :func:`check_rel`: relative, no ``..``, no empty or
absolute path; a name that passes ``plan`` leaves room for the store's
temporary and beside names (:data:`RESERVED_NAME_BYTES`).

Implementations: :mod:`runner.storage.local` (the state directory, today's
layout) and :mod:`runner.storage.memory` (tests). Every one passes
``tests/contract/test_output_stores.py``.
"""

from __future__ import annotations

import errno
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Literal, NamedTuple, Protocol, Self

from runner.errors import RunnerError

__all__ = [
    "MAX_NAME_BYTES",
    "MAX_OUTPUT_PATH_BYTES",
    "RESERVED_NAME_BYTES",
    "TEMP_TOKEN_HEX",
    "WHOLE_DISK_ERRNOS",
    "AbortOnExit",
    "Kind",
    "OutputStore",
    "Placed",
    "Room",
    "Sink",
    "Stored",
    "UnsafeDestination",
    "beside_name",
    "caseless",
    "check_rel",
    "place_at",
    "whole_disk_fix",
]

MAX_NAME_BYTES = 255  # one path component, on every common filesystem
TEMP_TOKEN_HEX = 12  # random hex digits of a temporary name
_TEMP_EXTRA = len(".") + len(".part-") + TEMP_TOKEN_HEX  # ".<name>.part-<hex>": 19 bytes
_BESIDE_EXTRA = len(".") + 12  # "<stem>.<key[:12]><suffix>": 13 bytes
RESERVED_NAME_BYTES = _TEMP_EXTRA + _BESIDE_EXTRA  # what an output file name must leave free: 32 bytes
MAX_OUTPUT_PATH_BYTES = 3072  # an output path (under outputs/<manifest>/), leaving room below PATH_MAX (4096)
# OS errors that are the whole disk's (or the process's file size limit), not one file's: the run stops on these.
WHOLE_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})



def whole_disk_fix(errno_: int | None) -> str:
    """What to do about one of :data:`WHOLE_DISK_ERRNOS`, as a message ends (a file size limit is no full disk)."""
    if errno_ == errno.EFBIG:
        return ("raise the file size limit this process runs under (`ulimit -f`, systemd's LimitFSIZE=) and run"
                " again")
    return "free space (or make the disk writable) and run again"


Placed = Literal["linked", "copied"]
Kind = Literal["file", "link", "folder", "other"]  # what is at a name (a link is not followed)


class Room(NamedTuple):
    """The room for a file at a name (:meth:`OutputStore.room`)."""

    free: int  # bytes a file at the name could still take on its disk (what an unprivileged writer may use)
    apart: int | None  # the same on the other name's disk when that is another disk; None: one disk (or cannot tell)


class UnsafeDestination(RunnerError):
    """the destination leads outside the store (the state directory)."""


@dataclass(frozen=True, slots=True)
class Stored:
    """A committed, verified file: where it is (relative to the store), its sha256 and size."""

    rel: str
    sha256: str
    bytes: int
    adopted: bool = False  # an identical file was already in place (kept; the new bytes were dropped)


def rel_parts(rel: str, where: object = "the state directory") -> tuple[str, ...]:
    """The folders and name of ``rel``, a path inside the store; :class:`UnsafeDestination` if it could leave
    it. Split by hand, no path object: the hot path of every download."""
    parts = tuple(part for part in rel.split("/") if part and part != ".")
    if not parts or rel[0] == "/" or ".." in parts or "\\" in rel or "\x00" in rel:
        raise UnsafeDestination(f"{rel!r} is not a path inside {where}")
    return parts


def caseless(name: str) -> str:
    """The form under which two names are one file on a case-insensitive, normalising file system (APFS, the
    default on macOS; vfat, exFAT and NTFS for case): Unicode's canonical caseless match, case folded over the
    decomposed form, decomposed again. A casefold of the NFC form alone tells ``\u015b`` (s acute) from
    ``\u017f\u0301`` (long s, acute), one file there."""
    if name.isascii():
        return name.casefold()
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", name).casefold())


def check_rel(rel: str, where: object = "the state directory") -> PurePosixPath:
    """``rel`` as a path inside the store (:func:`rel_parts`' rule)."""
    return PurePosixPath(*rel_parts(rel, where))


def beside_name(rel: str, key: str) -> str:
    """Where a job's video goes when ``rel`` already holds another video: ``<stem>.<key[:12]><suffix>``.

    Split by hand for a plainly spelt name (every download asks); anything else is read by ``PurePosixPath``,
    whose reading the fast path gives too."""
    folder, slash, name = rel.rpartition("/")
    if not name or name in (".", "..") or "//" in rel or rel.startswith("./") or "/./" in rel:
        path = PurePosixPath(rel)
        return str(path.with_name(f"{path.stem}.{key[:12]}{path.suffix}"))
    dot = name.rfind(".")
    stem, suffix = (name[:dot], name[dot:]) if 0 < dot < len(name) - 1 else (name, "")
    return f"{folder}{slash}{stem}.{key[:12]}{suffix}"


class Sink(Protocol):
    """Bytes on their way into the store; nothing is at the name before :meth:`commit` returns.

    Used as a context manager, leaving the block without a commit aborts.
    """

    @property
    def size(self) -> int:
        """Bytes written so far."""
        ...

    @property
    def sha256(self) -> str:
        """Hex sha256 of the bytes written so far."""
        ...

    def write(self, data: bytes) -> None: ...

    def commit(self) -> Stored:
        """Make the bytes durable at the name (never overwriting another file); see the module docstring.

        Blocking: async callers run it in a worker thread, shielded from cancellation.
        """
        ...

    def abort(self) -> None:
        """Drop the bytes; the store is as before. Harmless after a commit or a second abort."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class AbortOnExit:
    """A sink's context manager: leaving the block without a commit aborts (:meth:`Sink.abort`)."""

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.abort()


class OutputStore(Protocol):
    """Where videos are kept, by names relative to the store."""

    def prepare(self, rel: str) -> None:
        """Refuse a name the store cannot write (:class:`UnsafeDestination`, ``OSError``); writes no file."""
        ...

    def probe(self, rel: str) -> None:
        """Check now, before anything is paid for, that a video can be stored at ``rel``: what :meth:`prepare`
        checks, and that a file can be created in its folder (one is, and removed at once). Raises
        :class:`UnsafeDestination` or ``OSError``."""
        ...

    def check_name(self, rel: str) -> None:
        """Refuse ``rel`` itself when it cannot be written (a link at it leading outside the store): what
        :meth:`probe` checks of the name alone, for a folder probed already. Writes nothing."""
        ...

    def room(self, rel: str, other: str) -> Room | None:
        """The room on the disk that holds ``rel``'s folder and, when ``other`` is on another disk, on that one; None
        when the store cannot tell. Asked before each submit, after :meth:`probe`, with the ledger as ``other``: its
        reserve is counted on the outputs' disk only when it is the ledger's too."""
        ...

    def open_sink(self, rel: str, *, beside: str | None = None) -> Sink:
        """A new sink for ``rel``; with ``beside``, another video at ``rel`` sends this one there."""
        ...

    def exists(self, rel: str) -> bool:
        """Whether a file is at ``rel`` (a name outside the store is never there)."""
        ...

    def size(self, rel: str) -> int | None:
        """The size of the file at ``rel``, None when there is none."""
        ...

    def verify(self, rel: str, sha256: str, size: int) -> bool:
        """Whether ``rel`` holds exactly these bytes (size first, then the sha256)."""
        ...

    def link(self, src_rel: str, dst_rel: str) -> Placed:
        """Place the file at ``src_rel`` also at ``dst_rel`` (a hard link, else a copy); never overwrites."""
        ...

    def locate(self, rel: str) -> Path | str:
        """Where a reader finds ``rel``: a local path, or a URL for a remote store."""
        ...

    def export(self, rel: str, dest: Path, *, writer: str = "") -> Placed:
        """Place a copy of ``rel`` at ``dest``, a local path outside the store (reports, exports); ``writer`` goes in
        the name of a temporary file beside ``dest`` (:func:`runner.host.place_tag`)."""
        ...

    def describe(self, rel: str) -> str:
        """``rel`` as a user knows it, for messages (the local store: the full path)."""
        ...

    # Stored files renamed to match an edited manifest (runner/ledger/placement.py) use these.

    def kind(self, rel: str) -> Kind | None:
        """What is at ``rel`` (a link is not followed), ``None`` when nothing is (or ``rel`` is not a name in the store)."""
        ...

    def digest(self, rel: str) -> str | None:
        """The sha256 of the file at ``rel`` (links followed), ``None`` when there is none."""
        ...

    def same_file(self, rel: str, other: str) -> bool:
        """Whether ``rel`` and ``other`` are one stored file (a link of it), found without reading it."""
        ...

    def move(self, src_rel: str, dst_rel: str) -> None:
        """Give the file at ``src_rel`` the name ``dst_rel`` in one atomic, durable step.

        Never over anything at ``dst_rel`` (``FileExistsError``); its folders are created. A missing
        source or a refused folder raises ``OSError``, a name outside the store :class:`UnsafeDestination`.
        """
        ...

    def remove(self, rel: str) -> None:
        """Remove the file at ``rel`` (``OSError`` if that fails, ``FileNotFoundError`` if there is none)."""
        ...

    def remove_partials(self, folder: str) -> tuple[int, int]:
        """Remove every temporary file a writer killed mid-way (``kill -9``, a power cut) left under ``folder``:
        (files, bytes). Only while no sink is open on the store (the caller holds the ledger's lock, before
        any download)."""
        ...

    def holds_files(self, folder: str) -> bool:
        """Whether any file is stored under ``folder``, however deep (the ledger's guard asks: were videos
        stored here, so that a missing ledger must not be silently made again?)."""
        ...


def place_at(store: OutputStore, source: str, names: Iterable[str]) -> Iterator[tuple[str, Exception | None]]:
    """The stored video ``source`` linked (or copied) at each of ``names`` that holds no file yet, as the other
    manifests asking for one job's video get it: ``(name, None)`` once placed, ``(name, why)`` when it could not be
    (its source gone, a name or folder the disk refuses: the caller says it, and the others are placed all the same);
    a name that holds a file already is left as it is."""
    for name in names:
        try:
            if store.exists(name):
                continue
            store.link(source, name)
        except (OSError, RunnerError) as exc:
            yield name, exc
            continue
        yield name, None
