"""The `runner` process ends as soon as its command is over (issue 14, start-up and shutdown).

Once the command has returned its exit code, flushed its output and run the exit callbacks
(``atexit``: logging's last flush, a library's cleanup), nothing is left that the interpreter's own
teardown — freeing every module and object one by one, tens of milliseconds for `plan`, more for
`run` — would do for the user: the entry point ends the process there (``os._exit``). These tests
observe that through an object whose finalizer runs only in that teardown; never through a timing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "manifests" / "demo.yaml"

# The command runs through the console script's entry point. An object kept until the interpreter's
# teardown says so when it is finalized; an exit callback says it ran; with ``thread``, a non-daemon
# thread is still alive when the command ends (it ends once the main thread has).
PROBE = """
import atexit, sys, threading
class Teardown:
    def __del__(self):
        sys.__stderr__.write("TEARDOWN\\n")
kept = Teardown()
atexit.register(lambda: sys.__stderr__.write("ATEXIT\\n"))
if sys.argv[1] == "thread":
    def late():
        threading.main_thread().join()
        sys.__stderr__.write("THREAD DONE\\n")
    threading.Thread(target=late).start()
sys.argv = ["runner", *sys.argv[2:]]
from runner._entry import main
main()
"""


def _run(mode: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PROBE, mode, *args], capture_output=True, text=True, timeout=60,
                          check=False)


def test_a_finished_command_skips_the_interpreters_teardown_but_not_the_exit_callbacks(tmp_path: Path) -> None:
    proc = _run("plain", "plan", str(DEMO), "--state", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "ATEXIT" in proc.stderr  # logging's last flush and every other exit callback still run
    assert "TEARDOWN" not in proc.stderr  # the teardown did not
    lines = proc.stdout.splitlines()  # all of stdout was flushed, to its last line
    assert lines[0].startswith("demo-timelapses: 7 job(s)") and lines[-1].startswith("would take about"), proc.stdout


def test_the_exit_code_is_the_commands(tmp_path: Path) -> None:
    """A usage error (no such manifest) still exits 2 with its message, through the same quick ending."""
    proc = _run("plain", "plan", str(tmp_path / "missing.yaml"), "--state", str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert "missing.yaml" in proc.stderr and "ATEXIT" in proc.stderr and "TEARDOWN" not in proc.stderr


def test_a_thread_still_running_gets_the_ordinary_shutdown(tmp_path: Path) -> None:
    """A non-daemon thread alive when the command ends (none of runner's: a library's) is waited for, as
    the interpreter always did: the quick ending is only taken when nothing is left running."""
    proc = _run("thread", "plan", str(DEMO), "--state", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "THREAD DONE" in proc.stderr and "ATEXIT" in proc.stderr


# What the command finds when it starts: the garbage collector on, the start-up's objects frozen.
GC_PROBE = """
import gc, sys
sys.argv = ["runner", *sys.argv[1:]]
import runner.service.planning as planning
real_plan = planning.plan
def plan(*args, **kwargs):
    sys.__stderr__.write(f"GC enabled={gc.isenabled()} frozen={gc.get_freeze_count()}\\n")
    return real_plan(*args, **kwargs)
planning.plan = plan
import runner.cli.inspect as inspect
inspect.plan = plan
from runner._entry import main
main()
"""


def test_the_start_ups_objects_are_frozen_and_the_collector_is_on_for_the_command(tmp_path: Path) -> None:
    """Importing ~300 modules allocates tens of thousands of objects that live as long as the process and
    almost no garbage: the entry point keeps the cyclic garbage collector off until the command's module is
    imported, then freezes what exists (never scanned again: cheaper collections in a long run) and turns
    the collector back on for the command itself."""
    proc = subprocess.run([sys.executable, "-c", GC_PROBE, "plan", str(DEMO), "--state", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stderr.splitlines() if line.startswith("GC "))
    enabled, frozen = (word.split("=")[1] for word in line.split()[1:])
    assert enabled == "True", line
    assert int(frozen) > 10_000, line


@pytest.mark.parametrize("code", [2**31, 2**63, -(2**31) - 1, "stopped"])
def test_an_exit_status_beyond_a_c_int_takes_the_ordinary_exit(code: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """The interpreter reports a code beyond a C int its own way (2**63 exits 255, not 0): the quick ending
    leaves such codes, and a message, to it."""
    from runner import _entry

    ended: list[int] = []
    monkeypatch.setattr(_entry.os, "_exit", ended.append)
    monkeypatch.setattr(_entry.atexit, "_run_exitfuncs", lambda: None)
    _entry._end_now(SystemExit(code))
    assert ended == []
    _entry._end_now(SystemExit(3))
    assert ended == [3]
