"""Whether the process holding a ledger's lock is stopped (Ctrl-Z, SIGSTOP, a suspended session): it then holds the
ledger and does nothing until it is resumed, and every later run is refused for as long.

A refused run asks once, from Linux's ``/proc``: the holder of the lock file's ``flock`` (``/proc/locks``, by the
file's device and inode), else the PID its lock line names when that line is of this host; then that process's
state (``/proc/<pid>/stat``: ``T`` stopped by a signal, ``t`` stopped by a debugger). Where ``/proc`` says nothing
(another system, another host's holder on a shared folder) the holder is not called stopped. A lock line names its
host by name and PID space (boot id and PID namespace, :mod:`runner.host`): a PID written on another machine of the
same name (two VMs both ``ubuntu``, containers of one ``--hostname``), or before this one restarted, is not taken for
a process here.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import quote, unquote

from runner.host import ANOTHER_BOOT, elsewhere, stat_of, unlike

__all__ = ["COMMAND_WORD", "SPACE_WORD", "WORKING", "command_of", "command_word", "describe", "live_holder", "stopped_holder",
           "who"]

SPACE_WORD = "pids="  # the lock line's word before its writer's PID space (:func:`runner.host.pid_space`)
COMMAND_WORD = "cmd="  # ... before the runner command its writer runs (``cmd=ledger%20copy``; an older line has none)
WORKING = frozenset({"run", "submit", "collect"})  # the commands that send and collect a batch's jobs


def stopped_holder(fd: int, line: str) -> int | None:
    """The PID of the stopped process that holds the ``flock`` on ``fd``'s file, else None.

    ``line`` is the lock file's content (``"<pid> <host> <started_at>"``), read when ``/proc/locks`` names none."""
    pids = _flock_holders(fd)
    if not pids and (named := _this_hosts_pid(line)) is not None:
        pids = [named]
    return next((pid for pid in pids if _is_stopped(pid)), None)


def _this_hosts_pid(line: str) -> int | None:
    """The PID a lock file's line (``"<pid> <host> <started_at> pids=<space>"``) names, when that host is this one: its
    name, and its PID space where the line says one (another machine of the same name, this one before it restarted,
    another container of this kernel wrote a PID that means nothing here). An older runner's line has no space: its
    name is all there is."""
    parts = line.split()
    if len(parts) >= 2 and parts[0].isdigit() and parts[1] == socket.gethostname() and not elsewhere(_space(parts)):
        return int(parts[0])
    return None


def _space(parts: list[str]) -> str | None:
    return next((part[len(SPACE_WORD):] for part in parts[3:] if part.startswith(SPACE_WORD)), None)


def command_word(command: str) -> str:
    """The lock line's word that records ``command`` (one word: its spaces quoted)."""
    return COMMAND_WORD + quote(command, safe="")


def command_of(line: str) -> str | None:
    """The runner command the holder of a lock line runs (``verify``), None when the line does not say (an older
    runner's, or the service's used without the CLI)."""
    word = next((part for part in line.split()[3:] if part.startswith(COMMAND_WORD)), None)
    return None if word is None else unquote(word[len(COMMAND_WORD):]) or None


def who(command: str | None) -> str:
    """The holder of a lock as a refusal names it: ```runner verify```, or "another runner" when its command is
    unknown or is a run's (``run``, ``submit``, ``collect``: another runner at work on the batch)."""
    if command is None:
        return "another runner"
    return f"another `runner {command}`" if command in WORKING else f"`runner {command}`"


def describe(line: str) -> str:
    """Who holds a lock, from its line: ``"pid 123 on host since 2024-05-01T12:00:00Z"``; a holder of this host's name
    whose line says another PID space is said as such (its PID is that machine's or container's, none to stop here)."""
    parts = line.split()
    if len(parts) >= 3 and parts[0].isdigit():
        pid, host, since = parts[:3]
        kind = unlike(_space(parts)) if host == socket.gethostname() else None
        if kind == ANOTHER_BOOT:
            return (f"a runner on another machine named {host} (or on this one before it restarted) since {since},"
                    f" pid {pid} there, not a process here")
        if kind is not None:
            return (f"a runner in another container on {host} (another PID namespace) since {since}, pid {pid} in"
                    " that container, not a process here")
        return f"pid {pid} on {host} since {since}"
    if parts and parts[0].isdigit():
        return f"pid {parts[0]}"
    return "a process that has not written its name yet"


def _flock_holders(fd: int) -> list[int]:
    """The PIDs ``/proc/locks`` names as holding a ``flock`` on ``fd``'s file (none where it cannot tell)."""
    try:
        info = os.fstat(fd)
        with open("/proc/locks", encoding="ascii", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    file = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    pids = []
    for entry in lines:  # "1: FLOCK  ADVISORY  WRITE 6902 00:1b:3468 0 EOF" (a waiter's line has "->" after "1:")
        parts = entry.split()
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5] == file and parts[4].isdigit() and int(parts[4]) > 0:
            pids.append(int(parts[4]))
    return pids


def _is_stopped(pid: int) -> bool:
    return stat_of(pid)[:1] in (["T"], ["t"])


def live_holder(lock_file: Path) -> int | None:
    """The PID of the live process of this host holding the lock ``lock_file`` (a ledger's ``ledger.lock``), read
    without taking it; None when none does (no such file, released, its holder dead) or it cannot be told."""
    try:
        fd = os.open(lock_file, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        pids = _flock_holders(fd)
        line = os.pread(fd, 512, 0).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)
    if pids:
        return pids[0]
    named = _this_hosts_pid(line)  # no /proc/locks: the holder's line (its release empties it), if its process lives
    return named if named is not None and _alive(named) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's
    return True
