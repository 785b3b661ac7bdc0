"""`runner run`, `runner submit`, `runner collect`: drive the engine."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.abc
import click

from runner._entry import NEVER_AT_ONCE, stop_signals
from runner.cli.common import (
    EXIT_FAILED,
    EXIT_IN_DOUBT,
    EXIT_OK,
    EXIT_STOPPED,
    EXIT_USAGE,
    exit_code_for,
    guarded,
    install_early_signal_handlers,
    is_verbose,
    report_error,
    resolve_state,
    state_option,
)
from runner.client import (
    API_KEY_ENV,
    NovitaClient,
    api_key_from_env,
    base_url_from_env,
    make_http_client,
)
from runner.config import RunSettings, resolve_settings
from runner.errors import AuthError, LedgerError, LedgerLocked, RunnerError, UsageError
from runner.jobs import JobState
from runner.ledger import Ledger, open_ledger
from runner.manifest import Manifest, expand, load_manifest
from runner.reporting import make_reporter
from runner.scheduler import (
    Engine,
    EngineConfig,
    RunResult,
    StopReason,
    materialise_targets,
)

SIM_TASK_SECONDS = 3.0
F = TypeVar("F", bound=Callable[..., Any])
SIM_KEY = "simulated-key"


@dataclass(frozen=True, slots=True)
class Mode:
    name: str
    submit: bool
    collect: bool


RUN = Mode("run", submit=True, collect=True)
SUBMIT = Mode("submit", submit=True, collect=False)
COLLECT = Mode("collect", submit=False, collect=True)


def engine_options(func: F) -> F:
    options = [
        state_option,
        click.option("--base-url", default=None, help="Provider base URL (env NOVITA_BASE_URL; default https://api.novita.ai)."),
        click.option("--simulate", is_flag=True, help="Start the built-in simulator on a loopback port and run against it (no key, no network)."),
        click.option("--concurrency", type=int, default=None, help="Tasks outstanding at the provider at once (env RUNNER_CONCURRENCY)."),
        click.option("--rpm", default=None, help="Submit requests per minute; 'none' for no cap (env RUNNER_RPM)."),
        click.option("--poll-rpm", default=None, help="Task-result requests per minute (env RUNNER_POLL_RPM)."),
        click.option("--poll-interval", type=float, default=None, help="Seconds between polls of one task, at least (env RUNNER_POLL_INTERVAL)."),
        click.option("--downloads", type=int, default=None, help="Downloads at once (env RUNNER_DOWNLOADS)."),
        click.option("--in-doubt", "in_doubt", type=click.Choice(["hold", "resubmit"]), default=None,
                     help="What to do with jobs whose submit may or may not have created a task: hold them (default) or pay again."),
        click.option("--budget", "budget_usd", type=float, default=None, help="Stop submitting before estimated spend passes this many USD."),
        click.option("--max-runtime", type=float, default=None, help="Stop gracefully after this many seconds (exit 3); for cron."),
        click.option("--sim-task-seconds", type=click.FloatRange(min=0), default=SIM_TASK_SECONDS, show_default=True,
                     help="With --simulate: how long each simulated task takes."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def drive(mode: Mode, manifest_path: Path | None, opts: dict[str, Any]) -> int:
    """Load, plan into the ledger, run the engine, return the exit code.

    Everything that can be wrong with the input (manifest, flags, key, state
    directory, ledger file) is found before the first request is sent.
    """
    manifest = load_manifest(manifest_path) if manifest_path is not None else None
    limits: dict[str, Any] = {}
    if manifest is not None:
        # Only what the manifest says: its defaults must not shadow the built-in ones.
        limits = {**manifest.limits.model_dump(exclude_unset=True), "in_doubt": manifest.in_doubt}
    settings = resolve_settings(
        flags={k: opts.get(k) for k in ("concurrency", "rpm", "poll_rpm", "poll_interval", "downloads",
                                        "budget_usd", "in_doubt", "max_runtime")},
        environ=os.environ,
        manifest=limits,
    )
    state_dir = resolve_state(opts.get("state_dir"))
    simulate = bool(opts.get("simulate"))
    base_url = ""  # with --simulate: known once the simulator listens
    if simulate:
        api_key = os.environ.get(API_KEY_ENV) or SIM_KEY
    else:
        base_url = base_url_from_env(opts.get("base_url"), os.environ)
        try:
            api_key = api_key_from_env(os.environ)
        except UsageError as exc:
            raise UsageError(f"{exc}; or add --simulate to run against the built-in simulator") from exc
    with contextlib.ExitStack() as stack:
        ledger = stack.enter_context(_open_ledger(state_dir))
        _check_provider_kind(state_dir, ledger, simulate=simulate)
        if simulate:
            sim_seconds = opts.get("sim_task_seconds")
            base_url = stack.enter_context(_simulator(SIM_TASK_SECONDS if sim_seconds is None else sim_seconds))
        run_id = ledger.start_run(argv=[Path(sys.argv[0]).name, *sys.argv[1:]])
        exit_code = EXIT_STOPPED  # unless we learn better: a signal, or a crash, leaves work outstanding
        failing = True
        try:
            exit_code = _drive_ledger(mode, manifest, settings, ledger, base_url, api_key,
                                      manifest_path=manifest_path)
            failing = False
            return exit_code
        except RunnerError as error:
            exit_code = exit_code_for(error)
            raise
        finally:
            _finish_run(ledger, run_id, exit_code, manifest.name if manifest is not None else None,
                        failing=failing)


PROVIDER_MARK = "provider"


def _check_provider_kind(state_dir: Path, ledger: Ledger, *, simulate: bool) -> None:
    """One ledger, one kind of provider: the simulator must never poll real tasks (it would call
    them unknown), nor the real API simulated ones. The kind is written beside the ledger."""
    kind = "simulator" if simulate else "novita"
    mark = state_dir / PROVIDER_MARK
    try:
        recorded = mark.read_text(encoding="utf-8").strip() if mark.exists() else None
        if recorded is None or ledger.total() == 0:
            mark.write_text(kind + "\n", encoding="utf-8")
            return
    except OSError as exc:
        raise UsageError(f"cannot use {mark}: {exc.strerror or exc} (nothing was sent)") from exc
    if recorded != kind:
        other = "--simulate" if recorded == "simulator" else "the real API"
        raise UsageError(
            f"{state_dir} holds tasks of {other} ({recorded}); this run would talk to {kind} and could not"
            f" find them. Use another --state directory (e.g. --state {state_dir / kind}) (nothing was sent)"
        )


def _open_ledger(state_dir: Path) -> Ledger:
    """Open the ledger for writing; a state directory or ledger file we cannot use is a usage error.

    Nothing has been sent yet, so the operator fixes ``--state`` (or moves the
    file aside) and runs again. Another runner holding the lock stays
    :class:`~runner.errors.LedgerLocked` (exit 75).
    """
    try:
        return open_ledger(state_dir)
    except LedgerLocked:
        raise
    except LedgerError as exc:
        raise UsageError(f"{exc} (nothing was sent)") from exc


def _finish_run(ledger: Ledger, run_id: int, exit_code: int, scope: str | None, *, failing: bool) -> None:
    """Record how the run ended. When the run is already failing (say the disk is full), a ledger
    that cannot take this last write either must not hide the first error."""
    try:
        counts = {str(k): v for k, v in ledger.counts(scope).items()}
        ledger.finish_run(run_id, exit_code=exit_code, counts=counts)
    except LedgerError as exc:
        if not failing:
            raise
        click.echo(f"runner: could not record the end of this run in the ledger either: {exc}", err=True)


def _note(message: str) -> None:
    """Progress for the operator on stderr; silent with ``runner -q``."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.find_root().params.get("quiet"):
        return
    click.echo(f"runner: {message}", err=True)


@contextlib.contextmanager
def _simulator(task_seconds: float) -> Iterator[str]:
    from runner.simulator import SimConfig, Simulator, SimulatorThread

    sim = Simulator(SimConfig(task_seconds=task_seconds))
    with SimulatorThread(sim) as server:
        _note(f"simulator listening on {server.base_url} (tasks take {task_seconds:g} s)")
        yield server.base_url


def _drive_ledger(
    mode: Mode, manifest: Manifest | None, settings: RunSettings, ledger: Ledger, base_url: str, api_key: str,
    *, manifest_path: Path | None,
) -> int:
    scope = manifest.name if manifest is not None else None
    recovered = ledger.recover_submitting()
    if recovered:
        click.secho(
            f"runner: {recovered} job(s) were being submitted when the last run died; they are now IN DOUBT"
            " (the provider may have created them). See `runner status` and `runner retry MANIFEST --in-doubt`.",
            err=True, fg="yellow",
        )
    if manifest is not None and ledger.manifest_digest(manifest.name) != manifest.digest:
        _note(f"planning {manifest.path} …")
        total = ledger.register(manifest.name, manifest.digest, expand(manifest))
        _note(f"{total} job(s) in {manifest.name}")
        shared = materialise_targets(ledger, manifest.name)
        if shared:
            _note(f"{shared} video(s) already paid for by another manifest were linked into place")
    counts = ledger.counts(scope)
    in_doubt = counts[JobState.IN_DOUBT]
    if in_doubt and mode.submit and settings.in_doubt == "resubmit":
        cost = sum(job.estimated_usd for job in ledger.iter_jobs(scope, states=[JobState.IN_DOUBT]))
        click.secho(
            f"runner: resubmitting {in_doubt} in-doubt job(s) (--in-doubt resubmit): up to {cost:.2f} USD"
            " (estimate) more if the provider did create them the first time",
            err=True, fg="yellow",
        )
        ledger.reset(scope, JobState.IN_DOUBT)
    elif in_doubt:
        click.secho(
            f"runner: {in_doubt} job(s) are IN DOUBT and held: their submit may have created a paid task"
            f" whose id never arrived. Decide with `runner retry {manifest_path or 'MANIFEST'} --in-doubt`"
            " (pays again), or leave them.",
            err=True, fg="yellow",
        )
    config = EngineConfig(
        manifest=scope if mode.submit else None,
        concurrency=settings.concurrency,
        rpm=settings.rpm,
        poll_rpm=settings.poll_rpm,
        poll_interval=settings.poll_interval,
        downloads=settings.downloads,
        budget_usd=settings.budget_usd,
        retries=manifest.retries if manifest is not None else 0,
        submit=mode.submit,
        collect=mode.collect,
        max_runtime=settings.max_runtime,
    )
    try:
        try:
            result = anyio.run(_run_engine, ledger, base_url, api_key, config, scope, settings.read_timeout)
        finally:
            install_early_signal_handlers()  # asyncio put the default actions back on its way out
    except RunnerError as error:
        counts = ledger.counts(scope)
        if exit_code_for(error) != EXIT_STOPPED or not counts[JobState.IN_DOUBT]:
            raise
        # The run stopped on a provider or disk problem *and* holds jobs in doubt: the
        # operator's decision about those is what the exit code must ask for (4).
        report_error(error, verbose=is_verbose())
        return EXIT_IN_DOUBT
    return _exit_code(result, ledger.counts(scope))


async def _run_engine(
    ledger: Ledger, base_url: str, api_key: str, config: EngineConfig, scope: str | None, read_timeout: float
) -> RunResult:
    root = click.get_current_context().find_root().params
    reporter = make_reporter(ledger=ledger, manifest=scope, quiet=bool(root.get("quiet")),
                             json_lines=bool(root.get("log_json")), tty=sys.stderr.isatty())
    failure: RunnerError | None = None
    async with make_http_client(read=read_timeout,
                                max_connections=max(16, config.concurrency + config.downloads + 16)) as http:
        client = NovitaClient(http, base_url=base_url, api_key=api_key)
        engine = Engine(ledger, client, config, reporter=reporter)
        result = RunResult(reason=StopReason.FATAL)
        async with anyio.create_task_group() as tg:
            await tg.start(_watch_signals, engine)
            tg.start_soon(reporter.run)
            try:
                result = await engine.run()
            except RunnerError as error:
                # Raised in here, it would leave the task group wrapped in an ExceptionGroup
                # (a traceback); the CLI renders it as one line instead.
                failure = error
            finally:
                tg.cancel_scope.cancel()
        reporter.close(result)
    if failure is not None:
        raise failure
    if result.error is not None:
        raise result.error
    return result


async def _watch_signals(engine: Engine, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
    """The first stop signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT) stops gracefully; a second stops at once.

    SIGHUP never stops at once: a closing terminal, or a shell passing its hang-up on to its jobs,
    may send it more than once. (Writes to a stderr that is gone are dropped: see runner.cli.output.)
    """
    try:
        with anyio.open_signal_receiver(*stop_signals()) as signals:
            task_status.started()
            first = True
            async for signum in signals:
                name = signal.Signals(signum).name
                if first:  # not engine._stopping: a budget, fatal or --max-runtime stop is not a signal
                    first = False
                    click.echo(
                        f"\nrunner: {name}: finishing the submits on the wire, then stopping"
                        " (again to stop at once)", err=True,
                    )
                    engine.request_stop(StopReason.SIGNAL)
                elif signum in NEVER_AT_ONCE:
                    click.echo(f"runner: {name} again: still finishing the submits on the wire", err=True)
                else:
                    click.echo(f"runner: {name} again: stopping now", err=True)
                    # Like kill -9: SQLite keeps every committed transition; a POST on the wire is
                    # found in `submitting` next time and becomes in_doubt.
                    os._exit(EXIT_STOPPED)
    finally:
        # Closing the receiver put the default actions back (SIGHUP and SIGTERM kill, SIGQUIT dumps
        # core) while the event loop still winds down. The work is over by then: a late stop signal
        # is ignored until the CLI's own handlers are back, right after the loop returns.
        for sig in stop_signals():
            signal.signal(sig, signal.SIG_IGN)


def _exit_code(result: RunResult, counts: dict[JobState, int]) -> int:
    if counts[JobState.IN_DOUBT]:
        return EXIT_IN_DOUBT
    outstanding = sum(counts[s] for s in (JobState.PENDING, JobState.SUBMITTING, JobState.RUNNING, JobState.SUCCEEDED))
    if result.reason is not StopReason.COMPLETE or outstanding:
        return EXIT_STOPPED
    if counts[JobState.FAILED] or counts[JobState.LOST]:
        return EXIT_FAILED
    return EXIT_OK


def _manifest_arg(required: bool = True) -> Callable[[F], F]:
    return click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=required)


@click.command("run")
@_manifest_arg()
@engine_options
@guarded
def run_cmd(manifest: Path, **opts: Any) -> None:
    """Submit, poll and download every job of MANIFEST; resume where the last run stopped.

    \b
    Examples:
      runner run manifests/demo.yaml --simulate
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
      */10 * * * *  cd /srv/videos && runner submit manifests/nightly.yaml
    """
    sys.exit(drive(SUBMIT, manifest, opts))


@click.command("collect")
@_manifest_arg(required=False)
@engine_options
@guarded
def collect_cmd(manifest: Path | None, **opts: Any) -> None:
    """Poll and download every task already submitted; submit nothing.

    Without MANIFEST it collects everything outstanding in the ledger.

    \b
    Example:
      runner collect --state state/ --max-runtime 600
    """
    sys.exit(drive(COLLECT, manifest, opts))


__all__ = ["collect_cmd", "drive", "run_cmd", "submit_cmd", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE",
           "AuthError", "RunnerError", "UsageError"]
