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
from runner.ledger.holder import live_holder, stopped_holder

pytestmark = pytest.mark.skipif(boot_id() is None or not Path("/proc/self/stat").exists(),
                                reason="Linux's boot id and /proc")

ANOTHER_BOOT = "00000000-0000-4000-8000-000000000000"


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


def _line(pid: int, boot: str | None) -> str:
    return f"{pid} {socket.gethostname()} 2026-12-06T00:00:00Z" + ("" if boot is None else f" boot={boot}") + "\n"


def _unlocked(tmp_path: Path, line: str) -> int:
    """The lock file as a holder /proc/locks does not list left it (another machine's, on a shared folder)."""
    lock = tmp_path / "ledger.lock"
    lock.write_text(line, encoding="utf-8")
    return os.open(lock, os.O_RDONLY)


def test_a_pid_another_machine_of_the_same_name_wrote_is_not_called_a_stopped_runner_here(
    tmp_path: Path, stopped: int
) -> None:
    """The refused run said "another runner … is stopped: `kill -CONT PID`, or end it with `kill PID`" of a process
    here that holds nothing: an operator following it killed an unrelated process."""
    fd = _unlocked(tmp_path, _line(stopped, ANOTHER_BOOT))
    try:
        assert stopped_holder(fd, _line(stopped, ANOTHER_BOOT)) is None
        assert stopped_holder(fd, _line(stopped, boot_id())) == stopped  # this boot's: the process it is
        assert stopped_holder(fd, _line(stopped, None)) == stopped  # an older runner's line: its name, as before
    finally:
        os.close(fd)


def test_a_pid_written_on_another_boot_is_not_a_live_holder(tmp_path: Path) -> None:
    """A run killed by a reboot (or on another machine of this name) left its line; its PID now names some live
    process here: not a run holding the ledger."""
    alive = os.getpid()
    os.close(_unlocked(tmp_path, _line(alive, ANOTHER_BOOT)))
    assert live_holder(tmp_path / "ledger.lock") is None
    os.close(_unlocked(tmp_path, _line(alive, boot_id())))
    assert live_holder(tmp_path / "ledger.lock") == alive
