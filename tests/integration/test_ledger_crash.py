"""The ledger across processes: the single-writer lock and SIGKILL at the worst moment."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from children import reap

from runner.errors import LedgerLocked
from runner.jobs import JobSpec, JobState
from runner.ledger import open_ledger

# Run in a child process; argv[1] is the state directory. It prints one line
# once its work is done, then waits (for the test to kill it or close stdin).
CHILD_PRELUDE = """
import sys
from pathlib import Path
from runner.jobs import JobSpec
from runner.ledger import open_ledger

def spec(i):
    return JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"p{i}", "duration": 5},
                         vars={}, repeat=1, output=f"{i}.mp4", estimated_usd=0.56)

ledger = open_ledger(Path(sys.argv[1]))
"""

HOLD = (
    CHILD_PRELUDE
    + """
print("locked", flush=True)
sys.stdin.read()
"""
)

MARK_RUNNING = (
    CHILD_PRELUDE
    + """
ledger.register("m", "d", [spec(0), spec(1)])
attempt = ledger.mark_submitting(spec(0).key)
ledger.mark_running(spec(0).key, attempt, task_id="task-zero", http_status=200)
ledger.mark_submitting(spec(1).key)
print("marked", flush=True)
sys.stdin.read()
"""
)


def spec(i: int) -> JobSpec:
    return JobSpec.build(
        model="kling-v3.0-pro-t2v",
        request={"prompt": f"p{i}", "duration": 5},
        vars={},
        repeat=1,
        output=f"{i}.mp4",
        estimated_usd=0.56,
    )


@pytest.fixture
def child(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    """Children started by a test; any still alive at the end are killed."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        reap(proc)


def start(children: list[subprocess.Popen[str]], code: str, state: Path) -> subprocess.Popen[str]:
    """Start ``code`` on ``state`` and wait for its one line of progress."""
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), str(state)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    children.append(proc)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        _, err = proc.communicate(timeout=30)
        pytest.fail(f"child failed before its work was done:\n{err}")
    return proc


def sigkill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def test_a_second_runner_is_refused_naming_the_holder(
    tmp_path: Path, child: list[subprocess.Popen[str]]
) -> None:
    """While one runner holds the ledger, another gets LedgerLocked saying who holds it."""
    holder = start(child, HOLD, tmp_path)
    with pytest.raises(LedgerLocked) as caught:
        open_ledger(tmp_path)
    expected = f"pid {holder.pid} on {socket.gethostname()} since "
    assert caught.value.holder is not None and caught.value.holder.startswith(expected)
    assert expected in str(caught.value) and str(tmp_path) in str(caught.value)
    with open_ledger(tmp_path, readonly=True) as reader:  # status still works
        assert reader.total() == 0
    assert holder.stdin is not None
    holder.stdin.close()  # the holder closes the ledger and exits normally
    assert holder.wait(timeout=30) == 0
    with open_ledger(tmp_path) as ledger:
        assert ledger.total() == 0


def test_two_ledgers_in_one_process_are_refused(tmp_path: Path) -> None:
    """The lock also holds inside one process, and is free again after close()."""
    with open_ledger(tmp_path), pytest.raises(LedgerLocked, match=f"pid {os.getpid()} "):
        open_ledger(tmp_path)
    open_ledger(tmp_path).close()


def test_lock_of_a_killed_runner_is_taken_over(
    tmp_path: Path, child: list[subprocess.Popen[str]]
) -> None:
    """A runner killed with SIGKILL leaves no lock behind: the next one just starts."""
    holder = start(child, HOLD, tmp_path)
    sigkill(holder)
    with open_ledger(tmp_path) as ledger:
        content = (tmp_path / "ledger.lock").read_text()
        assert content.startswith(f"{os.getpid()} {socket.gethostname()} ")
        assert ledger.total() == 0


def test_transitions_survive_sigkill_right_after_they_return(
    tmp_path: Path, child: list[subprocess.Popen[str]]
) -> None:
    """Killed just after mark_running returned, the task id is in the ledger on restart."""
    marked = start(child, MARK_RUNNING, tmp_path)
    sigkill(marked)
    with open_ledger(tmp_path) as ledger:
        running = ledger.get(spec(0).key)
        assert running is not None and running.state is JobState.RUNNING
        assert running.task_id == "task-zero"
        assert ledger.recover_expired(ledger.owner) == 1
        doubt = ledger.get(spec(1).key)
        assert doubt is not None and doubt.state is JobState.IN_DOUBT
        assert ledger.spent_usd("m") == pytest.approx(2 * 0.56)
        assert [a.outcome for a in ledger.attempts(spec(1).key)] == ["interrupted"]
