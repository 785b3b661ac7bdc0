"""Several ``runner run`` processes on one PostgreSQL ledger: each job paid once, a dead runner's work finished.

Real runner subprocesses, the simulator on loopback (in this process, so the test reads its books
and turns its knobs), a throwaway PostgreSQL server. Leases last ``RUNNER_LEASE_TTL`` = 1.5 s here
(60 s by default), so a killed runner's work is taken over within a few seconds.
"""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path

import pytest

from runner.jobs import JobState
from runner.ledger.postgres import open_postgres_ledger
from tests.acceptance.multihost_support import TTL, TWELVE, finish, jobs_with_attempts, owned_by, start
from tests.acceptance.test_cli_support import (
    ProviderFactory,
    provider,
    run_cli,
    wait_for,
    write_manifest,
)

__all__ = ["provider"]

pytestmark = pytest.mark.timeout(120)






def _heartbeat_age(url: str, tmp_path: Path) -> float:
    """How long the one runner's lease has been renewed for (last heartbeat - since)."""
    with open_postgres_ledger(url, tmp_path / "videos", readonly=True) as ledger:
        leases = ledger.leases()
    assert len(leases) == 1 and leases[0].live, leases
    return leases[0].renewed_at - leases[0].started_at



def test_two_runners_share_one_batch_and_pay_each_job_once(tmp_path: Path, pg_url: str,
                                                          provider: ProviderFactory) -> None:
    sim = provider(task_seconds=0.6)
    manifest = write_manifest(tmp_path, TWELVE, "twelve.yaml")
    runners = [start(tmp_path, manifest, pg_url, sim.base_url, "--rpm", "none", "--concurrency", "2") for _ in range(2)]
    ended = [finish(proc) for proc in runners]
    assert [code for code, _ in ended] == [0, 0], ended
    assert sim.accepted() == 12 and sim.max_per_body() == 1  # every job submitted exactly once
    jobs = jobs_with_attempts(pg_url, tmp_path)
    assert {job.state for job, _ in jobs} == {JobState.DONE}
    assert len(list((tmp_path / "videos").rglob("*.mp4"))) == 12
    runs = {attempt.run_id for _, attempts in jobs for attempt in attempts if attempt.kind == "submit"}
    assert len(runs) == 2, (runs, [err[:1500] for _, err in ended])  # both runners submitted some of the batch


def test_a_killed_runner_s_tasks_are_finished_by_another_and_its_open_submit_held(
        tmp_path: Path, pg_url: str, provider: ProviderFactory) -> None:
    # Tasks of 6 s outlive the steps below (≥ 2 s, more on a loaded machine): some are still running at the kill.
    # Submitted 2 s apart (30 a minute), they end 2 s apart: the first slot's next POST (the one that hangs) goes
    # while the two others still run. Submitted together, the three were found done together (one poll round)
    # and the three next POSTs all hung, nothing running.
    sim = provider(task_seconds=6.0, slow_seconds=8.0)
    manifest = write_manifest(tmp_path, TWELVE, "twelve.yaml")
    first = start(tmp_path, manifest, pg_url, sim.base_url, "--rpm", "30", "--concurrency", "3")  # read timeout 60 s
    try:
        wait_for(lambda: first.poll() is not None or owned_by(pg_url, tmp_path, first.pid, JobState.RUNNING) >= 2,
                 timeout=30,
                 what="the first runner's running tasks")
        assert first.poll() is None, first.communicate()
        # It lives past its TTL only by renewing its lease (every TTL/4).
        wait_for(lambda: _heartbeat_age(pg_url, tmp_path) > float(TTL), timeout=30, what="a lease renewed past its TTL")
        sim.sim.configure(p_slow=1.0)  # its next POST creates a task and hangs: a submit on the wire
        wait_for(lambda: owned_by(pg_url, tmp_path, first.pid, JobState.SUBMITTING) >= 1, timeout=30,
                 what="a submit of the first runner on the wire")
        running = owned_by(pg_url, tmp_path, first.pid, JobState.RUNNING)
        shown = run_cli("status", str(manifest), "--ledger", pg_url, "--state", str(tmp_path / "videos"), "--json",
                        cwd=tmp_path)
        runners = json.loads(shown.stdout)["runners"]  # status from anywhere shows who works on the batch
        assert [(r["host"], r["pid"], r["live"]) for r in runners] == [(socket.gethostname(), first.pid, True)], runners
        assert runners[0]["last_heartbeat"] >= runners[0]["since"]
        first.send_signal(signal.SIGKILL)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate(timeout=10)
    sim.sim.configure(p_slow=0.0)
    assert running >= 1
    second = start(tmp_path, manifest, pg_url, sim.base_url, "--rpm", "none", "--concurrency", "12")
    code, err = finish(second)
    jobs = jobs_with_attempts(pg_url, tmp_path)
    states = [job.state for job, _ in jobs]
    assert code == 4, err  # the killed runner's open submit is held in doubt
    assert states.count(JobState.IN_DOUBT) >= 1 and states.count(JobState.DONE) == 12 - states.count(JobState.IN_DOUBT)
    assert sim.max_per_body() == 1 and sim.accepted() == 12  # nothing paid twice; the hung POST not resubmitted
    assert len(list((tmp_path / "videos").rglob("*.mp4"))) == states.count(JobState.DONE)


def test_two_runners_together_never_pass_the_concurrency_limit(tmp_path: Path, pg_url: str,
                                                               provider: ProviderFactory) -> None:
    """``concurrency`` counts every runner's tasks outstanding at the provider: 2 runners × limit 3 stay at 3."""
    sim = provider(task_seconds=0.8)
    manifest = write_manifest(tmp_path, TWELVE, "twelve.yaml")
    runners = [start(tmp_path, manifest, pg_url, sim.base_url, "--rpm", "none", "--concurrency", "3") for _ in range(2)]
    ended = [finish(proc) for proc in runners]
    assert [code for code, _ in ended] == [0, 0], ended
    assert sim.accepted() == 12 and sim.max_per_body() == 1
    assert sim.sim.stats()["max_active"] == 3  # reached, never passed
