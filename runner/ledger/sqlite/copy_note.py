"""The note a ``cp -a`` copy of a state directory keeps of its originals on this host while nothing went on from it
(meta :data:`COPY_OF_META`), for :mod:`runner.ledger.sqlite.copied`.

A command that sends nothing (a restore drill's ``verify``, a ``reject``) leaves the copy's original as it is: the live
batch goes on there. Yet its writable open makes the copy's commit mark its own (:mod:`.mark`), and the copy's mark was
all that said it is a copy: a run from it later looked at no original and paid for every pending job, as the cron
line's run of the original then did for what the copy had sent. So before that first write of its own, the copy notes
each original — the original's mark path (``host:/real/path/ledger.db``) and this copy's durable commits and their time
as it was taken — in its own ledger, durably. A command that goes on from it later looks at each as at a fresh copy's:
refused when the original is in use or went on since (its count against the one noted, not the copy's own count now),
else marked moved here; the note of an original marked, or gone (moved away, another ledger there), is dropped after.
Setting the copy's mark aside drops the note with it: the refusals' way to go on from a copy anyway.
"""

from __future__ import annotations

import contextlib

from runner.ledger.connection import Connection
from runner.ledger.path_text import as_text, from_text

__all__ = ["COPY_OF_META", "Taken", "noted", "write_note"]

#: meta: a line per original on this host ``<commits> <time> <host:/real/path/ledger.db>``: this copy's durable
#: commits, and the time of the last, when it was taken from that original (the path kept by
#: :func:`~runner.ledger.path_text.as_text`). Never copied by `runner ledger copy` (its copy is another ledger, made to
#: run: its source is marked moved).
COPY_OF_META = "copy_of"
Taken = tuple[int, float]  # a copy's durable commits and the time of the last when it was taken


def noted(conn: Connection) -> dict[str, Taken]:
    """The originals the ledger on ``conn`` notes it is a copy of (none: not noted, or a line not ours)."""
    text = conn.scalar("SELECT value FROM meta WHERE key = ?", (COPY_OF_META,))
    originals: dict[str, Taken] = {}
    for line in (text if isinstance(text, str) else "").splitlines():
        with contextlib.suppress(ValueError):
            commits, at, path = line.split(" ", 2)
            originals[from_text(path)] = (int(commits), float(at))
    return originals


def write_note(conn: Connection, originals: dict[str, Taken]) -> None:
    """Make ``originals`` the note of the writable ledger on ``conn``, durably (synced before this returns); none
    removes it. Nothing is written when the note says that already."""
    if originals == noted(conn):
        return
    with conn.write(durable=True) as db:
        if not originals:
            db.execute("DELETE FROM meta WHERE key = ?", (COPY_OF_META,))
            return
        text = "\n".join(f"{commits} {at!r} {as_text(path)}" for path, (commits, at) in sorted(originals.items()))
        db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                   (COPY_OF_META, text))
