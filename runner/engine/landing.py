"""When a POST's answer cannot land in the ledger: the tries again, the error that says so, and what the operator does.

The submit lane writes each answer in one breath with the response (:mod:`runner.engine.submit`). An accepted task
id whose first write failed is in the rescue journal and written again a few times (:func:`land_later`). A write
that is refused or keeps failing leaves a paid task whose id only the rescue journal holds; the run then stops with
an error that says where the id is and what brings it into the ledger, by what went wrong:

- the job had moved on (:class:`~runner.errors.JobMovedOn`): on a shared ledger another runner took it over while
  this one was stopped past its lease — exit 4, the job is held in doubt until the next run records the id;
- the disk (:class:`~runner.errors.DiskError`): free space — exit 6;
- the PostgreSQL ledger could not be reached (:class:`~runner.errors.LedgerUnreachable`) — exit 3, as any
  connection lost mid-run: the next start records it;
- anything else: the next run records it — exit 3.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import anyio

from runner.engine.admission import AdoptCommands
from runner.errors import DiskError, JobMovedOn, LedgerError, LedgerUnreachable, TaskIdTaken
from runner.jobs import JobState
from runner.ledger import JobRecord, LedgerBackend
from runner.ledger.rescue import RESCUE_NAME

__all__ = ["LAPSED", "land_later", "landed", "not_sent", "unrecorded"]

LAPSED = "LEASE_LAPSED"  # the reason of a submit not sent: the runner's lease may have lapsed since its write-ahead

log = logging.getLogger("runner.engine")


def landed(moved: bool, key: str, target: str) -> None:
    """A POST's answer must land: a refused transition is a failed write (the id goes to the journal)."""
    if not moved:
        raise JobMovedOn(
            f"job {key} could not be moved to {target}: it is no longer submitting (on a shared ledger another runner"
            " took it over while this one was stopped past its lease; on a ledger of one runner, a bug in runner)")


def not_sent(ledger: LedgerBackend, key: str, attempt: int,
             hints: AdoptCommands) -> LedgerError | None:
    """The POST of ``key``'s write-ahead ``attempt`` is not sent (this runner's lease may have lapsed since): the job is
    pending again (``mark_refused``: its estimate given back) — None — unless it moved on meanwhile (another runner
    took it over: held it in doubt, and it may have been retried and sent since): then the error the run stops with,
    which says that nothing was sent for this attempt (its command with the run's ledger flags: ``hints``; on a
    shared ledger a bare `runner show KEY` opened the SQLite ledger under ./state, which knows nothing of the job)."""
    message = "not sent: this runner was stopped past its lease between the write-ahead and the POST"
    try:
        moved = ledger.mark_refused(key, attempt, http_status=None, reason=LAPSED, message=message, permanent=False)
    except JobMovedOn:  # submitting again, for another runner's attempt
        moved = False
    if moved:
        log.warning("job %s: %s; it is pending again", key, message)
        return None
    return LedgerError(
        f"this runner was stopped past its lease between the write-ahead of job {key} and its POST, and another runner"
        f" took the job over meanwhile: its POST was not sent, so nothing was paid for that attempt (`{hints.line('show', key)}`"
        f" says where the job is now: held in doubt for that attempt, it is safe to retry{_note(hints)})")


def unrecorded(error: LedgerError, key: str, task_id: str, journal: Path,
               hints: AdoptCommands) -> LedgerError:
    """The error a run stops with when the accepted ``task_id`` of ``key`` could not be recorded (its kind kept); its
    commands carry the run's ledger flags (``hints``)."""
    if isinstance(error, JobMovedOn):
        then = ("a run from a host that shares this state directory records it: as the job's task while the job is in"
                f" doubt (`{hints.line('adopt', key, task_id)}` does that on any host), else as another paid task of"
                f" the job (`{hints.line('show', key)}` lists it{_note(hints)})")
    elif isinstance(error, DiskError):
        # (the error says what to do about the disk: free space, a file size limit, a read-only file system)
        then = "the next run records it once the ledger can be written again"
    elif isinstance(error, LedgerUnreachable):
        then = "the next run records it once the PostgreSQL server can be reached again"
    else:
        then = "the next run records it"
    return type(error)(f"{error} — job {key} was accepted as task {task_id}; the id is kept in {journal} (or, failing"
                       f" that, in the log above) and {then}")


async def land_later(ledger: LedgerBackend, key: str, attempt: int, task_id: str, http_status: int | None,
                     delays: Sequence[float], hints: AdoptCommands) -> str | None:
    """Write the accepted ``task_id`` of ``key`` again after each of ``delays`` (its first write failed). None once
    it is recorded (a commit that reported a failure but landed counts); the holder's key when a try finds the id
    held by a job already (``TaskIdTaken``: nothing written). Every try failed: raises :func:`unrecorded`'s error.

    The id is already in the rescue journal (when that could be written), so the next start records it even if
    every try here fails."""
    error: LedgerError | None = None
    for delay in delays:
        await anyio.sleep(delay)
        try:
            landed(ledger.mark_running(key, attempt, task_id=task_id, http_status=http_status), key, "running")
        except TaskIdTaken as exc:
            return exc.holder
        except LedgerError as exc:
            error = exc
            recorded = _recorded(ledger, key)  # a commit that reported failure but landed
            if recorded is None or recorded.state is not JobState.RUNNING or recorded.task_id != task_id:
                continue
        log.warning("job %s: task %s recorded after all", key, task_id)
        return None
    assert error is not None
    raise unrecorded(error, key, task_id, ledger.state_dir / RESCUE_NAME, hints) from error


def _note(hints: AdoptCommands) -> str:
    return f"; {hints.ledger_note}" if hints.ledger_note else ""


def _recorded(ledger: LedgerBackend, key: str) -> JobRecord | None:
    try:
        return ledger.get(key)
    except LedgerError:
        return None
