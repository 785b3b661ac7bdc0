"""Kill a real runner process at random instants; prove nothing was paid twice or lost.

A real simulator process on loopback with every fault knob on, a real runner
process, real SIGKILL / SIGTERM. The verdict compares the simulator's own
accounting of billed tasks with the ledger. `bench/crash.py` runs the long
version (100+ kills, 300 jobs) and prints the figures the README publishes.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from bench.crashlib import AMBIGUOUS_FAULTS, EVERY_FAULT, CrashHarness

pytestmark = pytest.mark.timeout(300)


def test_sigkill_at_random_points_pays_once_and_keeps_every_video(tmp_path: Path) -> None:
    """SIGKILL anywhere: no body billed beyond its jobs, every billed task recorded or in doubt, files intact."""
    with CrashHarness(tmp_path, jobs=30, faults=EVERY_FAULT, seed=11) as harness:
        verdict, codes = harness.torture(kills=6, signals=(signal.SIGKILL,))
    assert codes.count(-signal.SIGKILL) >= 1, codes
    assert verdict.paid_duplicates == 0, verdict
    assert verdict.unrecorded_paid == 0, verdict
    assert verdict.files_bad == 0, verdict
    assert verdict.files_verified == verdict.done > 0, verdict
    assert verdict.counts.get("pending", 0) == verdict.counts.get("running", 0) == 0, verdict
    assert verdict.done + verdict.failed + verdict.lost + verdict.in_doubt == verdict.jobs == 30, verdict


def test_sigterm_stops_gracefully_with_zero_in_doubt(tmp_path: Path) -> None:
    """SIGTERM lets POSTs on the wire finish and be recorded: no in-doubt job, nothing paid twice."""
    faults = {k: v for k, v in EVERY_FAULT.items() if k not in AMBIGUOUS_FAULTS}
    # A generous read timeout: on a loaded machine a slow answer must not turn into a (legitimate)
    # in-doubt job; this test is about what the stop itself does.
    with CrashHarness(tmp_path, jobs=30, faults=faults, seed=5, read_timeout=20) as harness:
        for _ in range(4):
            code = harness.run_once(kill_after=harness.rng.uniform(0.6, 2.0), sig=signal.SIGTERM)
            assert code in (0, 1, 3), (code, (tmp_path / "runner.log").read_text()[-3000:])
            verdict = harness.verdict()
            assert verdict.in_doubt == 0, (verdict, (tmp_path / "runner.log").read_text()[-3000:])
        verdict, _ = harness.torture(kills=0)
    assert verdict.in_doubt == 0, verdict
    assert verdict.paid_duplicates == 0 and verdict.unrecorded_paid == 0, verdict
    assert verdict.files_bad == 0 and verdict.done == verdict.files_verified, verdict
    assert verdict.done + verdict.failed == 30, verdict
