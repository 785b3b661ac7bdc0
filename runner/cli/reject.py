"""`runner reject`, `runner accept`, `runner regenerate`: the review loop from the command line.

Library: :mod:`runner.review.regenerate` (what moves, what it may cost) and
:mod:`runner.review.select` (keys and prefixes).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from runner.cli.common import EXIT_USAGE, MANIFEST_PATH, cli_notify, guarded, resolve_state, say, state_option
from runner.cli.settings import setting_option
from runner.errors import LedgerDiskError, LedgerLocked, UsageError
from runner.jobs import JobState
from runner.layout import REJECTED_DIR, manifest_folder
from runner.ledger.review_queue import QueuedDecision, queue_decision, who_saves
from runner.manifest import load_manifest
from runner.review.regenerate import accept_job, plan_regeneration, reject_jobs, requeue
from runner.review.select import resolve_keys
from runner.service.hints import next_command
from runner.service.provider import PROVIDER_META
from runner.service.replanning import is_planned, plan_edit
from runner.service.settings import budget_for
from runner.service.state import open_existing_ledger
from runner.storage.local import LocalStore

__all__ = ["accept_cmd", "regenerate_cmd", "reject_cmd"]

_manifest_arg = click.argument("manifest", type=MANIFEST_PATH)


@click.command("reject")
@_manifest_arg
@click.argument("keys", nargs=-1, required=True, metavar="KEY|PREFIX...")
@click.option("--reason", required=True, help="Why the clip is rejected (kept in the ledger with the video).")
@state_option
@guarded
def reject_cmd(manifest: Path, keys: tuple[str, ...], reason: str, state_dir: Path | None) -> None:
    """Reject the stored videos of MANIFEST's jobs KEY|PREFIX... (nothing is paid or deleted).

    A rejected clip leaves exports and the review page's default view; its video stays
    where it is until `runner regenerate` moves it aside and queues a fresh sample. A
    prefix must match one job (an ambiguous one lists its matches).

    \b
    Examples:
      runner reject manifests/demo.yaml 3f2a9c1e --reason "melting hands"
      runner reject manifests/demo.yaml 3f2a 9b07 c1d2 --reason "off prompt" && runner regenerate manifests/demo.yaml
    """
    if not reason.strip():
        raise UsageError("--reason is empty; say why the clip is rejected (nothing changed)")
    spec = load_manifest(manifest)
    state = resolve_state(state_dir, manifest)
    try:
        ledger = open_existing_ledger(state, spec=spec, manifest=manifest)
    except LedgerLocked as exc:
        _queue(state, spec.name, keys, "reject", reason.strip(), exc)
        return
    with ledger:
        found = resolve_keys(ledger, spec.name, keys)
        rejected, skipped = reject_jobs(ledger, spec.name, found, reason.strip())
    for line in skipped:
        say(f"skipped {line}", "warning")
    click.echo(f"{len(rejected)} clip(s) rejected in {spec.name}")
    if rejected:
        click.echo(next_command("regenerate", manifest, state_dir=state_dir, note="a fresh sample of each: new paid tasks"))
    if not rejected and any(not line.endswith("already rejected") for line in skipped):
        raise SystemExit(EXIT_USAGE)


@click.command("accept")
@_manifest_arg
@click.argument("keys", nargs=-1, required=True, metavar="KEY|PREFIX...")
@state_option
@guarded
def accept_cmd(manifest: Path, keys: tuple[str, ...], state_dir: Path | None) -> None:
    """Accept the stored videos of MANIFEST's jobs KEY|PREFIX... (withdraws a rejection not yet regenerated).

    \b
    Examples:
      runner accept manifests/demo.yaml 3f2a9c1e
    """
    spec = load_manifest(manifest)
    accepted = skipped = 0
    state = resolve_state(state_dir, manifest)
    try:
        ledger = open_existing_ledger(state, spec=spec, manifest=manifest)
    except LedgerLocked as exc:
        _queue(state, spec.name, keys, "accept", "", exc)
        return
    with ledger:
        store = LocalStore(ledger.state_dir)  # a video a stopped regenerate left aside is put back (a warning says so)
        for key in resolve_keys(ledger, spec.name, keys):
            if accept_job(ledger, store, key)[0]:
                accepted += 1
            else:  # said, as reject says what it skips (a regenerated clip is pending: nothing to accept yet)
                skipped += 1
                job = ledger.get(key)
                say(f"skipped {key}: {job.state if job else 'gone'}, not done (only a stored video can be accepted)",
                    "warning")
    click.echo(f"{accepted} clip(s) accepted in {spec.name}")
    if skipped and not accepted:
        raise SystemExit(EXIT_USAGE)


@click.command("regenerate")
@_manifest_arg
@state_option
@setting_option("budget_usd", "Refuse when what MANIFEST spent so far (every sample) plus the regeneration would pass"
                              " this many USD, as the next run would stop there; 'none' for no budget.")
@click.option("--dry-run", is_flag=True, help="Say how many and what they may cost; change nothing.")
@guarded
def regenerate_cmd(manifest: Path, state_dir: Path | None, budget_usd: str | None, dry_run: bool) -> None:
    """Queue a fresh sample of each rejected clip of MANIFEST: new paid tasks on the next run.

    Says how many and what they may cost first. Each rejected video is moved aside to
    outputs/<manifest>/_rejected/<key>.<n>.mp4 (kept, never deleted, out of exports) and
    its job goes back to pending with the same key; `runner run` then submits it like any
    other job, and its budget counts every sample ever paid. A manifest edited since a run
    last planned it (a budget raised in limits:) is planned first, as a run would (nothing is sent). The budget is the one run keeps
    (--budget > RUNNER_BUDGET_USD > the manifest's limits.budget_usd): a regeneration that
    would pass it, or a budget that cannot be kept (a model of no known price), is refused.

    \b
    Examples:
      runner regenerate manifests/demo.yaml --dry-run
      runner regenerate manifests/demo.yaml --budget 20 && runner run manifests/demo.yaml --budget 20
    """
    spec = load_manifest(manifest)
    budget = budget_for(spec, {"budget_usd": budget_usd}, os.environ)  # a bad value is refused before anything
    with open_existing_ledger(resolve_state(state_dir, manifest), readonly=dry_run, spec=spec,
                              manifest=manifest) as ledger:
        edited = not is_planned(ledger, spec)
        if edited and not dry_run:  # queued from the edit, not the version a run last planned (nothing is sent)
            plan_edit(ledger, spec, cli_notify)
            click.echo(f"planned the edit of {manifest} first (nothing sent)")
        elif edited:
            click.echo(f"dry run: {manifest} changed since a run last planned it: regenerate plans the edit first"
                       " (nothing sent); the count below is from the plan the ledger holds")
        plan = plan_regeneration(ledger, spec.name)
        if not plan.jobs:
            click.echo(f"no rejected clips in {spec.name}; reject some with `runner reject {manifest} KEY --reason …`")
            return
        plan.check_budget(budget, spec.name)
        money = (f"{len(plan.jobs)} rejected clip(s) will be generated again: {len(plan.jobs)} new paid task(s),"
                 f" up to ${plan.cost_usd:.2f} (spent so far ${plan.spent_usd:.2f}"
                 + (f", ${plan.queued_usd:.2f} already queued for the next run)" if plan.queued_usd > 1e-9 else ")"))
        if dry_run:
            click.echo(f"dry run: {money}; nothing changed")
            return
        click.echo(money)
        moved = requeue(ledger, LocalStore(ledger.state_dir), spec.name, plan.jobs)
        provider = ledger.meta(PROVIDER_META)
    click.echo(f"{len(moved)} job(s) back to pending{_where_kept(spec.name, moved)}")
    click.echo(next_command("run", manifest, state_dir=state_dir, provider=provider, budget_usd=budget_usd))


def _queue(state: Path, manifest: str, keys: tuple[str, ...], decision: str, reason: str, locked: LedgerLocked) -> None:
    """A run holds the ledger: each done clip's decision is queued (the sample it is now) and saved by the run
    within seconds (a run killed first: by the next writer to open the ledger); a clip not done is skipped, as it
    would be; a journal that cannot be written
    (a full disk) refuses with nothing queued."""
    holder = locked.holder or "another process"
    with open_existing_ledger(state, readonly=True) as reader:
        jobs = [reader.get(key, manifest) for key in resolve_keys(reader, manifest, keys)]
    ready = [job for job in jobs if job is not None and job.state is JobState.DONE]
    for job in jobs:
        if job is not None and job.state is not JobState.DONE:
            say(f"skipped {job.key}: {job.state}, not done (only a stored video can be {decision}ed)", "warning")
    done = 0
    try:
        for job in ready:
            queue_decision(state, QueuedDecision(job.key, manifest, decision, reason, job.sample, time.time()))
            done += 1
    except OSError as exc:
        raise LedgerDiskError(f"a run is writing the ledger ({holder}) and {len(ready) - done} {decision}(s) could not"
                              f" be queued ({exc.strerror or exc}; {done} queued); free space in {state} and decide"
                              " again") from exc
    click.echo(f"{len(ready)} {decision}(s) queued in {manifest}: {who_saves(locked.command, holder, 'them')} (if it is"
               " killed first, the next command that writes the ledger does)")
    if not ready:
        raise SystemExit(EXIT_USAGE)


def _where_kept(manifest: str, moved: list[tuple[str, str]]) -> str:
    """Where the rejected videos are, as it is: under this manifest's _rejected/ folder, or elsewhere
    (a regenerate of another manifest sharing the job had moved it), or nowhere (there was no file)."""
    here = f"{manifest_folder(manifest)}{REJECTED_DIR}/"
    lines = [f"\n  {key}: no video file to keep (it was missing)" if not kept else f"\n  {key}: kept at {kept}"
             for key, kept in moved if not kept.startswith(here)]
    if any(kept.startswith(here) for _key, kept in moved):
        return f"; rejected videos kept under {here}" + "".join(lines)
    return "".join(lines)
