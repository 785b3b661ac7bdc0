"""A rename that never replaces what is at its new name: :func:`rename_new`.

The store places a finished video with a hard link, which never replaces a file; where the file system has no hard
links (vfat, exFAT, some SMB and FUSE mounts) it renames. A check that the name is free followed by a plain
``rename`` left a window: another process or host sharing the outputs folder could store its video at the name in
between, and the rename replaced it (a paid video lost). On Linux the rename is ``renameat2(..., RENAME_NOREPLACE)``
(glibc 2.28 and later): the kernel refuses it (EEXIST) when anything is at the name, in the same step. A kernel or a
file system that cannot do that (EINVAL, ENOSYS), or a platform without it, gets the check and the rename as
before, said once in a warning.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["rename_new"]

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
# What a kernel without renameat2 (ENOSYS) or a file system that cannot keep its promise (EINVAL) answers.
_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOSYS})


def _load() -> Callable[[int, bytes, int, bytes, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        func = libc.renameat2
    except (OSError, AttributeError):  # no libc to load, or a glibc older than 2.28 (musl has it since 1.2.2)
        return None
    func.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    func.restype = ctypes.c_int
    return func


_renameat2 = _load()
_warned = False


def rename_new(src: Path, dst: Path) -> bool:
    """Rename ``src`` to ``dst`` unless something (a file, a link, a folder) is at ``dst``; whether it did. Another
    OS error is raised, naming both."""
    if os.path.lexists(dst):
        return False
    if _renameat2 is not None:
        if _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
            return True
        code = ctypes.get_errno()
        if code == errno.EEXIST:
            return False
        if code not in _UNSUPPORTED:
            raise OSError(code, os.strerror(code), str(src), None, str(dst))
    _warn_once()
    if os.path.lexists(dst):
        return False
    os.rename(src, dst)
    return True


def _warn_once() -> None:
    global _warned
    if not _warned:
        _warned = True
        logging.getLogger("runner.storage").warning(
            "this system cannot rename a file without replacing what is at its new name (renameat2 with"
            " RENAME_NOREPLACE); a video is renamed into place after a check that its name is free, so two runners"
            " must not store videos into one outputs folder here at once")
