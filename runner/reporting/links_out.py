"""Refusing a folder of an output folder (a report's, an hf export's) that is a symbolic link leading out of it.

A report or an hf export writes its files into DIR and, written again, removes those it no longer shows. A folder on
the way to one of them made a symbolic link (by hand, to save room or to share) to a folder outside DIR — the user's
own videos, another report's, the state directory's outputs — would have those files written, and removed, there.
Such a link is refused before anything is written (exit 2), naming the link and the fix.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path, PurePosixPath

from runner.errors import UsageError
from runner.storage.inside import inside

__all__ = ["refuse_links_out"]


def refuse_links_out(dest: Path, rel: str, *, what: str = "report") -> None:
    """Refuse (:class:`~runner.errors.UsageError`, exit 2) a folder on the way from ``dest`` to ``rel`` (a name
    relative to it) that is a symbolic link leading outside ``dest``: the ``what`` (``report``, ``hf export``)
    would write, and remove, there."""
    current, top = dest, None
    for part in PurePosixPath(rel).parts[:-1]:
        current = current / part
        if not current.is_symlink():
            continue
        top = top or os.path.realpath(dest)
        target = os.path.realpath(current)
        if not inside(target, top):
            raise UsageError(
                f"{current} is a link to {target}, outside the {what} folder {dest}: the {what} writes its videos"
                " there and removes those it no longer lists, never through a link, so nothing was written. Remove"
                f" the link (`rm {shlex.quote(str(current))}`: what it points to is kept; the {what} hard-links its videos, which takes"
                f" no room on one disk) and run again, or write the {what} to another --to folder")
