"""The single-writer lock of a ledger: ``fcntl.flock`` on ``<state>/ledger.lock``, and on the state directory.

Two runners must never drive one ledger. The lock is advisory and belongs to
the open file description, so the operating system drops it when its holder
dies in any way (``kill -9`` included): a stale lock is simply taken over.
The holder writes ``"<pid> <host> <started_at> pids=<boot id>/<PID namespace> cmd=<command>"`` into the file so that
the one refused can say who is in the way (where its PID is one: :mod:`runner.host`, :mod:`runner.ledger.holder`) and
what it is (``cmd=``: the runner command it runs, ``verify``; an older runner's line has none). While it creates a
new ledger the line
ends with ``creating``: such a lock file left by a process killed then is not
a sign that a ledger existed (:func:`is_creation_lock`).

A lock file removed under its holder (``rm ledger.lock``) would let the next runner make a new one and
lock that: so the folder holding it is locked as well, which no ``rm`` of a file undoes. Where a folder
cannot be locked (some network file systems), the file's lock is all there is, as before. Where not even the file
can be (ENOLCK: an NFS mount without its lock daemon), the ledger is refused (exit 6), told to move to a local disk.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

from runner.errors import LedgerDiskError, LedgerError, LedgerLocked
from runner.host import pid_space
from runner.ledger.holder import SPACE_WORD, WORKING, command_of, command_word, describe, stopped_holder, who
from runner.process_command import current
from runner.storage.api import WHOLE_DISK_ERRNOS, whole_disk_fix
from runner.storage.ownership import chown_fix, not_writable

__all__ = ["CREATING", "LOCK_NAME", "LedgerLock", "is_creation_lock"]

CREATING = "creating"
LOCK_NAME = "ledger.lock"  # the lock file's name, beside a SQLite ledger


class LedgerLock:
    """An exclusive, non-blocking lock held until :meth:`release` (or process death)."""

    def __init__(self, path: Path, fd: int, line: str = "", *, creating: bool = False,
                 folder_fd: int | None = None) -> None:
        self.path = path
        self._fd: int | None = fd
        self._folder_fd = folder_fd  # the state directory's lock (None: the file system has none)
        self._line = line
        self._creating = creating

    @classmethod
    def acquire(
        cls, path: Path, *, started_at: float | None = None, creating: bool = False
    ) -> LedgerLock:
        """Take the lock or raise :class:`LedgerLocked` naming the holder.

        ``creating``: the holder is about to create the ledger; call
        :meth:`created` once it exists.
        """
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)  # the umask decides (a group's 002)
        except OSError as exc:
            # A read-only or full disk, a folder this user may not write: exit 6, someone must act (a missing
            # folder stays a plain error: a --state typo)
            if exc.errno in WHOLE_DISK_ERRNOS:
                raise LedgerDiskError(f"cannot create the lock file {path} ({exc.strerror}); nothing recorded was lost;"
                                      f" {whole_disk_fix(exc.errno)}") from exc
            if exc.errno in (errno.EACCES, errno.EPERM):
                if (whose := not_writable([path, path.parent])) is not None:  # another user's (`sudo runner run`)
                    raise LedgerDiskError(f"cannot create the lock file {path} ({exc.strerror}): {whose.what}; nothing"
                                          f" recorded was lost; {chown_fix(path.parent, whose)}") from exc
                raise LedgerDiskError(f"cannot create the lock file {path} ({exc.strerror}); nothing recorded was lost;"
                                      f" make the state directory {path.parent} writable by this user (its owner or"
                                      " permissions) and run again") from exc
            raise LedgerError(
                f"cannot create the lock file {path} ({exc.strerror}); "
                f"check that the directory {path.parent} exists and is writable"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            content = _read(fd)
            holder, stopped, command = describe(content), stopped_holder(fd, content), command_of(content)
            os.close(fd)
            if stopped is not None:  # it does nothing and keeps every run out until resumed: someone must act
                idle = "it sends and collects nothing" if command is None or command in WORKING else "it does nothing"
                raise LedgerLocked(
                    f"{who(command)} holds the ledger in {path.parent} ({holder}) and is stopped (Ctrl-Z, SIGSTOP, a"
                    f" suspended session): {idle}, and every run is refused, until it is resumed"
                    f" — `kill -CONT {stopped}` (or `fg` in its terminal), or end it with `kill {stopped}; kill -CONT"
                    f" {stopped}` (the next run goes on from its ledger); nothing was sent",
                    holder=holder, folder=path.parent, stopped=stopped, command=command,
                ) from exc
            raise LedgerLocked(
                f"{who(command)} holds the ledger in {path.parent} ({holder}); "
                "wait for it to finish or stop it, then run again",
                holder=holder, folder=path.parent, command=command,
            ) from exc
        except OSError as exc:
            os.close(fd)
            raise LedgerDiskError(  # exit 6: the next run meets it again until someone acts
                f"cannot lock {path} ({exc.strerror}): its file system locks no file (an NFS mount without its lock"
                " daemon? a FUSE or SMB one?), so nothing would keep a second runner off this ledger; put the state"
                " directory on a local disk (--state) and run again"
            ) from exc
        try:
            folder_fd = _lock_folder(path.parent)
        except BlockingIOError as exc:
            os.close(fd)
            raise LedgerLocked(
                f"another runner holds the ledger in {path.parent} (its lock file {path.name} was removed or"
                " replaced while it ran, so it cannot say which); wait for it to finish or stop it, then run again",
                holder="a runner whose lock file was removed", folder=path.parent,
            ) from exc
        stamp = datetime.fromtimestamp(
            time.time() if started_at is None else started_at, tz=UTC
        ).strftime("%Y-%m-%dT%H:%M:%SZ")
        space = pid_space()  # after the name: where the PID is one, when machines share a name (holder.py)
        line = f"{os.getpid()} {socket.gethostname()} {stamp}{'' if space is None else f' {SPACE_WORD}{space}'}"
        if (command := current()) is not None:  # what holds it, for one refused (`runner verify`); before `creating`
            line += f" {command_word(command)}"
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{line}{' ' + CREATING if creating else ''}\n".encode(), 0)
        except OSError as exc:
            os.close(fd)
            if folder_fd is not None:
                os.close(folder_fd)
            if exc.errno in WHOLE_DISK_ERRNOS:  # the disk's, not the input's: exit 6, someone must act
                what = "disk full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else exc.strerror
                raise LedgerDiskError(
                    f"{what} while writing {path}; nothing recorded was lost; {whole_disk_fix(exc.errno)}"
                ) from exc
            raise LedgerError(f"cannot write the lock file {path} ({exc.strerror})") from exc
        return cls(path, fd, line, creating=creating, folder_fd=folder_fd)

    def created(self) -> None:
        """The ledger now exists: drop the ``creating`` mark (best effort; the lock holds anyway)."""
        self._creating = False
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{self._line}\n".encode(), 0)
        except OSError:
            pass

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Let go of the lock (idempotent). The file stays; its content is then stale.

        Released before the ledger it was creating exists, it keeps its
        ``creating`` mark: it is no sign that a ledger was ever there.
        """
        fd, self._fd = self._fd, None
        folder_fd, self._folder_fd = self._folder_fd, None
        if fd is None:
            return
        try:
            if not self._creating:
                os.ftruncate(fd, 0)
        except OSError:
            pass  # the lock is released by close() all the same
        finally:
            os.close(fd)
            if folder_fd is not None:
                os.close(folder_fd)


def _lock_folder(folder: Path) -> int | None:
    """The folder's own exclusive lock, as an open descriptor; None where the file system locks no folder.
    Raises ``BlockingIOError`` when another process holds it."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise
    except OSError:  # EBADF, ENOLCK, EINVAL: no lock on a folder here (an NFS mount)
        os.close(fd)
        return None
    return fd


def is_creation_lock(path: Path) -> bool:
    """Whether the lock file at ``path`` was left by a process that was creating a new ledger."""
    try:
        with open(path, "rb") as handle:
            content = handle.read(512).decode("utf-8", "replace")
    except OSError:
        return False
    parts = content.split()
    return bool(parts) and parts[-1] == CREATING


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 512, 0).decode("utf-8", "replace")
    except OSError:
        return ""
