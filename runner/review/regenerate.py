"""Reject done videos and regenerate the rejected ones: each gets a fresh sample, a new paid task.

Regenerating a job moves its rejected video aside (``outputs/<manifest>/_rejected/<key>.<n>.mp4``,
through the output store: never deleted, never replacing anything), then, in one durable ledger
step, puts the job back to ``pending`` with ``sample + 1`` (:meth:`LedgerBackend.requeue_rejected`).
The next ``runner run`` submits it like any pending job (write-ahead ``submitting`` before the
POST), and its spend adds to what the job already cost, so the budget counts every sample: the one
``run`` keeps (``--budget`` > ``RUNNER_BUDGET_USD`` > ``limits.budget_usd``) is checked before anything moves.

Links or copies of the video under other manifests sharing the job are removed (the video is
kept aside), so the fresh sample is linked there too when it arrives.

A crash between the move and the ledger step leaves the job done and rejected with its file
already aside: the next ``regenerate`` (of any manifest listing the job) finds the file there by its
sha256 and size and finishes the step, recording where it really is, and so does the next ``runner run``
(:mod:`runner.ledger.set_aside`); an ``accept`` (or ``verify``) puts it back instead (:mod:`runner.review.putback`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from runner.budget import Budget
from runner.jobs import JobState
from runner.layout import rejected_path
from runner.ledger import JobRecord, LedgerBackend
from runner.ledger.rescue import crash_point
from runner.ledger.set_aside import drop_copies, find_kept, kept_names
from runner.review.putback import put_back
from runner.storage import OutputStore

__all__ = ["RegenerationPlan", "accept_job", "plan_regeneration", "reject_jobs", "requeue"]


@dataclass(slots=True)
class RegenerationPlan:
    """The rejected jobs of a manifest awaiting a fresh sample, and what that may cost."""

    jobs: list[JobRecord] = field(default_factory=list)
    cost_usd: float = 0.0  # the estimate of one more task of each
    spent_usd: float = 0.0  # what the manifest has spent so far (every sample, every job it ever targeted)
    queued_usd: float = 0.0  # what its jobs already pending (an earlier regenerate or retry) will cost the next run

    def check_budget(self, budget: Budget, manifest: str) -> None:
        """Refuse (:class:`UsageError`) when the regeneration would pass ``budget``, or when ``budget`` cannot be
        kept (a model of no known price): what the next ``runner run`` would stop at, refused before anything moves."""
        budget.check_spend(spent=self.spent_usd, cost=self.cost_usd, queued=self.queued_usd,
                           doing=f"{manifest}: regenerating {len(self.jobs)} rejected clip(s)",
                           instead="accept some clips again")


def reject_jobs(ledger: LedgerBackend, manifest: str, keys: Iterable[str], reason: str) -> tuple[list[str], list[str]]:
    """Reject the done videos of ``keys``; returns (rejected, skipped with why)."""
    rejected: list[str] = []
    skipped: list[str] = []
    for key in keys:
        job = ledger.get(key, manifest)
        if job is None:
            skipped.append(f"{key}: not a job of {manifest}")
        elif job.state is not JobState.DONE:
            skipped.append(f"{key}: {job.state}, not done (only a stored video can be rejected)")
        elif job.review == "rejected":
            skipped.append(f"{key}: already rejected")
        elif ledger.reject(key, reason=reason):
            rejected.append(key)
        else:
            skipped.append(f"{key}: changed meanwhile, not rejected")
    return rejected, skipped


def plan_regeneration(ledger: LedgerBackend, manifest: str) -> RegenerationPlan:
    """What :func:`requeue` would do: the manifest's rejected done jobs and their estimate."""
    plan = RegenerationPlan(spent_usd=ledger.spent_usd(manifest),
                            queued_usd=ledger.estimate_usd(manifest, [JobState.PENDING]))
    for job in ledger.iter_jobs(manifest, states=[JobState.DONE]):
        if job.review == "rejected":
            plan.jobs.append(job)
            plan.cost_usd += job.estimated_usd
    plan.cost_usd = round(plan.cost_usd, 9)
    return plan


def _set_aside(ledger: LedgerBackend, store: OutputStore, manifest: str, job: JobRecord) -> str:
    """Move the job's rejected video aside; returns where it is kept (``""``: no file is the job's video).

    Only the job's own video moves: a file at its recorded path whose sha256 and size are not the recorded ones
    (another job's video stored there since, damaged bytes) stays where it is. A regenerate stopped after its
    move (from this manifest or another one listing the job) left the video in a ``_rejected/`` folder: found
    there by its sha256 and size, it is kept where it is; a verify stopped mid-repair left it beside its name:
    it is put back first."""
    if job.path is None or not _is_its_video(store, job):
        kept = find_kept(ledger, store, job, first=[manifest])
        if kept is not None:
            return kept
        put_back(ledger, store, job)
        if job.path is None or not _is_its_video(store, job):
            return ""
    taken = sum(1 for _ in kept_names(store, manifest, job))
    kept = rejected_path(manifest, job.key, job.sample, PurePosixPath(job.path).suffix or ".mp4", taken + 1)
    store.move(job.path, kept)
    crash_point("regen-moved")
    return kept


def _is_its_video(store: OutputStore, job: JobRecord) -> bool:
    """Whether the job's recorded path holds its recorded video (a record without a sha256: any file there)."""
    assert job.path is not None
    if job.sha256 is None or job.bytes is None:
        return store.exists(job.path)
    return store.verify(job.path, job.sha256, job.bytes)


def requeue(ledger: LedgerBackend, store: OutputStore, manifest: str,
            jobs: Iterable[JobRecord]) -> list[tuple[str, str]]:
    """Move each rejected job's video aside and put the job back to pending for a fresh sample;
    returns (key, where its video is kept, ``""`` for no file) of each job requeued (a job that
    changed meanwhile is left as it is)."""
    done: list[tuple[str, str]] = []
    for job in jobs:
        kept = _set_aside(ledger, store, manifest, job)
        drop_copies(ledger, store, job)
        crash_point("regen-dropped")
        if ledger.requeue_rejected(job.key, kept_path=kept):
            done.append((job.key, kept))
    return done


def accept_job(ledger: LedgerBackend, store: OutputStore, key: str) -> tuple[bool, str | None]:
    """Accept a done job's video: (whether the ledger moved, where its video was put back from).

    A video a stopped ``regenerate`` (or ``verify``) left aside is put back at its recorded path first,
    so an accepted clip is always where the ledger says."""
    job = ledger.get(key)
    found = None if job is None else put_back(ledger, store, job)
    return ledger.accept(key), found
