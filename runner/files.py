"""Files under the state directory: where a video may be written, and placing a copy of one.

Every video the runner stores goes to ``<state>/outputs/…`` and nowhere else:
:func:`prepare_destination` creates the folders of a destination one at a
time and refuses any that leads outside the state directory (a symlinked
folder planted inside ``outputs/``). Temporary files are named from the
destination (:func:`temp_name`) and opened with ``O_EXCL | O_NOFOLLOW``; the
bytes their names add are reserved when a manifest is planned
(:data:`RESERVED_NAME_BYTES`), so a name that passes ``plan`` can always be
downloaded.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Literal

from runner.errors import RunnerError

__all__ = [
    "MAX_NAME_BYTES",
    "MAX_OUTPUT_PATH_BYTES",
    "RESERVED_NAME_BYTES",
    "TEMP_TOKEN_HEX",
    "WHOLE_DISK_ERRNOS",
    "UnsafeDestination",
    "beside_name",
    "link_or_copy",
    "prepare_destination",
    "temp_name",
]

MAX_NAME_BYTES = 255  # one path component, on every common filesystem
TEMP_TOKEN_HEX = 12  # random hex digits of a temporary name
_TEMP_EXTRA = len(".") + len(".part-") + TEMP_TOKEN_HEX  # ".<name>.part-<hex>": 19 bytes
_BESIDE_EXTRA = len(".") + 12  # "<stem>.<key[:12]><suffix>": 13 bytes
RESERVED_NAME_BYTES = _TEMP_EXTRA + _BESIDE_EXTRA  # what an output file name must leave free: 32 bytes
MAX_OUTPUT_PATH_BYTES = 3072  # an output path (under outputs/<manifest>/), leaving room below PATH_MAX (4096)
_PATH_MAX = 4096
# OS errors that are the whole disk's (or the process's file size limit), not one file's: the run stops on these.
WHOLE_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


class UnsafeDestination(RunnerError):
    """the destination leads outside the state directory."""


def temp_name(dest: Path, token: str) -> Path:
    """The temporary file a download of ``dest`` streams into: ``.<name>.part-<token>`` beside it."""
    return dest.parent / f".{dest.name}.part-{token}"


def beside_name(dest: Path, key: str) -> Path:
    """Where a job's video goes when ``dest`` already holds another video: ``<stem>.<key[:12]><suffix>``."""
    return dest.with_name(f"{dest.stem}.{key[:12]}{dest.suffix}")


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def prepare_destination(state_dir: Path, rel: str) -> Path:
    """``state_dir / rel``, with its folders created, checked to stay inside ``state_dir``.

    Each folder is created (or found) one at a time and resolved; a folder or
    an existing destination that resolves outside the state directory (a
    symlink planted in ``outputs/``) raises :class:`UnsafeDestination`. OS
    errors (name too long, no permission, a file where a folder should be)
    propagate unchanged.
    """
    root = os.path.realpath(state_dir)
    parts = Path(rel).parts
    if not parts or Path(rel).is_absolute() or ".." in parts:
        raise UnsafeDestination(f"{rel!r} is not a path inside the state directory {state_dir}")
    whole = os.path.abspath(Path(state_dir) / rel)
    if len(os.fsencode(whole)) >= _PATH_MAX:
        raise OSError(errno.ENAMETOOLONG, f"{os.strerror(errno.ENAMETOOLONG)} (the path is longer than {_PATH_MAX} bytes)", whole)
    current = Path(state_dir)
    for part in parts[:-1]:
        current = current / part
        try:
            os.mkdir(current)
        except FileExistsError:
            pass
        real = os.path.realpath(current)
        if not _inside(real, root):
            raise UnsafeDestination(
                f"{current} leads outside the state directory (to {real}); nothing is written there."
                " Remove the link (or move the state directory) and run again"
            )
        if not os.path.isdir(real):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(current))
    dest = Path(state_dir) / rel
    if os.path.islink(dest) and not _inside(os.path.realpath(dest), root):
        raise UnsafeDestination(
            f"{dest} is a link to {os.path.realpath(dest)}, outside the state directory; nothing is written"
            " there. Remove the link and run again"
        )
    return dest


def link_or_copy(source: Path, dest: Path, *, root: Path | None = None) -> Literal["linked", "copied"]:
    """Hard-link ``source`` at ``dest`` (a copy across devices), atomically; returns which.

    An existing ``dest`` that already is ``source`` is left alone. With
    ``root``, ``dest`` must stay inside that directory (see
    :func:`prepare_destination`). An OS error becomes a :class:`RunnerError`
    naming both paths.
    """
    try:
        if root is not None:
            dest = prepare_destination(root, os.path.relpath(dest, root))
        if dest.exists() and os.path.samefile(source, dest):
            return "linked"
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.link-{os.getpid()}")
        how: Literal["linked", "copied"] = "linked"
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
            how = "copied"
        os.replace(tmp, dest)
        return how
    except OSError as exc:
        raise RunnerError(
            f"cannot place {dest} from {source}: {exc.strerror or exc}; the ledger still records the video;"
            " restore the file or free space and run again"
        ) from exc
