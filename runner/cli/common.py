"""What every command shares: exit codes, error rendering, common options.

The exit codes (defined in :mod:`runner.service.outcome`, so a library user gets the same answers):
0 every job done; 1 some failed or lost; 2 manifest or usage error (nothing sent); 3 stopped with work
outstanding (signal, --max-runtime, budget, submit-only); 4 in-doubt jobs held for a decision;
5 the provider could not be reached (nothing sent); 6 the state directory or its ledger could not be written;
75 another runner holds the ledger; 130 stopped at once by a second stop signal (Ctrl-C twice: a submit cut
off on the wire is held as in doubt next time).
The README's exit-code tables list every one (tests/unit/test_cli_exit_table.py).
"""

from __future__ import annotations

import errno
import functools
import logging
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click

from runner.cli.output import OutputNotWritten, reader_left
from runner.client.names import BASE_URL_ENV, DEFAULT_BASE_URL
from runner.errors import DiskError, LedgerLocked, RunnerError
from runner.service.early_signals import Interrupted, install_early_signal_handlers
from runner.service.outcome import (
    EXIT_FAILED,
    EXIT_FORCED,
    EXIT_IN_DOUBT,
    EXIT_LOCAL,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_STOPPED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    Notice,
    exit_code_for,
    exit_code_for_os_error,
)
from runner.service.state import STATE_DIR_NAME, find_state_dir, ledger_missing_warning, resolve_state, use_ledger_url
from runner.storage.api import whole_disk_fix

__all__ = [
    "EXIT_FAILED",
    "EXIT_FORCED",
    "EXIT_IN_DOUBT",
    "EXIT_LOCAL",
    "EXIT_LOCKED",
    "EXIT_OK",
    "EXIT_STOPPED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "MANIFEST_PATH",
    "STATE_DIR_NAME",
    "STATE_HELP",
    "Interrupted",
    "base_url_option",
    "cli_notify",
    "exit_code_for",
    "fail",
    "find_state_dir",
    "guarded",
    "install_early_signal_handlers",
    "is_verbose",
    "ledger_option",
    "report_error",
    "resolve_state",
    "say",
    "state_option",
    "warn_if_ledger_missing",
]

F = TypeVar("F", bound=Callable[..., Any])


class ManifestPath(click.Path):
    """A manifest file that exists; a folder given instead is refused naming the manifests in it."""

    def __init__(self) -> None:
        super().__init__(exists=True, dir_okay=False, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        folder = Path(value) if isinstance(value, (str, Path)) else None
        if folder is not None and folder.is_dir():
            found = sorted(path for pattern in ("*.yaml", "*.yml") for path in folder.glob(pattern) if path.is_file())
            shown = ", ".join(str(path) for path in found[:5]) + (", …" if len(found) > 5 else "")
            self.fail(f"{folder} is a folder; " + (f"give one manifest in it: {shown}" if found
                                                    else "give a manifest file (.yaml)"), param, ctx)
        return super().convert(value, param, ctx)


MANIFEST_PATH = ManifestPath()


_NOTICE = 25  # runner.reporting.logs.NOTICE (not imported here: the CLI starts light)
_LEVELS = {"info": logging.INFO, "notice": _NOTICE, "warning": logging.WARNING, "error": logging.ERROR}
_log = logging.getLogger("runner.cli")


def say(text: str, level: str = "info", *, event: str | None = None, fields: Mapping[str, Any] | None = None) -> None:
    """One line on stderr, as every line is written (``--log-json``: a JSON object; plain: ``runner: text``,
    timestamped in a cron log; ``-q`` drops ``info``). Leading newlines are kept on a terminal only."""
    if not logging.getLogger("runner").handlers:  # a command run without the group (tests): plain lines
        setup_logging(verbose=False, quiet=False, log_json=False)
    body = text.lstrip("\n")
    extra: dict[str, Any] = {"lead": text[: len(text) - len(body)]}
    if event is not None or fields:
        extra["event"] = {**({"event": event} if event is not None else {}), **(fields or {})}
    _log.log(_LEVELS.get(level, logging.INFO), "%s", body, extra=extra)


_WAIT_FOR_THE_RUN = frozenset({"regenerate", "retry", "adopt"})  # commands a run's lock refuses, unlike accept/reject


_ENGINE_COMMANDS = frozenset({"run", "submit", "collect"})  # a tick of these finding a run at work is no error


def report_error(error: RunnerError, *, verbose: bool = False) -> None:
    """Print one clear line on stderr (and the cause chain with -v)."""
    if isinstance(error, LedgerLocked) and error.stopped is None and _command() in _ENGINE_COMMANDS:
        _leave_it_to_the_other_run(error)
        return
    say(f"error: {error}", "error", event="error", fields={"error_type": type(error).__name__})
    if isinstance(error, LedgerLocked):
        say("(a lock left by a process that died is taken over by the next command: no need to remove it)",
            "error")
        if _command() in _WAIT_FOR_THE_RUN and error.command in (None, *_ENGINE_COMMANDS):
            say("(`runner accept` and `runner reject` work during a run: their decisions are queued and the run saves"
                " them within seconds; this command waits for the run)", "error")
    if verbose:
        cause = error.__cause__ or error.__context__
        while cause is not None:
            say(f"  caused by {type(cause).__name__}: {cause}", "error")
            cause = cause.__cause__ or cause.__context__


def _command() -> str | None:
    context = click.get_current_context(silent=True)
    return None if context is None else context.command.name


def _leave_it_to_the_other_run(error: LedgerLocked) -> None:
    """A run, submit or collect that finds another at work on its ledger (a cron tick overlapping the last run): the
    README's "exit 75, nothing to do", said as such, and nothing under -q, which mails nothing when all is well. (A
    holder that is stopped is an error: :func:`report_error` says so on every tick.)"""
    where = "" if error.folder is None else f" in {error.folder}"
    fields = {"holder": error.holder, "command": error.command, "exit_code": EXIT_LOCKED}
    if error.command is not None and error.command not in _ENGINE_COMMANDS:  # `runner verify`: not the batch's work
        say(f"`runner {error.command}` holds the ledger{where} ({error.holder}): this run ends, nothing was sent (exit"
            f" {EXIT_LOCKED}); the next run goes on from the ledger once it has finished (or stop it)", event="locked",
            fields=fields)
    else:
        say(f"another runner is at work on the ledger{where} ({error.holder}): this run leaves the work to it and"
            f" ends; nothing was sent (exit {EXIT_LOCKED}: nothing to do, the next run goes on from the ledger)",
            event="locked", fields=fields)
    say("(a lock left by a process that died is taken over by the next command: no need to remove it)")


def fail(error: RunnerError, *, verbose: bool = False) -> None:
    """Print one clear line (and the cause chain with -v), then exit with the error's code."""
    report_error(error, verbose=verbose)
    sys.exit(exit_code_for(error))


def _name_the_command() -> None:
    """What the ledger's lock line says holds it (`runner verify`, `runner ledger copy`), for a command refused."""
    from runner.process_command import running

    running(" ".join(_command_words()))


def _command_words() -> list[str]:
    """The command's words (``ledger``, ``copy``), the root's name (``python -m runner``) left out."""
    ctx = click.get_current_context(silent=True)
    names: list[str] = []
    while ctx is not None and ctx.parent is not None:
        names.insert(0, ctx.info_name or "")
        ctx = ctx.parent
    return names


def guarded(func: F) -> F:
    """Turn RunnerError into a message and an exit code: no traceback for user mistakes."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _name_the_command()
        try:
            result = func(*args, **kwargs)
            sys.stdout.flush()  # a reader that left shows here, not in the interpreter's last flush
            return result
        except Interrupted as interrupted:
            say(f"{interrupted}: stopped; no paid request was on the wire (a look-up or a download cut costs nothing);"
                f" {_again()}", "notice", event="stopped",
                fields={"signal": str(interrupted)})
            sys.exit(EXIT_STOPPED)
        except BrokenPipeError:
            # stdout's reader left (`runner plan m.yaml --list | head`): normal use, not an error.
            # (stderr never raises: see runner.cli.output.guard_stderr.)
            reader_left()
        except RunnerError as error:
            fail(error, verbose=is_verbose())
        except OutputNotWritten as exc:  # stdout itself (`> file` on a full disk): not the state directory
            kind = DiskError if exit_code_for_os_error(exc) == EXIT_LOCAL else RunnerError
            not_written = kind(f"cannot write this command's output to its standard output ({exc.strerror or exc}):"
                               " what it printed is incomplete (the state directory is not the cause). "
                               + ("R" + whole_disk_fix(exc.errno)[1:] if exc.errno == errno.EFBIG else
                                  "Give it room where stdout goes (or send it elsewhere) and run again"))
            not_written.__cause__ = exc
            fail(not_written, verbose=is_verbose())
        except OSError as exc:
            # The last net for the machine saying no (disk full, permissions) where no adapter
            # translated it: one line, not a traceback. The ledger keeps what was recorded. A refusal
            # that the next run meets again (a state directory of another user, a full or read-only
            # disk) is exit 6: someone must act, and a cron unit that takes 3 as success would not say.
            where = f": {exc.filename}" if exc.filename else ""
            local = exit_code_for_os_error(exc) == EXIT_LOCAL
            fix = ("fix it (the owner or permissions of the file or folder named, often the state directory's, or"
                   " space on its disk) and run again" if local else "fix it and run again")
            if exc.errno == errno.EMFILE:
                fix = "raise the open-file limit this process runs under (`ulimit -n`, systemd's LimitNOFILE=) and run again"
            kind = DiskError if local else RunnerError
            wrapped = kind(f"{exc.strerror or exc}{where}; {fix} (nothing recorded was lost)")
            wrapped.__cause__ = exc
            fail(wrapped, verbose=is_verbose())

    return wrapper  # type: ignore[return-value]


def _again() -> str:
    """What a command stopped by a signal says to do next: it may have stopped between two of its steps (a rejected
    video moved aside, the job not yet requeued; a ledger copy marked, not committed), which the same command finishes."""
    command = " ".join(["runner", *_command_words()])
    return f"what it finished is kept: run the same `{command}` again to finish"


def is_verbose() -> bool:
    """True when the command line asked for ``runner -v``."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().params.get("verbose"))


STATE_HELP = (
    "Directory holding the ledger and the outputs  [default: the first state/ folder found in the"
    " manifest's folder or above it (as git finds .git), else state/ beside the manifest; without a"
    " manifest: ./state]"
)

_state_dir_option = click.option(
    "--state",
    "state_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="RUNNER_STATE_DIR",
    show_envvar=True,
    help=STATE_HELP + "; with --ledger: where the videos are stored (shared by the runners of a batch)",
)


LEDGER_URL_ENV = "RUNNER_LEDGER_URL"  # runner.ledger.factory's (not imported here: the CLI starts light)


def _choose_ledger(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value:
        from runner.ledger.factory import check_url

        try:
            check_url(value)
        except RunnerError as exc:
            raise click.BadParameter(str(exc).split("; ")[0], ctx=ctx, param=param) from None
    use_ledger_url(value)


ledger_option = click.option(
    "--ledger",
    "ledger_url",
    metavar="URL",
    default=None,
    envvar=LEDGER_URL_ENV,
    show_envvar=True,
    expose_value=False,
    is_eager=True,
    callback=_choose_ledger,
    help="A PostgreSQL ledger shared by runners on several hosts: postgresql://user@host:port/dbname (the"
         " password from the URL, PGPASSWORD or ~/.pgpass; never printed)  [default: the SQLite ledger in --state]",
)


def state_option(func: F) -> F:
    """``--state DIR`` and ``--ledger URL``: where a command finds its ledger (and its videos)."""
    return _state_dir_option(ledger_option(func))
base_url_option = click.option(
    "--base-url", default=None, help=f"Provider base URL (env {BASE_URL_ENV}; default {DEFAULT_BASE_URL})."
)


def warn_if_ledger_missing(state: Path) -> None:
    """On stderr: ``state`` has no ledger although it shows one was used there (a run would refuse)."""
    warning = ledger_missing_warning(state)
    if warning is not None:
        say(warning, "warning")


def cli_notify(notice: Notice) -> None:
    """Render a service's :class:`~runner.service.Notice` on stderr: progress (``info``) is silent with
    ``runner -q``; warnings are yellow; an error is one red line (and its causes with -v)."""
    if notice.level == "error" and notice.error is not None:
        report_error(notice.error, verbose=is_verbose())
        return
    fields = dict(notice.fields or {})
    event = fields.pop("event", None)
    say(notice.text, notice.level, event=None if event is None else str(event), fields=fields)


# The commands a scheduler starts: their plain lines carry a wall-clock timestamp when no terminal reads them.
STAMPED_COMMANDS = frozenset({"run", "submit", "collect"})


def setup_logging(*, verbose: bool, quiet: bool, log_json: bool, no_progress: bool = False,
                  command: str | None = None) -> None:
    """Library code logs through `logging`; only the CLI configures it (every stderr line goes through it).

    ``run``, ``submit`` and ``collect`` write cron-friendly lines when stderr is not a terminal, or with
    ``--no-progress`` or ``-q``: each starts with a wall-clock timestamp.
    """
    from runner.reporting import configure_logging

    tty = sys.stderr.isatty() and not no_progress
    level = logging.DEBUG if verbose else _NOTICE if quiet else logging.INFO
    stamps = command in STAMPED_COMMANDS and (not tty or quiet)
    configure_logging(level=level, json_lines=log_json, tty=tty, stamps=stamps)
