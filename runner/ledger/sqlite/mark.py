"""The SQLite ledger's commit mark: ``ledger.mark`` beside ``ledger.db``, the number of the ledger's last durable
commit, kept outside the database so that a ledger put back older than that is seen before anything is paid again.

Every durable transaction (a write-ahead before a POST, a task id after it, an adoption: :meth:`Connection.write`
with ``durable=True``) also sets the ledger's meta ``commits`` to its number and time — one more ``UPDATE`` in the
same transaction — and once its ``COMMIT`` has returned, the mark is overwritten in place with the same: one
``pwrite``, never synced. So the mark may lag the ledger (a power cut takes its last write: harmless), but a ledger
behind its mark lost commits the mark saw: restored from a backup, copied without its ``-wal`` file, a disk snapshot
rolled back. The jobs it wrote ahead or recorded since read pending, and a run would pay for them again: a writable
open refuses it (:class:`~runner.errors.LedgerOutdated`, exit 2, nothing written); a read-only open warns.

The file: text, of one width for the life of an open, so that each commit overwrites it whole::

    runner ledger mark 1
    ledger 5f0c…                 meta ``ledger_id``: which ledger (its backups keep it; --new-ledger and a copy make another)
    path host:/srv/state/ledger.db         where the ledger was when last opened for writing
    commits 00000000000000000042 0001765000000
    inode 1234567                          the file's inode then: the same file seen under another host name (a
                                           container restarted, a volume moved with its pod) keeps it, a copy not
    pids 8c1f…/4026531836.1                the writer's boot id and PID namespace (its inode, when its PID 1 began):
                                           another machine of the same host name (two VMs both ``ubuntu``), another
                                           container, this one once restarted each have another (:mod:`runner.host`)

A ledger with no mark (a new state directory, or a ledger an older runner made) gets one at its first writable
open; one whose mark is unreadable gets a new one, with a warning. Beyond it: a state directory restored whole (the
mark goes back with its ledger), commits an older runner made, and commits that are not durable (polls, downloads,
a stored video: none of them is paid for again, and a video stored since is guarded by its file).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from runner.errors import LedgerDiskError, LedgerOutdated
from runner.host import pid_space
from runner.ledger.connection import Connection
from runner.ledger.sqldb import Database
from runner.storage.folder_sync import fsync_path

__all__ = ["COMMITS_META", "COPIED_META", "ID_META", "MARK_NAME", "CommitMark", "Seen", "attach", "behind",
           "commits_of", "in_ledger", "inode_of", "lineage", "mark_path", "read_mark", "said_when"]

MARK_NAME = "ledger.mark"
ID_META = "ledger_id"  # meta: which ledger this is
COMMITS_META = "commits"  # meta: "<number> <time>" of the last durable commit
#: meta: the SQLite ledgers this one is a copy of (``runner ledger copy``, through PostgreSQL or not), a line each: the
#: name and its count of durable commits when the copy was taken. A copy is another ledger (a name of its own, made at
#: its first writable open); put in the place of one of these, it holds every commit a mark there saw up to that count.
COPIED_META = "ledger_copied"
_HEAD = "runner ledger mark 1"
_PATH = re.compile(r"\npath (.*?)\ncommits \d", re.DOTALL)
log = logging.getLogger("runner.ledger")


@dataclass(frozen=True, slots=True)
class Seen:
    """What a mark (or the ledger's meta) says: which ledger, where, its last durable commit and when."""

    ledger: str | None
    commits: int
    at: float
    path: str = ""
    inode: int | None = None  # the ledger file's inode where ``path`` says (None: a mark an older runner wrote)
    space: str | None = None  # its writer's PID space, :func:`runner.host.pid_space` (None: unknown, an older mark)
    copied: dict[str, int] = field(default_factory=dict)  # the ledger's COPIED_META: source name → its commits then


def mark_path(db_file: Path) -> Path:
    """The mark of ``db_file``: beside the real file, symbolic links followed (as its lock)."""
    return Path(os.path.realpath(db_file)).with_name(MARK_NAME)


def inode_of(file: Path) -> int | None:
    """The inode of ``file`` (links followed); None when it cannot be read."""
    try:
        return os.stat(file).st_ino
    except OSError:
        return None


def read_mark(file: Path) -> Seen | None:
    """The mark's content; None when there is none; :class:`ValueError` when it cannot be read as one."""
    try:
        text = file.read_text(encoding="utf-8", errors="surrogateescape")  # a path's bytes as they were written
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from exc
    lines = text.split("\n")  # (not splitlines: U+2028 and the like are a folder name's, not line breaks)
    fields = dict(line.split(" ", 1) for line in lines[1:] if " " in line)
    if (path := _PATH.search(text)) is not None:  # a folder name may hold a newline: the path runs to its commits
        fields["path"] = path.group(1)
    if not lines or lines[0] != _HEAD or not {"ledger", "path", "commits"} <= fields.keys():
        raise ValueError("not a runner ledger mark")
    number, at = fields["commits"].split()
    inode = int(fields["inode"]) if fields.get("inode", "").isdigit() else None
    return Seen(fields["ledger"], int(number), float(at), fields["path"], inode=inode, space=fields.get("pids"))


def in_ledger(conn: Connection) -> Seen:
    ledger = conn.scalar("SELECT value FROM meta WHERE key = ?", (ID_META,))
    commits = conn.scalar("SELECT value FROM meta WHERE key = ?", (COMMITS_META,))
    copied = _copies(conn.scalar("SELECT value FROM meta WHERE key = ?", (COPIED_META,)))
    name = None if ledger is None else str(ledger)
    try:
        number, at = str(commits).split()
        return Seen(name, int(number), float(at), copied=copied)
    except ValueError:  # none yet (or not ours): nothing durable counted
        return Seen(name, 0, 0.0, copied=copied)


def _copies(text: object) -> dict[str, int]:
    """The ledgers of a :data:`COPIED_META` value, each with the most commits a copy of it was taken at."""
    taken: dict[str, int] = {}
    for line in (text if isinstance(text, str) else "").splitlines():
        with contextlib.suppress(ValueError):
            name, commits = line.split()
            taken[name] = max(int(commits), taken.get(name, 0))
    return taken


def commits_of(value: object) -> int:
    """The number of durable commits a :data:`COMMITS_META` value counts (0: none, or not ours)."""
    try:
        return int(str(value).split()[0])
    except (ValueError, IndexError):
        return 0


def lineage(carried: object, source: tuple[str, int] | None) -> str | None:
    """The :data:`COPIED_META` of a copy whose source carries ``carried`` and is the SQLite ledger ``source`` (its
    name and its durable commits as the copy is taken; None: a ledger never named, or not a SQLite ledger's)."""
    taken = _copies(carried)
    if source is not None:
        taken[source[0]] = max(source[1], taken.get(source[0], 0))
    return "\n".join(f"{name} {commits}" for name, commits in sorted(taken.items())) or None


def said_when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at)) if at else "an unknown time"


def behind(conn: Connection, state_dir: Path) -> str | None:
    """What the ledger open on ``conn`` lost that its mark saw, said for the operator; None when nothing (no mark,
    an unreadable one, or a ledger at or past it). ``conn`` may be read-only."""
    file = mark_path(conn.file)
    try:
        seen = read_mark(file)
    except ValueError:
        return None
    if seen is None:
        return None
    return _judge(seen, in_ledger(conn), conn.file, file, state_dir)


def _judge(seen: Seen, held: Seen, db: Path, file: Path, state_dir: Path) -> str | None:
    if held.ledger == seen.ledger and held.commits >= seen.commits:
        return None
    if held.ledger is None and seen.commits == 0:
        return None  # marked at an open that committed nothing durable since
    if seen.ledger is not None and held.copied.get(seen.ledger, -1) >= seen.commits:
        return None  # a copy of the ledger the mark saw, taken at or after its last commit seen: it holds them all
    way_on = (f" Nothing was sent or changed. To go on with this ledger as it is, first compare `runner ls MANIFEST"
              f" --state {shlex.quote(str(state_dir))}` with the provider's console: a job that reads pending here but has a task there"
              f" would be paid for again (`runner adopt KEY TASK_ID` attaches a task to a job in doubt only); then set"
              f" the mark aside (`{shlex.join(['mv', str(file), str(file) + '.old'])}`) and run again. To start over instead, move {db} aside too and"
              " run with --new-ledger.")
    elsewhere = seen.path.split(":", 1)[-1] != os.path.realpath(db) or seen.path.split(":", 1)[0] != socket.gethostname()
    if (held.ledger is not None or held.copied) and held.ledger != seen.ledger:
        copy = (f"a copy (`runner ledger copy`) of it taken at its durable commit {held.copied[seen.ledger]}, before"
                f" the last {seen.commits - held.copied[seen.ledger]} this state directory saw"
                if seen.ledger in held.copied else f"ledger {held.ledger or 'not yet named'}")
        return (f"{db} is not the ledger this state directory last recorded: its mark {file} names ledger"
                f" {seen.ledger} ({seen.commits} durable commits, the last at {said_when(seen.at)}, at {seen.path}), and"
                f" {db} is {copy}; a ledger that does not know the tasks the other recorded would pay"
                f" for its jobs again. Put that ledger back{f' (it was at {seen.path})' if elsewhere else ''}, or its"
                " latest backup, and run again." + way_on)
    missing = seen.commits - held.commits
    since = said_when(held.at) if held.commits else "its first"
    newer = (f"The newer ledger may still be at {seen.path}, with its {db.name}-wal" if elsewhere else
             f"Look for the newer ledger: a {db.name}-wal copied apart from it, a {db.name}-wal.stale-* or"
             f" ledger.rescued-*.db in {state_dir}, a newer backup")
    return (f"{db} is older than what this state directory last recorded: its mark {file} saw the ledger's durable"
            f" commit {seen.commits} at {said_when(seen.at)}, and the ledger holds {held.commits}"
            f"{f' (the last at {said_when(held.at)})' if held.commits else ''}: {missing} durable commit(s) are missing"
            f" (writes ahead of a paid submit, task ids, adoptions), made between {since} and {said_when(seen.at)}. It"
            f" was restored from a backup older than that, copied without its {db.name}-wal file, or a disk snapshot"
            " was rolled back: the jobs sent in that time read pending in it, and a run would pay for them again."
            f" {newer}; put it back and run again." + way_on)


def attach(conn: Connection, state_dir: Path) -> CommitMark:
    """Check the writable ledger on ``conn`` against its mark (:class:`LedgerOutdated` when it is behind: nothing
    written), make or refresh the mark, and have every durable commit of ``conn`` advance it."""
    file = mark_path(conn.file)
    try:
        seen = read_mark(file)
    except ValueError as exc:
        log.warning("the ledger's commit mark %s cannot be read (%s); a new one is made from %s", file, exc, conn.file)
        seen = None
    held = in_ledger(conn)
    if seen is not None and (problem := _judge(seen, held, conn.file, file, state_dir)) is not None:
        raise LedgerOutdated(problem)
    if held.ledger is None:  # a ledger made by an older runner, a new one or a copy: it gets its name, kept by its
        # backups (a copy taken by `runner ledger copy` is another ledger: never its source's name)
        named = seen.ledger if seen is not None and seen.ledger not in held.copied else None
        held = Seen(named or uuid.uuid4().hex, held.commits, held.at)
        with conn.write(durable=True) as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?), (?, ?)",
                       (ID_META, held.ledger, COMMITS_META, f"{held.commits} {held.at!r}"))
    assert held.ledger is not None
    where = f"{socket.gethostname()}:{os.path.realpath(conn.file)}"
    mark = CommitMark(file, held.ledger, where, held.commits, held.at, inode=inode_of(conn.file), space=pid_space())
    conn.hook = mark
    return mark


class CommitMark:
    """The open mark of one writable ledger: :meth:`stamp` inside each durable transaction, :meth:`committed` after
    its COMMIT (the connection's hook)."""

    __slots__ = ("_at", "_failing", "_fd", "_head", "_tail", "commits", "file")

    def __init__(self, file: Path, ledger: str, where: str, commits: int, at: float, *, inode: int | None = None,
                 space: str | None = None) -> None:
        self.file = file
        self.commits = commits
        self._at = at
        self._failing = False  # the last pwrite failed (warned once; said again when one succeeds)
        self._head = f"{_HEAD}\nledger {ledger}\npath {where}\ncommits "
        self._tail = ("" if inode is None else f"inode {inode}\n") + ("" if space is None else f"pids {space}\n")
        temporary = file.with_name(f".{file.name}.{os.getpid()}")
        try:  # made whole and durable once per open; then overwritten in place, never synced
            temporary.write_text(self._text(), encoding="utf-8", errors="surrogateescape")  # (a path's own bytes)
            fsync_path(temporary)
            os.replace(temporary, file)
            fsync_path(file.parent)
            self._fd = os.open(file, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise LedgerDiskError(f"cannot write the ledger's commit mark {file} ({exc.strerror or exc}); nothing was"
                              " sent. Make the state directory writable and run again") from exc

    def _text(self) -> str:
        return f"{self._head}{self.commits:020d} {int(self._at):013d}\n{self._tail}"

    def stamp(self, db: Database) -> None:
        """Inside a durable transaction, before its COMMIT: the ledger's count of durable commits, this one in."""
        self._at = time.time()
        db.execute("UPDATE meta SET value = ? WHERE key = ?", (f"{self.commits + 1} {self._at!r}", COMMITS_META))

    def committed(self) -> None:
        """After the COMMIT: the mark follows (one ``pwrite``, no sync; a failure is logged, the commit stands)."""
        self.commits += 1
        try:
            os.pwrite(self._fd, self._text().encode("utf-8", "surrogateescape"), 0)
        except OSError as exc:
            if not self._failing:  # once, not at every durable commit of a run on a failing disk
                log.warning("could not advance the ledger's commit mark %s (%s); the commits stand, the mark lags"
                            " until it can be written again", self.file, exc.strerror or exc)
            self._failing = True
            return
        if self._failing:
            log.info("the ledger's commit mark %s is kept again (commit %d)", self.file, self.commits)
            self._failing = False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)
