"""The rescue journal: task ids the provider gave that the ledger could not record.

When the provider accepts a submit, its ``task_id`` is the only link to a paid
task. If the ledger write that records it fails (a disk filled by another
process), the engine appends one line to ``<state>/rescue.jsonl`` — opened
with ``O_APPEND``, fsynced, a few dozen bytes, so it usually fits where the
ledger's transaction did not — and keeps retrying the ledger write. At the
next start, before jobs left ``submitting`` become ``in_doubt``,
:meth:`~runner.ledger.api.LedgerBackend.apply_rescue` records each
journalled id (``submitting → running``) and appends a ``consumed`` line for
it; the file is kept as a record for the operator.

A line names its submit attempt and is attached only while that attempt is
still the job's last submit — also when the job was put in doubt or reset to
pending meanwhile (the task exists and was paid for: recording it beats paying
again). It is never attached to a newer submit; if the job moved on to another
task, the id is kept on the job's record (a ``rescued`` submit row). Replaying
a line twice changes nothing (its task id is then on record). ``--new-ledger``
renames the journal aside (``rescue.jsonl.stale-<time>``): its lines belong to
the former ledger.

Lines (JSON objects, one per line; a torn last line is ignored)::

    {"key": "...", "task_id": "...", "attempt": 12, "at": 1760000000.0}
    {"consumed": {"key": "...", "task_id": "...", "attempt": 12}, "at": ..., "outcome": "running"}

A full disk is what most often fails both writes. So a run keeps a reserve beside the journal,
``rescue.reserve``: :data:`RESERVE_BYTES` with their blocks allocated (:func:`reserve`, at the run's
start). A journal write that finds no space removes the reserve and writes again; the space is enough
for thousands of lines, and the next start that finds room makes the reserve again. Every line starts
with a newline: a write cut short leaves part of a line, which the next line must not be glued to.

Writing the journal may fail even so; then the engine's log line is the last
resort. Nothing here raises for a missing journal; one that is there and cannot be read is refused to the ledger
that would record it (:func:`to_record`): gone on without it, a run held those jobs in doubt, and `retry --in-doubt`
paid for them again.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from runner.errors import LedgerDiskError
from runner.storage.folder_sync import sync_folder

__all__ = ["CRASH_ENV", "CRASH_SIGNAL_ENV", "RESCUE_NAME", "RESERVE_BYTES", "RESERVE_NAME", "SHARED_MODE", "RescueEntry", "append_entry",
           "append_line", "crash_point", "mark_consumed", "pending_entries", "read_pending", "reserve",
           "to_record"]

RESCUE_NAME = "rescue.jsonl"
RESERVE_NAME = "rescue.reserve"
RESERVE_BYTES = 256 * 1024  # given up to the journal when the disk is full: room for thousands of lines
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
# The journals' files (this one, its reserve, the review queue's): the owner's and its group's, as far as the umask
# lets (002: a state directory two users share through a group; 022 and 077: the owner's alone), never the world's
SHARED_MODE = 0o660
CRASH_ENV = "RUNNER_TEST_CRASH_AT"  # tests only: the process SIGKILLs itself at the crash point so named
CRASH_SIGNAL_ENV = "RUNNER_TEST_CRASH_SIGNAL"  # tests only: the signal sent there instead (SIGINT, SIGTERM…)

log = logging.getLogger("runner.ledger")


@dataclass(frozen=True, slots=True)
class RescueEntry:
    """One accepted task whose id the ledger could not record when it arrived."""

    key: str
    task_id: str
    attempt: int
    at: float


def crash_point(name: str) -> None:
    """Tests only: die at once (SIGKILL, no clean-up) here when ``RUNNER_TEST_CRASH_AT`` is ``name``.

    Points: ``rescue-journalled`` (an accepted id is in the journal, the ledger write failed, before any
    retry), ``rescue-applied`` (a journal line recorded in the ledger, its ``consumed`` line not yet
    written) and ``write-ahead-group`` (the submit lane committed the write-aheads of a group of two or
    more jobs, before any of their POSTs left), ``ledger-copy-made``, ``ledger-copy-cleared``,
    ``ledger-copy-rows``, ``ledger-copy-moved`` (``runner ledger copy``: a SQLite destination built and marked, not
    yet renamed into place; the same, an earlier killed copy's leftovers removed; every row written,
    none committed; the source marked moved, the destination not yet unmarked), ``copy-run-moved`` (a run from a
    ``cp -a`` copy: the original marked moved, nothing of the copy written: :mod:`runner.ledger.sqlite.copied`),
    ``regen-moved``, ``regen-dropped``
    (``runner regenerate``: a rejected video moved aside; the other manifests' copies removed too, the ledger
    step not yet made), ``verify-removed`` (``runner verify``: a damaged file removed, the good one beside) and
    ``review-queue-applied``, ``review-queue-removed`` (review decisions queued during a run applied and committed,
    their journal not yet removed; the same, removed: :mod:`runner.ledger.review_queue`), ``export-rows`` (``runner export --format hf``: every video placed,
    every row written, metadata.jsonl not yet in place) and ``report-page`` (``runner report``: the page written
    under its temporary name, not yet in place). ``RUNNER_TEST_CRASH_SIGNAL`` names another signal to send
    there instead (``SIGINT``, ``SIGTERM``: an operator's stop, which the command's handlers take)."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.Signals[os.environ.get(CRASH_SIGNAL_ENV, "SIGKILL")])


def append_line(file: Path, record: dict[str, object]) -> None:
    """Append ``record`` as one fsynced JSON line, as this journal's lines are (the review queue's too)."""
    _append(file, record)


def _append(file: Path, record: dict[str, object]) -> None:
    """One line, appended and fsynced; a newline first, so that a line an earlier write left torn (a full disk cuts
    a write short) ends there and never swallows this one (the blank lines between are skipped)."""
    line = ("\n" + json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
    try:
        fd, created = os.open(file, flags), False
    except FileNotFoundError:
        fd, created = os.open(file, flags | os.O_CREAT, SHARED_MODE), True
    try:
        written = os.write(fd, line)
        if written != len(line):  # a regular file takes part of a write only when it has no room for the rest
            raise OSError(errno.ENOSPC, f"short write ({written} of {len(line)} bytes)", str(file))
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:  # a new file's name is durable only once its directory is synced (a power cut)
        sync_folder(file.parent)


def append_entry(state_dir: Path, entry: RescueEntry) -> bool:
    """Append ``entry`` durably; False (and a log line) when even that fails."""
    file = Path(state_dir) / RESCUE_NAME
    record: dict[str, object] = {"key": entry.key, "task_id": entry.task_id, "attempt": entry.attempt, "at": entry.at}
    try:
        _append(file, record)
    except OSError as exc:
        error = exc
        if exc.errno in _FULL and _release(Path(state_dir)):
            try:
                _append(file, record)
            except OSError as again:
                error = again
            else:
                log.warning("the disk is full: the rescue journal %s took the space kept for it (%s)", file,
                            RESERVE_NAME)
                return True
        log.critical("could not write the rescue journal %s either (%s): job %s is task %s", file,
                     error.strerror or error, entry.key, entry.task_id)
        return False
    return True


def reserve(state_dir: Path) -> bool:
    """Keep :data:`RESERVE_BYTES` allocated in ``state_dir`` for the journal (``rescue.reserve``); True when it is
    there. Found as it is when it has its size already; made with ``posix_fallocate`` (zeros written where the file
    system cannot allocate). Best effort: no room, or any other error, leaves nothing behind and raises nothing."""
    file = Path(state_dir) / RESERVE_NAME
    try:
        info = file.stat()
        if info.st_size >= RESERVE_BYTES and info.st_blocks * 512 >= RESERVE_BYTES:  # a sparse copy holds no room
            return True
    except FileNotFoundError:
        pass
    except OSError:
        return False
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), SHARED_MODE)
        try:
            try:
                os.posix_fallocate(fd, 0, RESERVE_BYTES)
            except OSError as exc:
                if exc.errno in _FULL:
                    raise
                _zeros(fd)  # no fallocate here (EOPNOTSUPP, EINVAL): zeros take blocks
            except AttributeError:  # a platform without posix_fallocate
                _zeros(fd)
        finally:
            os.close(fd)
    except OSError:
        _release(Path(state_dir))
        return False
    return True


def _zeros(fd: int) -> None:
    written = os.pwrite(fd, b"\0" * RESERVE_BYTES, 0)
    if written != RESERVE_BYTES:  # a file size limit (Python ignores SIGXFSZ): no reserve, say so
        raise OSError(errno.EFBIG, f"short write ({written} of {RESERVE_BYTES} bytes)")


def _release(state_dir: Path) -> bool:
    """Give the reserve's space back to the file system; True when there was one."""
    try:
        os.unlink(state_dir / RESERVE_NAME)
    except OSError:
        return False
    return True


def _identity(data: dict[str, object]) -> tuple[object, object, object]:
    return data.get("key"), data.get("task_id"), data.get("attempt")


def pending_entries(state_dir: Path) -> list[RescueEntry]:
    """The journal's entries not yet consumed, oldest first (``[]`` when there is no journal, or it cannot be read:
    logged)."""
    try:
        return read_pending(state_dir)
    except OSError as exc:
        log.error("cannot read the rescue journal %s (%s)", Path(state_dir) / RESCUE_NAME, exc.strerror or exc)
        return []


def to_record(state_dir: Path) -> list[RescueEntry]:
    """The entries a ledger opened to write records now (:func:`read_pending`); a journal that is there and cannot be
    read whole (written by root, the run as a user; an I/O error) raises :class:`~runner.errors.LedgerDiskError`
    (exit 6), nothing recorded or sent: a run that went on logged it and held each of those jobs in doubt, their tasks
    paid and their ids unread, and `retry --in-doubt` paid for them again."""
    try:
        return read_pending(state_dir)
    except OSError as exc:
        file = Path(state_dir) / RESCUE_NAME
        raise LedgerDiskError(
            f"cannot read the rescue journal {file} ({exc.strerror or exc}): it may hold task ids of paid tasks a"
            " stopped run could not record, whose jobs would be held in doubt without them (and `retry --in-doubt`"
            " pay for them again). Make it readable by this user (or run as the user the last run ran as; an I/O"
            " error: check the disk) and run again; nothing was sent") from exc


def read_pending(state_dir: Path) -> list[RescueEntry]:
    """:func:`pending_entries`, but a journal that is there and cannot be read whole (no permission, an I/O error)
    raises its ``OSError``: for a caller after which nothing applies the journal (``runner ledger copy``). Torn lines
    are skipped as ever (a write cut short, logged when it failed, and written again)."""
    file = Path(state_dir) / RESCUE_NAME
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        return []
    entries: dict[tuple[object, object, object], RescueEntry] = {}
    for line in raw.splitlines():
        try:
            data = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            continue  # a torn line: the write that made it failed, and was logged
        if not isinstance(data, dict):
            continue
        consumed = data.get("consumed")
        if isinstance(consumed, dict):
            entries.pop(_identity(consumed), None)
            continue
        key, task_id, attempt, at = data.get("key"), data.get("task_id"), data.get("attempt"), data.get("at")
        if isinstance(key, str) and isinstance(task_id, str) and task_id and isinstance(attempt, int):
            entries[(key, task_id, attempt)] = RescueEntry(key, task_id, attempt, float(at) if isinstance(at, (int, float)) else 0.0)
    return list(entries.values())


def mark_consumed(state_dir: Path, entry: RescueEntry, *, at: float, outcome: str) -> None:
    """Record that ``entry`` was dealt with (``outcome``: what the ledger made of it)."""
    _append(Path(state_dir) / RESCUE_NAME, {
        "consumed": {"key": entry.key, "task_id": entry.task_id, "attempt": entry.attempt},
        "at": at, "outcome": outcome,
    })
