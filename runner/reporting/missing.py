"""Done jobs whose video is not at its recorded path: paid for, recorded done, and gone from the disk.

A cleanup cron, an ``rm`` in the wrong folder, a disk replaced: the ledger still reads "done", so a run ended
"[complete]" and ``runner status`` showed 100 % while the provider's result URLs — the only way to download the
videos again without paying — expired. A run's end (:mod:`runner.service.missing_videos`) and ``runner status``
count them here. Cheap for a million done jobs: a streamed read of an index of recorded paths and one directory
listing per output folder (``os.scandir``), not a stat per job; a listing whose entry is a regular file needs no stat
either (``DirEntry.is_file`` reads the entry's type). A run that finds them all records each folder's stamp (inode,
change and modification times) in the ledger's meta; the next run lists nothing while the stamps and the number of
done jobs are the same (a no-op resume of a million jobs: a few stats). Only the name is checked: a file there but
damaged is ``runner verify``'s (it reads every byte). A folder that cannot be listed (permissions) is not counted:
what cannot be seen is not said to be missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from runner.errors import LedgerError
from runner.jobs import JobState
from runner.ledger import LedgerBackend

__all__ = ["FIRST", "SEEN_META", "MissingVideos", "missing_videos"]

FIRST = 2  # recorded paths named
SEEN_META = "outputs_seen"  # the last full check that found every recorded video: its folders as they were then
MAX_REMEMBERED = 10_000  # folders: more (a folder per job) and a check reads them all


@dataclass(frozen=True, slots=True)
class MissingVideos:
    """How many done jobs' videos are not at their recorded path; the first few paths; how many of them have a
    recorded result URL still valid (``restorable``: a download pays nothing) and when the first of those expires."""

    count: int = 0
    first: tuple[str, ...] = ()
    restorable: int = 0
    until: float | None = None

    @property
    def named(self) -> str:
        """The first paths, as a run's line and ``runner status`` say them (", …" when there are more)."""
        return ", ".join(self.first) + (", …" if self.count > len(self.first) else "")


def _names(folder: Path) -> frozenset[str] | None:
    """The regular files in ``folder`` (an empty set: the folder is gone); None when it cannot be listed."""
    try:
        with os.scandir(folder) as entries:
            return frozenset(entry.name for entry in entries if entry.is_file())
    except (FileNotFoundError, NotADirectoryError):
        return frozenset()
    except OSError:
        return None


def _stamp(folder: Path) -> list[int] | None:
    """What changes whenever an entry of ``folder`` is added, removed or renamed, or the folder is replaced (its
    inode) or restored with its old times (``rsync -a``, ``cp -a``: the change time, which nothing can set back)."""
    try:
        st = folder.stat()
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_ctime_ns, st.st_mtime_ns]


def _seen_before(ledger: LedgerBackend, done: int) -> bool:
    """Whether the last full check found every recorded video, with as many done jobs and every folder as it was."""
    try:
        seen = json.loads(ledger.meta(SEEN_META) or "{}")
        folders = seen["folders"] if seen.get("dir") == str(ledger.state_dir.absolute()) and seen.get("done") == done \
            and seen.get("host") == socket.gethostname() else None
        return isinstance(folders, dict) and all(_stamp(ledger.state_dir / f) == st for f, st in folders.items())
    except (ValueError, TypeError, KeyError, AttributeError):  # not ours, an older form: checked in full
        return False


def _remember(ledger: LedgerBackend, done: int, stamps: dict[str, list[int] | None]) -> None:
    if len(stamps) > MAX_REMEMBERED or None in stamps.values() or ledger.readonly:
        return  # a folder per job: stat them all would cost as much as listing them; a folder not listed: not seen
    with contextlib.suppress(LedgerError):
        ledger.set_meta(SEEN_META, json.dumps({"dir": str(ledger.state_dir.absolute()), "host": socket.gethostname(),
                                               "done": done, "folders": stamps}, separators=(",", ":")))


def missing_videos(ledger: LedgerBackend, manifest: str | None, *, now: float, remember: bool = False) -> MissingVideos:
    """Done jobs of ``manifest`` (every manifest's: None) whose video is not in the state directory at its
    recorded path, with their result URLs' validity at ``now`` (epoch seconds).

    Nothing is read again when the last full check found every recorded video and neither the number of done jobs
    nor any of their folders changed since (``remember``: a check that finds them all records that, in the ledger's
    meta). Else every recorded path, read from an index alone (:meth:`recorded_paths`), until one is not on disk:
    with none, that is all. Then the done jobs of ``manifest`` with their URLs' expiry (:meth:`done_files`)."""
    root = ledger.state_dir
    done = ledger.counts(None)[JobState.DONE]
    if _seen_before(ledger, done):
        return MissingVideos()
    listed: dict[str, frozenset[str] | None] = {}
    stamps: dict[str, list[int] | None] = {}

    def there(path: str) -> bool:
        folder, _, name = path.rpartition("/")
        if folder not in listed:
            stamps[folder] = _stamp(root / folder)  # before the listing: a change after it is a change next time
            listed[folder] = _names(root / folder)
        return (names := listed[folder]) is None or name in names

    if all(there(path) for path in ledger.recorded_paths()):
        if remember:
            _remember(ledger, done, stamps)
        return MissingVideos()
    count = restorable = 0
    first: list[str] = []
    until: float | None = None
    for path, expires in ledger.done_files(manifest):
        if there(path):
            continue
        count += 1
        if len(first) < FIRST:
            first.append(path)
        if expires is not None and expires > now:
            restorable += 1
            until = expires if until is None else min(until, expires)
    return MissingVideos(count, tuple(first), restorable, until)
