"""`runner adopt`: attach a task id the operator knows to an in-doubt job, verified at the provider first; or record
a held-back job as done from the video already at its output name (--file, --held-back)."""

from __future__ import annotations

from pathlib import Path

import click

from runner.cli.common import base_url_option, guarded, say, state_option
from runner.errors import UsageError

__all__ = ["adopt_cmd"]


@click.command("adopt")
@click.argument("key", metavar="KEY|MANIFEST")
@click.argument("task_id", required=False)
@state_option
@base_url_option
@click.option("--force", is_flag=True, help="attach it even when the provider names another kind of task (another"
              " tier, text- vs image-to-video) than the job's model")
@click.option("--file", "from_file", is_flag=True, help="record the held-back job KEY as done from the video already"
              " at its output name (no task id; nothing sent or paid)")
@click.option("--held-back", "held_back", is_flag=True, help="the same for every job of MANIFEST held back because"
              " its output name already holds a video")
@click.option("--dry-run", is_flag=True, help="with --file or --held-back: say which jobs would be adopted; change"
              " nothing")
@guarded
def adopt_cmd(key: str, task_id: str | None, state_dir: Path | None, base_url: str | None, force: bool,
              from_file: bool, held_back: bool, dry_run: bool) -> None:
    """Attach TASK_ID to the in-doubt job KEY (a full key or a unique prefix), after checking the provider knows it;
    or, with --file / --held-back, record a held-back job as done from the video already at its name.

    Use it when you know which task an in-doubt submit created — from a log line, the
    provider's console or its bill. The task is asked for once (task-result GET) at the provider
    the ledger records (or --base-url / NOVITA_BASE_URL): an id
    the provider does not know is refused, and so is a job that is not in doubt, or a task the
    provider names as another kind than the job's model (--force overrides). Then the
    job becomes running with that task, and the next `runner run` or `runner collect`
    polls and downloads it. Nothing is submitted or paid.

    A run holds back (exit 6) a job not yet sent whose output name already holds a video no
    job in the ledger records: after a ledger restored from an older backup, or --new-ledger
    beside old videos, that is most likely the job's own video, paid for already. --file
    records the job KEY as done from that file (its sha256 and size, no task id, its
    estimate counted as spent); --held-back does it for every such job of MANIFEST. Only a
    pending job is taken, and only a whole video (checked as a download is) that no job
    records: a truncated or other file is refused, nothing changed. Move a file that is
    not the job's away instead, and the next run sends the job (and pays for it).

    \b
    Examples:
      runner adopt 3f2a9c1e0b7d 8a1c5e0f-7b2d-4c11-9e3a-2f6d0b9c4e71
      runner adopt 3f2a9c1e TASK_ID --state state/ && runner collect --state state/
      runner adopt manifests/demo.yaml --held-back --dry-run
      runner adopt 3f2a9c1e --file --state state/
    """
    if from_file or held_back:
        if task_id is not None or force or base_url is not None or (from_file and held_back):
            raise UsageError("--file and --held-back take no TASK_ID, --force or --base-url (the provider is not"
                             " asked), and one of them at a time: runner adopt KEY --file, runner adopt MANIFEST"
                             " --held-back")
        _from_files(key, state_dir, held_back=held_back, dry_run=dry_run)
        return
    if task_id is None:
        raise UsageError("give the TASK_ID to attach (runner adopt KEY TASK_ID), or --file to record the job KEY"
                         " from the video already at its output name")
    if dry_run:
        raise UsageError("--dry-run goes with --file or --held-back")
    from runner.service.adopting import adopt
    from runner.service.hints import next_command

    done = adopt(key, task_id, state_dir, base_url=base_url, force=force)
    click.echo(f"job {done.key}: task {done.task_id} ({done.status}) attached; the job is running")
    click.echo(next_command("collect", state_dir=done.state, provider=done.provider, note="or runner run MANIFEST"))


def _from_files(target: str, state_dir: Path | None, *, held_back: bool, dry_run: bool) -> None:
    from runner.service.adopting_file import adopt_files, adopt_held_back

    done = (adopt_held_back(Path(target), state_dir, dry_run=dry_run) if held_back
            else adopt_files([target], state_dir, dry_run=dry_run))
    verb = "would be done" if dry_run else "done"
    for found in done.adopted:
        click.echo(f"job {found.key}: {verb} from its file {found.path} ({found.bytes:,} bytes, sha256"
                   f" {found.sha256[:12]}…); nothing sent or paid, its estimated ${found.estimated_usd:.2f} counted"
                   " as spent (paid for in a run the ledger does not record)")
    if done.linked:
        click.echo(f"{done.linked} name(s) of other manifests asking for the same video(s) linked to them")
    for line in done.unplaced:
        say(line, "warning")
    for _key, why in done.refused:
        say(why, "warning")
    if held_back and not done.adopted and not done.refused:
        click.echo(f"no job of {target} in {done.state} is held back with a video at its output name; nothing changed")
    if dry_run and done.adopted:
        click.echo("(dry run: nothing changed; run it again without --dry-run to record them)")
    if done.refused:
        adopted = f"{len(done.adopted)} would be adopted" if dry_run else f"{len(done.adopted)} adopted"
        raise UsageError(f"{len(done.refused)} job(s) not adopted, each said above (nothing changed for them);"
                         f" {adopted}")
