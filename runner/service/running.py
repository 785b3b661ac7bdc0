"""Run a manifest: load it, open its ledger, plan, recover, apply the in-doubt policy, drive the engine,
and say how it ended (:class:`~runner.service.outcome.Outcome`) — what ``runner run``, ``submit`` and
``collect`` do, callable without the command line.

Everything that can be wrong with the input (manifest, settings, key, state directory, ledger file)
is found before the first request is sent, and raised as a :class:`~runner.errors.RunnerError`
(its exit code: :func:`~runner.service.outcome.exit_code_for`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from runner.client import (
    API_KEY_ENV,
    DownloadLimits,
    NovitaClient,
    api_key_from_env,
    base_url_from_env,
    make_http_client,
)
from runner.client.connection import provider_identity
from runner.config import RunSettings
from runner.endpoints.media import InputResolver
from runner.engine import Engine, EngineConfig, Policy, RunResult, StopReason
from runner.engine.chores import Chore
from runner.errors import LedgerError, RunnerError, UsageError
from runner.jobs import JobState
from runner.ledger import LedgerBackend, needs_realigning
from runner.ledger.factory import in_doubt_hold, is_shared, lease_ttl
from runner.ledger.rescue import RESCUE_NAME, pending_entries, reserve
from runner.manifest import Manifest, load_manifest
from runner.manifest.sourcefiles import EditWatch
from runner.reporting import make_reporter
from runner.reporting.logs import flush_repeats
from runner.service.balance import check_balance
from runner.service.early_signals import Interrupted, defer_early_signals, pending_signal
from runner.service.ending import ending_of, exit_code_of
from runner.service.hints import budget_stop, ledger_words, runner_command
from runner.service.ledger_book import guard_new_ledger
from runner.service.live_review import LiveReview, review_save_every
from runner.service.missing_videos import say_missing
from runner.service.open_files import fit
from runner.service.opening import header, open_for_run, path_of, say_created, without_passwords
from runner.service.outcome import (
    EXIT_IN_DOUBT,
    EXIT_LOCAL,
    EXIT_OK,
    EXIT_STOPPED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    Notice,
    Notify,
    Outcome,
    exit_code_for,
    exit_code_for_os_error,
)
from runner.service.provider import SIMULATOR, check_provider_kind
from runner.service.reboot_warning import warn_emptied_at_boot
from runner.service.regenerate_stopped import finish_stopped_regenerates
from runner.service.replanned import PlanWatch
from runner.service.replanning import plan_edit, realign
from runner.service.run_record import finish_run, remove_partials_after_crash
from runner.service.settings import budget_for, settings_for
from runner.service.signals import install_early_signal_handlers, watch_signals
from runner.service.simulated import simulator_for
from runner.service.state import check_ledger_elsewhere, ledger_url, resolve_state
from runner.service.unsent import reopen_unsent

__all__ = ["COLLECT", "RUN", "SIM_KEY", "SIM_TASK_SECONDS", "SUBMIT", "Mode", "RunOptions", "exit_code_of", "prepare",
           "run", "settings_for"]

SIM_TASK_SECONDS = 3.0
SIM_KEY = "simulated-key"


@dataclass(frozen=True, slots=True)
class Mode:
    name: str
    submit: bool
    collect: bool


RUN = Mode("run", submit=True, collect=True)
SUBMIT = Mode("submit", submit=True, collect=False)
COLLECT = Mode("collect", submit=False, collect=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    """How to run, beyond the manifest. ``settings`` are the run settings said explicitly (setting name →
    value, as its flag would say it: ``{"rpm": "none", "concurrency": 8}``); they win over the environment,
    which wins over the manifest (see :mod:`runner.config`)."""

    state_dir: Path | None = None  # with a PostgreSQL ledger: where the videos are stored
    ledger_url: str | None = None  # a PostgreSQL ledger (else --ledger, RUNNER_LEDGER_URL; None: SQLite in state_dir)
    settings: Mapping[str, Any] = field(default_factory=dict)
    environ: Mapping[str, str] | None = None  # None: os.environ
    base_url: str | None = None
    simulate: bool = False  # the built-in simulator on a loopback port: no key, no network
    sim_task_seconds: float = SIM_TASK_SECONDS
    new_ledger: bool = False
    allow_provider_change: bool = False
    argv: Sequence[str] | None = None  # what the ledger's run history records (default: sys.argv)
    quiet: bool = False  # progress: none
    json_lines: bool = False  # progress as JSON lines on stderr
    tty: bool = False  # progress as a live view
    handle_signals: bool = False  # SIGINT/SIGTERM/SIGHUP/SIGQUIT stop the run gracefully (the CLI's choice)


def _collector(notify: Notify | None, messages: list[Notice]) -> Notify:
    def say(notice: Notice) -> None:
        messages.append(notice)
        if notify is not None:
            notify(notice)

    return say


def run(manifest_path: Path | None, options: RunOptions | None = None, *, mode: Mode = RUN,
        notify: Notify | None = None) -> Outcome:
    """Plan ``manifest_path`` into its ledger (if it changed), then submit, poll and download (``mode``).

    Without a manifest (``mode=COLLECT`` only) it collects what the ledger of ``options.state_dir`` holds.
    Raises :class:`~runner.errors.RunnerError` for anything found before the engine ran, or that stopped
    it without in-doubt jobs to decide on; every other ending is the returned :class:`Outcome`.
    """
    options = options or RunOptions()
    if manifest_path is None and mode.submit:
        raise UsageError(f"{mode.name} needs a manifest")
    messages: list[Notice] = []
    say = _collector(notify, messages)
    environ = os.environ if options.environ is None else options.environ
    manifest = load_manifest(manifest_path) if manifest_path is not None else None
    settings = settings_for(manifest, options.settings, environ)
    if manifest is not None and mode.submit:
        budget_for(manifest, options.settings, environ).check_priced()
    state_dir = resolve_state(options.state_dir, manifest_path)
    if manifest is not None and not options.new_ledger and not ledger_url(options.ledger_url):
        check_ledger_elsewhere(state_dir, manifest, manifest_path, explicit=options.state_dir is not None,
                               simulate=options.simulate)
    base_url = ""  # with simulate: known once the simulator listens
    if options.simulate:
        api_key = environ.get(API_KEY_ENV) or SIM_KEY
    else:
        base_url = base_url_from_env(options.base_url, environ)
        try:
            api_key = api_key_from_env(environ)
        except UsageError as exc:
            raise UsageError(f"{exc}, or add --simulate to run against the built-in simulator, which needs"
                             " no key") from exc
    opened: list[LedgerBackend] = []
    try:
        outcome = _run_open(mode, manifest, manifest_path, settings, options, state_dir, base_url, api_key,
                            say=say, opened=opened)
    finally:
        rescued = getattr(opened[0], "rescued", None) if opened else None
        if rescued is not None:  # ledger.db was removed or replaced under this run (LedgerReplaced)
            say(Notice(f"what this run recorded is saved as {rescued.absolute()}", "warning"))
    outcome.messages = messages
    return outcome


def prepare(manifest_path: Path, options: RunOptions | None = None, *, notify: Notify | None = None) -> Outcome:
    """Everything ``run`` does before the engine starts, and nothing after: the manifest's jobs planned into
    its ledger, recovery, the in-doubt policy. Sends no request; the Outcome's counts are the ledger's."""
    options = options or RunOptions()
    messages: list[Notice] = []
    say = _collector(notify, messages)
    manifest = load_manifest(manifest_path)
    settings = settings_for(manifest, options.settings, os.environ if options.environ is None else options.environ)
    state_dir = resolve_state(options.state_dir, manifest_path)
    url = ledger_url(options.ledger_url)
    if not options.new_ledger and url is None:
        check_ledger_elsewhere(state_dir, manifest, manifest_path, explicit=options.state_dir is not None)
    warn_emptied_at_boot(state_dir, say, ledger_in_database=url is not None)
    with open_for_run(state_dir, new_ledger=options.new_ledger, url=url) as ledger:
        say_created(ledger, say)
        _prepare(SUBMIT, manifest, settings, ledger, say, manifest_path=manifest_path, options=options)
        counts = {str(state): n for state, n in ledger.counts(manifest.name).items()}
        return Outcome(EXIT_OK, counts=counts, messages=messages, ledger_path=path_of(ledger))


def _run_open(
    mode: Mode, manifest: Manifest | None, manifest_path: Path | None, settings: RunSettings, options: RunOptions,
    state_dir: Path, base_url: str, api_key: str, *, say: Notify, opened: list[LedgerBackend],
) -> Outcome:
    say(header(mode.name, manifest_path, state_dir, ledger_url(options.ledger_url)))
    warn_emptied_at_boot(state_dir, say, ledger_in_database=ledger_url(options.ledger_url) is not None)
    with contextlib.ExitStack() as stack:
        # Without a manifest (collect alone) there is nothing a new ledger could hold: never make one.
        ledger = stack.enter_context(open_for_run(state_dir, new_ledger=options.new_ledger,
                                                  create=manifest is not None or options.new_ledger,
                                                  url=ledger_url(options.ledger_url)))
        opened.append(ledger)
        say_created(ledger, say)
        check_provider_kind(state_dir, ledger, simulate=options.simulate, base_url=base_url,
                            allow_change=options.allow_provider_change)
        if options.simulate:
            base_url = stack.enter_context(simulator_for(ledger, options.sim_task_seconds, say))
        argv = without_passwords(options.argv if options.argv is not None else [Path(sys.argv[0]).name, *sys.argv[1:]])
        remove_partials_after_crash(ledger, state_dir, say)
        run_id = ledger.start_run(argv=argv)
        scope = manifest.name if manifest is not None else None
        exit_code = EXIT_STOPPED  # unless we learn better: a signal, or a crash, leaves work outstanding
        failing = True
        try:
            environ = os.environ if options.environ is None else options.environ
            review = LiveReview(ledger, say, every=review_save_every(environ))  # saves the review queue as the run goes
            exit_code, result = _run_ledger(mode, manifest, settings, ledger, base_url, api_key, options, say,
                                            manifest_path=manifest_path, review=review)
            failing = False
            review.save_now(wait=True)  # decided on the review page (or accept/reject) since the run's last look
            counts = {str(state): n for state, n in ledger.counts(scope).items()}
            return Outcome(exit_code, counts=counts, result=result, ledger_path=path_of(ledger))
        except RunnerError as error:
            exit_code = exit_code_for(error)
            raise
        except OSError as exc:  # the CLI's last net says it; the run's record says the same code
            exit_code = exit_code_for_os_error(exc)
            raise
        finally:
            finish_run(ledger, run_id, exit_code, scope, say, failing=failing)
    raise AssertionError("unreachable")  # pragma: no cover - the ExitStack does not swallow


def _prepare(mode: Mode, manifest: Manifest | None, settings: RunSettings, ledger: LedgerBackend, say: Notify, *,
             manifest_path: Path | None, options: RunOptions) -> None:
    """Before the engine: rescued task ids, recovery, the plan if the manifest changed, the in-doubt policy."""
    scope = manifest.name if manifest is not None else None
    retry, told = runner_command("retry", manifest_path or "MANIFEST", state_dir=options.state_dir,
                                 ledger=options.ledger_url, environ=options.environ)  # this ledger, as printed
    told = f"; {told}" if told else ""
    rescued = ledger.apply_rescue()
    if rescued:
        say(Notice(f"{rescued} task id(s) the last run could not record (the ledger was not writable) were recorded"
                   f" from {ledger.state_dir / RESCUE_NAME}; those jobs are running"))
    recovered = ledger.recover_expired(ledger.owner)
    reserve(ledger.state_dir)  # room for the journal if the disk fills while task ids arrive (after the replay's)
    if recovered:
        say(Notice(f"{recovered} job(s) were being submitted when the last run died; they are now IN DOUBT"
                   f" (the provider may have created them). Decide with `{retry} --in-doubt` (pays again{told}).",
                   "warning"))
    if manifest is not None:
        plan_edit(ledger, manifest, say)
        finish_stopped_regenerates(ledger, manifest.name, say, manifest_path=manifest_path, state_dir=options.state_dir,
                                   ledger_url=options.ledger_url, environ=options.environ)
    if manifest is not None and mode.submit:
        reopen_unsent(ledger, manifest.name, say)
    in_doubt = ledger.counts(scope)[JobState.IN_DOUBT]
    if in_doubt and mode.submit and settings.in_doubt == "resubmit":
        cost = sum(job.estimated_usd for job in ledger.iter_jobs(scope, states=[JobState.IN_DOUBT]))
        say(Notice(f"resubmitting {in_doubt} in-doubt job(s) (--in-doubt resubmit): up to {cost:.2f} USD"
                   " (estimate) more if the provider did create them the first time", "warning"))
        ledger.reset(scope, JobState.IN_DOUBT)
    elif in_doubt:
        say(Notice(f"{in_doubt} job(s) are IN DOUBT and held: their submit may have created a paid task"
                   f" whose id never arrived. Decide with `{retry} --in-doubt` (pays again{told}), or leave them.",
                   "warning"))


def _run_ledger(
    mode: Mode, manifest: Manifest | None, settings: RunSettings, ledger: LedgerBackend, base_url: str, api_key: str,
    options: RunOptions, say: Notify, *, manifest_path: Path | None, review: LiveReview,
) -> tuple[int, RunResult | None]:
    scope = manifest.name if manifest is not None else None
    _prepare(mode, manifest, settings, ledger, say, manifest_path=manifest_path, options=options)
    if mode.submit and manifest is not None and not options.simulate:  # another ledger here planned these jobs?
        guard_new_ledger(ledger, manifest.name, provider=provider_identity(base_url), new_ledger=options.new_ledger,
                         say=say, command=mode.name, manifest=manifest_path,
                         url=ledger_url(options.ledger_url))  # the user's book: os.environ's home
    environ = os.environ if options.environ is None else options.environ
    words, note = ledger_words(options.state_dir, ledger_url(options.ledger_url), environ)
    config = EngineConfig.from_settings(
        settings,
        manifest=scope if mode.submit else None,
        retries=manifest.retries if manifest is not None else 0,
        submit=mode.submit,
        collect=mode.collect,
        shared_ledger=is_shared(ledger),
        policy=Policy(lease_ttl_s=lease_ttl(environ), in_doubt_hold_s=in_doubt_hold(environ)),
        manifest_file=None if manifest_path is None else str(manifest_path),
        ledger_words=words,
        ledger_note=note,
    )
    try:
        try:
            inputs = manifest.input_resolver(deferred=True) if manifest is not None else None  # local input files
            edited = None if manifest is None else PlanWatch(EditWatch(manifest), ledger, manifest.name, manifest.digest)
            chores = () if is_shared(ledger) else (review.chore(),)  # a shared ledger queues no decision
            result = anyio.run(_run_engine, ledger, base_url, api_key, config, scope, settings, options, say, inputs,
                               edited, chores)
        finally:
            if options.handle_signals:
                install_early_signal_handlers()  # asyncio put the default actions back on its way out
    except RunnerError as error:
        if rescued := len(pending_entries(ledger.state_dir)):
            say(Notice(f"{rescued} accepted task id(s) are kept in {ledger.state_dir / RESCUE_NAME}, not in the ledger"
                       " yet: the next run from a host that shares this state directory records them", "warning"))
        try:
            counts, code = ledger.counts(scope), exit_code_for(error)
        except LedgerError:  # the ledger cannot be read now (its server went away): the run's own error is told
            raise error from None
        paid = sum(counts[state] for state in (JobState.SUBMITTING, JobState.RUNNING, JobState.SUCCEEDED))
        if paid and code == EXIT_USAGE:  # a key revoked mid-run, a ledger refused (a pooler, a role): not "nothing was sent"
            fixed = "on a ledger it may write (the error below says what to change)" if isinstance(error, LedgerError) \
                else "with a working key and base URL"
            say(Notice(f"{paid} task(s) already paid for are recorded (running or ready to download): the next run"
                       f" {fixed} collects them, paying for nothing twice", "warning"))
        if code not in (EXIT_STOPPED, EXIT_UNREACHABLE, EXIT_LOCAL) or not counts[JobState.IN_DOUBT]:
            raise
        # The run stopped on a provider or disk problem *and* holds jobs in doubt: the
        # operator's decision about those is what the exit code must ask for (4).
        say(Notice(str(error), "error", error=error))
        return EXIT_IN_DOUBT, None
    if manifest is not None and needs_realigning(ledger, manifest.name):
        # a video stored beside its name (held by one of a job the manifest dropped, e.g. after a prompt or input
        # image edit) takes it now, the other going to _orphans: not only at the next run's planning
        realign(ledger, manifest.name, say)
    orphans = ledger.orphans(scope) if scope is not None else {}  # without a scope, counts cover them
    counts = ledger.counts(scope)
    exit_code = exit_code_of(result, counts, orphans)
    if mode.collect:  # done jobs whose video was deleted or moved since: said while a download pays nothing
        say_missing(ledger, scope, say, manifest_path=manifest_path, state_dir=options.state_dir,
                    ledger_url=options.ledger_url, environ=environ, simulated=options.simulate)
    if (exit_code == EXIT_STOPPED and result.reason is StopReason.COMPLETE and not mode.submit
            and counts[JobState.PENDING]):
        # The engine's word is "complete" (nothing left to collect); the exit code says work is outstanding.
        # the same ledger and provider as printed: a bare `runner run MANIFEST` after `collect --state DIR` planned
        # the batch into the manifest's own state/ and paid for every job again
        run, told = runner_command("run", manifest_path or "MANIFEST", state_dir=options.state_dir, environ=environ,
                                   ledger=options.ledger_url,
                                   provider=SIMULATOR if options.simulate else provider_identity(base_url))
        say(Notice(f"collected everything submitted; {counts[JobState.PENDING]} job(s) still pending (collect"
                   f" submits nothing), hence exit 3: `{run}` or `runner submit` with the same options sends them"
                   + (f" ({told})" if told else ""), "notice"))
    if exit_code == EXIT_STOPPED and result.reason is StopReason.BUDGET and manifest is not None \
            and counts[JobState.PENDING]:  # how to go on: the budget's source, what the rest costs, the command
        said = budget_for(manifest, options.settings, environ).said
        say(Notice(budget_stop(manifest.name, said, left=counts[JobState.PENDING],
                               left_usd=ledger.estimate_usd(scope, [JobState.PENDING]), spent_usd=ledger.spent_usd(scope),
                               manifest_path=manifest_path, state_dir=options.state_dir, ledger=options.ledger_url,
                               environ=environ, provider=SIMULATOR if options.simulate else provider_identity(base_url)), "notice"))
    return exit_code, result


async def _run_engine(
    ledger: LedgerBackend, base_url: str, api_key: str, config: EngineConfig, scope: str | None, settings: RunSettings,
    options: RunOptions, say: Notify, inputs: InputResolver | None = None,
    edited: Callable[[], str | None] | None = None, chores: Sequence[Chore] = (),
) -> RunResult:
    if options.handle_signals:
        defer_early_signals()  # a stop signal in the loop's callbacks is remembered, asked below and by watch_signals
    reporter = make_reporter(ledger=ledger, manifest=scope, quiet=options.quiet, json_lines=options.json_lines,
                             tty=options.tty)
    failure: RunnerError | None = None
    opened = fit(max(16, config.concurrency + config.download_workers + 16), config.download_workers)
    if opened.notice is not None:  # fewer at once than asked: the open-file limit (runner/service/open_files.py)
        say(Notice(opened.notice, "warning", fields={"event": "open_file_limit"}))
        config = dataclasses.replace(config, downloads=opened.downloads)
    async with make_http_client(read=settings.read_timeout, max_connections=opened.connections) as http:
        limits = DownloadLimits(max_bytes=settings.download_max_bytes, timeout_s=settings.download_timeout)
        client = NovitaClient(http, base_url=base_url, api_key=api_key, download_limits=limits)
        if config.submit:  # refuse a batch the account balance cannot pay
            await check_balance(client, ledger, scope, settings, say)
        if options.handle_signals and (early := pending_signal()) is not None:
            raise Interrupted(early)  # nothing sent yet: the early stop, as before the loop
        engine = Engine(ledger, client, config, reporter=reporter, inputs=inputs, edited=edited, chores=chores)
        result = RunResult(reason=StopReason.FATAL)
        async with anyio.create_task_group() as tg:
            if options.handle_signals:
                await tg.start(watch_signals, engine, say)
            tg.start_soon(reporter.run)
            try:
                result = await engine.run()
            except RunnerError as error:
                # Raised in here, it would leave the task group wrapped in an ExceptionGroup
                # (a traceback); the caller gets it as it is instead.
                failure = error
            finally:
                tg.cancel_scope.cancel()
        flush_repeats()  # the counts of repeated warnings, before the summary
        result.ending = ending_of(ledger, scope, result, submits=config.submit)
        reporter.close(result)
    if failure is not None:
        raise failure
    if result.error is not None:
        raise result.error
    return result
