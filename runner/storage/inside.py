"""Names inside the local store's root: the walk that creates a name's folders and refuses any that leads outside.

Every video the local store writes goes under its root (the state directory) and nowhere else:
:func:`walk` creates the folders of a name one at a time and refuses a link that resolves outside
the root (a symlink planted inside ``outputs/``), :func:`check_leaf` refuses a link at the name
itself; :func:`obstacle` says what would stop a folder taking a file, creating nothing (for ``plan``).
Plain strings and one ``lstat`` per folder, not pathlib: this is the hot path of every
download (building path objects cost more than the lookups).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
from pathlib import Path

from runner.storage.api import UnsafeDestination, caseless, rel_parts

__all__ = ["Folders", "case_twin", "check_leaf", "encoded", "inside", "is_dir", "obstacle", "same_file", "still", "walk"]

_PATH_MAX = 4096
Folders = tuple[tuple[str, int, int], ...]  # the real folders a name's walk went through: (path, device, inode)


def walk(root: Path, rel: str) -> tuple[Path, Folders | None]:
    """``root / rel``, with its folders created, checked to stay inside ``root``; and the folders on the way
    with their identities when every one is a real folder (no link), else ``None`` (see :func:`still`).

    Each folder is created (or found) one at a time; a real folder (not a link) inside a folder
    already known to be inside the root is inside it too; only a link is resolved (realpath) and
    checked against the root's real path. A folder or an existing destination that resolves outside
    the root raises :class:`UnsafeDestination`. OS errors (name too long, no permission, a file
    where a folder should be) propagate unchanged.
    """
    parts = rel_parts(rel, f"the state directory {root}")
    top = os.fspath(root)
    whole = os.path.join(top, *parts)
    if len(encoded(os.path.abspath(whole))) >= _PATH_MAX:
        raise OSError(errno.ENAMETOOLONG, f"{os.strerror(errno.ENAMETOOLONG)} (the path is longer than {_PATH_MAX} bytes)", os.path.abspath(whole))
    if len(parts) == 1 and not is_dir(top):
        os.makedirs(top, exist_ok=True)  # with folders, the first one's mkdir finds the root missing
    current = top
    folders: list[tuple[str, int, int]] = []
    real_folders = True
    for part in parts[:-1]:
        current = os.path.join(current, part)
        found = _lstat(current)
        if found is None:
            _mkdir(current, top)
            found = _lstat(current)
        if found is not None and stat.S_ISDIR(found.st_mode):
            folders.append((current, found.st_dev, found.st_ino))
            continue
        real_folders = False
        _through(current, top)
    dest = Path(whole)
    check_leaf(root, dest)
    return dest, tuple(folders) if real_folders else None


def obstacle(root: Path, folder: str) -> str | None:
    """Why no video could be stored under ``folder`` (relative to ``root``), looked at without creating anything:
    a folder on the way that is a link leading outside ``root``, a file where a folder should be, a folder the
    process may not write in. None when nothing in the way is seen (folders not there yet are made by the run)."""
    top = os.fspath(root)
    current = top
    for part in rel_parts(folder + "/x", f"the state directory {root}")[:-1]:
        current = os.path.join(current, part)
        found = _lstat(current)
        if found is None:
            return None
        if stat.S_ISDIR(found.st_mode):
            continue
        try:
            _through(current, top)  # what the run's walk would refuse
        except UnsafeDestination as exc:
            return str(exc)
        except NotADirectoryError:
            return f"{current} is not a folder"
    if is_dir(current) and not os.access(current, os.W_OK | os.X_OK):
        return f"{current} is a folder this user may not write in"
    return None


def case_twin(root: Path, folder: str) -> str | None:
    """The name of another entry beside ``folder`` (relative to ``root``) spelt otherwise only in case or Unicode
    form (:func:`~runner.storage.api.caseless`): on a case-insensitive disk (macOS, exFAT, vfat, SMB) the two are one
    folder. None when there is none (or the parent folder cannot be listed). One listing, nothing created."""
    parent, _, name = folder.strip("/").rpartition("/")
    try:
        entries = os.listdir(os.path.join(root, parent))
    except (OSError, UnicodeError):
        return None
    key = caseless(name)
    return next((entry for entry in sorted(entries) if entry != name and caseless(entry) == key), None)


def _through(current: str, top: str) -> None:
    """A folder on a name's way that is no real folder (a link, a file): refused when it resolves outside ``top``
    (:class:`UnsafeDestination`) or to no folder (``NotADirectoryError``)."""
    real = os.path.realpath(current)
    if not inside(real, os.path.realpath(top)):
        raise UnsafeDestination(
            f"{current} leads outside the state directory (to {real}); nothing is written there."
            " Remove the link (or move the state directory) and run again"
        )
    if not os.path.isdir(real):
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), current)


def check_leaf(root: Path, dest: str | Path) -> None:
    """Refuse a link at ``dest`` itself that leads outside ``root``."""
    found = _lstat(os.fspath(dest))
    if found is not None and stat.S_ISLNK(found.st_mode) and not inside(os.path.realpath(dest), os.path.realpath(root)):
        raise UnsafeDestination(
            f"{dest} is a link to {os.path.realpath(dest)}, outside the state directory; nothing is written"
            " there. Remove the link and run again"
        )


def still(folders: Folders) -> bool:
    """Whether each of ``folders`` (from :func:`walk`) is still that very real folder: one ``lstat`` each, no
    path arithmetic. Any change (gone, a link now, another folder) and the caller walks the name again."""
    for path, device, inode in folders:
        try:
            found = os.lstat(path)
        except OSError:
            return False
        if not stat.S_ISDIR(found.st_mode) or found.st_ino != inode or found.st_dev != device:
            return False
    return True


def is_dir(path: str | Path) -> bool:
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:
        return False


def same_file(one: str | Path, other: str | Path) -> bool:
    """Whether both name one file or folder (a link, another spelling, a bind mount); False when either is missing."""
    try:
        return os.path.samefile(one, other)
    except OSError:
        return False


def inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _lstat(path: str) -> os.stat_result | None:
    """``path`` itself (a link is not followed), or None when nothing is there."""
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except UnicodeEncodeError:
        encoded(path)
        raise


def encoded(path: str) -> bytes:
    """``path`` as this process writes file names; an OSError (EILSEQ) when its encoding cannot write it.

    Under a locale that is not UTF-8 (``LC_ALL=en_US.ISO-8859-1``; C with ``PYTHONUTF8=0``) the file name encoding
    is that locale's, and an emoji or CJK output name raised UnicodeEncodeError out of the walk: a traceback, exit 1.
    As an OS error, a job not sent yet is held, and a paid video stays recorded as succeeded (limits sweep, 12-05).
    """
    try:
        return os.fsencode(path)
    except UnicodeEncodeError as exc:
        raise OSError(errno.EILSEQ, f"this process's file name encoding ({sys.getfilesystemencoding()}, from the locale)"
                      f" cannot write {exc.object[exc.start:exc.end]!r}: run it under a UTF-8 locale (LC_ALL=C.UTF-8)"
                      " or with PYTHONUTF8=1", path) from None


def _mkdir(folder: str, root: str) -> None:
    """Create ``folder`` (found there already is fine); the root too when it is missing (the first folder)."""
    try:
        os.mkdir(folder)
    except FileExistsError:
        pass
    except FileNotFoundError:
        if os.path.dirname(folder) != root.rstrip(os.sep) or is_dir(root):
            raise
        os.makedirs(root, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder)
