"""This host's record of the commits it saw a PostgreSQL ledger make: a ledger restored between runs is refused.

A connection that has to connect again reads its own row of ``write_marks`` (:mod:`.marks`) and so sees a server
that lost its commits; a new process has no commit of its own to look for, and a ledger restored from a backup (or
failed over to a replica that lagged) between two runs went unseen: the jobs written ahead or recorded since read
pending, and the next run paid for them again.

So each writable connection keeps a file in the state directory, ``.ledger-marks/<ledger>-<connection>.mark``: which
ledger (meta :data:`ID_META`, made at the first writable open, never copied by ``runner ledger copy``), which row of
``write_marks``, the mark of its last COMMIT acknowledged and when (the time that row holds: the server's clock, which
the prune reads, never this host's — a host clock stepped back weeks mid-run made a restore look like a prune). Made once per open, then
overwritten in place after each acknowledged COMMIT: one ``pwrite``, never synced — a mark that lags (a power cut)
only sees less, and one never runs ahead of a COMMIT acknowledged. A writable open (:func:`attach`) reads the marks
of this ledger (each until two reads agree: one read mid-rewrite mixes old and new digits) and refuses
(:class:`~runner.errors.LedgerLostCommits`, exit 2, nothing sent) a server whose row is behind its mark, or has none while the mark is younger than half :data:`~.marks.PRUNE_AFTER_S` (no prune took it).
Older, a row gone may have been pruned: it cannot tell, says so, and the mark goes. Rows are no longer deleted as
their connection closes: they stay until that prune.

The marks an open found held are deleted once its own first COMMIT is marked: a restore that loses their commits
loses that one too. A live runner's mark so deleted is made again at its next COMMIT (each is written by its name,
``O_CREAT``), so the marks stay about as many as the runners at work. Beyond it: a mark the state directory lost (another directory, a new
host), and commits a runner made before this version.

A mark also says where its ledger was (server, database and schema as the connection reached them, not as its URL
spells them: no user, no password). A database restored from a backup older than the ledger, or a ledger dropped and
made again, holds no ledger there or another one, and the marks of the old one could not be looked up by its name: a
writable open refuses (exit 2, nothing sent) while a mark younger than half the prune names another ledger at the
place of the one it opens (:func:`_replaced`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runner.errors import LedgerLostCommits
from runner.ledger.postgres.marks import PRUNE_AFTER_S

if TYPE_CHECKING:
    from runner.ledger.postgres.connection import PgConnection

__all__ = ["COPIED_META", "FOLDER", "ID_META", "HostMark", "attach", "lineage", "said_at"]

ID_META = "write_marks_ledger"  # meta: which PostgreSQL ledger this is (not copied: a copy is another)
#: meta: the PostgreSQL ledgers this one is a copy of (``runner ledger copy``, through a SQLite one or not), a line
#: each: the name and the time (the source server's) the copy was taken; a mark of one, made then or before, stands
#: for commits the copy holds (:func:`_replaced`).
COPIED_META = "write_marks_copied"
FOLDER = ".ledger-marks"
_HEAD = "runner postgres write mark 1"
log = logging.getLogger("runner.ledger")


@dataclass(frozen=True, slots=True)
class Seen:
    """One mark file: the ledger, the connection's row, its host and pid, its last COMMIT's mark and time."""

    ledger: str
    conn: str
    host: str
    pid: int
    mark: int
    at: float
    where: str | None  # the server, database and schema the ledger was at (None: a mark of an older runner)


def _read(file: Path) -> Seen | None:
    """The mark in ``file``, or None when it cannot be read as one (a partial write, another program's file)."""
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
        fields = dict(line.split(" ", 1) for line in lines[1:] if " " in line)
        host, pid = fields["host"].rsplit(" ", 1)
        mark, at = fields["mark"].split()
        if lines[0] != _HEAD:
            return None
        return Seen(fields["ledger"], fields["conn"], host, int(pid), int(mark), float(at), fields.get("at"))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, IndexError):
        return None


def _steady(file: Path) -> Seen | None:
    """The mark in ``file`` as two reads in a row agree on it: one read as a live runner rewrites it in place (two
    runners sharing a state directory) may mix the new and the old digits (``…0129`` → ``…0130`` read ``…0139``), a
    mark past its row, and the open was refused for a healthy ledger."""
    seen = _read(file)
    for _ in range(5):
        again = _read(file)
        if again == seen:
            return seen
        seen = again
    return None  # rewritten at every look: its runner is at work, and its next COMMIT writes it again


def _ledger_id(conn: PgConnection, found: str | None) -> str:
    if found is None:
        with conn.write() as tx:
            tx.execute("INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING",
                       (ID_META, uuid.uuid4().hex))
        found = conn.scalar("SELECT value FROM meta WHERE key = %s", (ID_META,))
    return str(found)


def _copies(text: str | None) -> dict[str, float]:
    """The ledgers of a :data:`COPIED_META` value, each with the time its latest copy was taken."""
    taken: dict[str, float] = {}
    for line in (text or "").splitlines():
        with contextlib.suppress(ValueError):
            name, at = line.split()
            taken[name] = max(float(at), taken.get(name, float("-inf")))
    return taken


def lineage(carried: str | None, source: tuple[str, float] | None) -> str | None:
    """The :data:`COPIED_META` of a copy whose source carries ``carried`` and is the PostgreSQL ledger ``source``
    (its name, and the time the copy was taken; None: not a PostgreSQL ledger, or one never opened to write)."""
    taken = _copies(carried)
    if source is not None:
        taken[source[0]] = max(source[1], taken.get(source[0], float("-inf")))
    return "\n".join(f"{name} {at:.3f}" for name, at in sorted(taken.items())) or None


def said_at(at: float) -> str:
    """A server clock's time, as the refusals of a ledger that lost or moved commits say it."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def _replaced(every: list[tuple[Path, Seen]], folder: Path, where: str, ledger: str | None, copied: str | None,
              server_now: float, location: str) -> None:
    """Refuse (:class:`LedgerLostCommits`) when a mark younger than the prune's half names another ledger at
    ``where``, the place of the ledger open now (``ledger``, None when it has no name yet): the database restored
    from a backup older than that ledger, or the ledger dropped and made again — a new, empty one would pay for
    its jobs again. Marks of ledgers elsewhere (two ledgers sharing a state directory) are not looked at, nor those
    of a ledger this one is a copy of (``copied``: :data:`COPIED_META`) made before the copy was taken: it holds
    their commits (its source was held, then marked moved), and they go."""
    taken = _copies(copied)
    for file, seen in every:
        if seen.where != where or seen.ledger == ledger or seen.mark == 0:
            continue
        if seen.ledger in taken and seen.at <= taken[seen.ledger]:  # copied back to its place: the same jobs
            with contextlib.suppress(OSError):
                file.unlink()
            continue
        if seen.at < server_now - PRUNE_AFTER_S / 2:
            log.warning("the write mark %s names another PostgreSQL ledger at %s (its last commit at %s, %g days"
                        " ago or more): whether that ledger was dropped on purpose or lost in a restore cannot tell;"
                        " the mark goes", file, location, said_at(seen.at), PRUNE_AFTER_S / 2 / 86400)
            with contextlib.suppress(OSError):
                file.unlink()
            continue
        now = "holds no ledger of this runner's" if ledger is None else f"holds another ledger ({ledger[:12]})"
        said = (f"the PostgreSQL database of the ledger {location} {now}, not the one this state directory saw there:"
                f" the runner of {seen.host} (pid {seen.pid}) committed its write {seen.mark} of the ledger"
                f" {seen.ledger[:12]} at {said_at(seen.at)} (its mark {file}). Restored from a backup older than that"
                " ledger, or the ledger dropped and made again: the jobs it wrote ahead or recorded (paid tasks among"
                " them) are not in this one, and a run would pay for them again. Nothing was sent. Restore a backup"
                " that holds that ledger; or, if it was dropped on purpose, set the marks aside"
                f" (`{shlex.join(['mv', str(folder), str(folder) + '.old'])}`) and run again. A copy an older runner took of it (`runner ledger copy`"
                " before copies recorded their source) put back here reads this way too: if this is one, compare"
                " `runner ls` with the provider's console, then set the marks aside")
        log.critical("%s", said)
        raise LedgerLostCommits(said)


def attach(conn: PgConnection, state_dir: Path) -> HostMark | None:
    """Check the writable ledger on ``conn`` against this state directory's marks of it (:class:`LedgerLostCommits`
    when its server lost commits one saw, or when the marks saw another ledger at its place), then keep this
    connection's mark; None when it cannot be written (a warning: the ledger is used without one)."""
    folder = state_dir / FOLDER
    # Every mark read before the ledger's name and its rows are: a runner that made the name since (two first opens
    # at once) wrote its mark after, and a row is at its mark or past it.
    every = [(file, seen) for file in sorted(folder.glob("*.mark")) if (seen := _steady(file))]
    meta = {str(row["key"]): str(row["value"]) for row in conn.rows(
        "SELECT key, value FROM meta WHERE key IN (%s, %s)", (ID_META, COPIED_META))}
    named = meta.get(ID_META)
    found = conn.one("SELECT extract(epoch FROM clock_timestamp())::float8 AS now, current_database() AS database,"
                     " current_schema() AS schema")
    assert found is not None
    server_now = float(found["now"])
    # The place as connected, not as the URL spells it: a URL without a database (PGDATABASE, the user's name) or a
    # host (PGHOST) names several, and two ledgers sharing a state directory were taken for one made again.
    info = conn.raw.info
    where = f"postgresql://{info.host}:{info.port}/{found['database']} schema {found['schema']}"
    _replaced(every, folder, where, named, meta.get(COPIED_META), server_now, conn.location)
    ledger = _ledger_id(conn, named)
    marks = [(file, seen) for file, seen in every if seen.ledger == ledger]
    held = {str(row["conn"]): int(row["mark"]) for row in conn.rows(
        "SELECT conn, mark FROM write_marks WHERE conn = ANY(%s)", ([seen.conn for _, seen in marks],))} if marks else {}
    superseded = []
    for file, seen in marks:
        have = held.get(seen.conn)
        if seen.mark == 0 or (have is not None and have >= seen.mark):
            superseded.append(file)  # held: this connection's first commit covers it (a live writer's comes back)
            continue
        if have is None and seen.at < server_now - PRUNE_AFTER_S / 2:
            log.warning("the PostgreSQL ledger %s no longer holds the write mark %s of %s (pid %d, its last commit at"
                        " %s), pruned after %g days without a write: whether the server lost commits since cannot"
                        " tell; the mark goes", conn.location, file, seen.host, seen.pid, said_at(seen.at),
                        PRUNE_AFTER_S / 86400)
            with contextlib.suppress(OSError):
                file.unlink()
            continue
        said = (f"the PostgreSQL server of the ledger {conn.location} lost changes this state directory saw"
                f" committed: the runner of {seen.host} (pid {seen.pid}) committed its write {seen.mark} at"
                f" {said_at(seen.at)} (its mark {file}), and the server holds {have or 'none'} of them: restored from a"
                " backup older than that, or a failover to a replica that lagged. Jobs written ahead or recorded"
                " since read pending again, and a run would pay for them again; what else was lost cannot be known"
                " from here. Nothing was sent. Stop every runner of this ledger and compare it with the provider's"
                " console (`runner ls`, `runner show KEY`; `runner adopt KEY TASK_ID` attaches a task found there to"
                f" a job in doubt); then set the marks aside (`{shlex.join(['mv', str(folder), str(folder) + '.old'])}`) and run again")
        log.critical("%s", said)
        raise LedgerLostCommits(said)
    try:
        mark = HostMark(folder / f"{ledger[:12]}-{conn.mark_id}.mark", ledger, conn.mark_id, where, server_now,
                        superseded)
    except OSError as exc:
        log.warning("cannot keep the PostgreSQL ledger's write mark in %s (%s): a ledger restored from a backup before"
                    " the next run will not be seen from here", folder, exc.strerror or exc)
        return None
    conn.on_commit = mark.committed
    return mark


class HostMark:
    """The mark of one writable connection: :meth:`committed` after each COMMIT acknowledged."""

    __slots__ = ("_failing", "_file", "_head", "_superseded")

    def __init__(self, file: Path, ledger: str, conn: str, where: str, at: float, superseded: list[Path]) -> None:
        """``at``: the server's clock now (the mark 0 made here says no commit yet)."""
        self._file, self._superseded = file, superseded
        self._failing = False  # the last update failed (warned once; said again when one succeeds)
        self._head = (f"{_HEAD}\nledger {ledger}\nconn {conn}\nat {where}\nhost {socket.gethostname()} {os.getpid()}"
                      "\nmark ")
        file.parent.mkdir(parents=True, exist_ok=True)
        self._write(0, at)

    def _write(self, mark: int, at: float) -> None:
        """The file, overwritten whole in place (one width for the life of the mark): no sync, no rename."""
        flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self._file, flags, 0o644)
        except FileNotFoundError:  # the folder set aside (as a refusal says) while this runner ran
            self._file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._file, flags, 0o644)
        try:
            os.pwrite(fd, f"{self._head}{mark:020d} {at:017.3f}\n".encode(), 0)
        except OSError:
            with contextlib.suppress(OSError):  # a file just made and refused its bytes (a full disk): no empty mark
                if os.fstat(fd).st_size == 0:
                    os.unlink(self._file)
            raise
        finally:
            os.close(fd)

    def committed(self, mark: int, at: float) -> None:
        """After a COMMIT acknowledged (``at``: the time its row of write_marks holds): the file says so (a failure is
        logged: the commit stands, the mark lags)."""
        try:
            self._write(mark, at)
        except OSError as exc:
            if not self._failing:  # once, not at every COMMIT of a run on a full disk
                log.warning("cannot update the PostgreSQL ledger's write mark %s (%s); the commits stand, the mark"
                            " lags until it can be written again", self._file, exc.strerror or exc)
            self._failing = True
            return
        if self._failing:
            log.info("the PostgreSQL ledger's write mark %s is kept again (write %d)", self._file, mark)
            self._failing = False
        for file in self._superseded:
            with contextlib.suppress(OSError):
                file.unlink()
        self._superseded = []
