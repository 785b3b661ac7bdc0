"""Where ``runner regenerate`` sets a rejected video aside, and a regenerate stopped between its two steps finished.

``regenerate`` moves a rejected job's video to ``outputs/<m>/_rejected/<key>.<sample>[-n].mp4`` (``m``: the manifest
regenerating it, any of those listing the job; ``n``: the first free name), removes the links or copies of it under
the other manifests sharing the job, then puts the job back to ``pending`` with ``sample + 1`` in one durable step
(:meth:`~runner.ledger.api.LedgerBackend.requeue_rejected`). Killed between (kill -9, a power cut), the job is still
done and rejected, sample unchanged, its recorded path empty and its video aside: a run found it done and ended
"complete", the operator's regenerate silently dropped. So a run finishes it first, as ``regenerate`` would
(:func:`finish_stopped`), and says so: the next sample is paid once, by that run, as the operator asked; the rejected
video stays where it is, recorded there. Only the job's own video counts (the sha256 and size recorded): its file
moved only by a regenerate, so nothing else is taken for one. An ``accept`` (or ``verify``) puts it back instead
(:mod:`runner.review.putback`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import PurePosixPath

from runner.jobs import JobState
from runner.layout import output_path, rejected_path
from runner.ledger.api import LedgerBackend
from runner.ledger.records import JobRecord
from runner.storage import OutputStore

__all__ = ["MAX_KEPT", "drop_copies", "find_kept", "finish_stopped", "kept_names"]

MAX_KEPT = 99  # names tried for one sample in one manifest's _rejected/ folder


def _suffix(job: JobRecord) -> str:
    return PurePosixPath(job.path or "x.mp4").suffix or ".mp4"


def _manifests(ledger: LedgerBackend, job: JobRecord, first: Iterable[str] = ()) -> list[str]:
    names = list(first)
    for manifest, _output in ledger.targets_of(job.key):
        if manifest not in names:
            names.append(manifest)
    return names


def kept_names(store: OutputStore, manifest: str, job: JobRecord) -> Iterator[str]:
    """The names taken in ``manifest``'s ``_rejected/`` folder for the job's current sample, in order
    (regenerate takes the first free one, so the first free name ends them)."""
    for n in range(1, MAX_KEPT + 1):
        kept = rejected_path(manifest, job.key, job.sample, _suffix(job), n)
        if not store.exists(kept):
            return
        yield kept


def find_kept(ledger: LedgerBackend, store: OutputStore, job: JobRecord, first: Iterable[str] = ()) -> str | None:
    """A file in the ``_rejected/`` folder of a manifest listing the job (those of ``first`` first) that is
    the job's recorded video of its current sample; ``None`` when there is none."""
    if job.sha256 is None or job.bytes is None:
        return None
    for manifest in _manifests(ledger, job, first):
        for kept in kept_names(store, manifest, job):
            if store.verify(kept, job.sha256, job.bytes):
                return kept
    return None


def drop_copies(ledger: LedgerBackend, store: OutputStore, job: JobRecord) -> None:
    """Other manifests sharing the job hold a link or copy of the rejected video under their names:
    with the video kept aside, those go, so the fresh sample can take their place too."""
    for manifest, output in ledger.targets_of(job.key):
        other = output_path(manifest, output)
        if other != job.path and job.sha256 is not None and store.digest(other) == job.sha256:
            store.remove(other)


def finish_stopped(ledger: LedgerBackend, store: OutputStore, manifest: str) -> list[tuple[str, str]]:
    """Finish each regenerate of ``manifest``'s jobs stopped after its move: (key, where its video is kept) of each
    job put back to pending. A rejected job whose recorded path holds a file (its video, or other bytes), or whose
    video is in no ``_rejected/`` folder, is left as it is. One query of the review index when nothing is rejected."""
    if ledger.readonly:
        return []
    done: list[tuple[str, str]] = []
    for key in ledger.rejected_keys(manifest):  # not every done job: 3 s at each run of 200 000 jobs
        job = ledger.get(key)
        if job is None or job.state is not JobState.DONE or job.review != "rejected" or job.path is None \
                or store.exists(job.path):
            continue
        kept = find_kept(ledger, store, job, first=[manifest])
        if kept is None:
            continue
        drop_copies(ledger, store, job)
        if ledger.requeue_rejected(job.key, kept_path=kept):
            done.append((job.key, kept))
    return done
