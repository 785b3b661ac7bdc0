"""Output file names: rendered from a template, and unable to escape.

The ``output`` template's own text decides the folders (``{city}/{style}.mp4``
writes into one folder per city). Values never do: before a value is put into
the template, every ``/``, ``\\``, NUL, control character (C0 and C1) and
``: * ? " < > |`` in it becomes ``_``, and so does every character that makes a
name read otherwise than it is (:data:`INVISIBLE`: bidi controls such as U+202E,
which shows the rest of a name reversed; zero-width spaces; line and paragraph
separators; a BOM). A template whose own text holds one is refused.
The rendered path is then checked segment by segment:

* an empty segment (``a//b``, a leading ``/``, an empty value) is an error;
* a leading ``.`` or ``-`` becomes ``_`` (no hidden files, no ``..``, no
  names that look like command-line options); trailing dots and spaces are
  dropped (Windows would drop them and merge two names);
* Windows device names (``CON``, ``NUL``, ``COM1``… with any extension) get a
  ``_`` prefix;
* a folder name longer than 255 bytes is an error; so is a file name longer
  than 255 − ``RESERVED_NAME_BYTES`` (223) bytes, because the download's
  temporary name (``.<name>.part-<hex>``) and the name beside an occupied
  destination (``<stem>.<key[:12]>.mp4``) must fit too, and a whole path
  longer than ``MAX_OUTPUT_PATH_BYTES`` (3072; PATH_MAX is 4096);
* the name must end in ``.mp4``; it is appended when missing;
* the first folder may not be ``_rejected`` or ``_orphans`` (any case): runner keeps rejected and orphaned
  videos there, beside the manifest's own;
* a lone surrogate (no character: UTF-8 cannot write it) is an error. The
  manifest's values are refused for it where they are read, with their line.

The result is NFC-normalised Unicode. Two jobs whose names differ only by case
or Unicode form are treated as the same file (see :func:`collision_key`: case
folded over the decomposed form, so a long s with an acute and an s acute are one name too),
because they are on macOS and Windows.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from runner.layout import ORPHANS_DIR, REJECTED_DIR
from runner.manifest.values import lone_surrogate
from runner.storage.api import MAX_NAME_BYTES, MAX_OUTPUT_PATH_BYTES, RESERVED_NAME_BYTES, caseless

__all__ = ["INVISIBLE", "PathRejected", "check_template_text", "clean_value", "collision_key", "finish_path"]

#: Characters that make a name read otherwise than it is: bidi marks, embeddings, overrides and isolates; zero-width
#: space; line and paragraph separators; the BOM. (The zero-width joiners U+200C/U+200D are kept: scripts and emoji
#: need them.)
INVISIBLE = "\u061c\u200b\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff"
_INVISIBLE = re.compile(f"[{INVISIBLE}]")
_UNSAFE = re.compile(f'[\\x00-\\x1f\\x7f-\\x9f/\\\\:*?"<>|{INVISIBLE}]')
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"COM{i}" for i in range(10)}
    | {f"LPT{i}" for i in range(10)}
    | {f"COM{c}" for c in "¹²³"}
    | {f"LPT{c}" for c in "¹²³"}
)
MAX_SEGMENT_BYTES = MAX_NAME_BYTES
_KEPT_FOLDERS = frozenset({REJECTED_DIR.casefold(), ORPHANS_DIR.casefold()})  # beside a manifest's videos (layout)
_RESERVED_LEN = max(len(name) for name in _RESERVED)


class PathRejected(ValueError):
    """The rendered output name cannot be used; the message says why."""


def clean_value(value: Any) -> str:
    """A value as text that cannot add folders or unsafe characters to a path."""
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return _UNSAFE.sub("_", text)


def check_template_text(literal: str) -> str | None:
    """Why the literal text of an output template is unsafe, or ``None`` (a NUL or another control character in it
    was refused where the YAML is read, with its line: :func:`runner.manifest.values.control_character`)."""
    if literal.startswith("/") or re.match(r"^[A-Za-z]:", literal):
        return "it must be a relative path (no leading / or drive letter)"
    if "\\" in literal:
        return "use / to separate folders, not \\"
    invisible = _INVISIBLE.search(literal)
    if invisible is not None:
        return (f"it contains the invisible character U+{ord(invisible.group()):04X}, which makes a file name read"
                " otherwise than it is; remove it")
    if any(segment in (".", "..") for segment in literal.split("/")):
        return "'.' and '..' segments are not allowed"
    return None


def _segment(segment: str, reserve: int = 0) -> str:
    segment = segment.rstrip(" .")
    if not segment:
        raise PathRejected("it has an empty folder or file name (an empty value, '//' or only dots)")
    if segment[0] in ".-":
        segment = "_" + segment[1:]
    stem = segment.partition(".")[0]
    if len(stem) <= _RESERVED_LEN and stem.rstrip(" ").upper() in _RESERVED:
        segment = "_" + segment
    if 4 * len(segment) + reserve > MAX_SEGMENT_BYTES and len(segment.encode("utf-8")) + reserve > MAX_SEGMENT_BYTES:
        if reserve <= 0:
            raise PathRejected(f"the folder name {segment[:40]!r}… is longer than {MAX_SEGMENT_BYTES} bytes")
        size = len(segment.encode("utf-8")) + reserve - RESERVED_NAME_BYTES
        raise PathRejected(
            f"the file name {segment[:40]!r}… is {size} bytes; at most {MAX_SEGMENT_BYTES - RESERVED_NAME_BYTES}"
            f" fit, because the download's temporary name adds {RESERVED_NAME_BYTES} bytes"
            f" ({MAX_SEGMENT_BYTES} is the file system's limit); shorten the output template or its values"
        )
    return segment


def finish_path(rendered: str) -> str:
    """Check and normalise a rendered output path (``PathRejected`` if unusable)."""
    if not rendered.isascii():
        why = lone_surrogate(rendered)
        if why is not None:
            raise PathRejected(why)
        rendered = unicodedata.normalize("NFC", rendered)
    suffix = rendered[-4:]
    if suffix.lower() == ".mp4":
        rendered = rendered[:-4]
    else:
        suffix = ".mp4"
    *folders, name = rendered.split("/")
    name = _segment(name, len(suffix) + RESERVED_NAME_BYTES) + suffix
    if not folders:
        return name
    if folders[0].casefold() in _KEPT_FOLDERS:
        raise PathRejected(f"the folder {folders[0]!r} is where runner keeps rejected and orphaned videos; a"
                           " template or value must not write into it (rename it)")
    path = "/".join([*(_segment(folder) for folder in folders), name])
    if len(path) * 4 > MAX_OUTPUT_PATH_BYTES and len(path.encode("utf-8")) > MAX_OUTPUT_PATH_BYTES:
        raise PathRejected(
            f"the path {path[:40]!r}… is {len(path.encode('utf-8'))} bytes; at most {MAX_OUTPUT_PATH_BYTES} fit"
            " (the operating system's limit on a whole path, with room for the state directory)"
        )
    return path


def collision_key(output: str) -> str:
    """The form under which two output names denote the same file anywhere (:func:`~runner.storage.api.caseless`)."""
    return caseless(output)
