"""The records of ``runner export --format jsonl|csv`` (and ``runner ls --json``): :func:`job_row`.

``path`` is where a dataset builder opens the video. Written to a file (``--to FILE``), it is relative to that
file's folder: a builder joins it to the folder the file is in, from whatever directory the export ran (a
Makefile in a subfolder, cron in its home); before, it was relative to the working directory, and an export written
elsewhere listed paths that led nowhere from it. Printed on stdout (``> FILE``, a pipe), where runner cannot know
the file, it is relative to the working directory, as a shell redirect beside it expects. A store that is not a
local folder names the video its own way (a URL), left as it is.

``review`` is the operator's verdict on a done job's clip (:func:`review_of`): ``accepted``, ``unreviewed`` or
``rejected`` (a rejected clip is in an export only with ``--include-rejected``); a job with no clip (not done) has
none (null, an empty csv cell).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from runner.jobs import JobState
from runner.ledger import JobRecord
from runner.storage import OutputStore

__all__ = ["job_row", "review_of", "video_path"]


def review_of(job: JobRecord) -> str | None:
    """The review of a done job's clip: accepted, unreviewed or rejected; None for a job with no clip (not done)."""
    if job.state is not JobState.DONE:
        return None
    return job.review or "unreviewed"


def video_path(described: str, relative_to: Path | None = None) -> str:
    """A stored video's name (``store.describe``) as a record carries it: relative to the folder ``relative_to``
    (the export file's) or to the working directory (None); a URL as it is.

    The folder is taken as the file system finds it (symbolic links resolved): ``..`` in an opened path climbs from
    the folder's real place, not from the link's."""
    if "://" in described:
        return described
    if relative_to is None:
        return os.path.relpath(described)
    return os.path.relpath(os.path.abspath(described), os.path.realpath(relative_to))


def job_row(job: JobRecord, store: OutputStore, *, relative_to: Path | None = None) -> dict[str, Any]:
    """One job as a JSON-ready record (``export --format jsonl`` and ``ls --json``).

    ``path`` is where the store keeps the video (:func:`video_path`): relative to the folder ``relative_to`` (an
    export file's), else to the working directory, for a local store; else the store's own name for it.
    """
    path = None if job.path is None else video_path(store.describe(job.path), relative_to)
    return {
        "key": job.key, "state": str(job.state), "task_id": job.task_id, "request": job.request,
        "vars": job.vars, "repeat": job.repeat, "output": job.output, "path": path, "sha256": job.sha256,
        "bytes": job.bytes, "estimated_usd": job.estimated_usd, "spent_usd": job.spent_usd,
        "attempts": job.attempts, "error": job.error, "review": review_of(job),
    }
