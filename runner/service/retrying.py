"""Retry a manifest's failed, in-doubt or lost jobs: the mutating counterpart of ``plan`` and ``status``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from runner.errors import UsageError
from runner.jobs import JobState
from runner.ledger import JobRecord
from runner.manifest import load_manifest
from runner.service.outcome import EXIT_FAILED, EXIT_OK, Notify, Outcome
from runner.service.provider import check_ledger_provider, look_up_tasks, provider_from_env
from runner.service.running import COLLECT, RunOptions, run
from runner.service.state import open_ledger_at, resolve_state

__all__ = ["Retried", "Which", "retry"]

Which = Literal["failed", "in_doubt", "lost"]


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

    @property
    def exit_code(self) -> int:
        if self.which != "lost":
            return EXIT_OK
        if self.collected is not None:
            return self.collected.exit_code
        return EXIT_FAILED if self.looked_up and not self.reopened else EXIT_OK


def retry(manifest_path: Path, which: Which, options: RunOptions | None = None, *,
          before_collect: Callable[[Retried], None] | None = None, notify: Notify | None = None) -> Retried:
    """Put ``manifest_path``'s failed or in-doubt jobs back to pending (the next run submits them: each a new
    paid task); or, for ``lost``, ask the provider once per lost job's task (a GET, pays nothing), reopen the
    jobs whose task it still knows, call ``before_collect`` and collect them (``options`` as for ``run``)."""
    options = options or RunOptions()
    if which == "lost":
        return _retry_lost(manifest_path, options, before_collect, notify)
    if which not in ("failed", "in_doubt"):
        raise UsageError(f"cannot retry {which!r} jobs: say failed, in_doubt or lost")
    state = JobState(which)
    spec = load_manifest(manifest_path)
    with open_ledger_at(resolve_state(options.state_dir, manifest_path), url=options.ledger_url, create=False) as ledger:
        ledger.apply_rescue()  # a journalled task id is recorded, never quoted (and paid) again
        cost = ledger.estimate_usd(spec.name, [state])
        moved = ledger.reset(spec.name, state)
    return Retried(which, spec.name, moved=moved, cost_usd=cost if moved else 0.0)


def _retry_lost(manifest_path: Path, options: RunOptions, before_collect: Callable[[Retried], None] | None,
                notify: Notify | None) -> Retried:
    """Poll each lost job's task again; reopen those the provider knows (lost → running), then collect."""
    spec = load_manifest(manifest_path)
    endpoint, api_key = provider_from_env(options.base_url, options.environ)
    state = resolve_state(options.state_dir, manifest_path)
    done = Retried("lost", spec.name)
    with open_ledger_at(state, url=options.ledger_url, create=False) as ledger:
        check_ledger_provider(ledger, endpoint)
        orphan_keys = getattr(ledger, "orphan_keys")  # noqa: B009 - SQLite and PostgreSQL ledgers (not the protocol's)
        lost = list(ledger.iter_jobs(spec.name, states=[JobState.LOST]))
        # Paid jobs an edit dropped from the manifest are still collected (orphans): reopened too.
        lost += [job for job in map(ledger.get, orphan_keys(spec.name, JobState.LOST)) if job is not None]
        lost = [job for job in lost if job.task_id]
        done.looked_up = len(lost)
        if not lost:
            return done
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
        done.collected = run(manifest_path, dataclasses.replace(options, simulate=False), mode=COLLECT, notify=notify)
    return done
