"""Whose PID a ledger's lock line names (runner/ledger/holder.py): a PID is this host's only when the line's host name
AND its boot are this machine's. Two machines often share a name (VMs or images never renamed: ``ubuntu``; containers
started with one ``--hostname``; a StatefulSet's ``runner-0`` in two clusters), and a machine restarted keeps its name:
a PID written there, or before the restart, was read as a process here — an unrelated process stopped here was named
as the stopped runner to ``kill`` (a state directory on a shared folder, locked by the other machine), an unrelated
live one as a run using a ledger (a copy of a folder whose run a reboot had killed was refused, waiting for nobody).
The other machine is simulated the way it is seen: a line naming this host with another boot id."""

from __future__ import annotations

import fcntl
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
from runner.errors import LedgerLocked
from runner.host import pid_space
from runner.ledger.holder import live_holder, stopped_holder
from runner.ledger.lock import LedgerLock

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


@pytest.mark.parametrize(("space", "said"), [(ANOTHER_BOOT, "on another machine named"),
                                             (ANOTHER_CONTAINER, "in another container on")])
def test_a_lock_held_from_another_machine_or_container_of_this_name_is_said_as_such_not_as_a_pid_here(
    tmp_path: Path, space: str, said: str
) -> None:
    """A state directory on a shared folder (or volume) locked by a run on another machine of this host name, or in
    another container of this kernel with this --hostname: the refusal said "pid N on HOST", and PID N here is some
    unrelated process, which an operator told to "stop it" would kill. It names the holder as what it is, with its
    PID as that machine's or container's, and the refusal names no `kill`."""
    held = os.getppid()  # a live process here: what the PID would wrongly name
    lock = tmp_path / "ledger.lock"
    lock.write_text(_line(held, space), encoding="utf-8")
    holder = os.open(lock, os.O_RDWR)  # the other machine's lock, seen as a lock on the file
    try:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(LedgerLocked) as refused:
            LedgerLock.acquire(lock)
        message = str(refused.value)
        assert said in message and f"pid {held} on" not in message and "kill" not in message, message
        assert f"{said} {socket.gethostname()}" in str(refused.value.holder), refused.value.holder
        lock.write_text(_line(held, pid_space()), encoding="utf-8")  # this space's: the process it is, as before
        with pytest.raises(LedgerLocked) as here:
            LedgerLock.acquire(lock)
        assert f"pid {held} on {socket.gethostname()}" in str(here.value), here.value
    finally:
        os.close(holder)


@pytest.mark.parametrize(("tail", "said"), [("", "another runner holds"),  # an older runner's line: no command
                                            (" cmd=run", "another `runner run` holds"),
                                            (" cmd=verify", "`runner verify` holds"),
                                            (" cmd=ledger%20copy creating", "`runner ledger copy` holds")])
def test_a_refusal_names_the_command_the_holder_runs(tmp_path: Path, tail: str, said: str) -> None:
    """A ledger held by `runner verify` or `runner ledger copy` was refused as held by "another runner": its lock line
    records the command now (after its PID space, before `creating`), and a line without one reads as before."""
    from runner.ledger.lock import is_creation_lock

    lock = tmp_path / "ledger.lock"
    lock.write_text(_line(os.getppid(), pid_space()).rstrip("\n") + tail + "\n", encoding="utf-8")
    holder = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(LedgerLocked) as refused:
            LedgerLock.acquire(lock)
    finally:
        os.close(holder)
    assert str(refused.value).startswith(f"{said} the ledger in {tmp_path} (pid {os.getppid()} on"), refused.value
    assert refused.value.command == (tail.split("=")[1].split()[0].replace("%20", " ") if tail else None)
    assert is_creation_lock(lock) == tail.endswith("creating")
