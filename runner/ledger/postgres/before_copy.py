"""What `runner ledger copy` records in a PostgreSQL source before its snapshot: the rescue journals of its hosts.

Each host that ran on a PostgreSQL ledger keeps its own rescue journal (:mod:`runner.ledger.rescue`) in its state
directory: task ids its run could not record (the server went away as the answer arrived). The next run on that
host records them; the copy cannot see that directory. Copied without them, those jobs were in doubt in the copy (a
retry pays again) while the source, marked moved, is run no more. So the copy records in the source first, as a run
there would (nothing is sent), the journal of each ``--state DIR`` given, and that of the state directory a run
from here would use (``RUNNER_STATE_DIR``, else ``./state``) when that one ran on this ledger (it holds a write mark
of it: :mod:`.hostmarks`; another ledger's journal is never applied to this one). One that cannot be read whole
refuses the copy (:mod:`runner.ledger.copy_journal`). Journals of other hosts stay theirs: the copy's help and
docs/postgres.md say to give them, or to let a run on each host record them first.
"""

from __future__ import annotations

from pathlib import Path

from runner.ledger import rescue
from runner.ledger.copy_journal import journal_for_copy, tell_recorded
from runner.ledger.postgres.clock import ServerClock
from runner.ledger.postgres.connection import PgConnection
from runner.ledger.postgres.hostmarks import FOLDER, ID_META
from runner.ledger.postgres.owners import replay_entries
from runner.storage.inside import same_file

__all__ = ["record_journals"]


def record_journals(url: str, location: str, given: tuple[Path, ...], nearby: Path | None) -> None:
    """Record in the ledger at ``url`` (shown as ``location``) the rescue journals of ``given`` and of ``nearby``
    when it ran on this ledger; every journal is read before anything is recorded: one that cannot be read changes
    nothing."""
    if nearby is not None and (not (nearby / rescue.RESCUE_NAME).exists() or any(same_file(nearby, g) for g in given)):
        nearby = None
    if not given and nearby is None:
        return
    conn = PgConnection.open(url, create=False)
    try:
        if nearby is not None and not _ran_here(conn, nearby):
            nearby = None
        journals = [(state, journal_for_copy(state)) for state in (*given, *([nearby] if nearby else []))]
        if not any(entries for _, entries in journals):
            return
        clock = ServerClock()  # the ledger's times are its server's, as a run's are
        clock.sync(conn)
        for state, entries in journals:
            if entries:
                tell_recorded(replay_entries(conn, state, entries, clock, None), state / rescue.RESCUE_NAME, location)
    finally:
        conn.close()


def _ran_here(conn: PgConnection, state: Path) -> bool:
    """Whether a run on this ledger used ``state``: it holds a write mark of it (named by the ledger's name)."""
    name = conn.scalar("SELECT value FROM meta WHERE key = %s", (ID_META,))
    return name is not None and any((state / FOLDER).glob(f"{str(name)[:12]}-*.mark"))
