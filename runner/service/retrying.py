"""Retry a manifest's failed, in-doubt or lost jobs: the mutating counterpart of ``plan`` and ``status``.

All of a state's jobs, or those chosen by key or key prefix (``runner retry MANIFEST KEY…``) and by the
recorded failure reason (``--reason``, a case-insensitive substring); ``dry_run`` says what would move and
what it may cost and opens the ledger read-only. A failed or in-doubt job put back to pending is a new
paid task on the next run: the budget that run would keep (``--budget`` > ``RUNNER_BUDGET_USD`` > the
manifest's ``limits.budget_usd``, :func:`runner.service.settings.budget_for`) refuses it (nothing changed)
when what the manifest spent so far plus that estimate would pass it, or when it cannot be kept (a model
of no known price), as ``runner regenerate`` does.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from runner.budget import Budget
from runner.errors import UsageError
from runner.jobs import JobState
from runner.ledger import JobRecord, LedgerBackend
from runner.manifest import Manifest, load_manifest
from runner.reporting.select import resolve_keys
from runner.service.outcome import EXIT_FAILED, EXIT_OK, Notice, Notify, Outcome
from runner.service.provider import PROVIDER_META, look_up_tasks, provider_for_ledger
from runner.service.replanning import is_planned, plan_edit
from runner.service.running import COLLECT, RunOptions, run
from runner.service.settings import budget_for
from runner.service.state import (
    ledger_knows,
    ledger_url,
    open_ledger_at,
    refuse_jobs_nearby,
    refuse_no_jobs,
    resolve_state,
)

__all__ = ["Retried", "Which", "choose", "failure_text", "refuse_unknown", "retry"]

Which = Literal["failed", "in_doubt", "lost"]
_FLAGS = {JobState.FAILED: "--failed", JobState.IN_DOUBT: "--in-doubt", JobState.LOST: "--lost"}


@dataclass(slots=True)
class Retried:
    """What ``retry`` did. failed / in_doubt: ``moved`` jobs back to pending, costing about ``cost_usd``
    when submitted. lost: the jobs ``reopened`` (the provider still knows their task) and those ``gone``,
    then ``collected``: the outcome of collecting the reopened ones."""

    which: Which
    manifest: str
    moved: int = 0
    looked_up: int = 0  # lost jobs with a task id to ask the provider about
    cost_usd: float = 0.0
    reopened: list[JobRecord] = field(default_factory=list)
    gone: list[JobRecord] = field(default_factory=list)
    collected: Outcome | None = None
    chosen: list[JobRecord] = field(default_factory=list)  # the jobs retried (or a dry run would retry)
    dry_run: bool = False
    spent_usd: float = 0.0  # what the manifest spent so far (every submit that may have been paid)
    provider: str | None = None  # what the ledger records (`simulator`, or a base URL): the next run needs it
    queued_usd: float = 0.0  # what its jobs already pending will cost the next run (before this retry)
    edited: bool = False  # the manifest changed since a run last planned it: planned now (a dry run: not yet)

    @property
    def exit_code(self) -> int:
        if self.which != "lost" or self.dry_run:
            return EXIT_OK
        if self.collected is not None:
            return self.collected.exit_code
        return EXIT_FAILED if self.looked_up and not self.reopened else EXIT_OK


def retry(manifest_path: Path, which: Which, options: RunOptions | None = None, *, names: Sequence[str] = (),
          reason: str | None = None, dry_run: bool = False, budget: float | str | None = None,
          before_collect: Callable[[Retried], None] | None = None, notify: Notify | None = None) -> Retried:
    """Put ``manifest_path``'s failed or in-doubt jobs back to pending (the next run submits them: each a new
    paid task); or, for ``lost``, ask the provider once per lost job's task (a GET, pays nothing), reopen the
    jobs whose task it still knows, call ``before_collect`` and collect them (``options`` as for ``run``).

    ``names`` (keys or key prefixes) and ``reason`` (a substring of the recorded failure reason) narrow
    the jobs; a name or reason that matches none is a :class:`UsageError` and nothing is queued (an edit planned
    first stays planned, and the refusal says so). ``dry_run`` changes nothing (the ledger is opened read-only) and asks the provider nothing. A manifest edited since a run
    last planned it is planned first (``Retried.edited``), as the run would, so the jobs and the quote are the
    edit's; a dry run plans nothing and says so. ``budget`` is said as
    ``--budget`` would say it (a number or ``"none"``); else ``options.settings["budget_usd"]``, the
    environment and the manifest say it, as for ``run``."""
    options = options or RunOptions()
    if which not in ("failed", "in_doubt", "lost"):
        raise UsageError(f"cannot retry {which!r} jobs: say failed, in_doubt or lost")
    if reason is not None and not reason.strip():
        raise UsageError("--reason is empty; give part of a recorded failure reason (see `runner ls MANIFEST"
                         " --only failed`)")
    if which == "lost":
        return _retry_lost(manifest_path, options, before_collect, notify, names=names, reason=reason,
                           dry_run=dry_run)
    state = JobState(which)
    spec = load_manifest(manifest_path)
    said = options.settings.get("budget_usd") if budget is None else budget
    keeps = budget_for(spec, {"budget_usd": said}, os.environ if options.environ is None else options.environ)
    where = resolve_state(options.state_dir, manifest_path)
    _refuse_missing(where, spec, manifest_path, options.ledger_url)
    with open_ledger_at(where, url=options.ledger_url, create=False, readonly=dry_run) as ledger:
        refuse_unknown(ledger, spec, where, manifest_path)
        if not dry_run:
            ledger.apply_rescue()  # a journalled task id is recorded, never quoted (and paid) again
            # Quoted and queued from the edit, not the version a run last planned (a job it drops would wait,
            # pending, for a run that never sends it); planning sends nothing.
            edited = plan_edit(ledger, spec, notify or _silent)
        else:
            edited = not is_planned(ledger, spec)
        try:
            chosen = choose(ledger, spec.name, state, names, reason)
            done = Retried(which, spec.name, chosen=chosen, dry_run=dry_run, spent_usd=ledger.spent_usd(spec.name),
                           cost_usd=round(sum(job.estimated_usd for job in chosen), 9),
                           provider=ledger.meta(PROVIDER_META),
                           queued_usd=ledger.estimate_usd(spec.name, [JobState.PENDING]), edited=edited)
            check_budget(done, keeps)
        except UsageError as exc:  # refused after the edit was planned: not "nothing changed"
            if not edited or dry_run:
                raise
            raise UsageError(str(exc).replace("nothing changed", "nothing queued or sent") + f"; {manifest_path} was"
                             " planned first, as a run plans it: the ledger now holds that version") from exc
        if dry_run or not chosen:
            return done
        keys = [job.key for job in chosen] if names or reason is not None else None
        done.moved = ledger.reset(spec.name, state, keys)
        if done.moved < len(chosen):  # some changed meanwhile (another runner on a shared ledger)
            now = ledger.states_of([job.key for job in chosen])
            done.chosen = [job for job in chosen if now.get(job.key) is JobState.PENDING]
    if not done.moved:
        done.cost_usd = 0.0
    return done


def refuse_unknown(ledger: LedgerBackend, spec: Manifest, state: Path, manifest_path: Path) -> None:
    """A UsageError (exit 2, nothing changed) when the ledger has never planned ``spec`` (a ``--state`` naming another
    batch's ledger): retrying there would plan the manifest into it first, and the second-ledger guard would then take
    that ledger for the manifest's own, so the next run there paid for every job again. Names the ledger that holds
    the jobs when one does. A ledger recording the manifest's jobs under another name (its ``name:`` edited since)
    is its own: the retry plans the edit there first, as a run would."""
    if ledger.manifest_digest(spec.name) is not None or ledger.total(spec.name) or ledger_knows(ledger, spec) is not None:
        return
    refuse_no_jobs(ledger.location if ledger_url() is not None else str(state.absolute()), state, spec, manifest_path,
                   done="nothing changed")


def _refuse_missing(state: Path, spec: Manifest, manifest_path: Path, url: str | None) -> None:
    """The UsageError of a SQLite ``state`` holding no ledger, naming the one that holds ``spec``'s jobs if any."""
    from runner.ledger import DB_NAME

    if ledger_url(url) is None and not (state / DB_NAME).exists():
        refuse_jobs_nearby(state, spec, manifest_path, done="nothing changed")


def _silent(_notice: Notice) -> None:
    """No one to tell (a library call without ``notify``)."""


def choose(ledger: LedgerBackend, manifest: str, state: JobState, names: Sequence[str],
           reason: str | None) -> list[JobRecord]:
    """``manifest``'s jobs in ``state``: those ``names`` stand for (keys or prefixes; each must be in
    ``state``), and of those the ones whose recorded failure reason contains ``reason`` (any case)."""
    jobs = list(ledger.iter_jobs(manifest, states=[state]))
    if names:
        keys = resolve_keys(ledger, manifest, names)
        by_key = {job.key: job for job in jobs}
        elsewhere = ledger.states_of([key for key in keys if key not in by_key])
        if elsewhere:
            shown = ", ".join(f"{key[:16]} is {found}" for key, found in list(elsewhere.items())[:5])
            flags = sorted({_FLAGS[found] for found in elsewhere.values() if found in _FLAGS})
            hint = f"; pass {' or '.join(flags)} for those" if flags else ""
            raise UsageError(f"only {state} jobs are retried here, but {shown}{hint} (nothing changed)")
        jobs = [by_key[key] for key in keys]
    if reason is None or not jobs:  # no job in that state at all: nothing a reason could have missed
        return jobs
    needle = reason.strip().casefold()
    matched = [job for job in jobs if needle in failure_text(job).casefold()]
    if not matched:
        found = Counter(failure_text(job) or "(no reason recorded)" for job in jobs)
        listed = "; ".join(f"{text[:80]!r} ×{n}" for text, n in found.most_common(10))
        among = f"{len(jobs)} {state} job(s)" + (" named" if names else "")
        raise UsageError(f"--reason {reason.strip()!r} matches none of the {among}"
                         + (f"; their reasons: {listed}" if listed else "") + " (nothing changed)")
    return matched


def failure_text(job: JobRecord) -> str:
    """The recorded failure reason of a job: the provider's reason code and the error message."""
    return " ".join(dict.fromkeys(part for part in (job.reason, job.error) if part))


def check_budget(done: Retried, budget: Budget) -> None:
    """Refuse (:class:`UsageError`, nothing changed) when the retry could pass ``budget`` or ``budget`` cannot be kept."""
    if done.chosen:
        budget.check_spend(spent=done.spent_usd, cost=done.cost_usd, queued=done.queued_usd,
                           instead="choose fewer jobs",
                           doing=f"{done.manifest}: retrying {len(done.chosen)} {JobState(done.which)} job(s)")


def _retry_lost(manifest_path: Path, options: RunOptions, before_collect: Callable[[Retried], None] | None,
                notify: Notify | None, *, names: Sequence[str], reason: str | None, dry_run: bool) -> Retried:
    """Poll each lost job's task again; reopen those the provider knows (lost → running), then collect."""
    spec = load_manifest(manifest_path)
    state = resolve_state(options.state_dir, manifest_path)
    done = Retried("lost", spec.name, dry_run=dry_run)
    _refuse_missing(state, spec, manifest_path, options.ledger_url)
    with open_ledger_at(state, url=options.ledger_url, create=False, readonly=dry_run) as ledger:
        refuse_unknown(ledger, spec, state, manifest_path)
        if names or reason is not None:
            lost = choose(ledger, spec.name, JobState.LOST, names, reason)
        else:
            orphan_keys = getattr(ledger, "orphan_keys")  # noqa: B009 - SQLite and PostgreSQL ledgers (not the protocol's)
            lost = list(ledger.iter_jobs(spec.name, states=[JobState.LOST]))
            # Paid jobs an edit dropped from the manifest are still collected (orphans): reopened too.
            lost += [job for job in map(ledger.get, orphan_keys(spec.name, JobState.LOST)) if job is not None]
        lost = [job for job in lost if job.task_id]
        done.looked_up = len(lost)
        done.chosen = lost
        if not lost or dry_run:
            return done
        endpoint, api_key = provider_for_ledger(ledger, options.base_url, options.environ)
        answers = look_up_tasks(endpoint, api_key, [job.task_id for job in lost if job.task_id])
        for job in lost:
            assert job.task_id is not None
            result = answers.get(job.task_id)
            if result is None:
                done.gone.append(job)
                continue
            ledger.reopen_lost(job.key, detail=f"`runner retry --lost`: the provider knows task {job.task_id}"
                                                f" ({result.task.status})")
            done.reopened.append(job)
    if before_collect is not None:
        before_collect(done)
    if done.reopened:
        collect = dataclasses.replace(options, simulate=False, base_url=endpoint)  # the provider just asked
        done.collected = run(manifest_path, collect, mode=COLLECT, notify=notify)
    return done
