"""`runner retry`: put failed or in-doubt jobs back to pending, or reopen lost jobs the provider still knows."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from runner.cli.common import base_url_option, cli_notify, guarded, state_option
from runner.cli.inspect import manifest_arg
from runner.cli.run import run_options
from runner.errors import UsageError
from runner.jobs import JobState
from runner.service.retrying import Retried, Which, retry

__all__ = ["retry_cmd"]


@click.command("retry")
@manifest_arg
@state_option
@click.option("--failed", "which", flag_value="failed", help="Send failed jobs again (each a new paid task).")
@click.option("--in-doubt", "which", flag_value="in_doubt",
              help="Send in-doubt jobs again: pays twice for any the provider did create.")
@click.option("--lost", "which", flag_value="lost",
              help="Ask the provider again for each lost job's task; collect those it still knows (pays nothing).")
@base_url_option
@guarded
def retry_cmd(manifest: Path, state_dir: Path | None, which: Which | None, base_url: str | None) -> None:
    """Put MANIFEST's failed or in-doubt jobs back to pending, after saying how many and the cost;
    or, with --lost, reopen lost jobs whose task the provider still knows and collect them.

    The next `runner run` submits jobs put back to pending. --lost sends no submit: it polls
    each lost job's task once (task-result GET); a task the provider answers for goes back to
    running and is collected at once; tasks still not found are listed and stay lost.

    \b
    Examples:
      runner retry manifests/demo.yaml --failed
      runner retry manifests/demo.yaml --in-doubt && runner run manifests/demo.yaml
      runner retry manifests/demo.yaml --lost
    """
    if which is None:
        raise UsageError("say which jobs to retry: --failed, --in-doubt or --lost")
    done = retry(manifest, which, run_options({"state_dir": state_dir, "base_url": base_url}),
                 before_collect=_say_reopened, notify=cli_notify)
    if which == "lost":
        if not done.looked_up:
            click.echo(f"no lost jobs in {done.manifest}")
        sys.exit(done.exit_code)
    state = JobState(which)
    if not done.moved:
        click.echo(f"no {state} jobs in {done.manifest}")
        return
    warning = " (each may already have been paid for once)" if state is JobState.IN_DOUBT else ""
    click.echo(f"{done.moved} {state} job(s) back to pending: about {done.cost_usd:.2f} USD (estimate) when submitted"
               f"{warning}")
    click.echo(f"next: runner run {manifest}")


def _say_reopened(done: Retried) -> None:
    """Before the reopened jobs are collected: which the provider knows, and which stay lost."""
    click.echo(f"{len(done.reopened)} lost job(s) reopened: the provider still knows their tasks")
    for job in done.gone:
        click.echo(f"still not found: job {job.key} (task {job.task_id}); it stays lost")
