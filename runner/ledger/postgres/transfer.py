"""Moving a ledger between SQLite and PostgreSQL, both ways (``runner ledger copy SRC DST``).

:func:`copy_ledger` copies every row of every table as it is — ids (so planning order, attempt and run
ids stay), states, owners, spend, attempts, runs, meta, the rename journal — from a source that no
runner holds into a destination that holds no ledger yet. A location is a PostgreSQL URL
(``postgresql://…``) or a state directory (its ``ledger.db``). Leases are not copied: they belong to
runners of the source.

* A SQLite source is held by taking its single-writer lock for the whole copy (a runner holding it
  makes the copy fail with :class:`~runner.errors.LedgerLocked`; none can start meanwhile).
* A PostgreSQL source is read in one ``REPEATABLE READ`` snapshot; it counts as held while any runner's
  lease runs (by the server's clock), checked before the copy and again before the destination
  commits — a runner that started meanwhile makes the copy fail, nothing written.
* The destination is written in one transaction: a failed copy leaves no rows behind (PostgreSQL:
  at most the empty schema; SQLite: the new file is removed, but for a copy stopped by a signal, or one into a state
  directory an earlier killed copy had left its trace in: see below; a ledger found there is never removed).
* From the moment it exists the destination is marked an unfinished copy (meta ``copy_from``: the source):
  PostgreSQL's schema is created with the mark in one transaction; a SQLite ledger is built as
  ``ledger.db.copying-<random>`` (a trace that makes runs refuse the state directory) and marked, and only then is
  what an earlier killed copy left removed; then it is renamed into place. The mark comes off last, after the source
  is marked moved. A copy killed anywhere (``kill -9``, the OOM killer, a power cut) or stopped (Ctrl-C, SIGTERM)
  leaves a destination every run refuses — empty, it would take every job for new and pay for each again — and that
  the next copy into it starts over.
* Once the destination has committed, the source is marked moved (meta ``moved_to``: where, when), still held: a run
  refuses it from then on (its jobs go on in the copy), until ``runner ledger reopen``. Neither mark is copied, nor
  the source's names and home (a copy is another ledger, a PostgreSQL one at its own :mod:`.home`), but its lineage.

The source is held by :mod:`.copy_source`, the destination made and marked by :mod:`.copy_destination`; the tables
both sides share are :mod:`.copy_tables`'.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from runner.ledger.api import COPYING_META, MOVED_META, moved_mark
from runner.ledger.checks import SCHEMA_WRITTEN_BY
from runner.ledger.connection import Connection
from runner.ledger.postgres import home
from runner.ledger.postgres.connection import PgConnection
from runner.ledger.postgres.copy_destination import open_destination
from runner.ledger.postgres.copy_source import open_source
from runner.ledger.postgres.copy_tables import MARK, TABLES, Rows
from runner.ledger.postgres.hostmarks import COPIED_META, ID_META, lineage
from runner.ledger.postgres.urls import is_postgres_url
from runner.ledger.rescue import crash_point
from runner.ledger.sqlite import DB_NAME, copy_note
from runner.ledger.sqlite import mark as sqlite_mark
from runner.ledger.sqlite.moved import set_moved

__all__ = ["TABLES", "CopyReport", "copy_ledger"]

# The source's marks, names, count of durable commits, home and cp -a note, never copied (a copy is another ledger).
_MARKS = (MOVED_META, COPYING_META, ID_META, sqlite_mark.ID_META, sqlite_mark.COMMITS_META, home.HOME_META, copy_note.COPY_OF_META)


@dataclass
class CopyReport:
    """What :func:`copy_ledger` copied: rows per table."""

    source: str
    destination: str
    rows: dict[str, int] = field(default_factory=dict)


def copy_ledger(src: str, dst: str, journals: tuple[Path, ...] = (), nearby: Path | None = None, *,
                progress: Callable[[int], Callable[[], None]] | None = None) -> CopyReport:
    """Copy the ledger at ``src`` into ``dst`` (see the module docstring), a PostgreSQL source once the rescue
    journals of the state directories ``journals`` (and ``nearby``'s, if it ran on it) are recorded in it
    (:mod:`.before_copy`); raises :class:`~runner.errors.LedgerLocked` while a runner holds the source,
    :class:`LedgerError` when the destination already holds a ledger or either side fails (nothing then written to
    the destination); a SQLite source copied by other tools first marks its original moved (:mod:`.copied`).
    ``progress``, given the number of rows to copy, returns what is called once a row read (a ticker's ``of``)."""
    with open_source(src, journals, nearby) as (columns, read, still_free, source, named):
        tick = progress(sum(int(row[0]) for t, _ in TABLES for row in read(t, ["count(*)"], "1"))) if progress else None
        origin = source if is_postgres_url(src) else str(Path(src).absolute())  # as `ledger copy` takes it again
        with open_destination(dst, origin) as (write, commit, publish, destination):
            report = CopyReport(source=source, destination=destination)
            for table, order in TABLES:
                cols = columns(table)  # the source's; the destination must have every one (or the copy fails)
                rows = read(table, cols, order) if tick is None else _ticked(read(table, cols, order), tick)
                if table == "meta":  # the source's own marks are not the copy's; its name goes into the copy's lineage
                    rows = _meta_rows(rows, cols, named)
                report.rows[table] = write(table, cols, rows)
            still_free()
            crash_point("ledger-copy-rows")  # tests: killed with every row written, none committed
            commit()
            # Committed, still marked an unfinished copy: the source now says where its jobs went, and a run refuses
            # it (an old cron line, a host without RUNNER_LEDGER_URL would pay again for what the copy's runs send).
            # Still held: no run started. Only then is the copy's mark taken off: never both usable at once.
            _mark_moved(src, moved_mark(destination, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")))
            crash_point("ledger-copy-moved")  # tests: killed with the source marked moved, the copy still marked
            publish()
    return report


def _ticked(rows: Rows, tick: Callable[[], None]) -> Rows:
    for row in rows:
        tick()
        yield row


def _meta_rows(rows: Rows, cols: list[str], named: tuple[str, float] | None) -> Rows:
    """The source's meta but its marks, names and count of commits; :data:`COPIED_META` with the source added
    (``named``: its name and when the copy was taken, by its server's clock), so that the marks of the source, where
    the copy is put back in its place, are not taken for a ledger dropped and made again (:mod:`.hostmarks`); and
    the SQLite ledger's alike (its name and count of durable commits: :mod:`runner.ledger.sqlite.mark`), so that its
    commit mark takes a copy put in its place for what it is — one holding every commit the mark saw until then, or
    not: a copy, even of a copy, is never taken for its source by name (two ledgers run apart, one moved over the
    other, would pay again for what the other sent)."""
    key, value = cols.index("key"), cols.index("value")
    carried = None
    meta: dict[object, object] = {}
    for row in rows:
        if row[key] == COPIED_META:
            carried = row[value]
        elif row[key] in (sqlite_mark.COPIED_META, sqlite_mark.ID_META, sqlite_mark.COMMITS_META):
            meta[row[key]] = row[value]
        elif row[key] not in _MARKS and row[key] != SCHEMA_WRITTEN_BY:  # (the copy's schema is the copier's)
            yield row
    if (text := lineage(carried, named)) is not None:
        yield tuple(COPIED_META if i == key else text if i == value else None for i in range(len(cols)))
    name = meta.get(sqlite_mark.ID_META)
    source = None if name is None else (str(name), sqlite_mark.commits_of(meta.get(sqlite_mark.COMMITS_META)))
    if (text := sqlite_mark.lineage(meta.get(sqlite_mark.COPIED_META), source)) is not None:
        yield tuple(sqlite_mark.COPIED_META if i == key else text if i == value else None for i in range(len(cols)))


def _mark_moved(src: str, where: str) -> None:
    if is_postgres_url(src):
        conn = PgConnection.open(src, create=False)
        try:
            with conn.write() as tx:
                tx.execute(MARK.format("%s"), (MOVED_META, where))
        finally:
            conn.close()
        return
    sqlite = Connection.open_writable(Path(src) / DB_NAME, may_create=False)
    try:
        set_moved(sqlite, where)
    finally:
        sqlite.close()
