"""Whose PID a ledger's lock line names (runner/ledger/holder.py): a PID is this host's only when the line's host name
AND its boot are this machine's. Two machines often share a name (VMs or images never renamed: ``ubuntu``; containers
started with one ``--hostname``; a StatefulSet's ``runner-0`` in two clusters), and a machine restarted keeps its name:
a PID written there, or before the restart, was read as a process here — an unrelated process stopped here was named
as the stopped runner to ``kill`` (a state directory on a shared folder, locked by the other machine), an unrelated
live one as a run using a ledger (a copy of a folder whose run a reboot had killed was refused, waiting for nobody).
The other machine is simulated the way it is seen: a line naming this host with another boot id."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.boot import boot_id
from runner.host import pid_space
from runner.ledger.holder import live_holder, stopped_holder

pytestmark = pytest.mark.skipif(pid_space() is None or not Path("/proc/self/ns/pid").exists(),
                                reason="Linux's boot id and /proc")

ANOTHER_BOOT = "00000000-0000-4000-8000-000000000000"  # another machine of this name, or this one before a restart
ANOTHER_CONTAINER = f"{boot_id()}/4026500000"  # this kernel, another PID namespace


def _state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    return stat[stat.rfind(")") + 1:].split()[0]


@pytest.fixture
def stopped() -> Iterator[int]:
    """A process of this machine stopped by SIGSTOP (some shell's Ctrl-Z): nothing to do with any ledger."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        child.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + 30
        while _state(child.pid) != "T":
            assert time.monotonic() < deadline, "the child never stopped"
            time.sleep(0.01)  # the kernel's state change, not a duration under test
        yield child.pid
    finally:
        child.kill()
        child.wait(timeout=30)


def _line(pid: int, space: str | None) -> str:
    return f"{pid} {socket.gethostname()} 2026-12-06T00:00:00Z" + ("" if space is None else f" pids={space}") + "\n"


def _unlocked(tmp_path: Path, line: str) -> int:
    """The lock file as a holder /proc/locks does not list left it (another machine's, on a shared folder)."""
    lock = tmp_path / "ledger.lock"
    lock.write_text(line, encoding="utf-8")
    return os.open(lock, os.O_RDONLY)


@pytest.mark.parametrize("space", [ANOTHER_BOOT, ANOTHER_CONTAINER])
def test_a_pid_another_machine_of_the_same_name_wrote_is_not_called_a_stopped_runner_here(
    tmp_path: Path, stopped: int, space: str
) -> None:
    """The refused run said "another runner … is stopped: `kill -CONT PID`, or end it with `kill PID`" of a process
    here that holds nothing: an operator following it killed an unrelated process."""
    fd = _unlocked(tmp_path, _line(stopped, space))
    try:
        assert stopped_holder(fd, _line(stopped, space)) is None
        assert stopped_holder(fd, _line(stopped, pid_space())) == stopped  # this space's: the process it is
        assert stopped_holder(fd, _line(stopped, boot_id())) == stopped  # a boot id alone (no namespace to read)
        assert stopped_holder(fd, _line(stopped, None)) == stopped  # an older runner's line: its name, as before
    finally:
        os.close(fd)


@pytest.mark.parametrize("space", [ANOTHER_BOOT, ANOTHER_CONTAINER])
def test_a_pid_written_on_another_boot_is_not_a_live_holder(tmp_path: Path, space: str) -> None:
    """A run killed by a reboot (or on another machine or container of this name) left its line; its PID now names
    some live process here: not a run holding the ledger."""
    alive = os.getpid()
    os.close(_unlocked(tmp_path, _line(alive, space)))
    assert live_holder(tmp_path / "ledger.lock") is None
    os.close(_unlocked(tmp_path, _line(alive, pid_space())))
    assert live_holder(tmp_path / "ledger.lock") == alive
