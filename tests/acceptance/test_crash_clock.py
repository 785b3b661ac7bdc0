"""The wall clock steps between runs and during them, while runs are killed: paid once, every video kept.

Real runner processes on a SQLite ledger whose wall clock is stepped (``stepped_clock/sitecustomize.py``: ``time.time``,
``datetime.now``… offset by a file the test rewrites; the steady clocks run on, as a real step leaves them): days and
hours ahead and back between runs — NTP after a clock that ran ahead, a VM restored from a snapshot, a laptop resumed
days later — and a day back in the middle of a run. The simulator keeps the true time, as the provider does. Every
wall time the runner writes or compares (in-doubt slots, result URL expiry, TASK_NOT_FOUND's span across runs, the
ledger's marks and set-aside names) meets a step; none may pay twice, lose a video, refuse the ledger or wait for a
time that is hours away.
"""

from __future__ import annotations

import contextlib
import random
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from bench.crashlib import EVERY_FAULT, UNFINISHED, CrashHarness, RunnerProcess

pytestmark = pytest.mark.timeout(300)

DAY = 86400.0
STEPPED_CLOCK = Path(__file__).resolve().parent / "stepped_clock"


class SteppedClockHarness(CrashHarness):
    """The crash harness, its runners' wall clock offset by :attr:`offset` seconds — or, with several runners, each
    runner number its own clock (a host of its own): :meth:`step` with ``host``."""

    def __init__(self, workdir: Path, **options: object) -> None:
        super().__init__(workdir, **options)  # type: ignore[arg-type]
        self.offsets: dict[int, float] = {}
        self._host = 0  # the runner number being started (start_runner)

    @property
    def offset(self) -> float:
        return self.offsets.get(0, 0.0)

    def clock_file(self, host: int) -> Path:
        return self.workdir / f"clock-offset-{host}"

    def step(self, seconds: float, host: int = 0) -> None:
        self.offsets[host] = self.offsets.get(host, 0.0) + seconds
        file = self.clock_file(host)
        temporary = file.with_suffix(".tmp")
        temporary.write_text(f"{self.offsets[host]}\n", encoding="utf-8")
        temporary.replace(file)  # whole: a runner reading it mid-write keeps its last offset

    def start_runner(self, index: int, *, sig: int = signal.SIGKILL, kill_after: float | None = None) -> RunnerProcess:
        self._host = index
        return super().start_runner(index, sig=sig, kill_after=kill_after)

    def env(self) -> dict[str, str]:
        env = super().env()
        path = env.get("PYTHONPATH", "")
        return {**env, "RUNNER_TEST_CLOCK_FILE": str(self.clock_file(self._host)),
                "PYTHONPATH": f"{STEPPED_CLOCK}:{path}" if path else str(STEPPED_CLOCK)}


STEPS = [2 * DAY, -3 * DAY, 3600.0, -7200.0, 40 * DAY, -40 * DAY]  # between runs, one after another


def _runs(harness: SteppedClockHarness) -> int:
    """The runs the ledger has recorded (0 before it exists)."""
    if not (harness.state / "ledger.db").exists():
        return 0
    with contextlib.closing(sqlite3.connect(harness.state / "ledger.db", timeout=30)) as db:
        try:
            return int(db.execute("SELECT count(*) FROM runs").fetchone()[0])
        except sqlite3.OperationalError:  # no runs table yet: killed as it made the ledger
            return 0


def test_clock_steps_between_and_during_killed_runs_pay_once_and_keep_every_video(tmp_path: Path) -> None:
    """Six runs killed at random, each after a step (days, hours, weeks; ahead and back) and a day back mid-run, then
    runs to the end: nothing paid twice, nothing lost, the ledger never refused, no run waiting past its timeout."""
    faults = {**EVERY_FAULT, "p_drop": 0.08}  # more submits in doubt: each holds a slot (2 here) for a while
    with SteppedClockHarness(tmp_path, jobs=30, faults=faults, seed=29, concurrency=2) as harness:
        harness.step(0.0)
        codes: list[int | None] = []
        for step in STEPS:
            harness.step(step)
            for late in range(4):  # a runner killed before it recorded its run (a loaded machine) ran under no step
                before = _runs(harness)
                codes.append(harness.run_once(kill_after=harness.rng.uniform(0.6, 2.5) + late, sig=signal.SIGKILL,
                                              during=(harness.rng.uniform(0.2, 0.5), lambda: harness.step(-DAY))))
                if _runs(harness) > before:
                    break
        for _ in range(20):  # then to completion, the clock as the last step left it
            code = harness.run_once(kill_after=None, timeout=120)
            codes.append(code)
            if code in (0, 1, 4) and not any(row["state"] in UNFINISHED for row in harness.ledger_rows()):
                break
        verdict = harness.verdict()
        with sqlite3.connect(harness.state / "ledger.db") as db:
            started = [row[0] for row in db.execute("SELECT started_at FROM runs ORDER BY id")]
    assert max(started) - min(started) > 30 * DAY and max(started) > time.time() + DAY, started  # the steps took
    log = (tmp_path / "runner.log").read_text()[-3000:]
    assert harness.last_kill_landed is False and 2 not in codes, (codes, log)  # never refused
    assert verdict.paid_duplicates == 0 and verdict.unrecorded_paid == 0, verdict
    assert verdict.files_bad == 0 and verdict.files_verified == verdict.done > 0, verdict
    assert verdict.lost == 0, (verdict, log)
    assert verdict.counts.get("pending", 0) == verdict.counts.get("running", 0) == 0, verdict
    assert verdict.counts.get("succeeded", 0) == 0, verdict
    assert verdict.done + verdict.failed + verdict.in_doubt == verdict.jobs == 30, verdict


def test_three_hosts_whose_clocks_are_skewed_and_stepped_during_the_swarm_pay_once_and_keep_within_the_limit(
    tmp_path: Path, pg_url: str
) -> None:
    """Three runners on one PostgreSQL ledger, their hosts' clocks a day apart and stepped by hours or days (ahead
    and back) every few tenths of a second while they are killed at random: leases, the in-doubt slots and the marks
    follow the server's clock, so nothing is paid twice, nothing lost, every slot given back (the swarm ends)."""
    concurrency = 4
    faults = {**EVERY_FAULT, "p_drop": 0.08}
    with SteppedClockHarness(tmp_path, jobs=40, faults=faults, seed=31, task_seconds=0.3, concurrency=concurrency,
                             runners=3, ledger_url=pg_url, lease_ttl=1.0) as harness:
        for host, skew in enumerate((0.0, DAY, -DAY)):
            harness.step(skew, host)
        done = threading.Event()
        steps = random.Random(31)

        def stepping() -> None:
            while not done.wait(steps.uniform(0.1, 0.4)):
                harness.step(steps.choice((-DAY, -3600.0, 3600.0, DAY)), steps.randrange(3))

        stepper = threading.Thread(target=stepping, daemon=True)
        stepper.start()
        try:
            result = harness.swarm_torture(kills=8, min_after=0.5, max_after=2.5, startup_share=0.25, timeout=180)
        finally:
            done.set()
            stepper.join()
    verdict = result.verdict
    assert verdict is not None
    logs = "".join(path.read_text()[-1500:] for path in sorted(tmp_path.glob("runner-*.log")))
    said = f"{result}\n{logs}"
    assert verdict.paid_duplicates == 0 and result.worst_duplicates == 0, said
    assert verdict.unrecorded_paid == 0 and result.worst_unrecorded == 0, said
    assert verdict.files_bad == 0 and verdict.files_verified == verdict.done > 0, said
    assert verdict.lost == 0, said
    assert verdict.done + verdict.failed + verdict.in_doubt == verdict.jobs == 40, said
    assert result.max_outstanding <= concurrency, said
