"""Global limits of several ``runner run`` processes on one PostgreSQL ledger (issue 13): the submit rate,
the budget, and a dead runner's downloaded-but-unstored results.

Real runner subprocesses, the simulator on loopback (in this process: the test reads its books), a
throwaway PostgreSQL server. Task times and windows are short; leases last ``RUNNER_LEASE_TTL`` seconds.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from runner.jobs import JobState
from runner.ledger.postgres import open_postgres_ledger
from tests.acceptance.multihost_support import TWELVE, finish, jobs, owned_by, start
from tests.acceptance.test_cli_support import (
    ProviderFactory,
    provider,
    run_cli,
    wait_for,
    write_manifest,
)

__all__ = ["provider"]

pytestmark = pytest.mark.timeout(120)






def test_three_runners_together_keep_the_submit_rate(tmp_path: Path, pg_url: str, provider: ProviderFactory) -> None:
    """``--rpm 240`` (4 a second) is the provider's limit for the three runners together, not for each:
    the simulator's books show no second with more than 1 + 4 new tasks, and 12 tasks take ≥ 11/4 s."""
    sim = provider(task_seconds=0.2)
    manifest = write_manifest(tmp_path, TWELVE, "twelve.yaml")
    runners = [start(tmp_path, manifest, pg_url, sim.base_url, "--concurrency", "12", "--rpm", "240")
               for _ in range(3)]
    ended = [finish(proc) for proc in runners]
    assert [code for code, _ in ended] == [0, 0, 0], ended
    assert sim.accepted() == 12 and sim.max_per_body() == 1
    times = sorted(sim.sim.task(task_id).submitted_at for task_id in sim.sim.task_ids())
    assert times[-1] - times[0] >= 11 / 4 * 0.95, times  # one bucket of 4 a second, not three
    for i, at in enumerate(times):
        assert sum(1 for t in times[i:] if t < at + 1.0) <= 5, times


def test_three_runners_never_pass_the_budget_together(tmp_path: Path, pg_url: str, provider: ProviderFactory) -> None:
    """A budget that allows 5 of the 12 jobs: the three runners together pay for 5, not 5 each."""
    sim = provider(task_seconds=0.3)
    manifest = write_manifest(tmp_path, TWELVE, "twelve.yaml")
    price = _price(tmp_path, manifest, pg_url)
    budget = f"{5.5 * price:.4f}"
    runners = [start(tmp_path, manifest, pg_url, sim.base_url, "--concurrency", "12", "--rpm", "none",
                      "--budget", budget) for _ in range(3)]
    ended = [finish(proc) for proc in runners]
    assert sim.accepted() == 5 and sim.max_per_body() == 1, (sim.accepted(), [err[-800:] for _, err in ended])
    assert all(code in (0, 3) for code, _ in ended), ended  # stopped by the budget (or nothing left to submit)
    assert sum(1 for code, _ in ended if code == 3) >= 1
    states = [job.state for job in jobs(pg_url, tmp_path)]
    assert states.count(JobState.DONE) == 5 and states.count(JobState.PENDING) == 7


def _price(tmp_path: Path, manifest: Path, url: str) -> float:
    """One job's estimated price, from ``runner plan --json`` (the database is not written)."""
    planned = run_cli("plan", str(manifest), "--ledger", url, "--state", str(tmp_path / "videos"), "--json",
                      cwd=tmp_path)
    assert planned.code == 0, str(planned)
    data = json.loads(planned.stdout)
    return float(data["estimated_usd_to_submit"]) / int(data["to_submit"])



def _live_runners(url: str, tmp_path: Path) -> dict[int, bool]:
    with open_postgres_ledger(url, tmp_path / "videos", readonly=True) as ledger:
        return {lease.pid: lease.live for lease in ledger.leases()}


def test_a_killed_runner_s_results_are_downloaded_by_a_runner_already_working(
        tmp_path: Path, pg_url: str, provider: ProviderFactory) -> None:
    """A runner killed (SIGKILL) with results known but their videos not stored (succeeded): a runner that
    was already working — so not at its start — stores them once the dead one's lease expires."""
    sim = provider(task_seconds=0.2, p_truncated=1.0)  # every download breaks off: results stay succeeded
    manifest = write_manifest(tmp_path, TWELVE, "twelve.yaml")
    first = start(tmp_path, manifest, pg_url, sim.base_url, "--concurrency", "12", "--rpm", "none", ttl="4")
    second: subprocess.Popen[str] | None = None
    try:
        wait_for(lambda: first.poll() is not None or owned_by(pg_url, tmp_path, first.pid, JobState.SUCCEEDED) == 12,
                 timeout=40, what="the first runner's twelve results, not downloaded")
        second = start(tmp_path, manifest, pg_url, sim.base_url, "--concurrency", "12", "--rpm", "none")
        wait_for(lambda: second.poll() is not None or second.pid in _live_runners(pg_url, tmp_path), timeout=30,
                 what="the second runner's lease")
        assert first.poll() is None, first.communicate()
        first.send_signal(signal.SIGKILL)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate(timeout=10)
    sim.sim.configure(p_truncated=0.0)
    assert second is not None
    assert owned_by(pg_url, tmp_path, first.pid, JobState.SUCCEEDED) == 12  # the second did not take them early
    code, err = finish(second)
    assert code == 0, err
    stored = jobs(pg_url, tmp_path)
    assert [job.state for job in stored] == [JobState.DONE] * 12, err[-2000:]
    assert len(list((tmp_path / "videos").rglob("*.mp4"))) == 12
    assert sim.accepted() == 12 and sim.max_per_body() == 1  # nothing paid again
