"""One hf export or report at a time in a folder: :func:`folder_lock`.

An hf export (a report likewise) reads what the folder's last export listed, places its files, writes its list and
then removes the files listed before and no longer exported. Two of them at once in one folder (two cron entries,
a Makefile run twice, one with ``--include-rejected``) interleave those steps: one removed a video the other had
just placed and listed, and the folder's ``metadata.jsonl`` named a file that was not there, which ``datasets``
refuses to load. The second now waits for the first (saying so), then reads what the first wrote.

The lock is ``flock`` on the folder itself: no lock file is added to a folder that is uploaded as it is, and a
process that dies releases it. Where the file system locks nothing it is passed over, as before. On a network
mount (NFS, SMB) a folder's ``flock`` is held on this host only (neither client sends a folder's lock to the server):
two exports on one host wait for each other, two on two hosts into one shared folder do not.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["folder_lock"]

log = logging.getLogger(__name__)

try:
    import fcntl
except ImportError:  # pragma: no cover - no flock on this platform: nothing to hold
    fcntl = None  # type: ignore[assignment]


@contextlib.contextmanager
def folder_lock(folder: Path, what: str = "export") -> Iterator[None]:
    """Hold ``folder`` (made first if it is not there) for one export or report, waiting for another holding it.
    A folder that cannot be made or opened is not held: the export then says why it cannot write there."""
    fd = _open_folder(folder)
    if fd is None:
        yield
        return
    try:
        _hold(fd, folder, what)
        yield
    finally:
        os.close(fd)  # releases the lock


def _open_folder(folder: Path) -> int | None:
    if fcntl is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None


def _hold(fd: int, folder: Path, what: str) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    except OSError as exc:  # ENOLCK, EOPNOTSUPP: a file system that locks nothing
        if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
        return
    log.warning("another export or report is writing %s: this %s waits for it to finish", folder, what)
    fcntl.flock(fd, fcntl.LOCK_EX)
