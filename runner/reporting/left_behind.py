"""What an export or a report killed mid-way (``kill -9``, the OOM killer, a power cut) left in its folder:
:class:`LeftBehind`.

Both write each file under a temporary name beside it and rename it into place once whole: a text file as
``.NAME.tmp-PID@HOST-RANDOM`` (:mod:`runner.reporting.whole_file`), a video or an image linked or copied as
``.NAME.link-PID@HOST`` (:func:`runner.storage.local.link_or_copy`), ``HOST`` the writer's host name and PID space
(:func:`runner.host.place_tag`). A signal or an error removes it; a kill cannot. Left,
it stayed in the folder for good: a dataset folder is uploaded as it is (``hf upload DIR``), the partial rows or
video with it; beside an ``export --to FILE``, for good too. The next write of the same name (:func:`whole_file
<runner.reporting.whole_file.whole_file>`, or the hf export or report placing a video) removes those whose process is
gone (the PID in the name names no live process on this host: one still writing, or a PID used again since, keeps its
file); nothing else in the folder is looked at. A name whose ``HOST`` is not this process's is left alone: its PID is
another machine's (an export folder shared over NFS: its export, still writing, lost its file mid-write), another
container's, or one from before this machine restarted, and says nothing of a process here — until the file has
been left untouched for a day (:data:`STALE_S`), which no export still writing leaves its file: then its writer is
gone (killed in a container since removed — every `docker run --rm` has a PID space of its own —, or before this
machine restarted), and the file goes. (A name without ``HOST``, an older runner's, is judged by its PID, as
before.)
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from runner.host import place_tag

__all__ = ["STALE_S", "LeftBehind"]

STALE_S = 24 * 3600  # a temporary file of another host, container or boot untouched this long: its writer is gone

_LEFT = re.compile(r"\.(?P<name>.+)\.(?:tmp-(?P<text>\d+)(?:@(?P<text_host>[0-9a-f]{8}))?-[0-9a-f]+"
                   r"|link-(?P<media>\d+)(?:@(?P<media_host>[0-9a-f]{8}))?)", re.DOTALL)


class LeftBehind:
    """The temporary files of dead writers in one export's or report's folder, removed name by name."""

    def __init__(self, top: Path) -> None:
        self._top = top
        self._hidden: dict[Path, dict[str, list[str]]] = {}  # folder → written name → temporary files of it there
        self.removed = 0

    def clear(self, rel: str) -> None:
        """Remove the temporary files a dead writer left for ``rel`` (relative to the folder), beside it."""
        path = self._top / rel
        for name in self._left(path.parent).get(path.name, ()):
            found = _LEFT.fullmatch(name)
            assert found is not None
            host = found["text_host"] or found["media_host"]
            if host is not None and host != place_tag():
                if not _untouched(path.parent / name):
                    continue  # another host's (or container's, or boot's) writer, perhaps still writing
            elif _alive(int(found["text"] or found["media"])):
                continue  # a live writer here
            try:
                os.unlink(path.parent / name)
            except OSError:
                continue
            self.removed += 1

    def _left(self, folder: Path) -> dict[str, list[str]]:
        if folder not in self._hidden:
            by_name: dict[str, list[str]] = {}
            try:
                with os.scandir(folder) as entries:
                    for entry in entries:
                        found = _LEFT.fullmatch(entry.name) if entry.name.startswith(".") else None
                        if found is not None and entry.is_file(follow_symlinks=False):
                            by_name.setdefault(found["name"], []).append(entry.name)
            except OSError:  # no folder yet: nothing left there
                pass
            self._hidden[folder] = by_name
        return self._hidden[folder]


def _untouched(file: Path) -> bool:
    """Whether ``file`` was last written :data:`STALE_S` ago or more (by this machine's clock)."""
    try:
        return os.lstat(file).st_mtime <= time.time() - STALE_S
    except OSError:
        return False


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's live process; a PID past any (kept: not guessed at)
        return True
    return True
