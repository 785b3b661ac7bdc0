"""A new ledger does not pay again for jobs another ledger of this user on this host planned: the book of this host's
ledgers (:mod:`runner.ledger.book`), checked and written by every run that may send (``run``, ``submit``), after its
plan is registered and before its engine starts.

A state folder that is missing altogether (the manifest copied to another folder and run there, ``mv state
/big/state`` under an unchanged cron line, ``rm -rf state``, a cron line that lost ``--ledger``) holds no trace a
ledger's own open could see: the run made a new ledger and paid for every job again. So each run that may send notes
its ledger in the book — its id, where it is, its provider, a sample of its job keys — committed before its first
POST ("armed": a first run killed right after one submit is on the book as one that may have paid). A run on a ledger
that has sent nothing yet looks up the armed entries of the same provider first: another ledger whose sample meets
this ledger's jobs, or, where that ledger can still be read, whose sent jobs meet this ledger's own sample, is named
and the run refused (exit 2, nothing sent), with the way on: its ``--state`` (or ``--ledger``), or ``--new-ledger``
to pay again on purpose (which drops the entries of ledgers gone from their place, so the refusal does not come back).
A ledger that has sent (another batch's: the manifest copied into its folder) is refused alike for the jobs of the
batch it has not sent that another ledger, still where it ran, holds as sent.

The book is a safety net: when it cannot be read or written the run says so once and goes on. It cannot see another
user's ledgers, another host's (unless their home is shared), a book deleted, nor ``--simulate`` runs (a simulator's
ledger paid for nothing), and a ledger gone whose sample missed a small batch planned from its larger one.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from runner.errors import LedgerError, UsageError
from runner.jobs import JobState
from runner.ledger import DB_NAME, LedgerBackend, open_ledger
from runner.ledger.api import PAID_STATES, moved_to
from runner.ledger.book import SAMPLE_SIZE, BookUnusable, Entry, book_path, entries, note
from runner.ledger.sqlite.mark import ID_META, said_when
from runner.service.hints import provider_flags
from runner.service.opening import path_of, state_of, without_passwords
from runner.service.outcome import Notice, Notify

__all__ = ["guard_new_ledger"]

_PG_ID_META = "write_marks_ledger"  # runner.ledger.postgres.hostmarks.ID_META (not imported: a SQLite run never loads it)


@dataclass(frozen=True, slots=True)
class _Met:
    """An armed entry whose ledger planned some of this ledger's jobs: how many were seen, and whether that ledger
    is still where the entry says (None: not known, a PostgreSQL ledger or another host's folder)."""

    entry: Entry
    jobs: int
    there: bool | None


def guard_new_ledger(ledger: LedgerBackend, batch: str, *, provider: str, new_ledger: bool, say: Notify,
                     command: str = "run", manifest: Path | None = None, url: str | None = None,
                     environ: Mapping[str, str] | None = None) -> None:
    """Before a run of ``batch`` that may send to ``provider``: refuse (UsageError) a ledger that has sent nothing
    while an armed entry of the book names another ledger that planned its jobs (unless ``new_ledger``); then note
    this ledger in the book, armed. The book unusable: one warning, and the run goes on. ``command`` and ``manifest``
    (its file): the command the refusal tells to run again with that ledger; ``url``: a PostgreSQL ledger's URL as
    given, whose parameters (a schema's ``options=-csearch_path=…``) the book keeps, its password left out."""
    file = path_of(ledger)
    name = ledger.meta(ID_META if file is not None else _PG_ID_META)
    if name is None:  # (every ledger opened for writing has one; an older PostgreSQL one may not yet)
        return
    here = _location(ledger, url)
    sample = tuple(ledger.find_keys("", limit=SAMPLE_SIZE))  # the smallest keys: an index range, not a scan
    fresh = not ledger.has_provider_tasks()
    scope = None if fresh else batch  # a ledger that has sent: judged on this batch's jobs it has not sent
    looked: dict[tuple[str, str, tuple[str, ...]], tuple[bool | None, int] | None] = {}
    states: dict[str, JobState] = {}  # of the book's sample keys in this ledger, each read once a run
    asked: set[str] = set()

    def read(keys: list[str]) -> dict[str, JobState]:
        if new := [key for key in keys if key not in asked]:
            states.update(ledger.states_of(new))
            asked.update(new)
        return states

    def look(entry: Entry, keys: tuple[str, ...]) -> tuple[bool | None, int] | None:  # each ledger read once a run
        seen = (entry.ledger_id, entry.location, keys)
        if seen not in looked:
            looked[seen] = _look_there(entry, here, keys)
        return looked[seen]

    def judge(book: list[Entry]) -> list[str]:  # in the book's write transaction: other ledgers were read before
        met = _met(ledger, name, here, sample, book, look, read, batch=scope)
        if met and not new_ledger:
            raise UsageError(_refusal(met[0], here, _Command(command, manifest, provider),
                                      created=bool(getattr(ledger, "created", False)), batch=scope))
        return [m.entry.ledger_id for m in met if m.there is False]  # --new-ledger over ledgers gone: dropped

    now = time.time()
    entry = Entry(name, here, file is None, socket.gethostname(), provider, (batch,), sample, armed_at=now,
                  last_seen=now, forced=fresh and new_ledger)
    path: Path | None = None
    try:
        path = book_path(environ)
        with contextlib.suppress(BookUnusable):  # the other ledgers read first, outside the book's lock: one slow to
            # read (a stalled mount, a lock held) held the book, and the runs waiting went on unchecked
            _met(ledger, name, here, sample, entries(path, provider), look, read, batch=scope)
        note(path, entry, judge)  # in the book's transaction, only the entries noted since are read now
        return
    except BookUnusable as exc:
        unwritten = exc
    checked = False
    if path is not None:
        try:  # a book this user may read but not write (a read-only home): checked all the same
            judge(entries(path, provider))
            checked = True
        except BookUnusable:
            pass
    undone = "note this ledger there for the next runs to check" if checked else \
        "check whether another ledger of this host already paid for these jobs, nor note this ledger there"
    fix = "if a runner of yours is stopped (`jobs`), let it go on with `fg` or end it" if unwritten.held else \
        "make the file or its folder writable again"
    say(Notice(f"{unwritten}: this run could not {undone}. It goes on (the book is a safety net, not a requirement);"
               f" {fix}", "warning", fields={"event": "ledger_book"}))


def _location(ledger: LedgerBackend, url: str | None) -> str:
    """Where ``ledger`` is, as the book keeps it: its state folder's absolute path; its URL as given without its
    password (``ledger.location`` has no parameters either: a ledger in a schema of its own named without it led
    the command the refusal prints to the database's other ledger, which planned the batch there and paid again)."""
    file = path_of(ledger)
    if file is not None:
        return os.path.abspath(file.parent)
    return ledger.location if url is None else without_passwords([url])[0]


def _met(ledger: LedgerBackend, name: str, here: str, sample: tuple[str, ...], book: list[Entry],
         look: Callable[[Entry, tuple[str, ...]], tuple[bool | None, int] | None],
         read: Callable[[list[str]], Mapping[str, JobState]], *, batch: str | None) -> list[_Met]:
    """The book's armed entries of other ledgers that planned jobs of ``ledger``, most recently run first; none when
    this ledger's own entry says it was made with --new-ledger over them. ``look``: :func:`_look_there`, and ``read``:
    ``ledger.states_of``, remembered.

    ``batch``: ``ledger`` has sent (not a new one): a job of ``batch`` it has not sent yet, in an entry's sample, that
    the entry's ledger (still where it ran, on this host) holds as sent counts — a manifest copied into the folder of
    another batch's ledger planned the batch there and paid for it again; a copy of a ledger (`runner ledger copy`)
    holds as pending what its source does, and is not refused for it."""
    if any(entry.ledger_id == name and entry.forced for entry in book):
        return []
    others = [entry for entry in book if entry.ledger_id != name and entry.armed_at is not None]
    states = read(sorted({key for entry in others for key in entry.sample}))  # one read for all samples
    met: list[_Met] = []
    for entry in others:
        if batch is not None:  # other ledgers are read only for the unsent jobs of this batch their samples name
            unsent = tuple(key for key in entry.sample if key in states and _unsent(ledger, batch, key, states[key]))
            seen = look(entry, unsent) if unsent else (None, 0)
            if seen is not None and seen[1]:
                met.append(_Met(entry, seen[1], seen[0]))
            continue
        jobs = sum(key in states for key in entry.sample)  # its sample among this one's jobs
        if (seen := look(entry, () if jobs else sample)) is None:
            continue  # this ledger's source
        there, sent = seen
        if jobs or sent:
            met.append(_Met(entry, jobs or sent, there))
    return met


def _unsent(ledger: LedgerBackend, batch: str, key: str, state: JobState) -> bool:
    """Whether job ``key`` (in ``state`` in ``ledger``) is one of ``batch``'s that ``ledger`` has never sent."""
    return state is JobState.PENDING and ledger.target_output(batch, key) is not None


def _look_there(entry: Entry, here: str, sample: tuple[str, ...]) -> tuple[bool | None, int] | None:
    """Whether ``entry``'s SQLite ledger is still at its location (None: not known here: a PostgreSQL ledger, another
    host's folder, one this user cannot read now), and how many of ``sample`` it holds as sent (paid, maybe); None
    when that ledger is marked copied to ``here`` (`runner ledger copy`): the source of this one, whose jobs are
    this one's (a copy of a ledger that had sent nothing was refused for them, naming its source, which was refused
    as copied, naming the copy)."""
    if entry.postgres or entry.host != socket.gethostname():
        return None, 0
    if entry.location == here or not os.path.exists(os.path.join(entry.location, DB_NAME)):
        return False, 0
    try:
        with open_ledger(Path(entry.location), readonly=True, quiet=True) as other:  # its warnings are its runs'
            if other.meta(ID_META) != entry.ledger_id:
                return False, 0  # another ledger there now
            if (moved := moved_to(other)) is not None and _same_place(moved[0], here):
                return None
            return True, sum(state in PAID_STATES for state in other.states_of(list(sample)).values())
    except (LedgerError, OSError):
        return None, 0


def _same_place(where: str, here: str) -> bool:
    """Whether ``where`` (a copy's destination as given: a state folder, its ledger.db, or a URL) is ``here``."""
    if "://" in where:
        return without_passwords([where])[0] == here
    return os.path.realpath(state_of(where)) == os.path.realpath(here)


@dataclass(frozen=True, slots=True)
class _Command:
    """The command that was refused, to say it again with another ledger: ``runner run MANIFEST --state DIR …``."""

    name: str
    manifest: Path | None
    provider: str

    def on(self, *ledger: str) -> str:
        words = ["runner", self.name, *([] if self.manifest is None else [str(self.manifest)]), *ledger]
        return shlex.join([*words, *provider_flags(self.provider)])


def _refusal(met: _Met, here: str, command: _Command, *, created: bool, batch: str | None) -> str:
    entry = met.entry
    batches = ", ".join(entry.batches[:3]) + (", …" if len(entry.batches) > 3 else "")
    when = f"{'batch' if len(entry.batches) == 1 else 'batches'} {batches}; last run {said_when(entry.last_seen)}"
    intro = f"the new ledger {here} has sent nothing yet, but at least {met.jobs} of its jobs were planned in" \
        if batch is None else (f"the ledger {here} has not sent {batch}'s jobs yet, but at least {met.jobs} of them"
                               " were planned in")
    again = "add --new-ledger to pay for them again on purpose (nothing was sent)"
    if entry.postgres:
        return (f"{intro} the PostgreSQL ledger {entry.location} ({when}), which may have paid for them: run"
                f" `{command.on('--ledger', entry.location)}` (its password from PGPASSWORD, ~/.pgpass or the URL it"
                f" ran with), which pays for nothing twice — or {again}")
    where = entry.location if entry.host == socket.gethostname() else f"{entry.location} on {entry.host}"
    if met.there is False:
        back = (f" (the new ledger this run made there holds only its plan: to put the old folder back, move {here}"
                " aside first)") if created and entry.location == here else ""
        return (f"{intro} the ledger that was at {where} ({when}), which may have paid for them, and it is"
                " not there anymore: if you moved its folder, run with --state NEW-FOLDER; if you deleted it,"
                f" --new-ledger pays for every job again{back} (nothing was sent)")
    return (f"{intro} the ledger at {where} ({when}), which may have paid for them: run"
            f" `{command.on('--state', entry.location)}`, which pays for nothing twice — or {again}")
