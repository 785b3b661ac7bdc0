"""Review decisions made while a run holds the ledger: queued in a journal, applied by the run or the next writer.

A run holds the SQLite ledger's single-writer lock (:mod:`runner.ledger.lock`) for its whole life, so an
accept or reject from the review page or the shell cannot be written then. It is appended instead to
``<state>/review-queue.jsonl`` — one JSON line per decision (key, manifest, decision, reason, the sample
it was made on, time), written as the rescue journal's lines are (:func:`~runner.ledger.rescue.append_line`:
``O_APPEND``, a newline first so a torn line never swallows the next, fsynced, the directory synced when
the file is new). A write that fails (a full disk) raises: the decision is not queued, and the caller says so.

The run applies them while it runs, within seconds (:func:`apply_queued` with ``wait=False``, called by the
run between its POSTs: ``runner/service/live_review.py``), and once more as it ends (its engine done, the lock
still held); a run killed leaves them to the next writable open of the ledger (``open_ledger``, once its own
checks passed). Each applies each queued decision with the ledger's own ``reject`` / ``accept``, each one durable
transaction, after checking the job is still the one decided on: in the manifest, done, the same sample
(a clip regenerated since is a new sample: its decision is dropped, never applied to it) and, for an
accept, its video at its recorded path (one a stopped ``regenerate`` left aside is put back by ``runner
accept``, not here). A dropped decision is a warning saying why. The journal is removed only after every
decision is committed; a crash between leaves it to be applied again, which changes nothing (only the last
decision per job counts, and a job already rejected or accepted stays as it is).

Appends and the application take ``review-queue.lock`` (a flock), so a decision queued while the
journal is being applied is never removed with it. A run that finds the lock taken (a decision being
appended) does not wait for it: it looks again at its next turn. Its ending, and a ledger's writable open, wait
:data:`QUEUE_LOCK_WAIT_S` at most: a writer stopped while it held the lock (Ctrl-Z on ``runner reject``) held them
for as long as it stayed stopped, the run's ledger lock with them; past that the decisions stay queued, said.
``runner ledger copy`` applies them in its source too, strictly: its source, marked moved, has no next writer, so a
queue it cannot read or whose lock stays held refuses the copy (:mod:`runner.ledger.sqlite.before_copy`).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runner.jobs import JobState
from runner.ledger.rescue import SHARED_MODE, append_line, crash_point
from runner.storage.folder_sync import sync_folder
from runner.storage.local import LocalStore

if TYPE_CHECKING:
    from runner.ledger.api import LedgerBackend

__all__ = ["QUEUE_LOCK", "QUEUE_NAME", "QueuedDecision", "apply_queued", "queue_decision", "queued_decisions",
           "saved_by_a_run", "who_saves"]

log = logging.getLogger("runner.ledger")
QUEUE_NAME = "review-queue.jsonl"
QUEUE_LOCK = "review-queue.lock"


def saved_by_a_run(command: str | None) -> bool:
    """Whether the holder of the lock (its command, None: unknown, as an older runner's) is a run, which applies
    the queue within seconds."""
    from runner.ledger.holder import WORKING

    return command is None or command in WORKING


def who_saves(command: str | None, holder: str, it: str = "it") -> str:
    """Who saves a decision queued while ``command`` (the lock holder's, :func:`runner.ledger.holder.command_of`;
    None: unknown) holds the ledger: a run within seconds; a command that is not one (`runner verify`) applies no
    queue: the next command to write the ledger saves it, once that one has finished."""
    if saved_by_a_run(command):
        return f"a run is writing the ledger ({holder}) and saves {it} within seconds"
    return (f"`runner {command}` holds the ledger ({holder}); the next command that writes it (a run, at its start)"
            f" saves {it} once that one has finished")


@dataclass(frozen=True, slots=True)
class QueuedDecision:
    """One decision waiting for the ledger's writer."""

    key: str
    manifest: str
    decision: str  # "accept" | "reject"
    reason: str
    sample: int
    at: float


#: How long a writer applying the queue (a run's ending, a ledger's writable open) waits for the journal's lock. An
#: append holds it for one fsync; a process stopped while it held it (Ctrl-Z on `runner reject`) held a run's ending,
#: and with it the ledger's lock, for as long as it stayed stopped: past this the decisions stay queued, said.
QUEUE_LOCK_WAIT_S = 10.0


@contextmanager
def _journal_lock(state_dir: Path, *, within: float | None = None) -> Iterator[None]:
    """The journal's flock: waited for as long as it takes (``within=None``: an append), else for ``within``
    seconds at most, then :class:`BlockingIOError` (``0``: at once)."""
    fd = os.open(state_dir / QUEUE_LOCK, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
                 SHARED_MODE)
    try:
        if within is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            deadline = time.monotonic() + within
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise
                    time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def queue_decision(state_dir: Path, decision: QueuedDecision) -> None:
    """Append ``decision`` durably; :class:`OSError` (nothing queued) when it cannot be written."""
    if decision.decision not in ("accept", "reject"):
        raise ValueError(f"not a review decision: {decision.decision!r}")
    with _journal_lock(Path(state_dir)):
        append_line(Path(state_dir) / QUEUE_NAME, dict(asdict(decision)))


def queued_decisions(state_dir: Path) -> list[QueuedDecision]:
    """The decisions waiting, oldest first (a torn line, from a write that failed and said so, is skipped)."""
    try:
        raw = (Path(state_dir) / QUEUE_NAME).read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.error("cannot read the queued review decisions %s (%s)", Path(state_dir) / QUEUE_NAME, exc.strerror or exc)
        return []
    return _parse(raw)


def _parse(raw: bytes) -> list[QueuedDecision]:
    found: list[QueuedDecision] = []
    for line in raw.splitlines():
        try:
            data = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            continue
        if not isinstance(data, dict):
            continue
        key, manifest, decision, reason, sample, at = (data.get(name) for name in
                                                       ("key", "manifest", "decision", "reason", "sample", "at"))
        if (isinstance(key, str) and isinstance(manifest, str) and decision in ("accept", "reject")
                and isinstance(reason, str) and isinstance(sample, int) and not isinstance(sample, bool)):
            found.append(QueuedDecision(key, manifest, str(decision), reason, sample,
                                        float(at) if isinstance(at, (int, float)) else 0.0))
    return found


def apply_queued(ledger: LedgerBackend, *, told: bool = False, wait: bool = True, strict: bool = False) -> int:
    """Apply the queued decisions to ``ledger`` (held for writing) and remove the journal; how many were applied.

    Never raises for a decision: one the ledger cannot take now (an error of the write) leaves the journal as
    it is, for the next writer. ``strict`` (``runner ledger copy``, whose source has no next writer): what would
    leave the journal unapplied raises instead (:class:`BlockingIOError`: its lock held past the wait; another
    :class:`OSError`: it cannot be read; the ledger's error); nothing is removed then. ``told``: the caller says how many were saved (a run, while it runs and as it
    ends), so the count is logged only when some were dropped. ``wait=False`` (a run while it runs): while
    another process holds the journal's lock (a decision being appended), nothing now; the caller looks again.
    Costs one ``stat`` when nothing is queued."""
    state = Path(ledger.state_dir)
    if ledger.readonly or not (state / QUEUE_NAME).exists():
        return 0
    try:
        return _apply_all(ledger, state, told=told, wait=wait, strict=strict)
    except FileNotFoundError:  # applied by another writer meanwhile
        return 0
    except BlockingIOError:  # a decision being queued (wait=False: the next look applies it too), or its writer stopped
        if strict:
            raise
        if wait:
            log.warning("review decisions queued during a run not applied: another process has held %s for %g s (a"
                        " `runner accept` / `reject` / `review` stopped with Ctrl-Z?); they stay queued, and the next"
                        " writer of this ledger applies them", state / QUEUE_LOCK, QUEUE_LOCK_WAIT_S)
        return 0
    except OSError as exc:  # the journal's lock cannot be taken (a read-only disk): kept for the next writer
        if strict:
            raise
        log.error("review decisions queued during a run not applied yet (%s); the next writer tries again",
                  exc.strerror or exc)
        return 0


def _apply_all(ledger: LedgerBackend, state: Path, *, told: bool, wait: bool, strict: bool) -> int:
    applied = 0
    with _journal_lock(state, within=QUEUE_LOCK_WAIT_S if wait else 0.0):
        latest: dict[tuple[str, str], QueuedDecision] = {}
        for decision in _parse((state / QUEUE_NAME).read_bytes()):  # unreadable (EIO): kept, the error said
            latest.pop((decision.manifest, decision.key), None)  # only the last decision on a job stands
            latest[(decision.manifest, decision.key)] = decision
        try:
            for decision in latest.values():
                applied += _apply(ledger, decision)
        except Exception as exc:  # the ledger's error: kept queued, the writer goes on
            if strict:
                raise
            log.error("review decisions queued during a run not applied yet (%s); the next writer tries again", exc)
            return applied
        crash_point("review-queue-applied")
        try:
            _remove(state / QUEUE_NAME)
        except OSError as exc:  # applied again by the next writer: that changes nothing
            log.error("cannot remove the applied review decisions %s (%s)", state / QUEUE_NAME, exc.strerror or exc)
        crash_point("review-queue-removed")
    if latest and not (told and applied == len(latest)):
        log.info("%d review decision(s) queued during a run applied, %d dropped", applied, len(latest) - applied)
    return applied


def _apply(ledger: LedgerBackend, decision: QueuedDecision) -> int:
    key, what = decision.key, decision.decision
    job = ledger.get(key, decision.manifest)
    why = None
    if job is None:
        why = f"no job {key} in {decision.manifest} any more"
    elif job.sample != decision.sample:
        why = f"the clip was generated again since (now sample {job.sample + 1}, {job.state})"
    elif job.state is not JobState.DONE:
        why = f"the job is {job.state}, not done"
    elif what == "accept" and (job.path is None or not LocalStore(Path(ledger.state_dir)).exists(job.path)):
        why = f"its video is not at {job.path}; accept it again with `runner accept` (it puts a video set aside back)"
    if why is not None:
        log.warning("job %s: the %s queued during a run (%s) is dropped: %s", key, what,
                    time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(decision.at)), why)
        return 0
    assert job is not None
    if what == "reject":
        if job.review != "rejected":  # applied already (a crash before the journal went): nothing again
            ledger.reject(key, reason=decision.reason)
    elif job.review != "accepted":
        ledger.accept(key)
    return 1


def _remove(file: Path) -> None:
    try:
        os.unlink(file)
    except FileNotFoundError:
        return
    sync_folder(file.parent)
