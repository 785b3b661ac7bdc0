"""A real SIGKILL in the window that grouped write-aheads open (issue 14): the write-aheads of a wave of jobs
are committed in one transaction, then their POSTs start. A runner killed right after that commit, before
any POST leaves, leaves the whole group ``submitting``; the next run must hold each of those jobs in doubt
(never resubmit them: for all it knows, their POSTs went out), pay for none of them, and submit the rest.

The crash point is reached with RUNNER_TEST_CRASH_AT=write-ahead-group (tests only; only a group of two or
more jobs reaches it). The simulator's own books say what was sent and paid.
"""

from __future__ import annotations

import signal
from pathlib import Path

from runner.ledger import open_ledger
from runner.ledger.rescue import CRASH_ENV

from test_cli_support import ProviderFactory, counts, provider, run_args, run_cli, write_manifest

__all__ = ["provider"]  # the fixture, imported for pytest

KILLED = -signal.SIGKILL

SIX_AT_ONCE = """\
name: trio
defaults:
  duration: 3
prompt: "a {animal} crossing a quiet street"
matrix:
  animal: [cat, dog, owl, fox, elk, yak]
output: "{animal}.mp4"
"""


def test_killed_after_the_group_commit_holds_the_group_in_doubt_and_pays_for_none(
        tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider()
    manifest = write_manifest(tmp_path, SIX_AT_ONCE)
    state = tmp_path / "state"
    first = run_cli(*run_args("run", manifest, state, *sim.engine_args("--concurrency", "3")), cwd=tmp_path,
                    env={CRASH_ENV: "write-ahead-group"})
    assert first.code == KILLED, f"the crash point was not reached (no group of write-aheads): {first}"
    # The three write-aheads of the first wave are committed (durable: the process died by SIGKILL right after);
    # no POST went on the wire.
    assert counts(state) == {"submitting": 3, "pending": 3}
    assert sim.accepted() == 0
    assert not any(kind.startswith("submit") for kind in sim.sim.stats()["responses"]), sim.sim.stats()["responses"]
    with open_ledger(state, readonly=True) as ledger:
        grouped = {job.key for job in ledger.iter_jobs("trio") if str(job.state) == "submitting"}

    second = run_cli(*run_args("run", manifest, state, *sim.engine_args("--concurrency", "3")), cwd=tmp_path,
                     env={"RUNNER_IN_DOUBT_HOLD": "0"})
    assert second.code == 4, str(second)  # finished, with jobs held in doubt for the operator
    assert counts(state) == {"in_doubt": 3, "done": 3}
    with open_ledger(state, readonly=True) as ledger:
        held = {job.key for job in ledger.iter_jobs("trio") if str(job.state) == "in_doubt"}
        assert all(len(ledger.attempts(key)) == 1 for key in held)  # the write-ahead's attempt, never a second
    assert held == grouped
    assert sim.accepted() == 3 and sim.max_per_body() == 1  # the rest submitted once each; the group paid for none
