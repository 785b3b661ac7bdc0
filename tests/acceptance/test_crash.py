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
    """SIGTERM, SIGHUP and SIGQUIT let POSTs on the wire finish and be recorded: no in-doubt job, nothing paid twice."""
    faults = {k: v for k, v in EVERY_FAULT.items() if k not in AMBIGUOUS_FAULTS}
    # A generous read timeout: on a loaded machine a slow answer must not turn into a (legitimate)
    # in-doubt job; this test is about what the stop itself does.
    with CrashHarness(tmp_path, jobs=30, faults=faults, seed=5, read_timeout=20) as harness:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGHUP):
            code = harness.run_once(kill_after=harness.rng.uniform(0.6, 2.0), sig=sig)
            assert code in (0, 1, 3), (sig, code, (tmp_path / "runner.log").read_text()[-3000:])
            verdict = harness.verdict()
            assert verdict.in_doubt == 0, (verdict, (tmp_path / "runner.log").read_text()[-3000:])
        verdict, _ = harness.torture(kills=0)
    assert verdict.in_doubt == 0, verdict
    assert verdict.paid_duplicates == 0 and verdict.unrecorded_paid == 0, verdict
    assert verdict.files_bad == 0 and verdict.done == verdict.files_verified, verdict
    assert verdict.done + verdict.failed == 30, verdict


# Every operator action at least once, at random instants: (signal, pause, edit first, from another cwd, the state
# folder moved first, the manifest copied and run in another folder first, that refused run signalled too).
OPERATOR_SCRIPT = [
    {"sig": signal.SIGHUP},
    {"sig": signal.SIGKILL, "pause": True},
    {"sig": signal.SIGQUIT, "edit": True, "elsewhere": True},
    {"sig": signal.SIGTERM, "pause": True, "elsewhere": True, "move": True},
    {"sig": signal.SIGKILL, "edit": True, "copy": True},
    {"sig": signal.SIGHUP, "pause": True, "edit": True},
    {"sig": signal.SIGKILL, "elsewhere": True, "move": True, "kill_refused": True},
]


def test_operator_and_os_actions_pay_once_and_keep_every_video(tmp_path: Path) -> None:
    """Kills, SIGHUP, SIGQUIT, SIGSTOP pauses, manifest edits, another cwd, the state folder moved and the manifest
    copied (new ledgers the book refuses): paid once, every paid video stored."""
    with CrashHarness(tmp_path, jobs=30, faults=EVERY_FAULT, seed=17) as harness:
        result = harness.operator_torture(script=OPERATOR_SCRIPT)
    verdict = result.verdict
    log = (tmp_path / "runner.log").read_text()[-3000:]
    assert result.rounds.get("manifest edits") == 3 and result.rounds.get("runs from another cwd") == 3, result
    # Each a new ledger for planned jobs, refused by the book with nothing paid (bench.crashmoves raises if not).
    assert result.rounds.get("state moves") == 2 and result.rounds.get("manifest copies") == 1, result
    # Signals and pauses land on a live runner unless it finished first (then the round did nothing).
    assert result.rounds.get("SIGSTOP pauses", 0) >= 1, result.rounds
    assert sum(result.rounds.get(s.name, 0) for s in (signal.SIGHUP, signal.SIGQUIT)) >= 1, (result.rounds, log)
    assert verdict.paid_duplicates == 0 and verdict.unrecorded_paid == 0, verdict
    assert verdict.files_bad == 0 and verdict.files_verified == verdict.done > 0, verdict
    assert result.paid_without_file == 0, (result, log)
    assert result.orphaned_without_file == 0, (result, log)
    assert result.key_leaks == [], result.key_leaks
    assert result.outstanding == 0, result  # jobs an edit dropped before they were sent may stay pending


def test_a_ledger_removed_between_runs_is_refused_and_nothing_is_paid_again(tmp_path: Path) -> None:
    """The ledger is deleted after a finished run: the next run refuses (exit 2) and the provider bills nothing more."""
    with CrashHarness(tmp_path, jobs=6, faults={}, seed=3) as harness:
        assert harness.run_once(kill_after=None) == 0
        paid = harness.sim_stats()["accepted_total"]
        harness.remove_ledger()
        code = harness.run_once(kill_after=None, refusal_ok=True)
        assert harness.sim_stats()["accepted_total"] == paid
        assert code == 2


def test_spend_never_passes_the_budget_across_manifest_edits(tmp_path: Path) -> None:
    """Prompt edits between runs under a budget: by the simulator's books, the manifest never spends past it."""
    budget = 2.0  # three jobs of 5 s at 0.112 USD/s fit (1.68 USD), a fourth does not
    with CrashHarness(tmp_path, jobs=6, faults={}, seed=4, budget=budget) as harness:
        assert harness.run_once(kill_after=None) == 3  # stopped at the budget, the rest pending
        for _ in range(2):
            harness.edit_manifest(change=6, drop=0, add=0)  # every prompt changed: six new jobs
            harness.run_once(kill_after=None)
        result = harness.operator_verdict({}, [])
    assert result.verdict.paid_duplicates == 0, result
    assert result.spent_usd <= budget, result
