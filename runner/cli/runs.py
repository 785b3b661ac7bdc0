"""``runner runs [MANIFEST]``: the run history of a ledger — when, argv, exit code, what each run did, spend."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from runner.cli.common import MANIFEST_PATH, guarded, resolve_state, state_option
from runner.ledger.factory import is_shared
from runner.manifest import load_manifest
from runner.reporting.history import concerns, next_starts, read_balances, run_dict, run_lines
from runner.service.state import open_existing_ledger

__all__ = ["runs_cmd"]


@click.command("runs")
@click.argument("manifest", required=False, type=MANIFEST_PATH)
@state_option
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="The latest N runs.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run (newest first).")
@guarded
def runs_cmd(manifest: Path | None, state_dir: Path | None, limit: int, as_json: bool) -> None:
    """List the runs that used the ledger, newest first: when, how long, exit code, the command,
    how many jobs each submitted (and its estimated spend), finished done and failed.

    With MANIFEST, the runs that touched its jobs or named it, and only its jobs' figures.
    Spend is the estimate of every submit that may have created a paid task (a refused one
    cost nothing); "account USD" is the balance the provider reported when a run started, and
    its drop until the next run's reading (all the account spent in between).

    \b
    Examples:
      runner runs manifests/demo.yaml
      runner runs --state state/ --json
    """
    spec = load_manifest(manifest) if manifest is not None else None
    name = spec.name if spec is not None else None
    state = resolve_state(state_dir, manifest)
    with open_existing_ledger(state, readonly=True, spec=spec, manifest=manifest) as ledger:
        history = ledger.run_history(name, limit=limit)
        balances = read_balances(ledger, history)
        ends = next_starts(history, one_writer=not is_shared(ledger))  # the unfiltered history: any later run
    found = [s for s in history if concerns(s, manifest)]
    now = time.time()
    if as_json:
        for summary in found:
            click.echo(json.dumps(run_dict(summary, now=now, balances=balances, next_start=ends.get(summary.run.id))))
        return
    if not found:
        click.echo("no runs recorded" + (f" for {name}" if name else ""))
        return
    for line in run_lines(found, now=now, balances=balances, ends=ends):
        click.echo(line)
