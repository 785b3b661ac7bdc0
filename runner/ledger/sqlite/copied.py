"""A SQLite ledger opened for writing in another folder than its commit mark says it was last written in: a state
directory copied by the operator's own tools (``cp -a``, ``rsync -a``, a backup restored elsewhere) — or moved.

The copy carries the ledger, its WAL and its mark, consistent with each other, so the mark finds nothing missing; yet
whatever the original sends after the copy reads pending in the copy, and a run from the copy pays for it again (two
hosts "sharing" one batch by copying its folder pay for every pending job twice). A move is harmless: the original
is gone. Before anything is written, the mark's ``path`` (``host:/real/path/ledger.db``) is looked at:

- on this host, the original folder still holding this ledger (its mark names it) is a copy's source: refused when a
  live process holds its lock (a run using it now), or when its mark counts more durable commits than the copy holds
  (it went on after the copy); a copy of a folder nobody went on with runs, and first leaves the original refused as
  `runner ledger copy` leaves its source (:mod:`.moved`): under its lock, its ledger's own count checked again, it is
  marked moved to the copy, durably, before the copy writes or sends anything — when the command goes on with the batch
  (:data:`GOES_ON`; a restore drill's ``verify`` in a copy only warns, the original in use or gone on or not) (a run
  from it, an old cron line, would pay again for every job the copy sends; ``runner ledger reopen`` makes it live
  again). Any other command notes the
  original in the copy first (:mod:`.copy_note`), as its open makes the copy's mark its own: the first command from
  the copy that goes on looks at each original noted as above, with the copy's count when it was taken. An original already marked
  moved to another folder (a second copy taken of it, the first went on) refuses this copy; one that cannot be marked
  (read-only) is warned of; one on a full disk refuses the copy until space is freed there (once it is, a run from it
  would pay again for what the copy sent). Killed once the original is marked, the copy's mark still names it: its next
  run finds it marked moved here and goes on;
- on another host nothing can be looked at: the ledger's latest run record is. Unended (the run was using the ledger
  when it was copied) and written within :data:`LIVE_WITHIN_S` of now, the copy is refused; older, a warning. A run
  killed there (kill -9, its host down) leaves the same record: the refusal says how to go on (the mark set aside).

"This host" is the host name AND the PID space (boot id and PID namespace: the mark's ``pids`` line, :mod:`runner.host`):
two machines often share a name (VMs or images never renamed, containers of one ``--hostname``), and a folder copied
from one to the other — at the same path, most often — was taken for this host's own folder and not looked at: the
copy paid again for every job the run there sent. A mark of another space naming this host, on a file that is not the
one it was written for (another inode), is another machine's unless its folder is here: the rules of another host
apply. The very file in another space (this machine restarted, its container made anew) is this host's, as before.

A ledger with no mark, or with the mark of another ledger, is left to :mod:`runner.ledger.sqlite.mark`.
"""

from __future__ import annotations

import errno
import logging
import os
import shlex
import socket
import time
from pathlib import Path

from runner.errors import LedgerDiskError, LedgerError, LedgerLocked, LedgerOutdated
from runner.host import elsewhere
from runner.ledger.api import MOVED_META, moved_mark, read_moved
from runner.ledger.connection import Connection
from runner.ledger.holder import WORKING, live_holder
from runner.ledger.lock import LOCK_NAME, LedgerLock
from runner.ledger.rescue import crash_point
from runner.ledger.sqlite.copy_note import Taken, noted, write_note
from runner.ledger.sqlite.mark import MARK_NAME, Seen, behind, in_ledger, inode_of, mark_path, read_mark, said_when
from runner.ledger.sqlite.moved import set_moved
from runner.process_command import current
from runner.storage.inside import same_file

__all__ = ["GOES_ON", "LIVE_WITHIN_S", "check"]

#: How recent the last write of an unended run on another host must be for its copy to be refused rather than
#: warned of. A live run writes at every poll and submit, so the copy's last write is the moment it was copied; an
#: operator adding a second machine runs it within minutes. A day, because a refusal costs one ``mv`` (its message
#: says which), a miss the batch paid twice; past it the run there has most likely ended or died.
LIVE_WITHIN_S = 24 * 3600.0
#: The commands whose opening of a copy means going on from it, so its original on this host is marked moved: those
#: that run the batch (``run``, ``submit``, ``collect``: a cron pair's collect may come first, and its commit makes
#: the copy's mark its own, so the submit after it would not see a copy), and ``ledger copy``, whose copy is made to
#: run. Any other (``verify`` restoring videos in a restore drill, ``reject``, ``review``) sends nothing: marking the
#: original then refused the live batch's next cron run and pointed it at the drill's folder. None (no CLI: the
#: service used as a library) marks, the safe side.
GOES_ON = WORKING | {"ledger copy"}
_SQLITE_FULL = 13  # https://sqlite.org/rescode.html
log = logging.getLogger("runner.ledger")


def check(conn: Connection, state_dir: Path, now: float | None = None) -> None:
    """Refuse (:class:`LedgerOutdated`, nothing written) the writable ledger on ``conn`` when it is a copy of a
    ledger a run is using, or that went on after the copy; warn of one copied from another host's unended run."""
    file = mark_path(conn.file)
    try:
        seen = read_mark(file)
    except ValueError:
        return
    originals = noted(conn)  # a copy a command that sends nothing opened before: its mark names it since
    if seen is None:
        if originals and not conn.readonly:
            write_note(conn, {})  # the mark set aside: the refusals' way to go on from a copy anyway
        return
    held = in_ledger(conn)
    if ":" not in seen.path or held.ledger is None or held.ledger != seen.ledger:
        return
    host, path = seen.path.split(":", 1)
    here = socket.gethostname()
    very_file = seen.inode is not None and seen.inode == inode_of(conn.file)
    # Written here by name, in another PID space, and not this file: another machine (or container) of the same host
    # name (two VMs both "ubuntu", one --hostname for containers) whose folder was copied here — at the same path or
    # not — or this machine before it restarted, its ledger file replaced since. Its folder and PIDs are not here.
    namesake = host == here and elsewhere(seen.space) and not very_file
    aside = f"set this copy's mark aside (`{shlex.join(['mv', str(file), str(file) + '.old'])}`) and run again"
    if ((host, path) != (here, os.path.realpath(conn.file)) or namesake) and not (host != here and very_file):
        # (the very file under another host name: a container restarted, a volume that moved with its pod)
        problem, now = None, time.time() if now is None else now
        if host != here:
            problem = _on_another_host(conn, path, state_dir, aside, now, held.at)
        elif _original(Path(path), held.ledger, state_dir) is not None:
            taken = (held.commits, held.at)
            originals[seen.path] = min(originals.get(seen.path, taken), taken)
        elif namesake:  # its folder is not on this machine: the ledger's last run says whether one may be using it
            problem = _on_another_host(conn, path, state_dir, aside, now, held.at, namesake=True)
        if problem is not None:
            raise LedgerOutdated(problem)
    if originals:
        _look(conn, held.ledger, originals, state_dir, aside)


def _look(conn: Connection, ledger: str, originals: dict[str, Taken], state_dir: Path, aside: str) -> None:
    """Each original of this copy on this host (the mark's, the note's) looked at: refused (:class:`LedgerOutdated`)
    when in use or gone on since it was taken, else marked moved here when the command goes on; those not marked
    noted (:mod:`.copy_note`) before this copy writes anything of its own, as its mark will name it from then on."""
    here = socket.gethostname()
    left: dict[str, Taken] = {}
    for where, taken in originals.items():
        host, path = where.split(":", 1)
        if host != here:
            left[where] = taken  # noted under another host name: nothing here to look at
            continue
        if (theirs := _original(Path(path), ledger, state_dir)) is None:
            continue  # moved here, or another ledger there now: no original any more
        outcome = _on_this_host(Path(path), theirs, taken, conn, state_dir, aside)
        if isinstance(outcome, str):
            raise LedgerOutdated(outcome)
        if not outcome:
            left[where] = taken
    if not conn.readonly and behind(conn, state_dir) is None:  # (behind: refused next, nothing written)
        write_note(conn, left)  # killed before it, the mark still names the original: looked at again next open
        crash_point("copy-noted")  # tests: killed with the note written, this copy's mark still naming the original


def _shared(folder: str) -> str:
    return (f"to run on two machines at once, share one PostgreSQL ledger (`runner ledger copy {folder} URL`, then"
            " `--ledger URL` on each)")


def _original(original: Path, ledger: str, state_dir: Path) -> Seen | None:
    """The mark of the folder ``original`` on this machine when it holds ``ledger`` and is not ``state_dir``; None
    when it was moved here (the original gone), holds another ledger now, or is this very folder by another path."""
    try:
        theirs = read_mark(original.with_name(MARK_NAME))
    except ValueError:
        return None
    if theirs is None or theirs.ledger != ledger or same_file(original, state_dir / original.name):
        return None
    return theirs


def _on_this_host(original: Path, theirs: Seen, taken: Taken, conn: Connection, state_dir: Path,
                  aside: str) -> str | bool:
    """A refusal, or whether ``original`` is marked moved here now (False: left as it is)."""
    folder = original.parent
    pid = live_holder(original.with_name(LOCK_NAME))
    if (command := current()) is not None and command not in GOES_ON:  # a restore drill's verify: sends nothing
        if behind(conn, state_dir) is None:  # (else refused next, mark.attach)
            _not_gone_on(state_dir, folder, command, pid, theirs.commits if theirs.commits > taken[0] else None)
        return False  # the live original left as it is, never refused; noted: a run from here looks at it again
    if pid is not None:
        return _in_use(state_dir, folder, f"pid {pid}")
    if theirs.commits > taken[0]:
        return _went_on(state_dir, folder, taken, theirs, aside)
    if behind(conn, state_dir) is not None:
        return False  # this copy lost commits its own mark saw: refused next (mark.attach), the original left as it is
    try:
        lock = LedgerLock.acquire(original.with_name(LOCK_NAME))  # no run starts there while it is looked at, marked
    except LedgerLocked as exc:  # one started since
        return _in_use(state_dir, folder, exc.holder or "another runner")
    except LedgerError as exc:
        _unmarked(state_dir, folder, exc)
        return False
    try:
        there = Connection.open_writable(original, may_create=False)
        try:
            problem = _go_on_here(there, taken, conn, state_dir, aside)
            return True if problem is None else problem
        finally:
            there.close()
    except LedgerError as exc:
        _unmarked(state_dir, folder, exc)
        return False
    finally:
        lock.release()


def _go_on_here(there: Connection, taken: Taken, conn: Connection, state_dir: Path,
                aside: str) -> str | None:
    """The original's ledger open on ``there``, its lock held: refused when it went on (its own count, not its
    mark's, which may lag) or went on elsewhere; else marked moved here, durably, before this copy writes anything."""
    folder = there.file.parent
    theirs = in_ledger(there)
    if theirs.ledger != in_ledger(conn).ledger:
        return None  # another ledger put there since the mark was read: no original of this copy's any more
    if theirs.commits > taken[0]:
        return _went_on(state_dir, folder, taken, theirs, aside)
    here = state_dir.absolute() / conn.file.name  # as a run from there is told to take it: --state <this folder>
    if (gone := read_moved(there.scalar("SELECT value FROM meta WHERE key = ?", (MOVED_META,)))) is not None:
        where, when, _ = gone
        if not same_file(Path(where), conn.file):  # another copy went on from it first (or `runner ledger copy`)
            from runner.ledger.postgres.urls import is_postgres_url  # here only: a SQLite run never loads the backend

            there_on = shlex.join(["--ledger", where] if is_postgres_url(where) else ["--state", str(Path(where).parent)])
            return (f"{state_dir} is a copy of {folder}, whose ledger went on at {where} since"
                    f" ({when}): the jobs sent there read pending in this copy, and a run here"
                    f" would pay for them again. Nothing was sent or changed. Run with {there_on}."
                    f" To go on with this copy anyway, {aside}.")
    set_moved(there, moved_mark(str(here), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), by_run=True))
    crash_point("copy-run-moved")  # tests: killed with the original marked moved, nothing of this copy written
    log.warning("%s is a copy of %s, whose ledger this one is: runs go on from here. %s is marked moved here, so a"
                " run from it is refused (it would pay again for what this one sends); `runner ledger reopen %s`"
                " makes it live again", state_dir, folder, folder, shlex.quote(str(folder)))
    return None


def _not_gone_on(state_dir: Path, folder: Path, command: str, pid: int | None, went_to: int | None) -> None:
    """``pid``: a run using ``folder`` now; ``went_to``: its durable commits, a run having gone on there since."""
    if pid is None and went_to is None:
        then = ("the first run from here looks at it again, and marks it moved unless a run went on there since (a run"
                " from both would pay again for what the other sends)")
    else:
        now = f"a run (pid {pid}) is using it now" if pid is not None else f"its ledger went on to commit {went_to}"
        then = (f"{now}, so a run from here is refused (it would pay again for what that one sends): this copy is a"
                f" record of the batch as it was; copy {folder} again to go on from a copy")
    log.warning("%s is a copy of %s, whose ledger is this one's twin; `runner %s` sends nothing, so %s is left as it"
                " is (a restore checked, a decision recorded here). This copy notes it: %s", state_dir, folder,
                command, folder, then)


def _in_use(state_dir: Path, folder: Path, holder: str) -> str:
    return (f"{state_dir} is a copy of {folder}, where a run ({holder}) is using the same ledger now: both would"
            f" pay for every job still pending. Nothing was sent or changed. Run from {folder} once that run has"
            f" ended (or copy it again then); {_shared(str(folder))}.")


def _went_on(state_dir: Path, folder: Path, taken: Taken, theirs: Seen, aside: str) -> str:
    commits, at = taken
    return (f"{state_dir} is a copy of {folder} taken at its durable commit {commits} ({said_when(at)}), and the"
            f" ledger there went on to commit {theirs.commits} (the last at {said_when(theirs.at)}): the jobs sent"
            f" there since read pending in this copy, and a run here would pay for them again. Nothing was sent"
            f" or changed. Run from {folder}, or copy it again; {_shared(str(folder))}. To go on with this copy"
            f" anyway, {aside}.")


def _unmarked(state_dir: Path, folder: Path, exc: LedgerError) -> None:
    """Warn that ``folder`` could not be marked moved (read-only: a snapshot, a frozen batch); refuse this copy, nothing
    sent (:class:`LedgerDiskError`, exit 6), when its disk is full: the operator copied it to a roomier disk, and the
    cron line's run of it paid again for what the copy sent once space was freed there."""
    cause = exc.__cause__
    why = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(exc)  # (not its "run again")
    code = getattr(cause, "sqlite_errorcode", None)
    if (cause.errno in (errno.ENOSPC, errno.EDQUOT) if isinstance(cause, OSError) else
            isinstance(code, int) and code & 0xFF == _SQLITE_FULL):
        raise LedgerDiskError(
            f"{state_dir} is a copy of {folder}, whose ledger is this one's twin, and {folder} could not be marked"
            f" moved here: its disk is full ({why}). Once space is freed there, a run from {folder} would read what"
            f" this one sends as pending and pay for it again. Nothing was sent or changed. Free some space on the"
            f" disk of {folder} (a few kilobytes will do) and run again: this copy marks it then.") from exc
    log.warning("%s is a copy of %s, whose ledger is this one's twin, and %s could not be marked moved here (%s): a"
                " run from %s after this one would read what this one sends as pending and pay for it again. Run only"
                " from %s from now on, and move %s aside once this copy is the one in use", state_dir, folder, folder,
                why, folder, state_dir, folder)


def _on_another_host(conn: Connection, path: str, state_dir: Path, aside: str, now: float, committed_at: float, *,
                     namesake: bool = False) -> str | None:
    """``committed_at``: when the copied ledger's last durable commit was made (:func:`~.mark.in_ledger`'s);
    ``namesake``: the host is another machine of this host's name (its run records the same name)."""
    run = conn.rows("SELECT pid, host, started_at, ended_at FROM runs ORDER BY id DESC LIMIT 1", ())
    if not run or run[0]["ended_at"] is not None or (run[0]["host"] == socket.gethostname() and not namesake):
        return None
    last = conn.rows("SELECT started_at, ended_at FROM attempts ORDER BY id DESC LIMIT 1", ())
    wrote = max([float(run[0]["started_at"]), committed_at,
                 *(float(v) for row in last for v in (row["started_at"], row["ended_at"]) if v is not None)])
    host, folder = run[0]["host"], path.rsplit("/", 1)[0]
    machine = (f"another machine also named {host} (another boot id or container; or this machine before it"
               " restarted, its ledger file replaced since)" if namesake else host)
    what = (f"{state_dir} holds a ledger copied from {folder} on {machine} while a run there (pid {run[0]['pid']})"
            f" was using it, its last write at {said_when(wrote)}: if that run goes on, both pay for every job still"
            " pending, and what it sent after the copy reads pending here.")
    if now - wrote > LIVE_WITHIN_S:
        log.warning("%s It wrote over a day ago, so it has most likely ended; if it ran on, stop this run and run"
                    " from that folder instead.", what)
        return None
    return (f"{what} Nothing was sent or changed. Let it end there and copy the folder again; {_shared(folder)}. If"
            f" that run is not going on (killed, its host down) and sent nothing after the copy, {aside}.")
