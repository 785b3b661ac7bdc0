"""The fetch lane: succeeded ─▶ done | lost (download, verify, store), and placing copies for other manifests.

Keys of succeeded jobs arrive on a bounded stream (from the updates lane, and from the ledger's
succeeded jobs when a run resumes); ``downloads`` workers read it until it closes. A full buffer
makes the updates lane wait, hence the poller, hence new submits: results whose URLs expire go first.

Failing here never loses a video: the job stays ``succeeded`` for the next run unless the provider
no longer knows the task (then it is ``lost``, loudly). One job's file problem (a name too long, no
permission, a folder in the way, a link leading outside) is recorded on that job and the lane moves
on; only a full or read-only disk stops the run.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable
from pathlib import PurePosixPath

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from runner import endpoints
from runner.client import NovitaClient
from runner.engine import events as ev
from runner.engine.gone import GoneRules
from runner.engine.policy import Policy
from runner.engine.state import RunState
from runner.errors import (
    AuthError,
    DiskError,
    EndpointNotFound,
    ProviderError,
    RunnerError,
    TaskNotFound,
    TransientError,
    UrlExpired,
)
from runner.jobs import JobState
from runner.layout import orphan_path, output_path
from runner.ledger import JobRecord, LedgerBackend
from runner.storage import (
    WHOLE_DISK_ERRNOS,
    OutputStore,
    Sink,
    UnsafeDestination,
    beside_name,
    place_at,
    whole_disk_fix,
)
from runner.storage.local import LocalStore

__all__ = ["FetchLane", "materialise_targets"]

log = logging.getLogger("runner.engine")


class FetchLane:
    def __init__(
        self, ledger: LedgerBackend, client: NovitaClient, store: OutputStore, state: RunState, reporter: ev.Reporter,
        gone: GoneRules, *, policy: Policy, wall: Callable[[], float], rng: random.Random, shared: bool = False,
    ) -> None:
        self.ledger = ledger
        self.client = client
        self.store = store
        self.state = state
        self.reporter = reporter
        self.gone = gone
        self.policy = policy
        self.wall = wall
        self.rng = rng
        # On a shared ledger another runner may register a manifest asking for this job while it downloads:
        # its targets are read again after the record (on SQLite the ledger's lock keeps other runs out).
        self.shared = shared

    async def run(self, keys: MemoryObjectReceiveStream[str], workers: int) -> None:
        """Download every key until the stream closes (each worker holds a clone of it)."""
        with keys, contextlib.ExitStack() as clones:
            async with anyio.create_task_group() as tg:
                for _ in range(max(1, workers)):
                    tg.start_soon(self._worker, clones.enter_context(keys.clone()))

    async def _worker(self, keys: MemoryObjectReceiveStream[str]) -> None:
        with keys:
            async for key in keys:
                await self.fetch_one(key)

    async def fetch_one(self, key: str) -> None:
        """Download one result (every touch of the local disk is inside the per-job handling)."""
        await self._fetch_one(key)  # cut by the run's end (cancelled): its video stays counted as not stored
        self.state.download_ended(key)

    async def _fetch_one(self, key: str) -> None:
        found = self.ledger.get_with_targets(key)  # one read: the job, and where its video goes
        if found is None or found[0].state is not JobState.SUCCEEDED:
            return
        job, targets = found
        dest_rel = output_path(*targets[0]) if targets else None
        if dest_rel is None:  # an edit dropped it from every manifest after it was paid for: keep it anyway
            dest_rel = orphan_path(self.ledger.orphan_home(key), key)
            log.warning("job %s is no longer in any manifest but was paid for; storing its video as %s", key, dest_rel)
        try:
            await self._download(job, dest_rel, [output_path(*target) for target in targets[1:]])
        except (OSError, UnsafeDestination) as exc:
            self._file_problem(job, dest_rel, exc)

    async def _download(self, job: JobRecord, dest_rel: str, others: list[str]) -> None:
        """Download, verify and store the job's video at ``dest_rel``; then place its copies at ``others``."""
        key, policy = job.key, self.policy
        self.store.prepare(dest_rel)
        # An existing file at dest is never overwritten: adopted if it holds this very video (a run
        # killed between the rename and its record), else this one is stored beside it.
        beside = beside_name(dest_rel, key)
        try:
            check_media = endpoints.get(job.model).check_media  # the endpoint says what a good result looks like
        except endpoints.UnknownEndpoint:
            check_media = None  # a model this runner does not know: the default check (an MP4)

        def open_sink() -> Sink:
            return self.store.open_sink(dest_rel, beside=beside)

        url, expires = job.video_url, job.url_expires_at
        downloads = refreshes = 0
        failed = False  # the URL in hand failed a download, not by expiring: the provider is asked for another first
        dead: str | None = None  # the last URL refused as expired: handed out again, it is no fresh one
        last = ""  # the last failure's own words, for the line that gives up for this run
        stale = False  # the provider handed the expired URL out again: a later run fares no better until it signs anew
        while downloads < policy.max_fetch_tries and refreshes < policy.max_fetch_tries:
            try:
                if url is None or (expires is not None and expires - self.wall() < policy.url_margin_s):
                    refreshes += 1
                    url, expires = await self._fresh_url(job)
                    if url is None:
                        return
                    if url == dead:  # the provider signs no new URL for it (each answer is fresh [guess]): asking
                        last = f"the provider handed out the same URL again, which had expired; {last}"
                        stale = True
                        break  # again and downloading it again would only spend the poll rate
                elif failed:  # a 404, a body that is not a video…: a URL signed anew may serve it (one with no ttl
                    refreshes += 1  # was otherwise tried for ever); the one in hand is kept if none comes
                    url, expires = await self._other_url(job, url, expires)
                failed = False
                downloads += 1
                download = await self.client.download(url, open_sink, check_media=check_media)
            except UrlExpired as exc:
                self.ledger.record_event(key, "download", "url_expired", http_status=exc.status, detail=str(exc), task_id=job.task_id)
                dead, url, last = url, None, str(exc)
                continue
            except (AuthError, EndpointNotFound) as exc:  # a wrong key or base URL: stop, as a poll would
                self._fail(exc)
                return
            except ProviderError as exc:  # DownloadError, TransientError, RateLimited, a refused refresh…
                self.ledger.record_event(key, "download", "error", http_status=exc.status, detail=str(exc), task_id=job.task_id)
                last, failed = str(exc), True
                backoff = min(policy.download_backoff_max, policy.download_backoff * 2**downloads)
                await anyio.sleep(backoff * self.rng.random())
                continue
            rel = download.rel
            if rel != dest_rel:
                log.warning("job %s: %s already holds another video; storing this one as %s (at the run's end a video of a"
                            " job the manifest dropped moves to _orphans and this one takes the name)", key, dest_rel,
                            PurePosixPath(rel).name)
            if download.adopted:
                log.info("job %s: %s already holds this very video (an earlier run stopped before recording it);"
                         " recorded as it is", key, rel)
            if self.ledger.mark_done(key, path=rel, sha256=download.sha256, bytes=download.bytes):
                self.reporter.emit(ev.Stored(key=key, path=rel, bytes=download.bytes))
            if self.shared:
                others = [path for path in (output_path(*target) for target in self.ledger.targets_of(key))
                          if path != dest_rel]
            self._materialise_other_targets(key, rel, others)
            return
        log.error("job %s: could not download its video this run (%d downloads, %d asks for a fresh URL; last: %s); it stays"
                  " succeeded and the next run tries again%s (`runner show %s` lists every attempt)",
                  key, downloads, refreshes, last or "no answer",
                  ", but gets the video only once the provider signs a new URL for task"
                  f" {job.task_id}: while it hands out this one, every run stops here (the task is paid: not lost, not"
                  " sent again; ask the provider for a fresh link)" if stale else "", key[:12])
        self.reporter.emit(ev.DownloadDeferred(key=key))

    def _file_problem(self, job: JobRecord, dest_rel: str, exc: OSError | UnsafeDestination) -> None:
        """One job's destination cannot be written: record it on the job and move on (a full disk: stop)."""
        key = job.key
        where = self.store.describe(dest_rel)
        if isinstance(exc, OSError) and exc.errno in WHOLE_DISK_ERRNOS:
            self.ledger.record_event(key, "download", "disk_error", detail=str(exc), task_id=job.task_id)
            self._fail(DiskError(
                f"cannot write {where}: {exc.strerror or exc}; {whole_disk_fix(exc.errno)} (the video stays recorded"
                " as succeeded and will be downloaded then)"))
            return
        if isinstance(exc, OSError):
            what = exc.strerror or str(exc)
            target = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(where) else ""
            detail = (f"cannot store its video at {dest_rel}: {what}{target}; fix the output name or the folder"
                      " and run again (the video stays recorded as succeeded)")
        else:
            detail = f"cannot store its video at {dest_rel}: {exc}"
        self.ledger.note_file_problem(key, detail)
        log.error("job %s: %s", key, detail)
        self.reporter.emit(ev.FileProblem(key=key, path=dest_rel, message=detail))

    async def _other_url(self, job: JobRecord, url: str, expires: float | None) -> tuple[str, float | None]:
        """A URL signed anew for a URL in hand that failed; the one in hand when the provider gives none (a task it
        no longer knows is not lost for this: the URL in hand may yet serve). A wrong key or base URL raises."""
        try:
            fresh, fresh_expires = await self._fresh_url(job, lose=False)
        except (AuthError, EndpointNotFound):
            raise
        except ProviderError as exc:
            self.ledger.record_event(job.key, "download", "error", http_status=exc.status, detail=str(exc),
                                     task_id=job.task_id)
            return url, expires
        return (url, expires) if fresh is None else (fresh, fresh_expires)

    async def _fresh_url(self, job: JobRecord, *, lose: bool = True) -> tuple[str | None, float | None]:
        """Ask the provider again: each task-result call signs a new URL."""
        assert job.task_id is not None
        try:
            result = await self.client.task_result(job.task_id)
        except TaskNotFound as exc:
            self.gone.record(job.key, "download", job.task_id, str(exc))
            if lose and self.gone.confirmed_gone(job.key, job.task_id):
                self.gone.lose(job.key, f"the result URL expired and the provider no longer knows task {job.task_id}",
                               was=JobState.SUCCEEDED)
                return None, None
            raise TransientError(str(exc)) from exc
        self.gone.found(job.key, job.task_id)
        if not result.videos:  # its words quoted: a success it now says FAILED (and why), or still processing
            task = result.task
            raise TransientError(f"the provider lists no video for task {job.task_id}, which it said had succeeded;"
                                 f" it now says {task.status}" + (f": {task.reason}" if task.reason else ""))
        video = result.videos[0]
        expires = None if video.video_url_ttl is None else self.wall() + video.video_url_ttl
        self.ledger.mark_succeeded(job.key, video_url=video.video_url, url_expires_at=expires, debug=result.debug_info())
        return video.video_url, expires

    def _materialise_other_targets(self, key: str, source: str, others: list[str]) -> None:
        """Other manifests asking for the same video get a link (or copy) of the one paid for.

        A target that cannot be placed is reported and skipped: the video itself is stored."""
        for rel, exc in place_at(self.store, source, others):
            if exc is not None:
                log.error("job %s: could not place a copy at %s: %s", key, rel, exc)
                self.reporter.emit(ev.CopyFailed(key=key, path=rel, message=str(exc)))

    def _fail(self, error: RunnerError) -> None:
        if self.state.fail(error):
            self.reporter.emit(ev.Fatal(message=str(error)))


def materialise_targets(ledger: LedgerBackend, manifest: str, store: OutputStore | None = None) -> int:
    """Give ``manifest`` its files for jobs another manifest already paid for and stored.

    Called after (re-)planning a manifest; returns how many files were linked or copied. A file
    that cannot be placed (its source gone, a name or folder the disk refuses) is logged and
    skipped: one job's file never blocks the others.
    """
    store = store if store is not None else LocalStore(ledger.state_dir)
    made = 0
    for job in ledger.iter_jobs(manifest, states=[JobState.DONE]):
        output = ledger.target_output(manifest, job.key)
        target = None if output is None else output_path(manifest, output)
        if target is None or job.path is None or target == job.path:
            continue
        for _, exc in place_at(store, job.path, [target]):
            if exc is not None:
                log.error("job %s: could not place its video at %s: %s", job.key, target, exc)
            else:
                made += 1
    return made
