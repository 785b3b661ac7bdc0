"""The temporary files of the local store: where a download streams before its commit, and what a killed one
leaves.

A sink for ``outputs/batch/fox.mp4`` writes ``outputs/batch/.fox.mp4.part-<12 hex digits>`` and renames it into
place at its commit (:mod:`runner.storage.local`). A writer killed before that (``kill -9``, the OOM killer, a power
cut) leaves the file, up to a whole video; :func:`remove_temp_files` finds and removes them, for the run after one
that did not end.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from runner.storage.api import TEMP_TOKEN_HEX

__all__ = ["remove_temp_files", "temp_name"]

_TEMP_NAME = re.compile(rf"\..+\.part-[0-9a-f]{{{TEMP_TOKEN_HEX}}}", re.DOTALL)  # what temp_name makes


def temp_name(dest: Path, token: str) -> Path:
    """The temporary file a sink for ``dest`` streams into: ``.<name>.part-<token>`` beside it."""
    return dest.parent / f".{dest.name}.part-{token}"


def remove_temp_files(top: Path) -> tuple[int, int]:
    """Remove every :func:`temp_name` file under ``top`` (no link followed): (files, bytes)."""
    files = size = 0
    for parent, _dirs, names in os.walk(top, followlinks=False):
        for name in names:
            if _TEMP_NAME.fullmatch(name):
                path = os.path.join(parent, name)
                try:
                    found = os.lstat(path)
                    if stat.S_ISREG(found.st_mode):
                        os.unlink(path)
                        files, size = files + 1, size + found.st_size
                except FileNotFoundError:
                    continue
    return files, size
