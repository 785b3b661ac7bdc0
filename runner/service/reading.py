"""What the read-only commands ask of a manifest's ledger: status, the jobs, one job, exports, the gallery.

Each opens the ledger read-only (never creating one) and hands back what reporting made of it;
the CLI renders. :func:`require_ledger` is the one answer to "there is no ledger there".
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from runner.errors import LedgerSchemaError, UsageError
from runner.jobs import JobState
from runner.ledger import DB_NAME, JobRecord, LedgerBackend
from runner.ledger.factory import ledger_exists
from runner.ledger.postgres.urls import redacted
from runner.manifest import Manifest, load_manifest
from runner.reporting.dataset import HfExport, export_hf
from runner.reporting.folder_lock import folder_lock
from runner.reporting.gallery import GalleryResult, write_gallery
from runner.reporting.inspect import JobDetail, StatusSummary, job_detail, status_summary
from runner.reporting.ticker import Ticker
from runner.service.outcome import Notice, Notify
from runner.service.state import (
    jobs_nearby,
    ledger_missing_warning,
    ledger_url,
    open_ledger_at,
    refuse_inside_state,
    refuse_jobs_nearby,
    refuse_no_jobs,
    resolve_state,
)
from runner.storage.local import LocalStore

__all__ = ["Jobs", "gallery", "jobs", "require_ledger", "show", "status", "summary_of", "to_hf"]


def require_ledger(state: Path, spec: Manifest | None = None, manifest_path: Path | None = None) -> None:
    """A UsageError (exit 2) naming ``state`` when it holds no ledger: "0 jobs" would be a wrong answer. With the
    manifest (``spec``), it names the ledger that records its jobs when one does (a mistaken ``--state``)."""
    url = ledger_url()
    if url is None and not (state / DB_NAME).exists():
        if spec is not None:
            refuse_jobs_nearby(state, spec, manifest_path, done="nothing was read or written")
        raise UsageError(f"no ledger in {state} (no {DB_NAME}): nothing has run with this state directory;"
                         " check --state, or run the manifest first")
    if url is not None and not ledger_exists(state, url):  # a read-only open would read it as empty
        raise LedgerSchemaError(f"{redacted(url)[0]} holds no runner ledger yet; nothing was read (check --ledger /"
                                " RUNNER_LEDGER_URL, or run the manifest first)")


def _require_jobs(ledger: LedgerBackend, spec: Manifest, state: Path, manifest_path: Path) -> None:
    """A UsageError (exit 2) when the ledger records no job of ``spec`` (a ``--state`` naming another batch's, a
    ``name:`` changed since the runs): an export or a report of it would be empty, and an hf re-export would remove
    every video it exported before as no longer exported. It names the ledger that holds them when one does."""
    if ledger.total(spec.name) == 0:
        where = ledger.location if ledger_url() is not None else str(state.absolute())
        refuse_no_jobs(where, state, spec, manifest_path, done="nothing was written")


def _warn_missing(state: Path, notify: Notify | None) -> None:
    warning = ledger_missing_warning(state)
    if warning is not None and notify is not None:
        notify(Notice(warning, "warning"))


def status(manifest_path: Path, state_dir: Path | None = None, *, now: float | None = None,
           notify: Notify | None = None) -> StatusSummary:
    """The manifest's jobs by state, the estimated spend, the oldest running task, the earliest URL expiry."""
    spec = load_manifest(manifest_path)
    where = resolve_state(state_dir, manifest_path)
    _warn_missing(where, notify)
    require_ledger(where, spec, manifest_path)
    with open_ledger_at(where, readonly=True) as ledger:
        if notify is not None and ledger.total(spec.name) == 0 and (there := jobs_nearby(where, spec, manifest_path)):
            notify(Notice(f"warning: the ledger at {where} holds no job of {spec.name}; the ledger at {there.absolute()}"
                          f" does: pass --state {there.absolute()}", "warning"))
        return summary_of(ledger, spec.name, now=time.time() if now is None else now)


def summary_of(ledger: LedgerBackend, manifest: str, *, now: float) -> StatusSummary:
    """The status of ``manifest`` in an open ledger, with a shared ledger's runners (PostgreSQL)."""
    summary = status_summary(ledger, manifest, now=now)
    leases = getattr(ledger, "leases", None)
    return summary if leases is None else dataclasses.replace(summary, runners=tuple(leases()))


@dataclass(frozen=True, slots=True)
class Jobs:
    """A manifest's jobs as the ledger holds them (read while the ledger is open), and where their files are."""

    manifest: str
    records: Iterator[JobRecord]
    store: LocalStore
    sources: tuple[str, ...] = ()  # the files the manifest was read from: itself, the files its matrix reads
    total: int | None = None  # how many jobs ``records`` reads (every one of the manifest: no states nor limit)


@contextlib.contextmanager
def jobs(manifest_path: Path, state_dir: Path | None = None, *, states: Sequence[JobState] | None = None,
         limit: int | None = None, need_ledger: bool = True) -> Iterator[Jobs]:
    """The manifest's jobs (in ``states``, at most ``limit``), read lazily while the context is open.

    ``need_ledger``: no ledger, or one that records no job of the manifest, is a UsageError naming where its jobs
    are if another ledger holds them (``ls``, ``export``); False: either reads as no jobs.
    """
    spec = load_manifest(manifest_path)
    state = resolve_state(state_dir, manifest_path)
    if need_ledger:
        require_ledger(state, spec, manifest_path)
    with open_ledger_at(state, readonly=True) as ledger:
        if need_ledger:
            _require_jobs(ledger, spec, state, manifest_path)
        records = ledger.iter_jobs(spec.name, states=list(states) if states is not None else None)
        if limit is not None:
            records = (job for _, job in zip(range(limit), records, strict=False))
        total = ledger.total(spec.name) if states is None and limit is None else None
        yield Jobs(spec.name, records, LocalStore(state), tuple(path for path, _ in spec.sources), total)


def show(key: str, state_dir: Path | None = None, *, now: float | None = None) -> JobDetail:
    """One job (a key, a unique prefix of one, or a task id): request, state, files, spend, every attempt."""
    state = resolve_state(state_dir)
    require_ledger(state)
    with open_ledger_at(state, readonly=True) as ledger:
        return job_detail(ledger, key, now=time.time() if now is None else now)


def to_hf(manifest_path: Path, dest: Path, state_dir: Path | None = None, *,
          include_rejected: bool = False, ticker: Ticker | None = None) -> tuple[str, HfExport]:
    """Write a Hugging Face `datasets` folder of the manifest's done jobs (those rejected in review too with
    ``include_rejected``) at ``dest``; its name and what was written."""
    spec = load_manifest(manifest_path)
    state = resolve_state(state_dir, manifest_path)
    refuse_inside_state(dest, state)
    require_ledger(state, spec, manifest_path)
    with open_ledger_at(state, readonly=True) as ledger:
        _require_jobs(ledger, spec, state, manifest_path)
        with folder_lock(dest, "export"):  # one at a time: each prunes what the folder's last one listed
            return spec.name, export_hf(ledger, spec.name, dest, LocalStore(state),
                                        inputs_root=manifest_path.resolve().parent, include_rejected=include_rejected,
                                        ticker=ticker)


def gallery(manifest_path: Path, dest: Path, state_dir: Path | None = None, *, group_by: Sequence[str] = (),
            copy_videos: bool = True, include_rejected: bool = False, ticker: Ticker | None = None) -> GalleryResult:
    """Write the static HTML review page of the manifest's videos into ``dest`` (those rejected in review too with
    ``include_rejected``)."""
    spec = load_manifest(manifest_path)
    state = resolve_state(state_dir, manifest_path)
    refuse_inside_state(dest, state)
    require_ledger(state, spec, manifest_path)
    with open_ledger_at(state, readonly=True) as ledger:
        _require_jobs(ledger, spec, state, manifest_path)
        with folder_lock(dest, "report"):
            return write_gallery(ledger, spec.name, dest, axes=spec.matrix.names, group_by=tuple(group_by) or None,
                                 copy_videos=copy_videos, model=spec.model, store=LocalStore(state),
                                 inputs_root=manifest_path.resolve().parent, include_rejected=include_rejected,
                                 ticker=ticker)
