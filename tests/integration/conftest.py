"""Shared fixtures: a simulator on real loopback sockets, in a thread or in a subprocess.

- ``sim_clock``: a :class:`ManualClock` the simulator runs on (advance it, never sleep).
- ``sim``: a well-behaved :class:`Simulator` on ``sim_clock``; change knobs with ``sim.configure``.
- ``sim_server``: ``sim`` served on ``127.0.0.1:<free port>`` in a thread (``.base_url``).
- ``sim_api_key``: a key the simulator accepts (any non-empty key is, unless configured).
- ``sim_process``: a factory starting ``python -m runner.simulator`` subprocesses (wall clock).
- ``rig_factory``: builds :class:`engine_rig.Rig` (ledger + simulator + client) for engine tests.

Engine tests run on virtual time: a test that uses ``rig_factory`` runs on trio with
``trio.testing.MockClock(autojump_threshold=0)``, and the engine, the client's back-offs and the
in-process simulator all read that clock (``anyio.current_time``). Whenever every task is waiting,
the clock jumps to the next deadline, so an hour of polls, 429 back-offs and 60 s tasks takes
milliseconds (a worker thread, the download's fsync, holds the clock still: see virtual_clock.py),
and a test can use the production :class:`~runner.engine.Policy` and assert on
times. A test marked ``real_time`` (it waits on threads, processes or sockets) runs on asyncio.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import sniffio
from virtual_clock import busy_while_threads_run, virtual_clock

from runner.simulator import ManualClock, SimConfig, Simulator, SimulatorThread, sim_transport

from engine_rig import Rig

VIRTUAL_TASK_SECONDS = 45.0  # a Kling task takes minutes; the simulator's default on virtual time
LISTENING_PREFIX = "simulator listening on "


@pytest.fixture
def anyio_backend(request: pytest.FixtureRequest) -> object:
    """trio on a virtual clock for engine tests (see the module docstring); asyncio otherwise."""
    if "rig_factory" in request.fixturenames and request.node.get_closest_marker("real_time") is None:
        busy_while_threads_run(request.getfixturevalue("monkeypatch"))
        return "trio", {"clock": virtual_clock()}
    return "asyncio"


@pytest.fixture
def sim_api_key() -> str:
    return "sk-test-simulator-key"


@pytest.fixture
def sim_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sim(sim_clock: ManualClock) -> Simulator:
    return Simulator(SimConfig(), clock=sim_clock)


@pytest.fixture
def sim_server(sim: Simulator) -> Iterator[SimulatorThread]:
    with SimulatorThread(sim) as server:
        yield server


@dataclass
class SimProcess:
    """A ``python -m runner.simulator`` subprocess serving at ``base_url``."""

    proc: subprocess.Popen[str]
    base_url: str

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Signal the process and wait for it; returns its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:  # pragma: no cover - only when it hangs
                self.proc.kill()
                self.proc.wait()
            for pipe in (self.proc.stdout, self.proc.stderr):
                if pipe is not None:
                    pipe.close()


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """One line of the process's stderr, waiting at most ``timeout`` seconds."""
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], max(0.0, deadline - time.monotonic()))
        if ready:
            return proc.stderr.readline()
    raise TimeoutError(f"the simulator printed nothing within {timeout} s")


@pytest.fixture
def sim_process() -> Iterator[Callable[..., SimProcess]]:
    """Start simulator subprocesses: ``sim_process(task_seconds=0.2, p_drop=0.1)``; all stopped at teardown.

    ``task_seconds`` goes through ``--task-seconds``, other knobs through ``--config JSON``.
    """
    started: list[SimProcess] = []

    def start(*, startup_timeout: float = 20.0, **config: Any) -> SimProcess:
        args = [sys.executable, "-m", "runner.simulator", "--port", "0"]
        if "task_seconds" in config:
            args += ["--task-seconds", str(config.pop("task_seconds"))]
        if config:
            args += ["--config", json.dumps(config)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = _read_line(proc, startup_timeout)
        if not line.startswith(LISTENING_PREFIX):
            proc.kill()
            rest = proc.communicate()[1]
            raise RuntimeError(f"simulator failed to start: {line}{rest}")
        handle = SimProcess(proc, line.removeprefix(LISTENING_PREFIX).strip())
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()


@pytest.fixture
async def rig_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Rig]]:
    clients: list[httpx.AsyncClient] = []
    rigs: list[Rig] = []

    def factory(*, transport: httpx.AsyncBaseTransport | None = None, state: Path | None = None,
                client_kw: dict[str, Any] | None = None, memory: bool = False, **config: Any) -> Rig:
        virtual = sniffio.current_async_library() == "trio"
        task_seconds = VIRTUAL_TASK_SECONDS if virtual else 0.05
        sim = Simulator(SimConfig(**{"task_seconds": task_seconds, **config}), clock=anyio.current_time)
        http = httpx.AsyncClient(transport=transport or sim_transport(sim), base_url="http://sim.test")
        clients.append(http)
        rig = Rig(state or tmp_path / "state", sim, http, memory=memory, virtual=virtual, **(client_kw or {}))
        rigs.append(rig)
        return rig

    yield factory
    for rig in rigs:
        rig.ledger.close()
    for http in clients:
        await http.aclose()
