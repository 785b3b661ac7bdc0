"""`runner retry`: put failed or in-doubt jobs back to pending, or reopen lost jobs the provider still knows."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from runner.cli.common import base_url_option, cli_notify, guarded, state_option
from runner.cli.inspect import manifest_arg
from runner.cli.run import run_options
from runner.cli.settings import setting_option
from runner.errors import UsageError
from runner.jobs import JobState
from runner.service.hints import next_command, runner_command
from runner.service.retrying import Retried, Which, failure_text, retry

__all__ = ["retry_cmd"]


@click.command("retry")
@manifest_arg
@click.argument("names", nargs=-1, metavar="[KEY|PREFIX]...")
@state_option
@click.option("--failed", is_flag=True, help="Send failed jobs again (each a new paid task).")
@click.option("--in-doubt", "in_doubt", is_flag=True,
              help="Send in-doubt jobs again: pays twice for any the provider did create.")
@click.option("--lost", is_flag=True,
              help="Ask the provider again for each lost job's task; collect those it still knows (pays nothing).")
@click.option("--reason", default=None, metavar="TEXT",
              help="Only jobs whose recorded failure reason contains TEXT (any case); none matching lists the reasons.")
@setting_option("budget_usd", "Refuse when what MANIFEST spent so far plus the retried jobs' estimate would pass this"
                              " many USD, as the next run would stop there; 'none' for no budget.")
@click.option("--dry-run", is_flag=True, help="Say which jobs, how many and what they may cost; change nothing.")
@base_url_option
@guarded
def retry_cmd(manifest: Path, names: tuple[str, ...], state_dir: Path | None, failed: bool, in_doubt: bool,
              lost: bool, reason: str | None, budget_usd: str | None, dry_run: bool, base_url: str | None) -> None:
    """Put MANIFEST's failed or in-doubt jobs back to pending, after saying how many and the cost;
    or, with --lost, reopen lost jobs whose task the provider still knows and collect them.

    Every job of that state, or only the jobs KEY|PREFIX... name (each a key or a prefix
    matching one job) and those whose failure reason contains --reason TEXT; with names
    or --reason and no state flag, failed jobs are meant; one kind at a time (--failed
    --in-doubt is refused: run retry once per kind). Each failed or in-doubt job put
    back is a new paid task when the next `runner run` submits it. --lost sends no
    submit: it polls each lost job's task once (task-result GET) at the provider the
    ledger records (or --base-url / NOVITA_BASE_URL); a task the provider
    answers for goes back to running and is collected at once; tasks still not found are
    listed and stay lost. The budget is the one run keeps (--budget > RUNNER_BUDGET_USD >
    the manifest's limits.budget_usd): a retry that would pass it, or a budget that cannot
    be kept (a model of no known price), is refused.

    \b
    Examples:
      runner retry manifests/demo.yaml --reason timeout --dry-run
      runner retry manifests/demo.yaml 3f2a 9b07 --budget 20 && runner run manifests/demo.yaml --budget 20
      runner retry manifests/demo.yaml --failed
      runner retry manifests/demo.yaml --in-doubt && runner run manifests/demo.yaml
      runner retry manifests/demo.yaml --lost
    """
    which = _which(manifest, state_dir, failed=failed, in_doubt=in_doubt, lost=lost,
                   named=bool(names) or reason is not None)
    options = run_options({"state_dir": state_dir, "base_url": base_url, "budget_usd": budget_usd})
    done = retry(manifest, which, options, names=names, reason=reason, dry_run=dry_run, before_collect=_say_reopened,
                 notify=cli_notify)
    state = JobState(which)
    if done.edited and which != "lost":
        click.echo(f"dry run: {manifest} changed since a run last planned it: retry plans the edit first (nothing"
                   " sent); the jobs below are from the plan the ledger holds" if dry_run
                   else f"planned the edit of {manifest} first (nothing sent)")
    if dry_run:
        _say_dry_run(done, state)
        return
    if which == "lost":
        if not done.looked_up:
            click.echo(f"no lost jobs in {done.manifest}")
        sys.exit(done.exit_code)
    if not done.moved:
        click.echo(f"no {state} jobs in {done.manifest}")
        return
    warning = " (each may already have been paid for once)" if state is JobState.IN_DOUBT else ""
    click.echo(f"{done.moved} {state} job(s) back to pending: about {done.cost_usd:.2f} USD (estimate) when submitted,"
               f" {done.moved} new paid task(s) on the next run{warning}")
    click.echo(next_command("run", manifest, state_dir=state_dir, provider=done.provider, budget_usd=budget_usd))


def _which(manifest: Path, state_dir: Path | None, *, failed: bool, in_doubt: bool, lost: bool, named: bool) -> Which:
    """The one kind of job to retry: its flag; failed when only names or --reason say which."""
    flags: dict[Which, str] = {"failed": "--failed", "in_doubt": "--in-doubt", "lost": "--lost"}
    said: tuple[tuple[Which, bool], ...] = (("failed", failed), ("in_doubt", in_doubt), ("lost", lost))
    given = [kind for kind, flag in said if flag]
    if len(given) > 1:
        shown = " and ".join(flags[kind] for kind in given)
        retry, told = runner_command("retry", manifest, state_dir=state_dir)  # this ledger, as printed
        once = "; then ".join(f"`{retry} {flags[kind]}`" for kind in given) + (f"; {told}" if told else "")
        raise UsageError(f"{shown} cannot be given together: retry one kind at a time ({once}); nothing changed")
    if given:
        return given[0]
    if named:
        return "failed"
    raise UsageError("say which jobs to retry: --failed, --in-doubt or --lost (or name them: KEY|PREFIX...)")


_LISTED = 20


def _say_dry_run(done: Retried, state: JobState) -> None:
    """What a retry would do: the jobs (the first few), how many, what they may cost."""
    if not done.chosen:
        click.echo(f"dry run: no {state} jobs in {done.manifest}; nothing changed")
        return
    for job in done.chosen[:_LISTED]:
        click.echo(f"  {job.key[:16]}  {failure_text(job) or '(no reason recorded)'}")
    if len(done.chosen) > _LISTED:
        click.echo(f"  … and {len(done.chosen) - _LISTED} more")
    if state is JobState.LOST:
        click.echo(f"dry run: would ask the provider about {len(done.chosen)} lost job(s)' tasks (pays nothing);"
                   " nothing changed")
        return
    warning = " (each may already have been paid for once)" if state is JobState.IN_DOUBT else ""
    click.echo(f"dry run: would put {len(done.chosen)} {state} job(s) back to pending: {len(done.chosen)} new paid"
               f" task(s) on the next run{warning}, about {done.cost_usd:.2f} USD (estimate; spent so far"
               f" {done.spent_usd:.2f} USD); nothing changed")


def _say_reopened(done: Retried) -> None:
    """Before the reopened jobs are collected: which the provider knows, and which stay lost."""
    click.echo(f"{len(done.reopened)} lost job(s) reopened: the provider still knows their tasks")
    for job in done.gone:
        click.echo(f"still not found: job {job.key} (task {job.task_id}); it stays lost")
