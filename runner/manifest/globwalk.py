"""A ``{glob: …}`` axis whose ``**`` would walk a folder twice: :func:`walked_twice`.

Python's ``glob`` follows links to folders when it expands ``**``, and keeps no record of the folders it has been
in: a link from a folder to itself or to a folder above it (``frames/again -> .``, ``frames/sub/up -> ..``) is
walked again and again until the path is too long for the system — 40 copies of every file below it, each planned
as a job of its own — and two such links make 2^40 paths, which ``plan`` walked until killed. Before the pattern
is expanded, the folders its ``**`` would walk are walked once here, as ``glob`` walks them (links followed,
hidden folders skipped), and the first folder reached a second time is named with the link that leads to it.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

__all__ = ["walked_twice"]


def walked_twice(pattern: str, base: Path) -> tuple[str, str] | None:
    """``(folder, way)``: a folder the ``**`` of ``pattern`` (relative to ``base``) would walk again through ``way``
    (a link to it or to a folder above it); None when every folder is walked once, or the pattern has no ``**``."""
    parts = pattern.replace(os.sep, "/").split("/")
    if "**" not in parts:
        return None
    head = "/".join(parts[: parts.index("**")]) or ("/" if pattern.startswith("/") else "")  # no ** in it: expanded
    # as glob expands it, without walking anything
    roots = glob.glob(head, root_dir=base) if glob.has_magic(head) else [head]
    seen: dict[tuple[int, int], str] = {}
    for root in sorted(roots):
        stack = [root or "."]
        while stack:
            folder = stack.pop()
            try:
                info = os.stat(base / folder)
                entries = sorted(os.scandir(base / folder), key=lambda entry: entry.name, reverse=True)
            except OSError:  # gone, not a folder, unreadable: glob lists nothing there either
                continue
            first = seen.setdefault((info.st_dev, info.st_ino), folder)
            if first != folder:
                return first, folder
            for entry in entries:
                try:
                    walked = not entry.name.startswith(".") and entry.is_dir()  # is_dir follows links, as glob does
                except OSError:
                    continue
                if walked:
                    stack.append(entry.name if folder == "." else f"{folder}/{entry.name}")
    return None
