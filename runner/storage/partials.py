"""The temporary files of the local store: where a download streams before its commit, and what a killed one
leaves.

A sink for ``outputs/batch/fox.mp4`` writes ``outputs/batch/.fox.mp4.part-<12 hex digits>`` and renames it into
place at its commit (:mod:`runner.storage.local`). A writer killed before that (``kill -9``, the OOM killer, a power
cut) leaves the file, up to a whole video; :func:`remove_temp_files` finds and removes them, for the run after one
that did not end.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
from pathlib import Path

from runner.storage.api import TEMP_TOKEN_HEX

__all__ = ["hold_while_open", "remove_temp_files", "temp_name"]

_TEMP_NAME = re.compile(rf"\..+\.part-[0-9a-f]{{{TEMP_TOKEN_HEX}}}", re.DOTALL)  # what temp_name makes


def temp_name(dest: Path, token: str) -> Path:
    """The temporary file a sink for ``dest`` streams into: ``.<name>.part-<token>`` beside it."""
    return dest.parent / f".{dest.name}.part-{token}"


def hold_while_open(fd: int) -> None:
    """Lock a temporary file its writer just created, until it closes it (the kernel lets go when the writer dies,
    ``kill -9`` included): a file left behind can be told from a live one. Best effort (a file system without
    ``flock`` keeps none: such files are then only removed when no writer is running)."""
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def remove_temp_files(top: Path) -> tuple[int, int]:
    """Remove every :func:`temp_name` file under ``top`` (no link followed, ``top`` included) that no live writer
    holds (:func:`hold_while_open`): (files, bytes)."""
    files = size = 0
    if top.is_symlink():
        return files, size
    for parent, _dirs, names in os.walk(top, followlinks=False):
        for name in names:
            if _TEMP_NAME.fullmatch(name):
                removed = _remove_if_left(os.path.join(parent, name))
                if removed is not None:
                    files, size = files + 1, size + removed
    return files, size


def _remove_if_left(path: str) -> int | None:
    """Remove ``path`` unless a writer holds it; its size, or None (held, gone, not a plain file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None  # gone meanwhile, or a link
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode):
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None  # a live writer's
        except OSError:
            pass  # no flock here: left by the run that did not end, as the caller knows
        os.unlink(path)
        return found.st_size
    except FileNotFoundError:
        return None
    finally:
        os.close(fd)
