"""``runner verify``: check every stored video against the ledger, and restore what is wrong.

Each done job's file is checked by size and sha256 (:meth:`OutputStore.verify`). A missing or
damaged file is downloaded again while the provider still serves it: the recorded result URL
while it is valid, else a fresh one from a task-result GET (each call signs a new URL; the
engine does the same). The download goes through the client's verified fetch into a sink of
the store, which never overwrites a file: a damaged file is replaced only once the new one is
committed beside it. A good copy a stopped ``verify`` left beside the name (or a stopped
``regenerate`` in a ``_rejected/`` folder) is put back first, with no download (:func:`put_back_files`).
Nothing is submitted or paid. What cannot be restored (the provider no
longer knows the task, no task recorded, repeated download errors) is reported with its reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from runner import endpoints
from runner.client.download import MediaCheck, OpenSink
from runner.errors import ProviderError, TaskNotFound, UrlExpired
from runner.jobs import JobState
from runner.ledger import JobRecord, LedgerBackend
from runner.ledger.rescue import crash_point
from runner.novita_wire import TaskResult
from runner.reporting.ticker import Ticker
from runner.review.putback import find_copy, put_back
from runner.storage import OutputStore
from runner.storage.api import Sink, Stored, UnsafeDestination, beside_name

__all__ = ["Fetcher", "Problem", "VerifyResult", "check_files", "put_back_files", "restore_files"]

log = logging.getLogger("runner.review")
URL_MARGIN_S = 60.0  # a recorded URL expiring sooner than this is not tried
TRIES = 3


class Fetcher(Protocol):
    """What restoring needs of the provider client (:class:`~runner.client.NovitaClient`)."""

    async def task_result(self, task_id: str) -> TaskResult: ...

    async def download(self, url: str, open_sink: OpenSink, *, check_media: MediaCheck | None = None) -> Stored: ...


@dataclass(frozen=True, slots=True)
class Problem:
    key: str
    path: str
    what: str  # "missing" or "damaged"
    copy: str | None = None  # a verified copy a stopped command left at another name (`verify` puts it back)


@dataclass(slots=True)
class VerifyResult:
    checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    not_restored: list[tuple[str, str]] = field(default_factory=list)  # (key, why)


def put_back_files(ledger: LedgerBackend, store: OutputStore, result: VerifyResult) -> VerifyResult:
    """Put back each of ``result.problems`` whose recorded video a stopped command left at another name
    (beside its name, or in a ``_rejected/`` folder: :func:`~runner.review.putback.put_back`); fills
    ``restored``. Nothing is downloaded: what is left needs :func:`restore_files`."""
    for problem in result.problems:
        job = ledger.get(problem.key)
        if job is None or problem.key in result.restored:
            continue
        try:
            found = put_back(ledger, store, job)
        except OSError as exc:
            log.warning("job %s: cannot put its video back: %s", problem.key, exc.strerror or exc)
            continue
        except UnsafeDestination as exc:  # a link out of the state directory: this job's problem, not the command's
            log.warning("job %s: cannot put its video back: %s", problem.key, exc)
            continue
        if found is not None:
            result.restored.append(problem.key)
    return result


def check_files(ledger: LedgerBackend, store: OutputStore, manifest: str, ticker: Ticker | None = None) -> VerifyResult:
    """Check each done job's stored file of ``manifest`` by size and sha256; nothing is written (a read-only ledger
    does: a batch's videos are read whole, and a lock held that long refused every run meanwhile). ``ticker`` is told
    of each file checked."""
    result = VerifyResult()
    tick = ticker.of(ledger.counts(manifest)[JobState.DONE]) if ticker is not None else None
    for job in ledger.iter_jobs(manifest, states=[JobState.DONE]):
        if tick is not None:
            tick()
        result.checked += 1
        if (problem := _problem(ledger, store, job)) is not None:
            result.problems.append(problem)
    return result


def check_again(ledger: LedgerBackend, store: OutputStore, result: VerifyResult) -> VerifyResult:
    """``result``'s problems checked again (once the ledger is open to restore them: a run may have changed a job
    since the check): those still done and still missing or damaged."""
    again = VerifyResult(checked=result.checked)
    for problem in result.problems:
        job = ledger.get(problem.key)
        if job is not None and job.state is JobState.DONE and (now := _problem(ledger, store, job)) is not None:
            again.problems.append(now)
    return again


def _problem(ledger: LedgerBackend, store: OutputStore, job: JobRecord) -> Problem | None:
    if job.path is None or job.sha256 is None or job.bytes is None:
        return Problem(job.key, job.path or "?", "missing")
    if not store.verify(job.path, job.sha256, job.bytes):
        what = "damaged" if store.exists(job.path) else "missing"
        return Problem(job.key, job.path, what, find_copy(ledger, store, job))
    return None


async def restore_files(
    ledger: LedgerBackend, store: OutputStore, client: Fetcher, result: VerifyResult, *,
    wall: Callable[[], float] = time.time,
) -> VerifyResult:
    """Download each of ``result.problems`` not yet restored again; fills ``restored`` and ``not_restored``."""
    for problem in result.problems:
        if problem.key in result.restored:
            continue
        job = ledger.get(problem.key)
        if job is None or job.state is not JobState.DONE or job.path is None:
            result.not_restored.append((problem.key, "no longer done in the ledger"))
            continue
        try:
            why = await _restore(ledger, store, client, job, job.path, wall)
        except OSError as exc:
            why = f"cannot write {store.describe(job.path)}: {exc.strerror or exc}"
        except UnsafeDestination as exc:  # a link out of the state directory: reported, the other jobs go on
            why = str(exc)
        if why is None:
            result.restored.append(problem.key)
        else:
            result.not_restored.append((problem.key, why))
    return result


async def _restore(ledger: LedgerBackend, store: OutputStore, client: Fetcher, job: JobRecord, path: str,
                   wall: Callable[[], float]) -> str | None:
    """Restore one job's file; None when done, else why not."""
    if job.task_id is None:
        return "no task is recorded for it"
    try:
        check = endpoints.get(job.model).check_media
    except endpoints.UnknownEndpoint:
        check = None
    beside = beside_name(path, job.key)
    url = job.video_url
    if url is not None and job.url_expires_at is not None and job.url_expires_at - wall() < URL_MARGIN_S:
        url = None
    last = "no download was tried"
    for _ in range(TRIES):
        try:
            if url is None:
                answer = await client.task_result(job.task_id)
                if not answer.videos:
                    return f"the provider lists no video for task {job.task_id}"
                url = answer.videos[0].video_url
            stored = await client.download(url, lambda: _sink(store, path, beside), check_media=check)
        except TaskNotFound:
            return f"the provider no longer knows task {job.task_id}"
        except UrlExpired as exc:
            last, url = str(exc), None
            continue
        except ProviderError as exc:
            last = str(exc)
            continue
        return _settle(ledger, store, job, path, stored)
    return last


def _sink(store: OutputStore, path: str, beside: str) -> Sink:
    store.prepare(path)
    return store.open_sink(path, beside=beside)


def _settle(ledger: LedgerBackend, store: OutputStore, job: JobRecord, path: str, stored: Stored) -> str | None:
    """The downloaded file is committed at ``stored.rel``: put it at the recorded name."""
    if stored.rel != path:  # the damaged file held the name: the good one replaces it now
        if store.exists(path):
            store.remove(path)
            crash_point("verify-removed")  # tests: the good copy is beside, nothing at the name
        store.move(stored.rel, path)
    if stored.sha256 != job.sha256 or stored.bytes != job.bytes:
        log.warning("job %s: the provider's video differs from the one recorded (sha256 %s…, was %s…); recorded anew",
                    job.key, stored.sha256[:12], (job.sha256 or "")[:12])
        ledger.restore_file(job.key, path=path, sha256=stored.sha256, bytes=stored.bytes)
    ledger.record_event(job.key, "download", "restored", detail=f"`runner verify` downloaded {path} again")
    return None
