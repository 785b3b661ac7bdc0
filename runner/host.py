"""Where a PID written beside a host name means something: this machine's boot and this process's PID namespace.

A host name alone does not say it. Two machines often share one (VMs or images never renamed: ``ubuntu``,
``localhost``; containers started with one ``--hostname``; a StatefulSet's ``runner-0`` in two clusters), a machine
restarted keeps its own, and containers of one kernel number their processes each in their own namespace. So what a
process writes with its host name and PID (the ledger's lock line, its commit mark) carries :func:`pid_space` too:
``<boot id>/<PID namespace>`` (``/proc/sys/kernel/random/boot_id``, :mod:`runner.boot`; the inode of
``/proc/self/ns/pid``, then ``.`` and when its PID 1 started). A PID written in another space (:func:`elsewhere`) is not
a process here, whatever runs under that number now: another machine's, or one that a restart ended.

A namespace's inode number alone does not name it for long: the kernel gives the number again once the namespace is
gone, and the container started after one ended very often gets its predecessor's (``unshare --pid`` three times in a
row: the same number). The start of its PID 1 (``/proc/1/stat``, in clock ticks since boot) tells the two apart.
"""

from __future__ import annotations

import hashlib
import os
import socket

from runner.boot import boot_id

__all__ = ["ANOTHER_BOOT", "ANOTHER_NAMESPACE", "elsewhere", "pid_space", "place_tag", "stat_of", "unlike"]

ANOTHER_BOOT = "boot"  # unlike(): another machine of the same host name, or this one before it restarted
ANOTHER_NAMESPACE = "namespace"  # unlike(): another PID namespace of this boot (another container of this kernel)


def _namespace() -> str | None:
    """``<inode>.<start of its PID 1>`` (the inode alone where PID 1 cannot be read: ``hidepid``)."""
    try:
        inode = os.stat("/proc/self/ns/pid").st_ino
    except OSError:  # no /proc (macOS), or not this process's to read
        return None
    fields = stat_of(1)
    return f"{inode}.{fields[19]}" if len(fields) > 19 and fields[19].isdigit() else str(inode)


def stat_of(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` from the third (the state: ``R``, ``S``, ``T``…) on; none where it cannot
    be read (no such process, no ``/proc``, ``hidepid``)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return []
    return stat[stat.rfind(")") + 1:].split()  # after the command's name in parentheses, which may hold anything


def _space() -> str | None:
    boot = boot_id()
    if boot is None:
        return None
    namespace = _namespace()
    return boot if namespace is None else f"{boot}/{namespace}"


_HERE = _space()


def pid_space() -> str | None:
    """This process's PID space, ``<boot id>/<PID namespace>`` (the boot id alone where the namespace cannot be read);
    ``None`` where the boot id cannot be (another system)."""
    return _HERE


def place_tag() -> str:
    """This process's host name and PID space in 8 hex digits, for a file name that carries its writer's PID (an
    export's temporary file, :mod:`runner.reporting.left_behind`): where a name's tag is another one, its PID is
    another machine's (a folder shared over NFS), another container's or another boot's, and says nothing here."""
    return hashlib.sha256(f"{socket.gethostname()} {_HERE}".encode("utf-8", "surrogateescape")).hexdigest()[:8]


def elsewhere(written: str | None) -> bool:
    """Whether the PID space ``written`` (:func:`pid_space` of the writer) is not this process's: another boot
    (another machine of the same host name, or this one before it restarted), or another PID namespace of this boot
    (another container). False where either is unknown (a line an older runner wrote, a system without boot ids): the
    host name is all there is, as before."""
    return unlike(written) is not None


def unlike(written: str | None) -> str | None:
    """How the PID space ``written`` differs from this process's (see :func:`elsewhere`): :data:`ANOTHER_BOOT`,
    :data:`ANOTHER_NAMESPACE`, or None (the same, or unknown)."""
    if written is None or _HERE is None:
        return None
    boot, _, namespace = written.partition("/")
    here_boot, _, here_namespace = _HERE.partition("/")
    if boot != here_boot:
        return ANOTHER_BOOT
    return ANOTHER_NAMESPACE if _another(namespace, here_namespace) else None


def _another(namespace: str, here: str) -> bool:
    """Whether the PID namespaces ``namespace`` and ``here`` (``<inode>[.<start of its PID 1>]``) differ, as far as
    both say: a number another namespace had before (a start on one side only: compared by inode)."""
    if not namespace or not here:
        return False
    inode, _, started = namespace.partition(".")
    here_inode, _, here_started = here.partition(".")
    return inode != here_inode or bool(started and here_started and started != here_started)
