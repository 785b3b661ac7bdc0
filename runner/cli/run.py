"""`runner run`, `runner submit`, `runner collect`: drive the engine."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from runner.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    MANIFEST_PATH,
    base_url_option,
    cli_notify,
    guarded,
    state_option,
)
from runner.cli.settings import setting_options
from runner.config import SETTINGS
from runner.errors import AuthError, RunnerError, UsageError
from runner.service.running import COLLECT, RUN, SIM_TASK_SECONDS, SUBMIT, Mode, RunOptions
from runner.service.running import run as service_run

F = TypeVar("F", bound=Callable[..., Any])


def engine_options(func: F) -> F:
    options = [
        state_option,
        base_url_option,
        click.option("--simulate", is_flag=True, help="Start the built-in simulator on a loopback port and run against it (no key, no network)."),
        *setting_options(),
        click.option("--sim-task-seconds", type=click.FloatRange(min=0), default=SIM_TASK_SECONDS, show_default=True,
                     help="With --simulate: how long each simulated task takes."),
        click.option("--new-ledger", "new_ledger", is_flag=True,
                     help="Start a new, empty ledger although the state directory shows one was used there"
                          " (its ledger.db is missing or empty), or plan the manifest into a ledger that records"
                          " none of its jobs while another does, or run a new ledger whose jobs another ledger of"
                          " this host planned (the book of ledgers names it). Every job not in that ledger is paid"
                          " again."),
        click.option("--allow-provider-change", "allow_provider_change", is_flag=True,
                     help="Use the ledger with another provider base URL than the one it was made with"
                          " (the same provider at a new address); recorded for next time."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def drive(mode: Mode, manifest_path: Path | None, opts: dict[str, Any]) -> int:
    """Run ``mode`` through :func:`runner.service.run` with the parsed options; the exit code.

    Everything that can be wrong with the input is raised before the first request (``guarded`` renders it).
    """
    outcome = service_run(manifest_path, run_options(opts), mode=mode, notify=cli_notify)
    return outcome.exit_code


def run_options(opts: Mapping[str, Any]) -> RunOptions:
    """The service's options from click's: the command's own and the root's -q / --log-json."""
    ctx = click.get_current_context()
    root = ctx.find_root().params
    sim_seconds = opts.get("sim_task_seconds")
    if opts.get("simulate") and opts.get("base_url"):
        raise UsageError("--simulate runs against the built-in simulator and --base-url names a provider: give one"
                         " of them (nothing was sent)")
    if not opts.get("simulate") and ctx.get_parameter_source("sim_task_seconds") is ParameterSource.COMMANDLINE:
        raise UsageError("--sim-task-seconds is how long the built-in simulator's tasks take: it goes with"
                         " --simulate (nothing was sent)")
    return RunOptions(
        state_dir=opts.get("state_dir"),
        settings={setting.name: opts.get(setting.name) for setting in SETTINGS if setting.flag is not None},
        base_url=opts.get("base_url"),
        simulate=bool(opts.get("simulate")),
        sim_task_seconds=SIM_TASK_SECONDS if sim_seconds is None else sim_seconds,
        new_ledger=bool(opts.get("new_ledger")),
        allow_provider_change=bool(opts.get("allow_provider_change")),
        quiet=bool(root.get("quiet")),
        json_lines=bool(root.get("log_json")),
        tty=sys.stderr.isatty() and not root.get("no_progress"),
        handle_signals=True,
    )


def _manifest_arg(required: bool = True) -> Callable[[F], F]:
    return click.argument("manifest", type=MANIFEST_PATH, required=required)


@click.command("run")
@_manifest_arg()
@engine_options
@guarded
def run_cmd(manifest: Path, **opts: Any) -> None:
    """Submit, poll and download every job of MANIFEST; resume where the last run stopped.

    \b
    Examples:
      runner run manifests/demo.yaml --simulate --state state/demo   # what make demo does
      NOVITA_API_KEY=... runner run manifests/cities.yaml --budget 20 --max-runtime 3300
    """
    sys.exit(drive(RUN, manifest, opts))


@click.command("submit")
@_manifest_arg()
@engine_options
@guarded
def submit_cmd(manifest: Path, **opts: Any) -> None:
    """Submit pending jobs up to the concurrency limit, record their task_ids, then exit.

    Pair it with `runner collect` when cron should split the two.

    \b
    Example:
      */10 * * * *  cd /srv/videos && NOVITA_API_KEY=$(cat ~/.novita-key) .venv/bin/runner submit manifests/nightly.yaml
    """
    sys.exit(drive(SUBMIT, manifest, opts))


@click.command("collect")
@_manifest_arg(required=False)
@engine_options
@guarded
def collect_cmd(manifest: Path | None, **opts: Any) -> None:
    """Poll and download every task already submitted; submit nothing.

    Without MANIFEST it collects everything outstanding in the ledger of --state (default ./state)
    and never creates one; with MANIFEST the default is the state/ folder found from its folder.

    \b
    Example:
      runner collect --state state/ --max-runtime 600
    """
    sys.exit(drive(COLLECT, manifest, opts))


__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "AuthError", "RunnerError", "UsageError", "collect_cmd", "drive",
           "run_cmd", "submit_cmd"]
