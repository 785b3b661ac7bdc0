"""`runner status --watch` and `runner top`: a live view of a run from another terminal (library:
:mod:`runner.service.watching`). Reads the ledger only, read-only: never the provider, never the lock."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from runner.cli.common import Interrupted, guarded, state_option
from runner.cli.inspect import manifest_arg

__all__ = ["top_cmd", "watch_status"]


def watch_status(manifest: Path, state_dir: Path | None, every: float, as_json: bool) -> None:
    """Show the status every ``every`` seconds until Ctrl-C (exit 0): redrawn in place on a terminal,
    else one line per refresh; with ``as_json`` one JSON object per refresh (NDJSON)."""
    from runner.reporting.watch import WatchFrame, frame_dict, frame_line, frame_table
    from runner.service.watching import watch

    try:
        if as_json or not sys.stdout.isatty():
            def show(frame: WatchFrame) -> None:
                click.echo(json.dumps(frame_dict(frame)) if as_json else frame_line(frame))

            watch(manifest, state_dir, every=every, show=show)
            return
        from rich.console import Console
        from rich.live import Live

        with Live(console=Console(highlight=False), auto_refresh=False, transient=False) as live:
            watch(manifest, state_dir, every=every, show=lambda frame: live.update(frame_table(frame), refresh=True))
    except Interrupted:
        pass  # Ctrl-C ends watching: the run it watches goes on


@click.command("top")
@manifest_arg
@state_option
@click.option("-n", "--every", type=click.FloatRange(min=0, min_open=True), default=2.0, show_default=True,
              metavar="SECONDS", help="Refresh every SECONDS.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per refresh (as `status --json`, plus rates).")
@guarded
def top_cmd(manifest: Path, state_dir: Path | None, every: float, as_json: bool) -> None:
    """Watch MANIFEST's run live from another terminal (`runner status --watch`); Ctrl-C stops watching.

    Jobs by state (rejected clips next to done), done per minute over the last minutes,
    outstanding tasks, the estimated spend so far, the ETA and, on a shared PostgreSQL
    ledger, the runners. Reads the ledger only (read-only, without its lock): the run goes
    on, and the provider is never asked. Redrawn in place on a terminal; one line per
    refresh otherwise.

    \b
    Examples:
      runner top manifests/demo.yaml
      runner top manifests/demo.yaml --every 10 --json | jq -c '{at, counts, eta_s}'
    """
    watch_status(manifest, state_dir, every, as_json)
