"""The files a manifest is read from: what the plan depends on (:func:`digest`), and whether they changed since
(:class:`EditWatch`, for a run that must stop submitting once its manifest is saved)."""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

from runner.errors import ManifestError
from runner.manifest.files import open_regular

if TYPE_CHECKING:
    from runner.manifest.manifest import Manifest
    from runner.manifest.matrix import Matrix

__all__ = ["EditWatch", "Signature", "digest", "signature", "value_files"]

Signature = tuple[int, int, int] | None  # a file's size, modification time (ns) and inode; None: unreadable


def signature(path: str) -> Signature:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns, info.st_ino


def value_files(matrix: Matrix) -> list[str]:
    """The files whose values the matrix's axes read (an inline axis reads none)."""
    return [axis.path for axis in matrix.axes if axis.inline is None]


def digest(raw: bytes, matrix: Matrix) -> str:
    """What the plan depends on: the manifest's bytes and those of every value file it reads.

    A run re-plans when this changes, so an edited CSV is noticed like an edited manifest. The value files count
    by their bytes alone, each hashed on its own, in the matrix's order: not by their paths, which depend on how
    the manifest's path was typed (``m.yaml`` or ``/srv/videos/m.yaml``), so two runners of one file agree (a
    runner that saw another's digest would take it for another version: ``runner.service.replanned``). Which
    files they are is in the manifest's own bytes.
    """
    found = hashlib.sha256(raw)
    for path in value_files(matrix):
        each = hashlib.sha256()
        try:
            with open_regular(path) as data:  # a FIFO put there is refused, never waited on
                for block in iter(lambda: data.read(1 << 20), b""):
                    each.update(block)
        except OSError as exc:
            raise ManifestError(f"cannot read this file: {exc}", path=path, rule="matrix-source") from exc
        found.update(b"\0" + each.digest())
    return found.hexdigest()


class EditWatch:
    """Which of a manifest's files changed since it was loaded, if any (called once a second by the submit lane).

    A stat of each file first (size, modification time, inode: an editor's save, atomic or not); when one moved,
    the files' bytes again (:func:`digest`): a save of the same bytes, a ``touch`` or a sync tool is no edit,
    and is not looked at again.
    """

    def __init__(self, manifest: Manifest) -> None:
        self._manifest = manifest
        self._seen = dict(manifest.sources)

    def __call__(self) -> str | None:
        moved = [path for path, seen in self._seen.items() if signature(path) != seen]
        if not moved:
            return None
        try:
            with open_regular(self._manifest.path) as handle:
                raw = handle.read()
            same = digest(raw, self._manifest.matrix) == self._manifest.file_digest
        except (OSError, ManifestError):  # gone or unreadable: the plan no longer says what the files say
            same = False
        if not same:
            return moved[0]
        self._seen.update((path, signature(path)) for path in moved)
        return None
