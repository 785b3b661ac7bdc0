"""A stored video is made read-only: ``export --format hf`` and ``report`` hard-link it, so an in-place edit of an
exported clip (``cp other.mp4 dataset/cat.mp4`` writes into the file) would change the paid original too.

Some file systems keep a file's r and x bits as their mount says and refuse to change them (Linux's vfat and
exfat without ``quiet``: a file shows ``rwxr-xr-x`` under fmask 022, and a chmod to 0444 is EPERM); only the w
bits can go there, all at once (the DOS read-only attribute). Others refuse any chmod (some SMB and FUSE mounts).
A video is stored all the same: not storing it for its mode would lose a paid one.
"""

from __future__ import annotations

import contextlib
import os
import stat

__all__ = ["STORED_MODE", "make_read_only"]

STORED_MODE = 0o444


def make_read_only(fd: int) -> None:
    """:data:`STORED_MODE`; where refused, the file's own mode without its w bits; where that is refused too, as
    it is."""
    try:
        os.fchmod(fd, STORED_MODE)
    except OSError:
        with contextlib.suppress(OSError):
            os.fchmod(fd, stat.S_IMODE(os.fstat(fd).st_mode) & ~0o222)
