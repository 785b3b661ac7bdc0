"""The service layer as a library user calls it: plan and run a manifest against the simulator on a
loopback port, without click, and read the Outcome (exit code, counts, what it said)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner import service
from runner.errors import LedgerLocked, ProviderUnreachable, UsageError
from runner.jobs import JobState
from runner.ledger import open_ledger
from runner.simulator import SimConfig, Simulator, SimulatorThread

KEY = "sk-test-service-0123456789"
TRIO = """\
name: trio
defaults:
  duration: 3
prompt: "a {animal} crossing a quiet street"
matrix:
  animal: [cat, dog, owl]
output: "{animal}.mp4"
"""
FAST = {"rpm": "none", "poll_rpm": "none", "poll_interval": "0.05"}


@pytest.fixture
def simulator() -> Iterator[Any]:
    servers: list[SimulatorThread] = []

    def start(**knobs: Any) -> SimulatorThread:
        knobs.setdefault("task_seconds", 0.0)
        server = SimulatorThread(Simulator(SimConfig(**knobs))).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def _manifest(tmp_path: Path) -> Path:
    path = tmp_path / "trio.yaml"
    path.write_text(TRIO, encoding="utf-8")
    return path


def _options(tmp_path: Path, server: SimulatorThread, **more: Any) -> service.RunOptions:
    return service.RunOptions(state_dir=tmp_path / "state", base_url=server.base_url, settings=FAST,
                              environ={"NOVITA_API_KEY": KEY}, quiet=True, argv=["my-script"], **more)


def test_a_library_user_plans_and_runs_a_manifest(tmp_path: Path, simulator: Any) -> None:
    """plan says 3 to submit; run ends 0 with 3 done, the videos stored, the notices handed over."""
    manifest = _manifest(tmp_path)
    server = simulator()
    planned = service.plan(manifest, tmp_path / "state")
    assert (planned.jobs, planned.to_submit) == (3, 3)
    assert planned.as_dict()["estimated_usd_to_submit"] == pytest.approx(3 * 3 * 0.112)
    heard: list[service.Notice] = []
    outcome = service.run(manifest, _options(tmp_path, server), notify=heard.append)
    assert outcome.exit_code == service.EXIT_OK and outcome.ok
    assert {k: v for k, v in outcome.counts.items() if v} == {"done": 3}
    assert outcome.result is not None and outcome.result.done == 3
    assert outcome.messages == heard and any("3 job(s) in trio" in n.text for n in heard)
    assert sorted(p.name for p in (tmp_path / "state" / "outputs" / "trio").iterdir()) == [
        "cat.mp4", "dog.mp4", "owl.mp4"]
    with open_ledger(tmp_path / "state", readonly=True) as ledger:
        assert ledger.meta("provider") is not None
    assert service.plan(manifest, tmp_path / "state").to_submit == 0
    summary = service.status(manifest, tmp_path / "state")
    assert (summary.total, summary.counts[JobState.DONE]) == (3, 3)
    with service.jobs(manifest, tmp_path / "state", states=[JobState.DONE], limit=2) as found:
        keys = [job.key for job in found.records]
    assert len(keys) == 2
    assert service.show(keys[0][:10], tmp_path / "state").job.key == keys[0]


def test_submit_only_exits_3_and_collect_without_a_manifest_finishes(tmp_path: Path, simulator: Any) -> None:
    manifest = _manifest(tmp_path)
    server = simulator()
    submitted = service.run(manifest, _options(tmp_path, server), mode=service.SUBMIT)
    assert submitted.exit_code == service.EXIT_STOPPED
    assert submitted.counts["running"] == 3
    collected = service.run(None, _options(tmp_path, server), mode=service.COLLECT)
    assert collected.exit_code == service.EXIT_OK and collected.counts["done"] == 3


def test_failed_tasks_end_with_exit_1_and_retry_puts_them_back(tmp_path: Path, simulator: Any) -> None:
    manifest = _manifest(tmp_path)
    server = simulator(p_task_failed=1.0)
    outcome = service.run(manifest, _options(tmp_path, server))
    assert outcome.exit_code == service.EXIT_FAILED and outcome.counts["failed"] == 3
    retried = service.retry(manifest, "failed", service.RunOptions(state_dir=tmp_path / "state"))
    assert (retried.moved, retried.exit_code) == (3, service.EXIT_OK)
    assert retried.cost_usd == pytest.approx(3 * 3 * 0.112)


def test_dropped_submits_are_held_in_doubt_exit_4(tmp_path: Path, simulator: Any) -> None:
    """The provider drops every submit's answer: the jobs are in doubt, held, and the exit code is 4."""
    manifest = _manifest(tmp_path)
    server = simulator(p_drop=1.0)
    outcome = service.run(manifest, _options(tmp_path, server))
    assert outcome.exit_code == service.EXIT_IN_DOUBT
    assert outcome.counts["in_doubt"] >= 1
    held = service.prepare(manifest, service.RunOptions(state_dir=tmp_path / "state"))
    assert any(n.level == "warning" and "IN DOUBT and held" in n.text for n in held.messages)


def test_prepare_plans_into_the_ledger_and_sends_nothing(tmp_path: Path, simulator: Any) -> None:
    manifest = _manifest(tmp_path)
    prepared = service.prepare(manifest, service.RunOptions(state_dir=tmp_path / "state"))
    assert prepared.exit_code == service.EXIT_OK and prepared.counts["pending"] == 3
    assert any(n.level == "notice" and "created a new ledger" in n.text for n in prepared.messages)


def test_usage_errors_raise_with_exit_code_2_before_anything_is_sent(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    with pytest.raises(UsageError) as caught:
        service.run(manifest, service.RunOptions(state_dir=tmp_path / "state", environ={}))
    assert "NOVITA_API_KEY" in str(caught.value)
    assert service.exit_code_for(caught.value) == service.EXIT_USAGE
    assert not (tmp_path / "state" / "ledger.db").exists()


def test_a_ledger_held_by_another_runner_raises_exit_75(tmp_path: Path, simulator: Any) -> None:
    manifest = _manifest(tmp_path)
    server = simulator()
    with open_ledger(tmp_path / "state"), pytest.raises(LedgerLocked) as caught:
        service.run(manifest, _options(tmp_path, server))
    assert service.exit_code_for(caught.value) == service.EXIT_LOCKED


def test_the_service_does_not_need_the_command_line() -> None:
    """A library user's process imports runner.service without runner.cli (click comes with httpx anyway)."""
    code = "import sys, runner.service; sys.exit('runner.cli' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_a_provider_nobody_answers_for_raises_exit_5_with_the_jobs_pending(tmp_path: Path) -> None:
    """Six submits fail to connect at once: ProviderUnreachable (exit 5), every job still pending."""
    path = tmp_path / "six.yaml"
    path.write_text(TRIO.replace("trio", "six").replace("[cat, dog, owl]", "[cat, dog, owl, fox, bee, elk]"),
                    encoding="utf-8")
    options = service.RunOptions(state_dir=tmp_path / "state", base_url="http://127.0.0.1:9",
                                 settings={"rpm": "none", "concurrency": "6"}, environ={"NOVITA_API_KEY": KEY},
                                 quiet=True)
    with pytest.raises(ProviderUnreachable) as caught:
        service.run(path, options)
    assert service.exit_code_for(caught.value) == service.EXIT_UNREACHABLE
    with open_ledger(tmp_path / "state", readonly=True) as ledger:
        assert {str(k): v for k, v in ledger.counts("six").items() if v} == {"pending": 6}
