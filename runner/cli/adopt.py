"""`runner adopt`: attach a task id the operator knows to an in-doubt job, verified at the provider first.

Also the small provider look-up that `runner retry --lost` shares: one task-result GET per task id.
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from runner.cli.common import base_url_option, guarded, resolve_state, state_option
from runner.errors import UsageError
from runner.jobs import JobState
from runner.ledger import SqliteLedger, open_ledger
from runner.service.provider import check_ledger_provider, look_up_tasks, provider_from_env

__all__ = ["adopt_cmd"]

TASK_ID_MAX = 256
_TASK_ID = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces or control characters

def _resolve_key(ledger: SqliteLedger, key: str) -> str:
    if ledger.get(key) is not None:
        return key
    keys = ledger.find_keys(key, limit=2)
    if len(keys) == 1:
        return keys[0]
    if not keys:
        raise UsageError(f"no job with key {key!r} in {ledger.path}; see `runner ls MANIFEST --state in_doubt`")
    raise UsageError(f"several jobs start with {key!r} ({', '.join(keys)}, …); give more of the key")


@click.command("adopt")
@click.argument("key")
@click.argument("task_id")
@state_option
@base_url_option
@guarded
def adopt_cmd(key: str, task_id: str, state_dir: Path | None, base_url: str | None) -> None:
    """Attach TASK_ID to the in-doubt job KEY (a full key or a unique prefix), after checking the provider knows it.

    Use it when you know which task an in-doubt submit created — from a log line, the
    provider's console or its bill. The task is asked for once (task-result GET): an id
    the provider does not know is refused, and so is a job that is not in doubt. Then the
    job becomes running with that task, and the next `runner run` or `runner collect`
    polls and downloads it. Nothing is submitted or paid.

    \b
    Examples:
      runner adopt 3f2a9c1e0b7d 8a1c5e0f-7b2d-4c11-9e3a-2f6d0b9c4e71
      runner adopt 3f2a9c1e TASK_ID --state state/ && runner collect --state state/
    """
    task_id = task_id.strip()
    if not task_id or len(task_id) > TASK_ID_MAX or not _TASK_ID.fullmatch(task_id):
        raise UsageError(f"{task_id[:80]!r} does not look like a task id (printable characters, at most"
                         f" {TASK_ID_MAX}); nothing changed")
    state = resolve_state(state_dir)
    if not (state / "ledger.db").exists():
        raise UsageError(f"no ledger in {state}; point --state at the state directory of the run")
    endpoint, api_key = provider_from_env(base_url)
    with open_ledger(state) as ledger:
        check_ledger_provider(ledger, endpoint)
        ledger.recover_expired(ledger.owner)  # we hold the lock: a job left submitting by a dead run is in doubt
        key = _resolve_key(ledger, key)
        job = ledger.get(key)
        assert job is not None
        if job.state is not JobState.IN_DOUBT:
            held = f" with task {job.task_id}" if job.task_id else ""
            raise UsageError(f"job {key} is {job.state}{held}, not in doubt; `runner adopt` only attaches a task to"
                             " an in-doubt job (nothing changed)")
        owner = ledger.key_of_task(task_id)
        if owner is not None:
            raise UsageError(f"task {task_id} already belongs to job {owner}; nothing changed")
        result = look_up_tasks(endpoint, api_key, [task_id])[task_id]
        if result is None:
            raise UsageError(f"the provider at {endpoint} does not know task {task_id} (TASK_NOT_FOUND); check the"
                             f" id (and --base-url); job {key} stays in doubt, nothing changed")
        status = str(result.task.status)
        ledger.adopt_task(key, task_id, detail=f"attached by `runner adopt`; the provider said {status}")
    click.echo(f"job {key}: task {task_id} ({status}) attached; the job is running")
    click.echo(f"next: runner collect --state {state}   (or runner run MANIFEST)")
