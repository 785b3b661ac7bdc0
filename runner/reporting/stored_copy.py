"""Whether removing a file of a report or an export loses a paid video.

A report or an hf export written again removes the videos it wrote before and no longer shows. Its file is a hard
link to the stored original (or a copy): removing it loses nothing while the state directory still holds a done
job's video with those bytes in another file. It does not when the stored original was removed (the link is the
last copy), nor when the file *is* the stored original, reached through a folder linked (by hand) into the state
directory or named by a record edited by hand.
"""

from __future__ import annotations

import os
from pathlib import Path

from runner.ledger import LedgerBackend
from runner.storage import OutputStore

__all__ = ["stored_elsewhere"]


def stored_elsewhere(ledger: LedgerBackend, store: OutputStore, path: Path, sha256: str) -> bool:
    """Whether a done job's stored video other than the file ``path`` holds the bytes ``sha256``; False when
    ``path`` is a stored original itself, or when no stored video holds them."""
    real = os.path.realpath(path)
    kept = False
    for rel in ledger.paths_with_sha256(sha256) if sha256 else []:
        if not store.exists(rel):
            continue
        where = store.locate(rel)
        if isinstance(where, Path) and os.path.realpath(where) == real:
            return False
        kept = True
    return kept
