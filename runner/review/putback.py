"""A done job's video that a stopped command left half moved: find it by the record, put it back.

Two commands move a done job's video without the ledger changing in the same step, and a crash
(kill -9, power loss) between the two leaves the file at another name than the recorded one:

* ``runner regenerate`` moves the rejected video to ``outputs/<m>/_rejected/<key>.<sample>[-n].mp4``
  (``m``: the manifest regenerating it, any of those listing the job), then requeues the job. Stopped
  in between, the job is still done, sample unchanged, with its file aside.
* ``runner verify`` commits a good download beside a damaged file (``<stem>.<key12>.mp4``), removes
  the damaged one, then moves the good one in. Stopped in between, the good copy is beside.

A copy is taken only when its size and sha256 are the recorded ones (and, for the beside name, no
other job records that name), so the file put back is the very video the ledger describes. Nothing
is downloaded or paid; a recorded path holding other bytes is replaced only by such a copy, and only
when no job records those bytes (another job's video there is never removed: both are left, and said).
The names regenerate takes in ``_rejected/``, and its video found there: :mod:`runner.ledger.set_aside`.
"""

from __future__ import annotations

import logging

from runner.jobs import JobState
from runner.ledger import JobRecord, LedgerBackend
from runner.ledger.set_aside import find_kept
from runner.storage import OutputStore
from runner.storage.api import beside_name

__all__ = ["find_copy", "put_back"]

log = logging.getLogger("runner.review")


def _beside(ledger: LedgerBackend, store: OutputStore, job: JobRecord, path: str, sha256: str, size: int) -> str | None:
    beside = beside_name(path, job.key)
    if beside == path or ledger.key_at_path(beside) not in (None, job.key):
        return None
    return beside if store.verify(beside, sha256, size) else None


def find_copy(ledger: LedgerBackend, store: OutputStore, job: JobRecord) -> str | None:
    """Where a verified copy of a done job's recorded video is, beside its name or in a ``_rejected/``
    folder (a stopped command left it there); ``None`` when there is none. Nothing is moved."""
    path, sha256, size = job.path, job.sha256, job.bytes
    if path is None or sha256 is None or size is None:
        return None
    return _beside(ledger, store, job, path, sha256, size) or find_kept(ledger, store, job)


def put_back(ledger: LedgerBackend, store: OutputStore, job: JobRecord) -> str | None:
    """Move a verified copy of a done job's video back to its recorded path when that path does not
    hold it; returns where the copy was, ``None`` when nothing was put back (the file is in place, or
    no copy matches the record)."""
    path, sha256, size = job.path, job.sha256, job.bytes
    if job.state is not JobState.DONE or path is None or sha256 is None or size is None:
        return None
    if store.verify(path, sha256, size):
        return None
    found = find_copy(ledger, store, job)
    if found is None:
        return None
    if store.exists(path):  # other bytes than the recorded video
        there = store.digest(path)
        if there is not None and ledger.paths_with_sha256(there):  # another job's video: never removed for this one
            log.warning("job %s: its video is at %s, but its recorded path %s holds another job's video; both are"
                        " left where they are (`runner show %s`)", job.key, found, path, job.key)
            return None
        store.remove(path)  # bytes no job records (a damaged download): the verified copy replaces them
    store.move(found, path)
    log.warning("job %s: its video was at %s (a command was stopped while moving it); put back at %s",
                job.key, found, path)
    ledger.record_event(job.key, "download", "restored", detail=f"put back from {found} (sha256 and size as recorded)")
    return found
