"""A ledger, a simulator and a client wired together for engine tests (the ``rig_factory`` fixture is in conftest.py)."""
from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import sniffio

from runner.client import NovitaClient
from runner.config import RunSettings
from runner.engine import Engine, EngineConfig, Policy
from runner.jobs import JobSpec, JobState
from runner.ledger import LedgerBackend, MemoryLedger, SqliteLedger, open_ledger
from runner.simulator import Simulator
from runner.storage import OutputStore

MODEL = "kling-v3.0-pro-t2v"


def make_jobs(n: int, *, prompt: str = "clip {i}", start: int = 0) -> list[JobSpec]:
    jobs = []
    for i in range(start, start + n):
        body = {"prompt": prompt.format(i=i), "duration": 5, "cfg_scale": 0.5, "aspect_ratio": "16:9", "sound": False}
        jobs.append(JobSpec.build(model=MODEL, request=body, vars={"i": i}, repeat=1, output=f"clip-{i}.mp4",
                                  estimated_usd=0.56))
    return jobs


def guard(timeout: float) -> contextlib.AbstractContextManager[object]:
    """``anyio.fail_after(timeout)`` on the wall clock; nothing on virtual time (pytest-timeout guards it).

    On virtual time a deadline would fire while the engine waits on a thread (the download's fsync):
    every task is blocked, so the clock jumps to the nearest deadline, which may be this one.
    """
    if sniffio.current_async_library() == "trio":
        return contextlib.nullcontext()
    return anyio.fail_after(timeout)


def loop_wall() -> Callable[[], float]:
    """A wall clock (seconds since the epoch) that advances with the event loop's clock, virtual or not."""
    wall0, loop0 = time.time(), anyio.current_time()
    return lambda: wall0 + anyio.current_time() - loop0


class Wall:
    """An injected wall clock: real time plus an offset a test moves (a step of the clock); and the machine's boot, its
    id and steady clock (``CLOCK_BOOTTIME``), which time going by moves (:meth:`later`) and a step does not."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset
        self.boot_id, self.steady = "boot-1", 1000.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def boot(self) -> tuple[str, float]:
        return self.boot_id, time.monotonic() + self.steady

    def later(self, seconds: float) -> None:
        """``seconds`` go by (the wall clock and the steady clock both move)."""
        self.offset += seconds
        self.steady += seconds

    def reboot(self) -> None:
        self.boot_id, self.steady = f"{self.boot_id}+", 0.0


_POLICY_FIELDS = {field.name for field in dataclasses.fields(Policy)}


def engine_config(**options: Any) -> EngineConfig:
    """An EngineConfig from run settings and Policy fields by name (a fast policy for tests)."""
    tuning = {name: options.pop(name) for name in list(options) if name in _POLICY_FIELDS}
    return EngineConfig(**options, policy=Policy(**tuning))


# On the wall clock the engine gets a fast policy; on virtual time, the production one.
FAST_ENGINE: dict[str, Any] = {"poll_interval": 0.02, "poll_max_interval": 0.1}
FAST_CLIENT: dict[str, Any] = {"backoff_base": 0.001, "backoff_max": 0.01}


class Rig:
    """A ledger, a simulator and a client; ``virtual``: the test runs on virtual time (production delays)."""

    def __init__(self, state: Path, sim: Simulator, http: httpx.AsyncClient, *, memory: bool = False,
                 virtual: bool = False, **client_kw: Any) -> None:
        self.state = state
        self.sim = sim
        self.http = http
        self.virtual = virtual
        kw = {**({} if virtual else FAST_CLIENT), **client_kw}
        self.client = NovitaClient(http, base_url="http://sim.test", api_key="test-key", **kw)
        # The in-memory backend (``memory=True``) runs the same engine without SQLite.
        if memory:
            self.state.mkdir(parents=True, exist_ok=True)  # the SQLite backend makes it when it opens
        self.ledger: SqliteLedger = (
            MemoryLedger(state_dir=self.state) if memory else open_ledger(self.state)  # type: ignore[assignment]
        )
        self.backend: LedgerBackend = self.ledger
        self.store: OutputStore | None = None  # None: the engine's default, the state directory

    def plan(self, jobs: list[JobSpec], manifest: str = "t", digest: str | None = None) -> None:
        self.ledger.register(manifest, digest or f"digest-{manifest}-{len(jobs)}-{jobs[0].key}", jobs)

    def engine(self, **overrides: Any) -> Engine:
        options: dict[str, Any] = {"manifest": "t", "concurrency": 4, "rpm": None, "poll_rpm": None,
                                   **({} if self.virtual else FAST_ENGINE)}
        options.update(overrides)
        return Engine(self.ledger, self.client, engine_config(**options), store=self.store, wall=loop_wall())

    def default_engine(self, **settings: Any) -> Engine:
        """The engine with the default run settings and the production Policy, apart from ``settings``."""
        config = EngineConfig.from_settings(RunSettings(**settings), manifest="t")
        return Engine(self.ledger, self.client, config, store=self.store, wall=loop_wall())

    async def run(self, timeout: float = 30, **overrides: Any) -> Any:
        with guard(timeout):
            return await self.engine(**overrides).run()

    def counts(self, manifest: str | None = "t") -> dict[JobState, int]:
        return self.ledger.counts(manifest)
