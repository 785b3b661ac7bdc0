"""Shared helpers of the CLI acceptance tests (``test_cli_*.py``); this module holds no tests.

The CLI always runs as a real process of its own in a fresh ``tmp_path`` with a clean environment, against a
:class:`SimulatorThread` served on loopback from the test process, so a test can read the simulator's own
accounting (``sim.stats()``) of every paid task and body. :func:`run_cli` forks it from an interpreter that has
imported the runner already (:mod:`preloaded_cli`: 0.3 s of CPU a command spent importing it) unless its
environment needs a new one; :func:`start_cli` (signals, stdio) always starts ``python -m runner``.

Every invocation is checked for a Python traceback on stderr: bad input must
always end in one clear line and an exit code.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import preloaded_cli
import pytest

from runner.ledger import open_ledger
from runner.service.reboot_warning import SCRATCH_ENV
from runner.simulator import SimConfig, Simulator, SimulatorThread

KEY = "sk-test-cli-0123456789abcdef"
# Fast engine settings for tests: no rate caps, a tight poll floor.
FAST = ("--rpm", "none", "--poll-rpm", "none", "--poll-interval", "0.05")
CLI_TIMEOUT = 60.0

THREE_JOBS = """\
name: trio
defaults:
  duration: 3
prompt: "a {animal} crossing a quiet street"
matrix:
  animal: [cat, dog, owl]
output: "{animal}.mp4"
"""
THREE_JOBS_USD = 3 * 3 * 0.112  # 3 jobs x 3 s x 0.112 USD/s (estimate)
TWO_OTHER_JOBS = """\
name: other
prompt: "a {animal} asleep in the sun"
matrix:
  animal: [cat, dog]
output: "{animal}.mp4"
"""  # another batch: two jobs, none of THREE_JOBS'

SIX_JOBS = """\
name: six
defaults:
  duration: 3
prompt: "a {animal} at {time}"
matrix:
  animal: [cat, dog, owl]
  time: [dawn, dusk]
limits:
  concurrency: 1
"""
SIX_JOBS_TWO_AT_ONCE = SIX_JOBS.replace("concurrency: 1", "concurrency: 2")  # a copy's run and the original's overlap

# 200 jobs (8 animals × 25 numbers): more than a pipe or an open-file limit holds at once
MANY_JOBS = """\
name: many
defaults:
  duration: 3
prompt: "a {animal} number {n} crossing a quiet street"
matrix:
  animal: [cat, dog, owl, fox, elk, emu, yak, ant]
  n: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25]
output: "{animal}-{n}.mp4"
"""


IN_DOUBT_HOLD = "3"  # RUNNER_IN_DOUBT_HOLD in the tests' runners (see clean_env)


def clean_env(extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The test process's environment without any NOVITA_* / RUNNER_* variable, plus ``extra``.

    An in-doubt submit keeps its concurrency slot for ``RUNNER_IN_DOUBT_HOLD`` seconds (15 minutes by
    default, the life of a real task): 3 s here, where the simulator's tasks take a few seconds at most."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOVITA_", "RUNNER_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env["RUNNER_IN_DOUBT_HOLD"] = IN_DOUBT_HOLD
    env[SCRATCH_ENV] = "1"  # tmp_path is under /tmp, which a reboot may empty: the suite knows (tests/conftest.py)
    for name, value in (extra or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


@dataclass
class Result:
    """One finished CLI invocation."""

    args: list[str]
    code: int
    stdout: str
    stderr: str
    seconds: float

    def __str__(self) -> str:
        return f"runner {' '.join(self.args)} -> {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


# Runs the CLI with a maximum file size (RLIMIT_FSIZE): writes past it fail with EFBIG, as on a
# full disk. SIGXFSZ is ignored so that the write fails instead of killing the process.
_LIMITED = (
    "import resource, runpy, signal, sys\n"
    "limit = int(sys.argv[1])\n"
    "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n"
    "sys.argv = ['runner', *sys.argv[2:]]\n"
    "runpy.run_module('runner', run_name='__main__', alter_sys=True)\n"
)


def cli_argv(*args: str, max_file_bytes: int | None = None) -> list[str]:
    if max_file_bytes is not None:
        return [sys.executable, "-c", _LIMITED, str(max_file_bytes), *args]
    return [sys.executable, "-m", "runner", *args]


def run_cli(
    *args: str,
    cwd: Path,
    env: Mapping[str, str | None] | None = None,
    key: str | None = KEY,
    timeout: float = CLI_TIMEOUT,
    max_file_bytes: int | None = None,
) -> Result:
    """Run ``python -m runner *args`` to completion; assert it printed no traceback. The process is forked from an
    interpreter that has the runner imported already (:mod:`preloaded_cli`), unless its environment or
    ``max_file_bytes`` needs a new interpreter.

    ``max_file_bytes`` makes every file the CLI writes fail past that size, like a full disk.
    """
    extra: dict[str, str | None] = {"NOVITA_API_KEY": key}
    extra.update(env or {})
    started = time.monotonic()
    forked = None if max_file_bytes is not None else preloaded_cli.run(
        list(args), cwd=cwd, env=clean_env(extra), base=clean_env(), timeout=timeout)
    if forked is None:  # what a fork cannot take again from its server (preloaded_cli.forkable): a new interpreter
        proc = subprocess.run(
            cli_argv(*args, max_file_bytes=max_file_bytes), cwd=cwd, env=clean_env(extra), capture_output=True,
            text=True, timeout=timeout, check=False,
        )
        forked = preloaded_cli.Finished(proc.returncode, proc.stdout, proc.stderr)
    result = Result(list(args), forked.code, forked.stdout, forked.stderr, time.monotonic() - started)
    assert "Traceback" not in result.stderr, str(result)
    return result


def start_cli(*args: str, cwd: Path, key: str | None = KEY,
              env: Mapping[str, str | None] | None = None) -> subprocess.Popen[str]:
    """Start ``python -m runner *args`` in the background (for signals); ``env``: more variables."""
    return subprocess.Popen(
        cli_argv(*args), cwd=cwd, env=clean_env({"NOVITA_API_KEY": key, **(env or {})}),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def read_until(proc: subprocess.Popen[str], needle: str, *, timeout: float = 20.0) -> str:
    """Read the child's stderr line by line until ``needle`` shows (an event, not a fixed sleep)."""
    assert proc.stderr is not None
    seen = []
    deadline = time.monotonic() + timeout
    for line in proc.stderr:
        seen.append(line)
        if needle in line:
            return "".join(seen)
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"{needle!r} never appeared on stderr:\n{''.join(seen)}")


def finish_cli(proc: subprocess.Popen[str], timeout: float = 30) -> str:
    """Wait for a process from :func:`start_cli` (killed if it hangs); the rest of its stderr."""
    try:
        _, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return stderr or ""


def wait_for(condition: Callable[[], bool], *, timeout: float = 20.0, what: str = "condition") -> None:
    """Poll ``condition`` until it holds (the tests wait on events, never on fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def write_manifest(directory: Path, text: str = THREE_JOBS, name: str = "trio.yaml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def status(cwd: Path, manifest: Path, state: Path) -> dict[str, Any]:
    """``runner status --json``: {"total": N, "counts": {state: n}}."""
    result = run_cli("status", str(manifest), "--state", str(state), "--json", cwd=cwd)
    assert result.code == 0, str(result)
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def counts(state: Path, manifest_name: str = "trio") -> dict[str, int]:
    """The non-zero job counts by state, read from the ledger directly (no subprocess: fast)."""
    with open_ledger(state, readonly=True) as ledger:
        return {str(k): v for k, v in ledger.counts(manifest_name).items() if v}


def jobs_running(state: Path) -> int:
    """How many jobs the ledger in ``state`` holds running (their task ids recorded), read through SQLite's read-only
    mode while a run may hold the ledger: no open of the runner's, no check of its mark."""
    db = sqlite3.connect(f"file:{state / 'ledger.db'}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT count(*) FROM jobs WHERE state = 'running'").fetchone()[0])
    finally:
        db.close()


def export_jsonl(cwd: Path, manifest: Path, state: Path) -> list[dict[str, Any]]:
    result = run_cli("export", str(manifest), "--state", str(state), "--format", "jsonl", cwd=cwd)
    assert result.code == 0, str(result)
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


class Provider:
    """A simulator on a loopback port; ``engine_args`` points a runner command at it."""

    def __init__(self, sim: Simulator, server: SimulatorThread) -> None:
        self.sim = sim
        self.server = server

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def engine_args(self, *extra: str) -> list[str]:
        return ["--base-url", self.base_url, *FAST, *extra]

    def accepted(self) -> int:
        """Tasks the provider created, i.e. paid for."""
        return int(self.sim.stats()["accepted_total"])

    def max_per_body(self) -> int:
        by_body: dict[str, int] = self.sim.stats()["accepted_by_body"]
        return max(by_body.values(), default=0)


ProviderFactory = Callable[..., Provider]


def setpriv_argv() -> list[str]:
    """The words that run a command as root without the capabilities that let it read and write anyone's files
    (``setpriv``): file modes apply to it as to any user. The test skips where it cannot (not root, no setpriv)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None or os.geteuid() != 0:
        pytest.skip("needs root and setpriv (util-linux) to run the CLI as a user file modes apply to")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search,-fowner,-chown", "--inh-caps", "-all"]


def copy_without_reading(state: Path, name: str, to: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``runner ledger copy STATE TO`` run as a user file modes apply to (:func:`setpriv_argv`) while the state
    directory's file ``name`` (a rescue journal, a review queue) is unreadable (mode 000, as root's 600 file is to a
    user), its mode given back after."""
    as_user = setpriv_argv()
    (state / name).chmod(0o000)
    try:
        return subprocess.run([*as_user, *cli_argv("ledger", "copy", str(state), str(to))], cwd=cwd,
                              env=clean_env({"NOVITA_API_KEY": KEY}), capture_output=True, text=True, timeout=60,
                              check=False)
    finally:
        (state / name).chmod(0o660)


NAMESPACES_LOCK = Path("/tmp/runner-tests-namespaces.lock")


@pytest.fixture
def namespaces_alone() -> Iterator[None]:
    """The test makes namespaces (``unshare``) and may need the number the kernel gives a freed one again (the lowest
    free, shared by every kind of namespace): tests that make namespaces take turns, across pytest-xdist's workers
    and any other test run on the machine, so that no other test's namespace holds that number meanwhile."""
    with NAMESPACES_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture
def provider() -> Iterator[ProviderFactory]:
    """Start simulators with given knobs (``provider(task_seconds=0, p_drop=1)``); stopped at teardown."""
    servers: list[SimulatorThread] = []

    def start(**knobs: Any) -> Provider:
        knobs.setdefault("task_seconds", 0.0)
        sim = Simulator(SimConfig(**knobs))
        server = SimulatorThread(sim).start()
        servers.append(server)
        return Provider(sim, server)

    yield start
    for server in servers:
        server.stop()


def done_trio(tmp_path: Path, provider: ProviderFactory) -> tuple[Path, Path, Provider, dict[str, str]]:
    """The three-job manifest run to the end: (manifest, state, the provider, each animal's job key)."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    with open_ledger(state, readonly=True) as ledger:
        keys = {job.vars["animal"]: job.key for job in ledger.iter_jobs("trio")}
    return manifest, state, sim, keys


def run_args(command: str, manifest: Path | None, state: Path, *extra: str) -> list[str]:
    """``command [MANIFEST] --state STATE *extra`` as a list."""
    head = [command] if manifest is None else [command, str(manifest)]
    return [*head, "--state", str(state), *extra]


class PartlyPaid(NamedTuple):
    """A batch a run left partly paid (stopped by its budget) in ``state``, to be copied to ``moved``; ``here`` holds
    the manifest and is the working directory, with no state/ beside it: only a copy's marks and traces keep a run off
    the destination."""

    here: Path
    manifest: Path
    state: Path
    moved: Path
    paid: int


def a_batch_partly_paid(tmp_path: Path, sim: Provider) -> PartlyPaid:
    """:class:`PartlyPaid`, the run that paid for it asserted (exit 3, one or two of the three jobs paid)."""
    here = tmp_path / "manifests"
    here.mkdir()
    manifest = write_manifest(here)
    state, moved = tmp_path / "a" / "state", tmp_path / "b" / "state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args(), "--budget", "0.6"), cwd=here).code == 3
    paid = sim.accepted()
    assert 0 < paid < 3
    return PartlyPaid(here, manifest, state, moved, paid)


def assert_runs_refuse_a_copy_cut_short(manifest: Path, moved: Path, state: Path, sim: Provider, point: str,
                                        cwd: Path) -> None:
    """After a `runner ledger copy` of ``state`` to ``moved`` cut short at crash point ``point`` (killed or stopped),
    every paying command refuses ``moved`` (exit 2) and names the copy to make again, paying nothing."""
    paid = sim.accepted()
    for command in ("run", "submit", "collect"):
        refused = run_cli(*run_args(command, manifest, moved, *sim.engine_args()), cwd=cwd)
        assert refused.code == 2, str(refused)
        if point == "ledger-copy-made":  # not in place yet: the state directory shows an unfinished copy
            assert "a `runner ledger copy` into here that did not finish" in refused.stderr, str(refused)
        else:
            assert "is an unfinished copy of" in refused.stderr, str(refused)
            assert f"runner ledger copy {state} {moved}" in refused.stderr, str(refused)
    assert sim.accepted() == paid  # nothing paid again



__all__: Sequence[str] = [
    "FAST", "KEY", "MANY_JOBS", "SIX_JOBS", "SIX_JOBS_TWO_AT_ONCE", "THREE_JOBS", "THREE_JOBS_USD", "TWO_OTHER_JOBS", "PartlyPaid", "Provider", "ProviderFactory",
    "Result", "a_batch_partly_paid", "assert_runs_refuse_a_copy_cut_short", "clean_env", "counts", "done_trio",
    "export_jsonl", "finish_cli", "provider", "read_until", "run_args", "run_cli", "start_cli", "status", "wait_for",
    "write_manifest",
]
