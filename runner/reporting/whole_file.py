"""A file an export or a report writes whole or not at all: :func:`whole_file`.

The text goes to a temporary name beside the file (``.NAME.tmp-PID-RANDOM``, made new: never an existing file,
never through a link planted there — one at a guessable name had its target, a ledger.db, overwritten), is fsynced,
and replaces the file in one ``rename`` only once every byte was written. A full disk, a quota, an I/O error, Ctrl-C or ``kill -9`` halfway
leaves the earlier file as it was and removes the temporary one (``kill -9`` aside: the next write of the same name
removes it, :mod:`runner.reporting.left_behind`). Before, ``export --to FILE`` emptied FILE first: an export cut short by a full disk left the
previous, complete export torn in the middle of a line, which a pipeline reading JSON lines took for a shorter
dataset (OS sweep, 2026-12-05).

A name that is not a regular file — ``/dev/stdout``, a FIFO, a terminal — is written in place, as before: there is
nothing to keep, and replacing a device node would be wrong. So is a name of a descriptor (:func:`names_descriptor`:
``/dev/stdout``, ``/dev/fd/N``) that the shell sent to a regular file, appended to it as stdout would be:
``--to /dev/stdout >> all.jsonl`` had the file replaced by this export alone, its earlier lines lost. A symbolic link is followed (``--to`` names it): its
target is replaced, the link stays; or, in a folder runner owns, replaced itself. An existing file keeps its
permission bits.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from runner.host import place_tag
from runner.reporting.left_behind import LeftBehind

__all__ = ["names_descriptor", "open_new", "temp_name", "whole_file"]

# A path the locale could not decode (``--state états`` under LC_ALL=C) holds surrogate escapes: its own bytes are
# written back, as stdout does (runner/_entry.py); strict UTF-8 ended the report in a UnicodeEncodeError.
_PATH_BYTES = "surrogateescape"


@contextlib.contextmanager
def whole_file(dest: Path, *, newline: str | None = None, follow: bool = True) -> Iterator[TextIO]:
    """A text stream (UTF-8, a path's undecodable bytes as they were) whose bytes become ``dest`` when the block ends without an exception; on any exception
    ``dest`` is left untouched and the temporary file removed. An ``OSError`` of the file's own (opening, a write,
    the fsync, the rename: one naming no other file) names ``dest``. ``follow=False``: whatever is at ``dest``
    (a link, a FIFO) is replaced, never followed nor opened (a file in a folder runner owns: an export's, a report's)."""
    try:
        mode: int | None = (os.stat if follow else os.lstat)(dest).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode) and not follow:  # a link, a FIFO…: replaced, never opened
        mode = None
    elif mode is not None and not stat.S_ISREG(mode):  # a device, a FIFO: written in place
        with _naming(dest, None), dest.open("w", newline=newline, encoding="utf-8", errors=_PATH_BYTES) as stream:
            yield stream
        return
    elif mode is not None and follow and names_descriptor(dest):  # the shell's file (> or >>): added to, as stdout
        with _naming(dest, None), dest.open("a", newline=newline, encoding="utf-8", errors=_PATH_BYTES) as stream:
            yield stream
        return
    target = Path(os.path.realpath(dest)) if follow else dest  # a link followed: its target replaced, the link kept
    LeftBehind(target.parent).clear(target.name)  # what a write of it killed earlier left beside it
    tmp = temp_name(target)
    try:
        with _naming(dest, tmp):
            with open(open_new(tmp), "w", newline=newline, encoding="utf-8", errors=_PATH_BYTES) as stream:
                if mode is not None:
                    os.chmod(stream.fileno(), stat.S_IMODE(mode))
                yield stream
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def names_descriptor(path: Path) -> bool:
    """Whether ``path`` names an open descriptor of this process (``/dev/stdout``, ``/dev/fd/N``, ``/proc/…/fd/N``):
    its folder is ``/dev`` or in ``/proc``, not a folder the file is kept in."""
    folder = os.path.realpath(path.parent)
    return folder == "/dev" or folder.startswith("/proc/")


def temp_name(target: Path) -> Path:
    """A name beside ``target`` to write it whole under: ``.NAME.tmp-PID@HOST-RANDOM`` (no leftover stands in its way;
    ``HOST``: :func:`runner.host.place_tag`, whose PID it is)."""
    return target.with_name(f".{target.name}.tmp-{os.getpid()}@{place_tag()}-{secrets.token_hex(4)}")


def open_new(tmp: Path) -> int:
    """An fd open for writing on a new file at ``tmp``: ``O_EXCL`` and ``O_NOFOLLOW``, never a file or a link
    already there (a link planted at a name others could guess was followed, its target emptied and overwritten)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    return os.open(tmp, flags, 0o666)


@contextlib.contextmanager
def _naming(dest: Path, tmp: Path | None) -> Iterator[None]:
    """An ``OSError`` raised inside names ``dest``, the file the operator asked for, instead of the temporary name or
    none (a write); one naming another file (a video an export reads) is left as it is."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None and exc.filename != str(tmp):
            raise
        raise OSError(exc.errno, exc.strerror or str(exc), str(dest)) from exc
