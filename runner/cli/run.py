"""`runner run`, `runner submit`, `runner collect`: drive the engine."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.abc
import click

from runner._entry import NEVER_AT_ONCE, stop_signals
from runner.cli.balance import check_balance  # issue 12 item 2c
from runner.cli.common import (
    EXIT_FAILED,
    EXIT_IN_DOUBT,
    EXIT_OK,
    EXIT_STOPPED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    STATE_DIR_NAME,
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
    DownloadLimits,
    NovitaClient,
    api_key_from_env,
    base_url_from_env,
    make_http_client,
    provider_identity,
)
from runner.config import DEFAULTS, SETTINGS, RunSettings, default_text, liftable, resolve_settings
from runner.endpoints.media import InputResolver
from runner.errors import AuthError, LedgerError, LedgerLocked, RunnerError, UsageError
from runner.jobs import JobState
from runner.layout import orphan_folder
from runner.ledger import DB_NAME, PROVIDER_MARK, SqliteLedger, needs_realigning, open_ledger, realign_outputs
from runner.ledger.rescue import RESCUE_NAME
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


def setting_options() -> list[Callable[[F], F]]:
    """One option per run setting that has a flag, from runner.config's table: name, help and default.

    Every value is taken as text and read by :func:`runner.config.resolve_settings`, so a flag accepts
    exactly what its environment variable and the manifest's key accept ('none' lifts a liftable limit).
    """
    options: list[Callable[[F], F]] = []
    for setting in SETTINGS:
        if setting.flag is None:
            continue
        default = getattr(DEFAULTS, setting.name)
        kind: Any = str
        metavar: str | None = ("INTEGER" if isinstance(default, int) else "NUMBER") + ("|none" if liftable(setting.name) else "")
        if setting.name == "in_doubt":
            kind, metavar = click.Choice(["hold", "resubmit"], case_sensitive=False), None
        help_text = f"{setting.help.rstrip('.')} (env {setting.env}; default {default_text(setting.name)})."
        options.append(click.option(setting.flag, setting.name, type=kind, default=None, metavar=metavar,
                                    help=help_text))
    return options


def engine_options(func: F) -> F:
    options = [
        state_option,
        click.option("--base-url", default=None, help="Provider base URL (env NOVITA_BASE_URL; default https://api.novita.ai)."),
        click.option("--simulate", is_flag=True, help="Start the built-in simulator on a loopback port and run against it (no key, no network)."),
        *setting_options(),
        click.option("--sim-task-seconds", type=click.FloatRange(min=0), default=SIM_TASK_SECONDS, show_default=True,
                     help="With --simulate: how long each simulated task takes."),
        click.option("--new-ledger", "new_ledger", is_flag=True,
                     help="Start a new, empty ledger although the state directory shows one was used there"
                          " (its ledger.db is missing or empty). Every job not in the new ledger is paid again."),
        click.option("--allow-provider-change", "allow_provider_change", is_flag=True,
                     help="Use the ledger with another provider base URL than the one it was made with"
                          " (the same provider at a new address); recorded for next time."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def run_settings(manifest: Manifest | None, opts: Mapping[str, Any], environ: Mapping[str, str]) -> RunSettings:
    """The run's settings: the flags given (click's ``opts``) > ``environ`` > what the manifest says > defaults."""
    return resolve_settings(
        flags={setting.name: opts.get(setting.name) for setting in SETTINGS if setting.flag is not None},
        environ=environ,
        manifest=manifest.settings_said() if manifest is not None else {},
    )


def drive(mode: Mode, manifest_path: Path | None, opts: dict[str, Any]) -> int:
    """Load, plan into the ledger, run the engine, return the exit code.

    Everything that can be wrong with the input (manifest, flags, key, state
    directory, ledger file) is found before the first request is sent.
    """
    manifest = load_manifest(manifest_path) if manifest_path is not None else None
    settings = run_settings(manifest, opts, os.environ)
    if manifest is not None and mode.submit and settings.budget_usd is not None:
        _check_priced(manifest, settings.budget_usd)
    state_dir = resolve_state(opts.get("state_dir"), manifest_path)
    new_ledger = bool(opts.get("new_ledger"))
    if opts.get("state_dir") is None and manifest is not None and not new_ledger:
        _check_former_default(state_dir, manifest.name)
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
    opened: list[SqliteLedger] = []
    try:
        return _drive_open(mode, manifest, manifest_path, settings, opts, state_dir, base_url, api_key,
                           simulate=simulate, new_ledger=new_ledger, opened=opened)
    finally:
        rescued = opened[0].rescued if opened else None
        if rescued is not None:  # ledger.db was removed or replaced under this run (LedgerReplaced)
            click.secho(f"runner: what this run recorded is saved as {rescued.absolute()}", err=True, fg="yellow")


def _check_priced(manifest: Manifest, budget: float) -> None:
    """A budget cannot be kept for jobs of no known price (estimated at 0): refuse them unless priced."""
    unpriced = manifest.unpriced_models()
    if unpriced:
        example = f"{{{unpriced[0]}: {{per_second: …, per_second_sound: …}}}}"
        raise UsageError(
            f"a budget of {budget:g} USD cannot be kept: no price is known for {', '.join(unpriced)}, whose jobs"
            f" would count as free. Give one in {manifest.display_path} (e.g. pricing: {example}, USD per output"
            " second), or run without a budget (nothing was sent)"
        )


def _drive_open(
    mode: Mode, manifest: Manifest | None, manifest_path: Path | None, settings: RunSettings, opts: dict[str, Any],
    state_dir: Path, base_url: str, api_key: str, *, simulate: bool, new_ledger: bool, opened: list[SqliteLedger],
) -> int:
    with contextlib.ExitStack() as stack:
        # Without a manifest (collect alone) there is nothing a new ledger could hold: never make one.
        ledger = stack.enter_context(_open_ledger(state_dir, new_ledger=new_ledger,
                                                  create=manifest is not None or new_ledger))
        opened.append(ledger)
        if ledger.created:
            click.echo(f"runner: created a new ledger at {ledger.path.absolute()}", err=True)
        _check_provider_kind(state_dir, ledger, simulate=simulate, base_url=base_url,
                             allow_change=bool(opts.get("allow_provider_change")))
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


SIMULATOR = "simulator"  # what a ledger made with --simulate records (its port changes every run)
PROVIDER_META = "provider"  # the ledger's meta key: SIMULATOR or the provider's base URL
_MARK_KINDS = {SIMULATOR: SIMULATOR, "novita": "novita"}  # the provider mark beside the ledger (older runners)


def _check_provider_kind(state_dir: Path, ledger: SqliteLedger, *, simulate: bool, base_url: str,
                         allow_change: bool = False) -> None:
    """One ledger, one provider: its tasks exist only there. Another provider would not find them (it would
    call them lost) and could be paid for them again, so a ledger records the provider it was made with —
    ``simulator`` for --simulate, else the base URL — and refuses another unless ``allow_change``.

    Older ledgers have only the mark file beside them (``simulator`` or ``novita``): it is still read,
    and the base URL is recorded at the first run that uses one.
    """
    current = SIMULATOR if simulate else provider_identity(base_url)
    mark = state_dir / PROVIDER_MARK
    try:
        recorded = ledger.meta(PROVIDER_META)
        legacy = _MARK_KINDS.get(mark.read_text(encoding="utf-8").strip()) if mark.exists() else None
        if recorded is None and legacy == SIMULATOR:
            recorded = SIMULATOR
        elif recorded is None and legacy == "novita" and simulate:
            recorded = "the real API (a ledger made before runner recorded base URLs)"
        if recorded is not None and recorded != current and ledger.has_provider_tasks() and not allow_change:
            raise UsageError(
                f"the ledger {ledger.path} was made with {_describe_provider(recorded)}; this run would use"
                f" {_describe_provider(current)}, which does not know its tasks (it would call them lost, or pay"
                " for them again). Use the same provider, another --state directory, or --allow-provider-change"
                " if it is the same provider at a new address (nothing was sent)"
            )
        if recorded != current:
            ledger.set_meta(PROVIDER_META, current)
        kind = SIMULATOR if simulate else "novita"
        if legacy != kind:
            mark.write_text(kind + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot use {mark}: {exc.strerror or exc} (nothing was sent)") from exc


def _describe_provider(identity: str) -> str:
    return "--simulate (the built-in simulator)" if identity == SIMULATOR else identity


def _check_former_default(state_dir: Path, manifest_name: str) -> None:
    """Refuse a new ledger for a manifest whose jobs are in ./state, where runner looked before it
    followed the manifest's folder: running on would pay for that batch again."""
    former = Path(STATE_DIR_NAME)
    if (state_dir / DB_NAME).exists() or not (former / DB_NAME).exists():
        return
    if os.path.realpath(former) == os.path.realpath(state_dir):
        return
    try:
        with open_ledger(former, readonly=True) as old:
            known = old.manifest_digest(manifest_name) is not None
    except LedgerError:
        return
    if known:
        raise UsageError(
            f"the jobs of {manifest_name!r} are in the ledger at {former.absolute()} (the current directory's"
            f" state/), but without --state runner now uses the state/ folder found from the manifest:"
            f" {state_dir}, which has no ledger. Pass --state {former} to go on with the first, or --new-ledger"
            " to start another (nothing was sent)"
        )


def _open_ledger(state_dir: Path, *, new_ledger: bool = False, create: bool = True) -> SqliteLedger:
    """Open the ledger for writing; a state directory or ledger file we cannot use is a usage error.

    Nothing has been sent yet, so the operator fixes ``--state`` (or moves the
    file aside) and runs again. Another runner holding the lock stays
    :class:`~runner.errors.LedgerLocked` (exit 75).
    """
    try:
        return open_ledger(state_dir, new_ledger=new_ledger, create=create)
    except LedgerLocked:
        raise
    except LedgerError as exc:
        raise UsageError(f"{exc} (nothing was sent)") from exc


def _finish_run(ledger: SqliteLedger, run_id: int, exit_code: int, scope: str | None, *, failing: bool) -> None:
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
    mode: Mode, manifest: Manifest | None, settings: RunSettings, ledger: SqliteLedger, base_url: str, api_key: str,
    *, manifest_path: Path | None,
) -> int:
    scope = manifest.name if manifest is not None else None
    rescued = ledger.apply_rescue()
    if rescued:
        _note(f"{rescued} task id(s) the last run could not record (the ledger was not writable) were recorded"
              f" from {ledger.state_dir / RESCUE_NAME}; those jobs are running")
    recovered = ledger.recover_expired(ledger.owner)
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
        _realign(ledger, manifest.name)
        shared = materialise_targets(ledger, manifest.name)
        if shared:
            _note(f"{shared} video(s) already paid for by another manifest were linked into place")
    elif manifest is not None and needs_realigning(ledger, manifest.name):
        _realign(ledger, manifest.name)
        materialise_targets(ledger, manifest.name)
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
    config = EngineConfig.from_settings(
        settings,
        manifest=scope if mode.submit else None,
        retries=manifest.retries if manifest is not None else 0,
        submit=mode.submit,
        collect=mode.collect,
    )
    try:
        try:
            inputs = manifest.input_resolver() if manifest is not None else None  # local input files
            result = anyio.run(_run_engine, ledger, base_url, api_key, config, scope, settings, inputs)
        finally:
            install_early_signal_handlers()  # asyncio put the default actions back on its way out
    except RunnerError as error:
        counts = ledger.counts(scope)
        if exit_code_for(error) not in (EXIT_STOPPED, EXIT_UNREACHABLE) or not counts[JobState.IN_DOUBT]:
            raise
        # The run stopped on a provider or disk problem *and* holds jobs in doubt: the
        # operator's decision about those is what the exit code must ask for (4).
        report_error(error, verbose=is_verbose())
        return EXIT_IN_DOUBT
    orphans = ledger.orphans(scope) if scope is not None else {}  # without a scope, counts cover them
    return _exit_code(result, ledger.counts(scope), orphans)


def _realign(ledger: SqliteLedger, manifest: str) -> None:
    """Stored videos to the names the (edited) manifest gives them; say plainly what could not be renamed."""
    done = realign_outputs(ledger, manifest)
    if done.renamed:
        _note(f"renamed {done.renamed} stored video(s) to the names {manifest} gives them now")
    if done.moved_aside:
        _note(f"moved {done.moved_aside} stored video(s) of jobs {manifest} no longer lists to"
              f" {orphan_folder(manifest)} to make room")
    for line in done.blocked[:5]:
        click.secho(f"runner: {line}", err=True, fg="yellow")
    if done.blocked:
        more = f" ({len(done.blocked) - 5} more not shown)" if len(done.blocked) > 5 else ""
        click.secho(f"runner: {len(done.blocked)} stored video(s) do not match the names in {manifest}{more};"
                    " each run tries again, `runner status` counts them", err=True, fg="yellow")


async def _run_engine(
    ledger: SqliteLedger, base_url: str, api_key: str, config: EngineConfig, scope: str | None, settings: RunSettings,
    inputs: InputResolver | None = None,
) -> RunResult:
    root = click.get_current_context().find_root().params
    reporter = make_reporter(ledger=ledger, manifest=scope, quiet=bool(root.get("quiet")),
                             json_lines=bool(root.get("log_json")), tty=sys.stderr.isatty())
    failure: RunnerError | None = None
    async with make_http_client(read=settings.read_timeout,
                                max_connections=max(16, config.concurrency + config.downloads + 16)) as http:
        limits = DownloadLimits(max_bytes=settings.download_max_bytes, timeout_s=settings.download_timeout)
        client = NovitaClient(http, base_url=base_url, api_key=api_key, download_limits=limits)
        if config.submit:  # issue 12 item 2c: refuse a batch the account balance cannot pay (runner.cli.balance)
            await check_balance(client, ledger, scope, settings)
        engine = Engine(ledger, client, config, reporter=reporter, inputs=inputs)
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


def _exit_code(result: RunResult, counts: dict[JobState, int], orphans: dict[JobState, int] | None = None) -> int:
    """The run's exit code from the manifest's jobs, and from the paid jobs an edit dropped from it
    (orphans): the run is not complete while one of those is still to be stored, and a lost one counts."""
    orphans = orphans or {}
    if counts[JobState.IN_DOUBT]:
        return EXIT_IN_DOUBT
    outstanding = sum(counts[s] for s in (JobState.PENDING, JobState.SUBMITTING, JobState.RUNNING, JobState.SUCCEEDED))
    outstanding += sum(orphans.get(s, 0) for s in (JobState.SUBMITTING, JobState.RUNNING, JobState.SUCCEEDED))
    if result.reason is not StopReason.COMPLETE or outstanding:
        return EXIT_STOPPED
    if counts[JobState.FAILED] or counts[JobState.LOST] or orphans.get(JobState.LOST):
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

    Without MANIFEST it collects everything outstanding in the ledger of --state (default ./state)
    and never creates one; with MANIFEST the default is the state/ folder found from its folder.

    \b
    Example:
      runner collect --state state/ --max-runtime 600
    """
    sys.exit(drive(COLLECT, manifest, opts))


__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "AuthError", "RunnerError", "UsageError", "collect_cmd", "drive",
           "run_cmd", "submit_cmd"]
