"""Operator and OS signals: SIGHUP (an ssh drop, a closed terminal) and SIGQUIT stop as gently as SIGTERM.

Real subprocesses, real signals, a simulator on loopback whose books say what was paid.
While POSTs are on the wire, any stop signal lets them finish and be recorded: exit 3, zero in doubt.
Before the engine starts (importing, loading, planning), it ends the run with exit 3 and nothing sent.
"""

from __future__ import annotations

import contextlib
import os
import pty
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from test_cli_support import (
    KEY,
    SIX_JOBS,
    ProviderFactory,
    clean_env,
    counts,
    finish_cli,
    provider,
    read_until,
    run_args,
    start_cli,
    wait_for,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest

STOP_SIGNALS = [signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM, signal.SIGINT]


def _ids(sig: signal.Signals) -> str:
    return sig.name




@pytest.mark.parametrize("sig", STOP_SIGNALS, ids=_ids)
def test_a_stop_signal_while_posts_are_on_the_wire_stops_gracefully(
    tmp_path: Path, provider: ProviderFactory, sig: signal.Signals
) -> None:
    """SIGHUP / SIGQUIT (like SIGTERM, SIGINT) while POSTs are on the wire: exit 3, zero in doubt, all recorded."""
    sim = provider(task_seconds=60.0, p_slow=1.0, slow_seconds=0.5)
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    proc = start_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    wait_for(lambda: sim.accepted() >= 1, what="a paid task whose response is still on the wire")
    proc.send_signal(sig)
    stderr = finish_cli(proc)
    assert proc.returncode == 3, stderr
    assert "Traceback" not in stderr and sig.name in stderr, stderr
    found = counts(state)
    assert "in_doubt" not in found and "submitting" not in found, found
    assert found["running"] == sim.accepted() >= 1  # every paid task is recorded with its task_id


def test_sighup_twice_from_a_closing_terminal_is_still_graceful(tmp_path: Path, provider: ProviderFactory) -> None:
    """A closing terminal may send SIGHUP more than once: a second SIGHUP does not turn into 'stop at once'."""
    sim = provider(task_seconds=60.0, p_slow=1.0, slow_seconds=1.0)
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    proc = start_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    wait_for(lambda: sim.accepted() >= 1, what="a paid task whose response is still on the wire")
    proc.send_signal(signal.SIGHUP)
    head = read_until(proc, "finishing the submits on the wire")
    proc.send_signal(signal.SIGHUP)
    stderr = head + finish_cli(proc)
    assert proc.returncode == 3, stderr
    found = counts(state)
    assert "in_doubt" not in found and "submitting" not in found, found
    assert found["running"] == sim.accepted() >= 1


def test_sighup_after_the_terminal_closed_is_graceful(tmp_path: Path, provider: ProviderFactory) -> None:
    """The run's terminal is gone (writes fail with EIO) and SIGHUP comes: exit 3, zero in doubt, no crash."""
    sim = provider(task_seconds=60.0, p_slow=1.0, slow_seconds=0.5)
    manifest = write_manifest(tmp_path, SIX_JOBS, name="six.yaml")
    state = tmp_path / "state"
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", *run_args("run", manifest, state, *sim.engine_args("--concurrency", "2"))],
        cwd=tmp_path, env=clean_env({"NOVITA_API_KEY": KEY}), stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
    )
    os.close(slave)
    os.set_blocking(master, False)

    def drained_and_paid() -> bool:  # read the display as a terminal would, so the runner never blocks on it
        with contextlib.suppress(BlockingIOError, OSError):
            os.read(master, 65536)
        return sim.accepted() >= 1

    try:
        wait_for(drained_and_paid, what="a paid task whose response is still on the wire")
        os.close(master)  # the terminal window is closed: every later write to it fails with EIO
        proc.send_signal(signal.SIGHUP)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 3
    found = counts(state, "six")
    assert "in_doubt" not in found and "submitting" not in found, found
    assert found["running"] == sim.accepted() >= 1


# Starts the CLI like `runner` does and sends the process a signal of its own at a chosen point
# before the engine runs: while `runner.cli` is imported, or halfway through planning the jobs.
_EARLY = """\
import os, sys
sig, where = int(sys.argv[1]), sys.argv[2]
sys.argv = ['runner', *sys.argv[3:]]
if where in ('import', 'command', 'options'):
    # 'import': while the CLI is imported; 'command': while the command's own module is (click
    # imports it on first use, before the group's callback installs the early handlers); 'options':
    # while click reads the command's options (--ledger URL imports the PostgreSQL module to check it)
    import builtins
    real_import = builtins.__import__
    target = {'import': 'runner.cli', 'command': 'runner.service.running',
              'options': 'runner.ledger.postgres.connection'}[where]
    def hook(name, *args, **kwargs):
        if name == target:
            builtins.__import__ = real_import
            os.kill(os.getpid(), sig)
        return real_import(name, *args, **kwargs)
    builtins.__import__ = hook
else:
    import runner.service.replanning as run  # where a run plans the manifest
    real_expand = run.expand
    def expand(manifest):
        for index, job in enumerate(real_expand(manifest)):
            if index == 2:
                os.kill(os.getpid(), sig)
            yield job
    run.expand = expand
from runner._entry import main
main()
"""


@pytest.mark.parametrize("where", ["import", "command", "options", "planning"])
@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM], ids=_ids)
def test_a_stop_signal_before_the_engine_starts_exits_3_with_nothing_sent(
    tmp_path: Path, provider: ProviderFactory, sig: signal.Signals, where: str
) -> None:
    """A stop signal while importing (the CLI, then the command), reading the options or planning: exit 3,
    one line naming it, nothing sent, no traceback."""
    sim = provider()
    manifest = write_manifest(tmp_path, SIX_JOBS, name="six.yaml")
    state = tmp_path / "state"
    ledger = ["--ledger", "postgresql://nobody@127.0.0.1:9/never"] if where == "options" else []  # never reached
    proc = subprocess.run(
        [sys.executable, "-c", _EARLY, str(int(sig)), where,
         *run_args("run", manifest, state, *sim.engine_args(), *ledger)],
        cwd=tmp_path, env=clean_env({"NOVITA_API_KEY": KEY}), capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 3, proc.stderr
    assert sig.name in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert sim.accepted() == 0
    if (state / "ledger.db").exists():
        found = counts(state, "six")
        assert set(found) <= {"pending"}, found  # planning rolled back or finished; nothing in flight


def test_sighup_under_nohup_stays_ignored(tmp_path: Path, provider: ProviderFactory) -> None:
    """Started with SIGHUP ignored (`nohup runner run …`): a hang-up does not stop the run; it finishes (exit 0)."""
    sim = provider(task_seconds=0.3)
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    nohup = ("import os, signal, sys\n"  # what nohup does: ignore SIGHUP, then exec the command
             "signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
             "os.execv(sys.executable, [sys.executable, '-m', 'runner', *sys.argv[1:]])\n")
    proc = subprocess.Popen(
        [sys.executable, "-c", nohup, *run_args("run", manifest, state, *sim.engine_args())],
        cwd=tmp_path, env=clean_env({"NOVITA_API_KEY": KEY}), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    wait_for(lambda: sim.accepted() >= 1, what="the first paid task")
    proc.send_signal(signal.SIGHUP)
    stderr = finish_cli(proc)
    assert proc.returncode == 0, stderr
    assert counts(state) == {"done": 3}


# Sends the process a signal of its own while the engine winds down: its task group is over (the
# signal receiver closed) but the event loop has not returned yet — the reporter's last word.
_WINDING_DOWN = """\
import os, sys
sig = int(sys.argv[1])
sys.argv = ['runner', *sys.argv[2:]]
import runner.service.running as run
real_make_reporter = run.make_reporter
def make_reporter(**kwargs):
    reporter = real_make_reporter(**kwargs)
    close = reporter.close
    def closing(result):
        os.kill(os.getpid(), sig)
        close(result)
    reporter.close = closing
    return reporter
run.make_reporter = make_reporter
from runner._entry import main
main()
"""


# Sends the process a signal of its own from inside a callback of the event loop, while the balance is asked
# (after the loop started, before the engine's own handlers): the early handler's exception, raised in the
# callback, was swallowed by asyncio ("Exception in callback") — or by the HTTP parser's callback — and the run
# went on to pay for the whole batch (the i2v torture's stop sweep, SIGQUIT at 0.9 and 1.3 s).
_IN_A_CALLBACK = """\
import asyncio, os, sys, time
sig = int(sys.argv[1])
sys.argv = ['runner', *sys.argv[2:]]
import runner.service.running as run
real_check_balance = run.check_balance
async def check_balance(*args, **kwargs):
    def deliver():
        os.kill(os.getpid(), sig)
        time.sleep(0.05)  # the handler runs inside this callback
    asyncio.get_running_loop().call_soon(deliver)
    await asyncio.sleep(0.2)
    return await real_check_balance(*args, **kwargs)
run.check_balance = check_balance
from runner._entry import main
main()
"""


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM], ids=_ids)
def test_a_stop_signal_in_an_event_loop_callback_before_the_engine_is_heeded(
    tmp_path: Path, provider: ProviderFactory, sig: signal.Signals
) -> None:
    proc, state = _run_script(_IN_A_CALLBACK, sig, tmp_path, provider)
    assert proc.returncode == 3, proc.stderr
    assert sig.name in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert set(counts(state)) <= {"pending"}, proc.stderr  # nothing sent


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM], ids=_ids)
def test_a_stop_signal_while_the_engine_winds_down_is_harmless(
    tmp_path: Path, provider: ProviderFactory, sig: signal.Signals
) -> None:
    """A stop signal after the work is done, while the event loop winds down: no default action, exit 0."""
    proc, state = _run_script(_WINDING_DOWN, sig, tmp_path, provider)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert counts(state) == {"done": 3}


def _run_script(script: str, sig: signal.Signals, tmp_path: Path,
                provider: ProviderFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run ``runner run`` through ``script`` (which arranges for ``sig`` to arrive); returns it and its state."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    proc = subprocess.run(
        [sys.executable, "-c", script, str(int(sig)), *run_args("run", manifest, state, *sim.engine_args())],
        cwd=tmp_path, env=clean_env({"NOVITA_API_KEY": KEY}), capture_output=True, text=True, timeout=60,
        check=False,
    )
    return proc, state


# Sends the process a signal of its own as it exits (an atexit callback): the command is over.
_EXITING = """\
import atexit, os, sys
sig = int(sys.argv[1])
sys.argv = ['runner', *sys.argv[2:]]
atexit.register(lambda: os.kill(os.getpid(), sig))
from runner._entry import main
main()
"""


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM], ids=_ids)
def test_a_stop_signal_as_the_process_exits_changes_nothing(
    tmp_path: Path, provider: ProviderFactory, sig: signal.Signals
) -> None:
    """A stop signal while the interpreter shuts down: the exit code stands, no traceback, no default action."""
    proc, state = _run_script(_EXITING, sig, tmp_path, provider)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    assert counts(state) == {"done": 3}
