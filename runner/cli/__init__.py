"""The `runner` command: a thin click layer over the library.

Each command parses its options, builds the pieces (manifest, ledger, client),
calls one coroutine or function, and renders. Errors become one clear line and
an exit code (see `runner --help`).
"""

from __future__ import annotations

import click

from runner import __version__
from runner.cli.adopt import adopt_cmd
from runner.cli.common import install_early_signal_handlers, setup_logging
from runner.cli.group import RunnerGroup
from runner.cli.inspect import export_cmd, plan_cmd, status_cmd
from runner.cli.ledger import ledger_group
from runner.cli.output import guard_stderr
from runner.cli.report import report_cmd
from runner.cli.retry import retry_cmd
from runner.cli.run import collect_cmd, run_cmd, submit_cmd
from runner.cli.show import ls_cmd, show_cmd
from runner.cli.sim import simulate_cmd

__all__ = ["main"]


@click.group(cls=RunnerGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="runner")
@click.option("-v", "--verbose", is_flag=True, help="Debug logs, and the cause chain of errors (also after the command).")
@click.option("-q", "--quiet", is_flag=True, help="Warnings and errors only; no progress (also after the command).")
@click.option("--log-json", is_flag=True,
              help="Logs and progress events as one JSON object per line on stderr (also after the command).")
def main(verbose: bool, quiet: bool, log_json: bool) -> None:
    """Run batches of paid video generations; pay for each video once.

    \b
    Examples:
      runner plan manifests/demo.yaml            # what would run, what it may cost
      runner run manifests/demo.yaml --simulate  # the whole job against the built-in simulator
      runner status manifests/demo.yaml
      runner ls manifests/demo.yaml --only failed
      runner report manifests/demo.yaml --to report/

    \b
    Exit codes:
      0  every job done            3  stopped with work outstanding (signal, --max-runtime, budget)
      1  some jobs failed or lost  4  in-doubt jobs held for a decision
      2  manifest or usage error,  5  provider unreachable: nothing sent (network, --base-url)
         or no API at --base-url   75 another runner holds this ledger
    """
    guard_stderr()  # a closed pipe or terminal on stderr never stops a command (runner.cli.output)
    install_early_signal_handlers()
    setup_logging(verbose=verbose, quiet=quiet, log_json=log_json)


COMMANDS = (plan_cmd, run_cmd, submit_cmd, collect_cmd, status_cmd, ls_cmd, show_cmd, export_cmd, report_cmd,
            retry_cmd, adopt_cmd, simulate_cmd, ledger_group)
for command in COMMANDS:
    main.add_command(command)
