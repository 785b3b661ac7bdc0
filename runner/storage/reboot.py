"""Whether a folder's files outlive a reboot: a memory-backed mount, or a folder systemd-tmpfiles empties at boot.

A ledger or a video kept where a reboot empties it is lost to the next run: the ledger's jobs are paid for again,
the videos are gone. Two ways a Linux machine does that, both read here (elsewhere nothing is said):

- the folder is on a ``tmpfs`` or ``ramfs`` mount (``/dev/shm``, ``/run``, ``/tmp`` on Fedora, Arch and Debian 13):
  the mount of the folder's real path with the longest mount point in ``/proc/self/mountinfo`` (the last mounted
  of equal ones, which hides the others);
- a ``D`` or ``R`` line of ``tmpfiles.d`` names the folder or a folder above it (``D /tmp`` in
  ``/usr/lib/tmpfiles.d/tmp.conf`` on Debian and Ubuntu, with ``/tmp`` on disk). ``systemd-tmpfiles --boot
  --remove`` (``systemd-tmpfiles-setup.service``) empties a ``D`` folder and removes an ``R`` one at every boot,
  ``x`` lines notwithstanding (those guard only the clean-up by age). A file of ``/etc/tmpfiles.d`` or
  ``/run/tmpfiles.d`` overrides the one of its name further down (empty or linked to ``/dev/null``: none).

Only these two: lines that clean by age (``q /var/tmp … 30d``) empty nothing at boot, and a line with a modifier
this module does not know (``$``: on ``--purge`` only) or a specifier (``%h``) is passed over. A false alarm on
every run teaches an operator to skip warnings; a missed one is no worse than before.
"""

from __future__ import annotations

import fnmatch
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import NamedTuple

__all__ = ["MEMORY_FILE_SYSTEMS", "MOUNTINFO", "TMPFILES_DIRS", "Emptied", "Mount", "emptied_at_boot", "emptied_at_boot_all", "mount_of",
           "read_mounts"]

MOUNTINFO = Path("/proc/self/mountinfo")
#: Where tmpfiles.d(5) reads its files, the first overriding the ones of the same name after it.
TMPFILES_DIRS = (Path("/etc/tmpfiles.d"), Path("/run/tmpfiles.d"), Path("/usr/local/lib/tmpfiles.d"),
                 Path("/usr/lib/tmpfiles.d"), Path("/lib/tmpfiles.d"))
MEMORY_FILE_SYSTEMS = frozenset({"tmpfs", "ramfs"})
_BOOT_MODIFIERS = frozenset("!-=~^+")  # boot-only, ignore errors, replace, base64, credential, append


@dataclass(frozen=True)
class Emptied:
    """Why a reboot empties ``folder``: on a memory-backed mount (``how`` is its type, ``where`` its mount point),
    or by a tmpfiles.d line (``how`` is ``tmpfiles``, ``where`` the line's folder, ``rule`` the line and its file)."""

    folder: Path
    how: str
    where: str
    rule: str = ""

    @property
    def by(self) -> str:
        """What empties it, for a warning: "a reboot" (would take the ledger with it)."""
        return "a reboot"

    def way_on(self, fix: str) -> str:
        """What to do instead, for a warning: ``fix``, the caller's."""
        return fix

    def why(self) -> str:
        """The reason in words, for a warning: "is on a tmpfs …" / "is in /tmp, which is emptied at every boot (…)"."""
        if self.how == "tmpfiles":
            inside = "is" if str(self.folder) == self.where else "is in"
            return f"{inside} {self.where}, which is emptied at every boot ({self.rule})"
        return f"is on a {self.how} mount at {self.where} (memory-backed storage)"


def emptied_at_boot(folder: Path) -> Emptied | None:
    """Why a reboot empties ``folder`` (its real path, whether it exists yet or not), or None: kept, or not known
    (not Linux, nothing readable). Reads :data:`MOUNTINFO` and :data:`TMPFILES_DIRS` (a test points them elsewhere)."""
    return emptied_at_boot_all([folder])[0]


def emptied_at_boot_all(folders: Sequence[Path], mounts: Sequence[Mount] | None = None) -> list[Emptied | None]:
    """:func:`emptied_at_boot` of each of ``folders``, reading the mounts (unless given: :func:`read_mounts`) and
    the tmpfiles.d lines once for all."""
    if not sys.platform.startswith("linux"):
        return [None for _ in folders]
    mounts = read_mounts() if mounts is None else mounts
    rules: list[_Rule] | None = None
    found: list[Emptied | None] = []
    for folder in folders:
        real = PurePosixPath(os.path.realpath(folder))
        mounted = mount_of(real, mounts)
        if mounted is not None and mounted.fstype in MEMORY_FILE_SYSTEMS:
            found.append(Emptied(Path(real), mounted.fstype, mounted.point))
            continue
        rules = _tmpfiles_rules(TMPFILES_DIRS) if rules is None else rules
        found.append(_tmpfiles_rule(real, rules))
    return found


class Mount(NamedTuple):
    """A mount of :data:`MOUNTINFO`: its mount point, file system type, the folder of that file system it shows
    (``/`` for the whole of it; a bind mount's or a volume's own folder) and its source (a device, a ZFS dataset)."""

    point: str
    fstype: str
    root: str
    source: str = ""


def read_mounts() -> list[Mount]:
    """Every mount of :data:`MOUNTINFO`, in its order (none where it cannot be read: not Linux, no ``/proc``)."""
    try:
        text = MOUNTINFO.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return []
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) >= 10 and "-" in fields[6:]:
            after = fields.index("-", 6)
            source = _unescape(fields[after + 2]) if after + 2 < len(fields) else ""
            mounts.append(Mount(_unescape(fields[4]), fields[after + 1], _unescape(fields[3]), source))
    return mounts


def mount_of(real: PurePosixPath, mounts: Sequence[Mount]) -> Mount | None:
    """The mount of ``mounts`` holding ``real`` (a real, absolute path; None: no mount read)."""
    best: Mount | None = None
    for mount in mounts:
        if _within(str(real), mount.point) and (best is None or len(mount.point) >= len(best.point)):
            best = mount  # the deepest; of equal ones the last mounted, on top
    return best


def _unescape(field: str) -> str:
    r"""A mountinfo path with its octal escapes (``\040`` a space, ``\134`` a backslash) read back."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _within(path: str, top: str) -> bool:
    """Whether ``path`` is ``top`` or inside it (both real, absolute paths)."""
    return path == top or path.startswith(top if top.endswith("/") else f"{top}/")


#: A tmpfiles.d line that empties (``D``) or removes (``R``) a folder at boot: its path, the line, where it is written.
_Rule = tuple[str, str, str]


def _tmpfiles_rules(dirs: tuple[Path, ...]) -> list[_Rule]:
    """Every ``D``/``R`` line of the files tmpfiles.d reads (by name, the first folder's file of a name winning)."""
    chosen: dict[str, Path] = {}
    for folder in dirs:
        try:
            names = sorted(entry.name for entry in os.scandir(folder) if entry.name.endswith(".conf"))
        except OSError:
            continue
        for name in names:
            chosen.setdefault(name, folder / name)
    rules = []
    for name in sorted(chosen):
        try:
            text = chosen[name].read_text(encoding="utf-8", errors="replace")  # /dev/null or empty: masked
        except OSError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            target = _emptied_by(line)
            if target is not None:
                rules.append((target, " ".join(line.split()[:2]), f"{chosen[name]}:{number}"))
    return rules


def _tmpfiles_rule(real: PurePosixPath, rules: list[_Rule]) -> Emptied | None:
    """The first of ``rules`` naming ``real`` or a folder above it."""
    for target, line, where in rules:
        if _names(target, real):
            return Emptied(Path(real), "tmpfiles", _shown(target, real), f"`{line}` in {where}")
    return None


def _emptied_by(line: str) -> str | None:
    """The path of a tmpfiles.d line that empties (``D``) or removes (``R``) it at boot, else None."""
    stripped = line.strip()
    if not stripped or stripped[0] not in "DR":  # most lines (and every comment): no shell-like split needed
        return None
    try:
        fields = shlex.split(stripped)
    except ValueError:
        return None
    if len(fields) < 2 or fields[0][0] not in "DR" or not set(fields[0][1:]) <= _BOOT_MODIFIERS:
        return None
    path = fields[1]
    if "%" in path or not path.startswith("/"):
        return None  # a specifier (%h, %t: per user) or no absolute path: not a folder this module can place
    if fields[0][0] == "D" and any(char in path for char in "*?["):
        return None  # systemd-tmpfiles globs the paths of R lines, not of D ones
    return path


def _names(target: str, real: PurePosixPath) -> bool:
    """Whether the rule's ``target`` (a path, perhaps with globs, perhaps through a link) is ``real`` or above it."""
    if any(char in target for char in "*?["):
        return any(fnmatch.fnmatchcase(str(above), target) for above in (real, *real.parents))
    return _within(str(real), os.path.realpath(target))


def _shown(target: str, real: PurePosixPath) -> str:
    """The folder a line empties, as the warning names it: the line's path, or the one of ``real`` its glob matched."""
    if not any(char in target for char in "*?["):
        return os.path.realpath(target)
    return next(str(above) for above in (real, *real.parents) if fnmatch.fnmatchcase(str(above), target))
