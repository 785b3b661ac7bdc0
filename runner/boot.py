"""This boot of the machine: its id and its steady clock, ``CLOCK_BOOTTIME``.

``CLOCK_BOOTTIME`` (Linux) counts the seconds since the machine booted, a suspend included; nothing sets or steps it
(an NTP correction, an operator's ``date -s``, a VM restored from a snapshot step the wall clock only). Two readings
are comparable in one boot, across processes too, and only there: the boot id
(``/proc/sys/kernel/random/boot_id``) names the boot. Where either is missing (macOS, Windows, an old kernel)
:data:`BOOTTIME` and :func:`this_boot` are ``None`` and the callers keep the rule they had for the wall clock.

A ledger record carries a reading as ``[boot <id> +<seconds>s]`` at the end of its text (:func:`stamped`, read back
by :func:`stamp_of`): a TASK_NOT_FOUND answer's, a submit's write-ahead (the attempt's detail).

The boot id also tells machines apart where their host names do not (:mod:`runner.host`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

__all__ = ["BOOTTIME", "BootStamp", "boot_id", "stamp_of", "stamped", "this_boot"]

BootStamp = tuple[str, float]  # (boot id, CLOCK_BOOTTIME seconds)

_BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"
_STAMP = re.compile(r"(?:^| )\[boot ([0-9A-Za-z-]+) \+([0-9]+(?:\.[0-9]+)?)s\]$")


def _boottime() -> Callable[[], float] | None:
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    if clock is None:
        return None
    try:
        time.clock_gettime(clock)
    except OSError:  # a kernel without it
        return None
    return lambda: time.clock_gettime(clock)


def _boot_id() -> str | None:
    try:
        with open(_BOOT_ID_FILE, encoding="ascii") as file:
            found = file.read().strip()
    except (OSError, ValueError):
        return None
    return found or None


#: Seconds since boot, a suspend included, never stepped; ``None`` where the system has no such clock.
BOOTTIME = _boottime()
_BOOT_ID = _boot_id() if BOOTTIME is not None else None


def this_boot() -> BootStamp | None:
    """Now on this boot's steady clock, with the boot's id; ``None`` where either cannot be read."""
    if BOOTTIME is None or _BOOT_ID is None:
        return None
    return _BOOT_ID, BOOTTIME()


def boot_id() -> str | None:
    """This boot's id; ``None`` where it cannot be read."""
    return _BOOT_ID


def stamped(text: str, boot: BootStamp | None) -> str:
    """``text`` with ``boot`` (a reading of :func:`this_boot`) at its end; ``text`` as it is without one."""
    if boot is None:
        return text
    mark = f"[boot {boot[0]} +{boot[1]:.3f}s]"
    return f"{text} {mark}" if text else mark


def stamp_of(text: str | None) -> BootStamp | None:
    """The reading :func:`stamped` put at the end of ``text``, or ``None``."""
    found = _STAMP.search(text or "")
    return None if found is None else (found[1], float(found[2]))
