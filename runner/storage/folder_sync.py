"""Syncing a folder: a name made, renamed or removed in it survives a power cut once the folder is synced.

Some file systems refuse it (EINVAL, ENOTSUP: SMB mounts, some FUSE and network ones): they sync no folder, and
nothing more can be done there, so that refusal is no error. Any other (EIO) is raised. A file's own fsync is
never excused: its bytes not on disk are a loss.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

__all__ = ["FOLDER_SYNC_REFUSED", "fsync_fd", "fsync_path", "sync_folder", "sync_folder_if_possible", "sync_folders_of"]

#: What a file system answers the fsync of a folder it cannot sync.
FOLDER_SYNC_REFUSED = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})


def fsync_fd(fd: int) -> None:
    """``os.fsync(fd)``; a folder's refused as :data:`FOLDER_SYNC_REFUSED` is passed over."""
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in FOLDER_SYNC_REFUSED or not stat.S_ISDIR(os.fstat(fd).st_mode):
            raise


def sync_folder(folder: Path) -> None:
    """Sync ``folder`` (see :func:`fsync_fd`)."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        fsync_fd(fd)
    finally:
        os.close(fd)


def sync_folders_of(root: Path, names: Iterable[str]) -> None:
    """Sync the folder of each of ``names`` (relative to ``root``) and every folder above it up to ``root`` (a folder
    made for a name is an entry of its parent), deepest first, each once (see :func:`sync_folder`): the names'
    entries are on the disk before anything written next lists them (an export's metadata)."""
    folders: set[PurePosixPath] = set()
    for name in names:
        folder = PurePosixPath(name).parent
        while folder not in folders:
            folders.add(folder)
            if folder == folder.parent:
                break
            folder = folder.parent
    for folder in sorted(folders, key=lambda found: len(found.parts), reverse=True):
        sync_folder(root / folder)


def fsync_path(path: Path) -> None:
    """Make a file's (or a folder's: a rename in it) content durable (see :func:`fsync_fd`)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fsync_fd(fd)
    finally:
        os.close(fd)


def sync_folder_if_possible(folder: Path) -> None:
    """Sync ``folder`` where the system can, passing over any error (no descriptor for a folder, a refusal, EIO): the
    output store's placements and an export's removals, which never stopped for their folder's sync."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)
