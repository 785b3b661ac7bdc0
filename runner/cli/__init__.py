"""The `runner` command: a thin click layer over the library.

Each command parses its options, builds the pieces (manifest, ledger, client),
calls one coroutine or function, and renders. Errors become one clear line and
an exit code (see `runner --help`).
"""

from __future__ import annotations

import logging
import os

import click

from runner._entry import start_up_done
from runner.cli.common import install_early_signal_handlers, setup_logging
from runner.cli.group import LazyCommand, RunnerGroup
from runner.cli.output import guard_stderr, guard_stdout
from runner.distribution import DISTRIBUTION

__all__ = ["COMMANDS", "main"]

# Every command: name -> where it lives and its one-line help. A command's module (and what it imports:
# httpx, anyio, pydantic, SQLite, the simulator) is imported only when that command runs, so `runner
# --version` and `runner --help` start fast. A new command is one line here.
COMMANDS: dict[str, LazyCommand] = {
    "accept": LazyCommand("runner.cli.reject", "accept_cmd", "Accept the stored videos of MANIFEST's jobs KEY|PREFIX..."),
    "adopt": LazyCommand("runner.cli.adopt", "adopt_cmd", "Attach TASK_ID to the in-doubt job KEY (a full key or a"
                         " unique prefix), after checking the provider knows it; or, with --file / --held-back,"
                         " record a held-back job as done from the video already at its name."),
    "collect": LazyCommand("runner.cli.run", "collect_cmd",
                           "Poll and download every task already submitted; submit nothing."),
    "export": LazyCommand("runner.cli.inspect", "export_cmd",
                          "Export MANIFEST's jobs: key, state, task_id, the exact request, vars, path, sha256, cost…"),
    "ledger": LazyCommand("runner.cli.ledger", "ledger_group", "Manage the ledger itself (copy it between SQLite and PostgreSQL; reopen a copied one)."),
    "ls": LazyCommand("runner.cli.show", "ls_cmd",
                      "List MANIFEST's jobs, one per line: key, state, variables, output, task_id and error."),
    "plan": LazyCommand("runner.cli.inspect", "plan_cmd",
                        "Expand and check MANIFEST without touching the network; say what a run would do and cost."),
    "regenerate": LazyCommand("runner.cli.reject", "regenerate_cmd",
                              "Queue a fresh sample of each rejected clip of MANIFEST: new paid tasks on the next run."),
    "reject": LazyCommand("runner.cli.reject", "reject_cmd", "Reject the stored videos of MANIFEST's jobs KEY|PREFIX..."),
    "report": LazyCommand("runner.cli.report", "report_cmd", "Write a static HTML page to review MANIFEST's videos:"
                          " no server needed, open it in a browser."),
    "retry": LazyCommand("runner.cli.retry", "retry_cmd", "Put MANIFEST's failed or in-doubt jobs back to pending,"
                         " after saying how many and the cost; or, with --lost, reopen lost jobs whose task the"
                         " provider still knows and collect them."),
    "review": LazyCommand("runner.cli.review", "review_cmd",
                          "Serve MANIFEST's videos as a review page on http://127.0.0.1:PORT/ until Ctrl-C."),
    "run": LazyCommand("runner.cli.run", "run_cmd",
                       "Submit, poll and download every job of MANIFEST; resume where the last run stopped."),
    "runs": LazyCommand("runner.cli.runs", "runs_cmd", "List the runs that used the ledger, newest first: when,"
                        " how long, exit code, the command, how many jobs each submitted (and its estimated spend),"
                        " finished done and failed."),
    "show": LazyCommand("runner.cli.show", "show_cmd",
                        "Show one job: its request, state, files, spend, provider timings and every attempt."),
    "simulate": LazyCommand("runner.cli.sim", "simulate_cmd",
                            "Serve a simulator of Novita's Kling v3.0 video API, failures included."),
    "status": LazyCommand("runner.cli.inspect", "status_cmd", "Show MANIFEST's jobs by state, the estimated spend,"
                          " the oldest running task and the earliest URL expiry."),
    "submit": LazyCommand("runner.cli.run", "submit_cmd",
                          "Submit pending jobs up to the concurrency limit, record their task_ids, then exit."),
    "top": LazyCommand("runner.cli.watch", "top_cmd", "Watch MANIFEST's run live from another terminal (`runner"
                       " status --watch`); Ctrl-C stops watching."),
    "verify": LazyCommand("runner.cli.verify", "verify_cmd", "Check every stored video of MANIFEST against its"
                          " recorded sha256 and size, and download missing or damaged ones again while the provider"
                          " still serves them (nothing is paid)."),
}


@click.group(cls=RunnerGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name=DISTRIBUTION, prog_name="runner")  # the version is read only when asked
@click.option("-v", "--verbose", is_flag=True, help="Debug logs, and the cause chain of errors (also after the command).")
@click.option("-q", "--quiet", is_flag=True, help="Warnings and errors only; no progress (also after the command).")
@click.option("--log-json", is_flag=True,
              help="Every line on stderr one JSON object: logs, progress events, signals, errors, the summary"
                   " (also after the command).")
@click.option("--no-progress", is_flag=True,
              help="Plain timestamped lines instead of the live display on a terminal (also after the command).")
def main(verbose: bool, quiet: bool, log_json: bool, no_progress: bool) -> None:
    """Run batches of paid video generations; pay for each video once.

    \b
    Examples:
      runner plan manifests/demo.yaml --state state/demo  # what would run, what it may cost
      runner run manifests/demo.yaml --simulate --state state/demo        # what make demo does
      runner status manifests/demo.yaml --state state/demo
      runner ls manifests/demo.yaml --state state/demo --only failed
      runner report manifests/demo.yaml --state state/demo --to report/demo
      runner --state state/demo status manifests/demo.yaml  # --state, --ledger: before it too
      NOVITA_API_KEY=... runner run manifests/cities.yaml --budget 20     # real videos, in state/

    \b
    Exit codes:
      0  every job done            3  stopped with work outstanding (signal, --max-runtime, budget)
      1  some jobs failed or lost  4  in-doubt jobs held for a decision
      2  manifest or usage error,  5  provider unreachable: nothing sent (network, --base-url),
         or no API at --base-url      or the PostgreSQL ledger's server as it started (--ledger)
                                   6  the state directory could not be written (a full disk)
                                   75 another runner holds this ledger
                                   130 stopped at once by a second signal (Ctrl-C twice)
    """
    start_up_done()  # click imported the command's module before this callback: the collector back on
    guard_stderr()  # a closed pipe or terminal on stderr never stops a command (runner.cli.output)
    guard_stdout()  # ... and a stdout that cannot be written is named as such
    install_early_signal_handlers()
    setup_logging(verbose=verbose, quiet=quiet, log_json=log_json, no_progress=no_progress,
                  command=click.get_current_context().invoked_subcommand)
    from runner.environment import unknown  # here: `runner --help` need not import the settings' table

    for name, meant in unknown(os.environ):  # a typo reads as unset: RUNNER_BUDGET=5 would set no budget
        logging.getLogger("runner").warning("%s is set, but runner reads no such variable%s", name,
                                            f"; did you mean {meant}?" if meant else "")
