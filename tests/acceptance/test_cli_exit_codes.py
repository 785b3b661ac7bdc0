"""The exit-code contract of `runner run` / `submit`, which scripts and cron rely on.

0 all done; 1 some failed or lost; 2 manifest/usage error, nothing sent; 3 stopped with
work outstanding; 4 in-doubt jobs held; 75 another runner holds the ledger.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from runner.ledger import open_ledger
from runner.manifest import expand, load_manifest

from test_cli_support import (
    KEY,
    THREE_JOBS,
    ProviderFactory,
    counts,
    provider,
    run_args,
    run_cli,
    start_cli,
    wait_for,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest


def test_simulate_runs_everything_and_exits_0(tmp_path: Path) -> None:
    """`runner run --simulate` needs no key, stores every video and exits 0; a rerun finds all done."""
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    args = run_args("run", manifest, state, "--simulate", "--sim-task-seconds", "0",
                    "--rpm", "none", "--poll-rpm", "none", "--poll-interval", "0.05")
    first = run_cli(*args, cwd=tmp_path, key=None)
    assert first.code == 0, str(first)
    assert counts(state) == {"done": 3}
    assert sorted(p.name for p in (state / "outputs" / "trio").iterdir()) == ["cat.mp4", "dog.mp4", "owl.mp4"]
    again = run_cli(*args, cwd=tmp_path, key=None)
    assert again.code == 0, str(again)
    assert "planning" not in again.stderr  # nothing new to plan, nothing submitted
    assert counts(state) == {"done": 3}


def test_failed_tasks_exit_1(tmp_path: Path, provider: ProviderFactory) -> None:
    """When the provider fails tasks, the run ends with exit 1 and the jobs are `failed` with its reason."""
    sim = provider(p_task_failed=1.0)
    manifest = write_manifest(tmp_path)
    result = run_cli(*run_args("run", manifest, tmp_path / "state", *sim.engine_args()), cwd=tmp_path)
    assert result.code == 1, str(result)
    assert counts(tmp_path / "state") == {"failed": 3}


def test_lost_results_exit_1(tmp_path: Path, provider: ProviderFactory) -> None:
    """A paid task the provider has long forgotten is `lost`, loudly, and the run exits 1."""
    sim = provider(task_retention_seconds=0.0)
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    submitted = run_cli(*run_args("submit", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert submitted.code == 3, str(submitted)
    # The engine calls a task lost only once TASK_NOT_FOUND has persisted for hours in several runs;
    # write that history into the ledger as if two earlier runs had seen it, seven and four hours ago.
    for hours in (7, 4):
        with open_ledger(state, clock=lambda hours=hours: time.time() - hours * 3600) as ledger:
            run_id = ledger.start_run(argv=["runner", "collect"])
            for job in ledger.iter_jobs("trio"):
                ledger.record_event(job.key, "poll", "not_found", http_status=404, detail="TASK_NOT_FOUND",
                                    task_id=job.task_id)
            ledger.finish_run(run_id, exit_code=3, counts={})
    result = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert result.code == 1, str(result)
    assert counts(state) == {"lost": 3}
    assert "LOST" in result.stderr
    assert sim.accepted() == 3


def test_bad_manifest_exits_2_naming_file_and_line(tmp_path: Path, provider: ProviderFactory) -> None:
    """A manifest error names file:line, exits 2, sends nothing and plans nothing."""
    sim = provider()
    manifest = write_manifest(tmp_path, THREE_JOBS.replace("duration: 3", "duration: 20"))
    state = tmp_path / "state"
    result = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert result.code == 2, str(result)
    line = THREE_JOBS.splitlines().index("  duration: 3") + 1
    assert f"trio.yaml:{line}:" in result.stderr, str(result)
    assert "duration" in result.stderr
    assert sim.accepted() == 0
    assert counts(state) == {}


def test_unknown_flag_exits_2(tmp_path: Path, provider: ProviderFactory) -> None:
    """A mistyped flag is a usage error (exit 2) that names the flag, before anything is sent."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    result = run_cli(*run_args("run", manifest, tmp_path / "state", *sim.engine_args(), "--concurency", "2"),
                     cwd=tmp_path)
    assert result.code == 2, str(result)
    assert "--concurency" in result.stderr
    assert sim.accepted() == 0


def test_bad_flag_value_exits_2_naming_the_flag(tmp_path: Path, provider: ProviderFactory) -> None:
    """A nonsensical value (--budget -1) exits 2 with a message naming the flag; nothing is sent."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    result = run_cli(*run_args("run", manifest, tmp_path / "state", *sim.engine_args(), "--budget", "-1"),
                     cwd=tmp_path)
    assert result.code == 2, str(result)
    assert "--budget" in result.stderr
    assert sim.accepted() == 0


def test_missing_key_exits_2_naming_the_variable(tmp_path: Path) -> None:
    """Without --simulate and without NOVITA_API_KEY: a clear message naming the variable, exit 2, nothing created."""
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    result = run_cli(*run_args("run", manifest, state, "--base-url", "http://127.0.0.1:9"), cwd=tmp_path, key=None)
    assert result.code == 2, str(result)
    assert "NOVITA_API_KEY" in result.stderr
    assert "--simulate" in result.stderr
    assert not state.exists()


def test_wrong_key_exits_2_and_leaves_jobs_pending(tmp_path: Path, provider: ProviderFactory) -> None:
    """A key the provider refuses stops the run at once: clear message, exit 2, every job still pending."""
    sim = provider(api_key="sk-the-right-key-4242")
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    result = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path, key="sk-a-wrong-key-1313")
    assert result.code == 2, str(result)
    assert "INVALID_API_KEY" in result.stderr and "NOVITA_API_KEY" in result.stderr
    assert sim.accepted() == 0
    assert counts(state) == {"pending": 3}


def test_a_key_revoked_mid_run_says_the_paid_tasks_are_kept(tmp_path: Path, provider: ProviderFactory) -> None:
    """The key stops working while tasks run: exit 2, and the run says that the tasks already paid for are recorded
    and that the next run with a working key collects them (operator sweep, 2026-12-04: it read as "nothing was
    sent"); that run pays for nothing twice."""
    sim = provider(api_key=KEY, task_seconds=1.0)
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    proc = start_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    wait_for(lambda: sim.accepted() >= 1, what="a paid task")
    sim.sim.configure(api_key="sk-the-key-after-it-was-rotated")
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2, stderr
    paid = sim.accepted()
    assert f"{paid} task(s) already paid for are recorded" in stderr and "INVALID_API_KEY" in stderr, stderr
    sim.sim.configure(api_key=KEY)
    again = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert again.code == 0 and counts(state) == {"done": 3} and sim.max_per_body() == 1, str(again)


def test_max_runtime_stops_with_exit_3(tmp_path: Path, provider: ProviderFactory) -> None:
    """--max-runtime ends a run on slow tasks gracefully: exit 3, tasks still running, none in doubt."""
    sim = provider(task_seconds=60.0)
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    result = run_cli(*run_args("run", manifest, state, *sim.engine_args("--max-runtime", "1")), cwd=tmp_path)
    assert result.code == 3, str(result)
    assert counts(state) == {"running": 3}
    assert sim.accepted() == 3


def test_budget_smaller_than_the_batch_stops_submitting_with_exit_3(tmp_path: Path, provider: ProviderFactory) -> None:
    """--budget below the batch's estimate submits only what fits, still collects it, and exits 3."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    result = run_cli(*run_args("run", manifest, state, *sim.engine_args("--budget", "0.7")), cwd=tmp_path)
    assert result.code == 3, str(result)
    assert "budget" in result.stderr
    assert sim.accepted() == 2  # 2 x 0.336 USD fit in 0.70, a third does not
    assert counts(state) == {"done": 2, "pending": 1}  # what was paid for is still downloaded


def test_sigterm_stops_gracefully_with_exit_3_and_nothing_in_doubt(tmp_path: Path, provider: ProviderFactory) -> None:
    """SIGTERM while POSTs are on the wire lets them finish and be recorded: exit 3, zero in doubt."""
    sim = provider(task_seconds=60.0, p_slow=1.0, slow_seconds=0.5)
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    proc = start_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    try:
        wait_for(lambda: sim.accepted() >= 1, what="a paid task whose response is still on the wire")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 3, stderr
    assert "Traceback" not in stderr
    assert "SIGTERM" in stderr
    found = counts(state)
    assert "in_doubt" not in found and "submitting" not in found, found
    assert found["running"] == sim.accepted() >= 1  # every paid task is recorded with its task_id


def test_submit_leaves_pending_jobs_and_exits_3(tmp_path: Path, provider: ProviderFactory) -> None:
    """`runner submit` fills the concurrency limit, records the task_ids and exits 3 (work outstanding)."""
    sim = provider(task_seconds=60.0)
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    result = run_cli(*run_args("submit", manifest, state, *sim.engine_args("--concurrency", "2")), cwd=tmp_path)
    assert result.code == 3, str(result)
    assert counts(state).get("pending") == 1
    assert sim.accepted() == 2


def test_in_doubt_jobs_exit_4_and_a_rerun_pays_nothing_more(tmp_path: Path, provider: ProviderFactory) -> None:
    """Submits whose answer was lost are held in doubt (exit 4); the next run submits nothing new."""
    sim = provider(p_drop=1.0)
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    first = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert first.code == 4, str(first)
    assert counts(state) == {"in_doubt": 3}
    assert sim.accepted() == 3
    sim.sim.configure(p_drop=0.0)
    second = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert second.code == 4, str(second)
    assert "IN DOUBT" in second.stderr and "retry" in second.stderr
    assert sim.accepted() == 3  # nothing paid twice
    assert counts(state) == {"in_doubt": 3}


def test_another_runner_holding_the_ledger_exits_75_naming_it(tmp_path: Path, provider: ProviderFactory) -> None:
    """While another process holds the ledger, a run exits 75, names the holder and sends nothing."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    with open_ledger(state):
        result = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert result.code == 75, str(result)
    assert f"pid {os.getpid()}" in result.stderr
    assert result.stderr.count("at work on the ledger") == 1, str(result)  # said once (it was twice: brief Q)
    assert "error" not in result.stderr and "nothing was sent" in result.stderr, str(result)  # a tick with nothing to do
    assert sim.accepted() == 0
    after = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert after.code == 0, str(after)  # the lock went with its holder


@pytest.mark.parametrize("command", ["regenerate", "accept"])
def test_a_command_refused_during_a_run_says_whether_accept_and_reject_would_work(tmp_path: Path, command: str) -> None:
    """A dataset builder reviewing during an overnight run: `regenerate` waits for the run (exit 75), and the refusal
    says that accept and reject are taken meanwhile (brief Q: nothing said so); accept itself is queued, exit 0."""
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    with open_ledger(state) as ledger:
        ledger.register(load_manifest(manifest).name, "d", list(expand(load_manifest(manifest))))
        key = next(iter(ledger.iter_jobs())).key
        args = [command, str(manifest), "--state", str(state)] + ([key] if command == "accept" else [])
        result = run_cli(*args, cwd=tmp_path)
    if command == "regenerate":
        assert result.code == 75, str(result)
        assert "`runner accept` and `runner reject` work during a run" in result.stderr, str(result)
    else:
        assert "work during a run" not in result.stderr, str(result)


def test_simulated_and_real_tasks_never_share_a_ledger(tmp_path: Path, provider: ProviderFactory) -> None:
    """A state dir used with --simulate refuses a real-provider run (and back): neither could find the other's tasks."""
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    sim = provider()
    submitted = run_cli(*run_args("submit", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert submitted.code == 3, str(submitted)
    simulated = run_cli(*run_args("collect", manifest, state, "--simulate", "--sim-task-seconds", "0"),
                        cwd=tmp_path, key=None)
    assert simulated.code == 2, str(simulated)
    assert "--state" in simulated.stderr and "nothing was sent" in simulated.stderr
    assert counts(state) == {"running": 3}  # untouched: not polled, not lost
