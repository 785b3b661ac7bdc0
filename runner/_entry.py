"""The `runner` executable: signal handlers first, then the (heavier) CLI.

A stop signal that arrives while Python is still importing must end the
process like any other early stop (exit 3, nothing sent), not with the
default action; so the handlers go in before anything else is imported.

The stop signals are SIGINT (Ctrl-C), SIGTERM (cron, systemd, kill), SIGHUP
(an ssh session that drops, a terminal window closed) and SIGQUIT (Ctrl-\\):
all four take the same graceful path. A signal the process was started with
ignored (``nohup`` ignores SIGHUP; a shell ignores SIGINT and SIGQUIT for
background jobs) stays ignored: that was the operator's choice.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import signal
import sys

from runner.distribution import DISTRIBUTION  # (a constant: imports nothing before the handlers)

EXIT_STOPPED = 3

# (SIGHUP and SIGQUIT do not exist everywhere: Windows has neither.)
STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT") if hasattr(signal, name)
)
# Signals that must not escalate a graceful stop into "stop at once": a closing terminal (or a
# shell passing its own hang-up on to its jobs) may send SIGHUP more than once.
NEVER_AT_ONCE: frozenset[signal.Signals] = frozenset(
    getattr(signal, name) for name in ("SIGHUP",) if hasattr(signal, name)
)

_handled: tuple[signal.Signals, ...] | None = None


def stop_signals() -> tuple[signal.Signals, ...]:
    """The stop signals this process handles: :data:`STOP_SIGNALS` minus those it started with ignored.

    Decided once, on the first call, before any handler is installed.
    """
    global _handled
    if _handled is None:
        _handled = tuple(s for s in STOP_SIGNALS if signal.getsignal(s) is not signal.SIG_IGN)
    return _handled


def ignored_at_start() -> tuple[signal.Signals, ...]:
    """The stop signals the process was started with ignored (they are put back to ignored)."""
    handled = stop_signals()
    return tuple(s for s in STOP_SIGNALS if s not in handled)


class EarlyStop(BaseException):
    """A stop signal before the command's work began: nothing was sent. The CLI's own early handlers
    (:mod:`runner.service.early_signals`) raise a subclass; one that escapes the command (while click
    reads its options, say) ends here, as one line and exit 3."""


_stopping = False


def _stop(signum: int, frame: object) -> None:
    global _stopping
    if _stopping:  # already unwinding: a second signal must not interrupt the unwinding
        return
    _stopping = True
    raise EarlyStop(signal.Signals(signum).name)


def _to_devnull(fd: int) -> None:
    """Point ``fd`` at /dev/null (best effort); a closed ``fd`` may be the one the open itself gets."""
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        if devnull != fd:
            os.dup2(devnull, fd)
            os.close(devnull)
    except OSError:
        pass


def _closed_streams_to_devnull() -> None:
    """A process started with stdin, stdout or stderr closed (a daemon wrapper, ``2>&-``) has ``None`` for that
    stream, and the first write, or logging's look at it, fails before any work (a batch that ran with no
    stderr exited 1 at once). Such a closed descriptor is opened on ``/dev/null``: the run goes on, unheard."""
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        if getattr(sys, name) is not None:
            continue
        try:
            os.fstat(fd)
        except OSError:
            _to_devnull(fd)
        with contextlib.suppress(OSError):  # /dev/null could not be opened either: left as it was
            setattr(sys, name, open(fd, "r" if fd == 0 else "w", encoding="utf-8", errors="backslashreplace",  # noqa: SIM115
                                    closefd=False))


def _utf8_out() -> None:
    """Write UTF-8 whatever the locale says: under a C locale Python would not coerce (``PYTHONCOERCECLOCALE=0``),
    stdout and stderr are ASCII, and the first accented prompt ended ``plan --list`` or ``export`` in a
    traceback. A file or a pipe gets the text as it is; stderr escapes what it cannot write, as it always did.

    stdout also writes a path's own bytes where the locale could not decode them (``--state états`` under such a
    locale: its name holds surrogate escapes), as ``ls`` would; ``plan``, ``runs`` and ``export`` printing that path
    ended in a UnicodeEncodeError (limits sweep, 2026-12-05)."""
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        if not encoding or not hasattr(stream, "reconfigure"):
            continue
        errors = "surrogateescape" if stream is sys.stdout else "backslashreplace"
        if encoding != "utf8" or getattr(stream, "errors", None) == "strict":
            with contextlib.suppress(ValueError, OSError):  # (an encoding given alone would make errors strict)
                stream.reconfigure(encoding="utf-8", errors=errors)


def _ignore_from_now_on() -> None:
    """The command is over: a stop signal from here on changes nothing.

    Without this, one landing while the interpreter shuts down would raise in an atexit callback
    or, once the shutdown has put the default actions back, kill the process (or dump core) after
    its exit code was decided. An ignored signal stays ignored through the shutdown.
    """
    for sig in stop_signals():
        signal.signal(sig, signal.SIG_IGN)


def _early_line(message: str, signal_name: str | None, event: str = "stopped") -> str:
    """The line for a stop before the CLI is imported (or when a module cannot be): JSON with --log-json, as every
    line then is."""
    words = sys.argv[1:]
    if "--log-json" in (words[: words.index("--")] if "--" in words else words):
        import json
        import time

        fields = {"ts": round(time.time(), 3), "level": "notice", "logger": "runner.cli", "message": message,
                  "event": event, "signal": signal_name, "exit_code": EXIT_STOPPED}
        return json.dumps({name: value for name, value in fields.items() if value is not None})
    return f"runner: {message}"


def _version_only() -> bool:
    """Whether the command line is ``runner --version`` alone: answered without importing the CLI."""
    return sys.argv[1:] == ["--version"]


def _end_now(done: SystemExit) -> None:
    """The command is over with ``done``'s exit code: end the process here, without the interpreter's teardown.

    That teardown frees every module and object one by one (tens of milliseconds for ``plan``, more for
    ``run``: issue 14) and does nothing the user needs once the exit callbacks (``atexit``: logging's last
    flush, a library's cleanup) have run and stdout and stderr are flushed; the ledger was closed and every
    commit made durable by the command itself. Returns (for the ordinary exit) when that cannot be said: an
    exit status that is not a number, a non-daemon thread still running (the interpreter waits for it),
    or an output that cannot be flushed (a reader gone: the interpreter's own handling stands).
    """
    code = 0 if done.code is None else done.code
    if not isinstance(code, int) or not -(2**31) <= code < 2**31 or _threads_running():
        return  # (a code beyond a C int: the interpreter's own rule for it stands)
    atexit._run_exitfuncs()  # run once: the ordinary exit, if taken below, finds none left
    try:
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        return
    os._exit(code & 0xFF)  # as the interpreter reports a SystemExit code


_paused = False


def _pause_collector() -> None:
    """No cyclic garbage collection while the CLI and the command's modules are imported.

    Importing them allocates tens of thousands of objects that live as long as the process, and almost no
    garbage; the collector, run every few hundred allocations, would scan them again and again for nothing.
    :func:`start_up_done` turns it back on.
    """
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def start_up_done() -> None:
    """The command's module is imported (the CLI group's callback): freeze what exists — modules, classes,
    tables, never garbage — so that no later collection scans it again (cheaper collections in a long run),
    and turn the collector back on for the command. Nothing to do unless :func:`main` paused it."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()


def _threads_running() -> bool:
    threading = sys.modules.get("threading")
    if threading is None:
        return False
    main_thread = threading.main_thread()
    return any(not thread.daemon and thread is not main_thread and thread.is_alive()
               for thread in threading.enumerate())


def main() -> None:
    if _version_only():  # as click's version option words it, without importing click (start-up: issue 14)
        from importlib.metadata import version

        print(f"runner, version {version(DISTRIBUTION)}")
        return
    # Building its first model, pydantic looks for plugins in the entry points of every installed
    # distribution; none is meant to observe runner's own validation. Its documented switch, unless the
    # environment already says (``PYDANTIC_DISABLE_PLUGINS=`` turns the discovery back on).
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    # httpx imports its own command-line client (``httpx._main``: click, rich, pygments) whenever those are
    # installed, and falls back to a stub when that import fails; runner never calls it.
    if "httpx" not in sys.modules and "httpx._main" not in sys.modules:
        sys.modules["httpx._main"] = None  # type: ignore[assignment]  # None: "cannot be imported" (the import system's rule)
    _closed_streams_to_devnull()
    _utf8_out()
    _pause_collector()
    try:
        _command()
    except SystemExit as done:
        _end_now(done)
        raise


def _command() -> None:
    for sig in stop_signals():
        signal.signal(sig, _stop)
    try:
        from runner.cli import main as cli

        # click imports the command's module (the heavy part) before the group's callback replaces
        # these handlers with the CLI's own: a signal until then is still an early stop.
        cli()
    except ImportError as exc:
        _ignore_from_now_on()
        _program_changed(exc)
    except BaseExceptionGroup as group:  # a lane of a run's task group (anyio) that met one
        imports, rest = group.split(ImportError)
        if imports is None or rest is not None:
            raise
        _ignore_from_now_on()
        _program_changed(_first_leaf(imports))
    except EarlyStop as stop:
        _ignore_from_now_on()
        try:
            print(_early_line(f"{stop}: stopped before anything was sent", str(stop)), file=sys.stderr, flush=True)
        except (OSError, ValueError):
            # The terminal is gone (SIGHUP): nobody to tell. Point stderr at /dev/null so the
            # interpreter's final flush of what could not be written does not fail too.
            _to_devnull(2)
        sys.exit(EXIT_STOPPED)
    finally:
        _ignore_from_now_on()


def _first_leaf(group: BaseExceptionGroup[ImportError]) -> ImportError:
    first = group.exceptions[0]
    return first if isinstance(first, ImportError) else _first_leaf(first)


def _program_changed(exc: ImportError) -> None:
    """A module that could not be imported mid-command: runner's (or a library's) files changed under this process —
    ``pip install -U`` or a ``git pull`` while it ran, a newer module loaded into an older process — or the install is
    broken. One line and exit 3 (run again), not a traceback: what a run recorded is kept (a POST and its record are
    one shielded step) and a job whose submit was not made ready stays pending or, written ahead, is held in doubt."""
    where = f" ({exc.name})" if exc.name else ""
    message = (f"could not import a module{where}: {type(exc).__name__}: {exc}. runner's files changed while it was"
               " running (an upgrade or a `git pull`?), or its install is broken; it stopped, what it recorded is kept"
               " (nothing more was sent): run the command again (if it says this at once, reinstall runner)")
    try:
        print(_early_line(message, None, "program_changed"), file=sys.stderr, flush=True)
    except (OSError, ValueError):
        _to_devnull(2)
    sys.exit(EXIT_STOPPED)
