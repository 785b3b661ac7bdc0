"""The videos a report wrote into its folder, and removing those it no longer shows when written again.

A report copies (hard-links) each shown video under ``DIR/videos/``. Written again after a clip was rejected, or
a job dropped by an edit, the page leaves it out; its file would stay and travel with a report folder shared. So
each report records what it wrote (``DIR/videos/.runner-report.json``: name → sha256 of the stored video) and the
next removes the files of that record it does not write again — only while a file still holds the bytes it wrote
(one changed since, or one the report never wrote, stays), as ``runner export --format hf`` does — and only while
the state directory keeps those bytes in another file (``elsewhere``): the report's hard link is the last copy of a
paid video whose stored original was removed, and a ``videos/`` linked (by hand) into the state directory, or a
record edited by hand, names a stored original itself.

Nothing is written or removed through a link leading out of the report's folder: a ``videos/`` (or ``inputs/``, or
a folder inside them) that is a symbolic link to a folder outside DIR — the user's own, another report's, the state
directory's outputs — is refused before anything is written (:mod:`runner.reporting.links_out`, exit 2).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from runner.reporting.hf_card import prune
from runner.reporting.whole_file import whole_file

__all__ = ["RECORD", "forget_unshown"]

RECORD = ".runner-report.json"


def forget_unshown(videos: Path, written: dict[str, str],
                   elsewhere: Callable[[Path, str], bool]) -> tuple[int, list[str], list[str]]:
    """Remove the files under ``videos`` the last report wrote and this one did not (``written``: name relative to
    ``videos`` → sha256) while ``elsewhere(file, sha256)`` says another file keeps their bytes, then record
    ``written``; (how many were removed, the names kept because changed since, those kept as the only copy). The
    removal is the hf export's (:func:`~runner.reporting.hf_card.prune`)."""
    before = _read(videos / RECORD)
    pruned = prune(videos, before, written, lambda path, sha256: not elsewhere(path, sha256))
    if written or before:
        with whole_file(videos / RECORD, follow=False) as out:
            out.write(json.dumps(dict(sorted(written.items())), ensure_ascii=False, indent=0) + "\n")
    return pruned.removed, pruned.changed, pruned.only_copy


def _read(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v) for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}
