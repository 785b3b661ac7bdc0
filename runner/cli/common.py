"""What every command shares: exit codes, error rendering, common options."""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from runner._entry import ignored_at_start, stop_signals
from runner.cli.output import reader_left
from runner.errors import (
    AuthError,
    BalanceError,
    EndpointNotFound,
    LedgerLocked,
    LedgerMissing,
    LedgerSchemaError,
    ManifestError,
    ProviderUnreachable,
    RunnerError,
    UsageError,
)

__all__ = [
    "EXIT_FAILED",
    "EXIT_IN_DOUBT",
    "EXIT_LOCKED",
    "EXIT_OK",
    "EXIT_STOPPED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "STATE_DIR_NAME",
    "STATE_HELP",
    "exit_code_for",
    "fail",
    "find_state_dir",
    "guarded",
    "is_verbose",
    "report_error",
    "resolve_state",
    "state_option",
    "warn_if_ledger_missing",
]

EXIT_OK = 0  # every job done
EXIT_FAILED = 1  # some jobs failed or were lost
EXIT_USAGE = 2  # manifest or usage error: nothing was sent
EXIT_STOPPED = 3  # stopped with work outstanding (signal, --max-runtime, budget, submit-only)
EXIT_IN_DOUBT = 4  # stopped with in-doubt jobs held for a decision
EXIT_UNREACHABLE = 5  # the provider could not be reached at all: nothing was sent (network, --base-url)
EXIT_LOCKED = 75  # another runner holds this ledger (EX_TEMPFAIL)

F = TypeVar("F", bound=Callable[..., Any])


def exit_code_for(error: RunnerError) -> int:
    """The exit code of a run that ended with ``error``.

    75 another runner holds the ledger; 2 the input must be fixed before
    anything can be sent (manifest, flags, key, a base URL with no API behind
    it, a corrupt, newer or missing ledger); 5 the provider could not be reached;
    3 otherwise: work is outstanding and a later run resumes it.
    """
    if isinstance(error, LedgerLocked):
        return EXIT_LOCKED
    if isinstance(error, (ManifestError, UsageError, AuthError, EndpointNotFound, LedgerSchemaError, LedgerMissing)):
        return EXIT_USAGE
    if isinstance(error, ProviderUnreachable):
        return EXIT_UNREACHABLE
    if isinstance(error, BalanceError):
        return EXIT_STOPPED
    return EXIT_STOPPED


def report_error(error: RunnerError, *, verbose: bool = False) -> None:
    """Print one clear line on stderr (and the cause chain with -v)."""
    click.secho(f"runner: error: {error}", err=True, fg="red")
    if isinstance(error, LedgerLocked):
        click.echo("runner: wait for it to finish, or stop it; a lock of a dead process is taken over", err=True)
    if verbose:
        cause = error.__cause__ or error.__context__
        while cause is not None:
            click.echo(f"  caused by {type(cause).__name__}: {cause}", err=True)
            cause = cause.__cause__ or cause.__context__


def fail(error: RunnerError, *, verbose: bool = False) -> None:
    """Print one clear line (and the cause chain with -v), then exit with the error's code."""
    report_error(error, verbose=verbose)
    sys.exit(exit_code_for(error))


def guarded(func: F) -> F:
    """Turn RunnerError into a message and an exit code: no traceback for user mistakes."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            result = func(*args, **kwargs)
            sys.stdout.flush()  # a reader that left shows here, not in the interpreter's last flush
            return result
        except Interrupted as interrupted:
            click.echo(f"runner: {interrupted}: stopped (no request was on the wire)", err=True)
            sys.exit(EXIT_STOPPED)
        except BrokenPipeError:
            # stdout's reader left (`runner plan m.yaml --list | head`): normal use, not an error.
            # (stderr never raises: see runner.cli.output.guard_stderr.)
            reader_left()
        except RunnerError as error:
            fail(error, verbose=is_verbose())
        except OSError as exc:
            # The last net for the machine saying no (disk full, permissions) where no adapter
            # translated it: one line, not a traceback. The ledger keeps what was recorded.
            where = f": {exc.filename}" if exc.filename else ""
            wrapped = RunnerError(f"{exc.strerror or exc}{where}; fix it and run again (nothing recorded was lost)")
            wrapped.__cause__ = exc
            fail(wrapped, verbose=is_verbose())

    return wrapper  # type: ignore[return-value]


def is_verbose() -> bool:
    """True when the command line asked for ``runner -v``."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().params.get("verbose"))


STATE_DIR_NAME = "state"
STATE_HELP = (
    "Directory holding the ledger and the outputs  [default: the first state/ folder found in the"
    " manifest's folder or above it (as git finds .git), else state/ beside the manifest; without a"
    " manifest: ./state]"
)

state_option = click.option(
    "--state",
    "state_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="RUNNER_STATE_DIR",
    show_envvar=True,
    help=STATE_HELP,
)


def resolve_state(state_dir: Path | None, manifest: Path | None = None) -> Path:
    """The state directory: ``--state`` (or RUNNER_STATE_DIR), else found from the manifest.

    Without either, a command that names a manifest uses :func:`find_state_dir`,
    so that one manifest finds its ledger from whatever directory it is run;
    a command without one (``collect`` alone, ``show``) uses ``./state``.
    Nothing is created here.
    """
    if state_dir is not None:
        return state_dir
    if manifest is None:
        return Path(STATE_DIR_NAME)
    return find_state_dir(manifest)


def find_state_dir(manifest: Path) -> Path:
    """The first ``state/`` folder in the manifest's (real) folder or one above it; else ``state/`` beside it."""
    folder = Path(os.path.realpath(manifest)).parent
    for candidate in (folder, *folder.parents):
        if (candidate / STATE_DIR_NAME).is_dir():
            return candidate / STATE_DIR_NAME
    return folder / STATE_DIR_NAME


def warn_if_ledger_missing(state: Path) -> None:
    """On stderr: ``state`` has no ledger although it shows one was used there (a run would refuse)."""
    from runner.ledger import DB_NAME, ledger_traces

    if (state / DB_NAME).exists():
        return
    traces = ledger_traces(state)
    if traces:
        click.secho(
            f"runner: warning: {state / DB_NAME} is missing, but {state} shows a ledger was used there"
            f" ({', '.join(traces)}); what follows knows nothing of it. Restore it from a backup, or"
            " check --state.",
            err=True, fg="yellow",
        )


class Interrupted(BaseException):
    """A signal arrived before the engine was running: nothing is on the wire."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


_interrupting = False


def _raise_interrupted(signum: int, frame: object) -> None:
    global _interrupting
    if _interrupting:  # already unwinding (a closing terminal may send SIGHUP twice): let it finish
        return
    _interrupting = True
    raise Interrupted(signum)


def install_early_signal_handlers() -> None:
    """Until the engine installs its own, a stop signal unwinds cleanly (open transactions roll back).

    The stop signals are SIGINT, SIGTERM, SIGHUP and SIGQUIT (see :func:`runner._entry.stop_signals`);
    one the process was started with ignored (``nohup``) is put back to ignored.
    """
    global _interrupting
    _interrupting = False
    for sig in stop_signals():
        signal.signal(sig, _raise_interrupted)
    for sig in ignored_at_start():
        signal.signal(sig, signal.SIG_IGN)


def setup_logging(*, verbose: bool, quiet: bool, log_json: bool) -> None:
    """Library code logs through `logging`; only the CLI configures it."""
    from runner.reporting import configure_logging

    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    configure_logging(level=level, json_lines=log_json)
