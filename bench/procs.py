"""Process helpers shared by the benchmarks: a simulator subprocess, measured child runs.

    with SimProcess({"task_seconds": 1.0}) as sim:
        m = measure([sys.executable, "-m", "runner", "run", ...], env=runner_env())
        print(m.wall_s, m.cpu_s, m.max_rss_mib, sim.stats()["accepted_total"])

:func:`measure` waits for its child with :func:`os.wait4`, so the CPU time and
peak RSS it reports belong to that one child, not to every child the bench has
reaped. Everything here is loopback only. A benchmark helper, not a test.
"""

from __future__ import annotations

import atexit
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
BENCH_KEY = "bench-key-0123456789"  # what the runner sends; the simulator accepts any key


@dataclass(frozen=True)
class Measured:
    """One finished child: exit code, wall time, CPU seconds and peak RSS of that child alone."""

    code: int
    wall_s: float
    user_s: float
    sys_s: float
    max_rss_kib: int

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s

    @property
    def max_rss_mib(self) -> float:
        return self.max_rss_kib / 1024


def measure(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
    timeout: float = 3600.0,
    stdout: Path | None = None,
) -> Measured:
    """Run ``cmd`` to the end; its own rusage (wait4), wall time and exit code."""
    err = log.open("a") if log is not None else subprocess.DEVNULL
    out = stdout.open("w") if stdout is not None else subprocess.DEVNULL
    try:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if log is not None and hasattr(err, "close"):
            err.close()
        if stdout is not None and hasattr(out, "close"):
            out.close()
    return Measured(proc.returncode, wall, usage.ru_utime, usage.ru_stime, usage.ru_maxrss)


def runner_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "runner", *args]


def bytecode(tree: Path = REPO) -> None:
    """Compile ``tree``'s ``runner`` package to bytecode now, as ``pip install`` does: a fresh checkout (``git
    archive``) has none, and its first measured process would otherwise count compiling ~200 modules (~0.3 s) as
    start-up. A benchmark program calls it once, before its first measured process."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "runner")], check=True,
                   stdout=subprocess.DEVNULL)


def own_book() -> str:
    """A new folder for the runner's book of ledgers (``$XDG_STATE_HOME``), removed when the benchmark ends: its
    ledgers, made anew for each measure against one loopback address, are not refused as each other's (nor the
    user's own batches through ~/.local/state)."""
    folder = tempfile.mkdtemp(prefix="bench-book-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def runner_env(**extra: str) -> dict[str, str]:
    # As installed, bytecode cached: this machine's shells set PYTHONDONTWRITEBYTECODE, which would recompile
    # every module at every start and count it as the runner's start-up.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RUNNER_", "NOVITA_")) and k != "PYTHONDONTWRITEBYTECODE"}
    env.update({"NOVITA_API_KEY": BENCH_KEY, "PYTHONPATH": str(REPO), "XDG_STATE_HOME": own_book()})
    env.update(extra)
    return env


class SimProcess:
    """``python -m runner.simulator --port 0 --config JSON`` as a context manager."""

    def __init__(self, config: dict[str, Any], *, log: Path | None = None) -> None:
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.base_url = ""
        self._log_path: Path | None = None

    def __enter__(self) -> SimProcess:
        import tempfile

        self._log_path = self.log or Path(tempfile.mkstemp(prefix="sim-", suffix=".log")[1])
        with self._log_path.open("w") as handle:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "runner.simulator", "--port", "0", "--config", json.dumps(self.config)],
                stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=runner_env(),
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for line in self._log_path.read_text().splitlines():
                if "listening on" in line:
                    self.base_url = line.strip().rsplit(" ", 1)[-1]
                    return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.__exit__()
        raise RuntimeError(f"the simulator did not start:\n{self._log_path.read_text()}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stats(self) -> dict[str, Any]:
        response = httpx.get(f"{self.base_url}/_sim/stats", timeout=60)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


def machine() -> str:
    """One line naming the machine the figures come from."""
    cpus = os.cpu_count()
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0]
    return (f"{platform.system()} {platform.release()}, {cpus} CPU(s) {model}, Python {platform.python_version()},"
            f" load avg {load:.2f}, {time.strftime('%Y-%m-%d %H:%M %Z')}")


def self_rusage() -> resource.struct_rusage:
    return resource.getrusage(resource.RUSAGE_SELF)
