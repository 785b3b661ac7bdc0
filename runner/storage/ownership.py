"""Whose a file of the state directory is, when this user may not use it: its owner and mode, and the ``chown`` that
fixes it.

A state directory is often used by two users: ``sudo runner run`` once (its ledger, WAL, lock and folders made by
root), then the operator's own runs; or two users through a group, one of them with a umask of 077. SQLite says
only "attempt to write a readonly database", naming no file, and the directory it is in may be writable: the file in
the way may be the ledger, its ``-wal`` or ``-shm`` (left by a run killed as the other user), the lock or the
folder; a video's folder may be another's too. :func:`not_writable` names the first of them this user may not
use, and :func:`chown_fix` the way on.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

__all__ = ["Unusable", "chown_fix", "chown_owner", "not_writable", "refused", "user_name"]


class Unusable(NamedTuple):
    """A file or folder this user may not use: what to say of it, and whose it is."""

    what: str
    path: Path
    uid: int
    gid: int


def user_name(uid: int) -> str:
    """The login name of ``uid``, or the number where it has none here (a container's user, a deleted account)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return f"uid {uid}"


def chown_owner(uid: int) -> str:
    """``uid`` as ``chown`` takes it: its login name, or the bare number where it has none here (a container's user:
    ``chown -R uid 12345 DIR`` took "uid" for the owner and 12345 for a file)."""
    name = user_name(uid)
    return str(uid) if name == f"uid {uid}" else name


def not_writable(paths: Iterable[Path]) -> Unusable | None:
    """For the first of ``paths`` that exists and this process may not read and write (a folder: enter and write in):
    ``<path> belongs to <owner> (mode 0644), and this user (<me>) may not write it`` (or read), and its owner and group;
    None when it may use them all (or cannot tell)."""
    effective = os.access in os.supports_effective_ids
    for path in paths:
        try:
            info = path.stat()
            folder = stat.S_ISDIR(info.st_mode)
            if os.access(path, os.W_OK | (os.X_OK if folder else os.R_OK), effective_ids=effective):
                continue
            readable = os.access(path, os.X_OK if folder else os.R_OK, effective_ids=effective)
        except OSError:
            continue
        kind = "folder" if folder else "file"
        return Unusable(f"the {kind} {path} belongs to {user_name(info.st_uid)} (mode {stat.S_IMODE(info.st_mode):04o}),"
                        f" and this user ({user_name(os.geteuid())}) may not {'write' if readable else 'enter' if folder else 'read'} it",
                        path, info.st_uid, info.st_gid)
    return None


def chown_fix(state_dir: Path, whose: Unusable, *, what: str = "the state directory") -> str:
    """The way on for a file in ``state_dir`` this user may not use: the state directory given to the user who runs the
    batch; where it is this user's own already, made writable again; where its group is one of this user's (two users
    sharing the folder, the other's umask 022 or 077), opened to the group."""
    me = os.geteuid()
    if whose.uid == me:
        return f"make {what} writable by this user again (`chmod -R u+w {state_dir}`) and run again"
    shared = ""
    if whose.gid in {os.getegid(), *os.getgroups()} and whose.gid != 0:
        shared = (f"; where it is shared by a group, open it to the group (`chmod -R g+rwX {state_dir}`, and umask 002"
                  " for everyone who runs there)")
    return (f"give {what} to the user who runs the batch (`sudo chown -R {chown_owner(me)} {state_dir}`),"
            f" or run as its owner{shared}, and run again")


def refused(exc: OSError) -> str | None:
    """For a permission refusal of the file ``exc`` names: which file or folder this user may not use and whose it is,
    and the way on (``<the folder …> belongs to root (mode 0755), and this user (alice) may not write it; give that
    folder to …``); None for another error, or where nothing in the way is seen."""
    if exc.errno not in (errno.EACCES, errno.EPERM) or not exc.filename:
        return None
    path = Path(os.fsdecode(exc.filename))
    folder = next((parent for parent in path.parents if _there(parent)), None)  # the deepest there: the run makes
    whose = not_writable([*([folder] if folder is not None else []), path])      # those below; its folder first:
    if whose is None:                                                          # what a file is made and renamed in
        return None
    kind = "that folder" if whose.path.is_dir() else "that file"
    return f"{whose.what}; {chown_fix(whose.path, whose, what=kind)}"


def _there(path: Path) -> bool:
    try:
        path.stat()
    except OSError:
        return False
    return True
