"""`runner adopt`: attach a task id the operator knows to an in-doubt job, verified at the provider first."""

from __future__ import annotations

from pathlib import Path

import click

from runner.cli.common import base_url_option, guarded, state_option
from runner.service.adopting import adopt
from runner.service.hints import next_command

__all__ = ["adopt_cmd"]


@click.command("adopt")
@click.argument("key")
@click.argument("task_id")
@state_option
@base_url_option
@click.option("--force", is_flag=True, help="attach it even when the provider names another kind of task (another"
              " tier, text- vs image-to-video) than the job's model")
@guarded
def adopt_cmd(key: str, task_id: str, state_dir: Path | None, base_url: str | None, force: bool) -> None:
    """Attach TASK_ID to the in-doubt job KEY (a full key or a unique prefix), after checking the provider knows it.

    Use it when you know which task an in-doubt submit created — from a log line, the
    provider's console or its bill. The task is asked for once (task-result GET) at the provider
    the ledger records (or --base-url / NOVITA_BASE_URL): an id
    the provider does not know is refused, and so is a job that is not in doubt, or a task the
    provider names as another kind than the job's model (--force overrides). Then the
    job becomes running with that task, and the next `runner run` or `runner collect`
    polls and downloads it. Nothing is submitted or paid.

    \b
    Examples:
      runner adopt 3f2a9c1e0b7d 8a1c5e0f-7b2d-4c11-9e3a-2f6d0b9c4e71
      runner adopt 3f2a9c1e TASK_ID --state state/ && runner collect --state state/
    """
    done = adopt(key, task_id, state_dir, base_url=base_url, force=force)
    click.echo(f"job {done.key}: task {done.task_id} ({done.status}) attached; the job is running")
    click.echo(next_command("collect", state_dir=done.state, provider=done.provider, note="or runner run MANIFEST"))
