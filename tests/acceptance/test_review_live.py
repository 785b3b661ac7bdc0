"""Review decisions made during a run are saved by the run while it runs (a real `runner run` against the
simulator, its task slow): read-only commands see them before the run ends, a run killed as it saves one
applies each once and loses none, and a PostgreSQL ledger, which queues nothing, is untouched."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.ledger import open_ledger
from runner.ledger.postgres import open_postgres_ledger
from runner.ledger.rescue import CRASH_ENV

from test_cli_support import (
    THREE_JOBS,
    ProviderFactory,
    done_trio,
    finish_cli,
    provider,
    run_args,
    run_cli,
    start_cli,
    status,
    wait_for,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest

QUEUE_NAME = "review-queue.jsonl"  # runner.ledger.review_queue.QUEUE_NAME
EVERY = {"RUNNER_REVIEW_SAVE_EVERY": "0.2"}  # the run looks at the queue 5 times a second (5 s by default)
FOUR = THREE_JOBS.replace("[cat, dog, owl]", "[cat, dog, owl, fox]")


def _slow_run(tmp_path: Path, provider: ProviderFactory, env: dict[str, str]
              ) -> tuple[Path, Path, dict[str, str], subprocess.Popen[str]]:
    """The trio done, then a run of one more job whose task takes ten minutes: it holds the ledger throughout."""
    manifest, state, _sim, keys = done_trio(tmp_path, provider)
    slow = provider(task_seconds=600.0)
    write_manifest(tmp_path, FOUR)
    run = start_cli(*run_args("run", manifest, state, *slow.engine_args(), "--allow-provider-change"), cwd=tmp_path,
                    env=env)
    wait_for(lambda: slow.accepted() >= 1, what="the run's paid task")
    return manifest, state, keys, run


@pytest.fixture
def runs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for run in started:
        if run.poll() is None:
            run.kill()
        finish_cli(run)


def _rejections(state: Path, key: str) -> list[tuple[str, int]]:
    with open_ledger(state, readonly=True) as ledger:
        return [(r.reason, r.sample) for r in ledger.rejections(key)]


def test_a_reject_during_a_run_is_seen_by_status_and_ls_before_the_run_ends(
        tmp_path: Path, provider: ProviderFactory, runs: list[subprocess.Popen[str]]) -> None:
    """The run saves the queued reject within its next looks; `status` and `ls` (read-only) show it meanwhile."""
    manifest, state, keys, run = _slow_run(tmp_path, provider, EVERY)
    runs.append(run)
    queued = run_cli("reject", str(manifest), keys["owl"], "--reason", "blurry", "--state", str(state), cwd=tmp_path)
    assert queued.code == 0 and "1 reject(s) queued in trio" in queued.stdout, str(queued)
    assert "saves them within seconds" in queued.stdout, str(queued)
    wait_for(lambda: _rejections(state, keys["owl"]) == [("blurry", 0)], what="the run to save the reject")
    assert run.poll() is None  # saved while the run goes on, its task still running
    assert not (state / QUEUE_NAME).exists()
    seen = status(tmp_path, manifest, state)
    assert seen["rejected"] == 1 and seen["queued_decisions"] == 0, seen
    listed = run_cli("ls", str(manifest), "--state", str(state), cwd=tmp_path)
    assert listed.code == 0, str(listed)
    [owl] = [line for line in listed.stdout.splitlines() if keys["owl"][:10] in line]
    assert "(rejected)" in owl, listed.stdout
    assert run.poll() is None
    run.send_signal(signal.SIGINT)
    stderr = finish_cli(run)
    assert run.returncode == 3, stderr  # stopped, its task still running
    assert stderr.count("review decision(s) made during the run saved") == 1, stderr  # said once, when saved
    assert _rejections(state, keys["owl"]) == [("blurry", 0)]


@pytest.mark.parametrize("point", ["review-queue-applied", "review-queue-removed"])
def test_a_run_killed_as_it_saves_decisions_applies_each_once_and_loses_none(
        tmp_path: Path, provider: ProviderFactory, runs: list[subprocess.Popen[str]], point: str) -> None:
    """SIGKILL right after the run committed the queued decisions, before (or after) it removed the journal."""
    manifest, state, keys, run = _slow_run(tmp_path, provider, {**EVERY, CRASH_ENV: point})
    runs.append(run)
    assert run_cli("reject", str(manifest), keys["owl"], "--reason", "blurry", "--state", str(state),
                   cwd=tmp_path).code == 0
    wait_for(lambda: run.poll() is not None, what=f"the run to be killed at {point}")
    assert run.returncode == -signal.SIGKILL, finish_cli(run)
    assert (state / QUEUE_NAME).exists() is (point == "review-queue-applied")
    assert _rejections(state, keys["owl"]) == [("blurry", 0)]  # committed before the kill
    # the run is dead: `runner accept` writes at once, applying what the journal still holds first (again: no change)
    accepted = run_cli("accept", str(manifest), keys["dog"], "--state", str(state), cwd=tmp_path)
    assert accepted.code == 0 and "queued" not in accepted.stdout, str(accepted)
    assert not (state / QUEUE_NAME).exists()
    assert _rejections(state, keys["owl"]) == [("blurry", 0)]  # applied once
    with open_ledger(state, readonly=True) as ledger:
        reviews = {animal: (job.review if (job := ledger.get(key)) is not None else "gone")
                   for animal, key in keys.items()}
    assert reviews == {"cat": None, "dog": "accepted", "owl": "rejected"}


def test_a_postgres_ledger_queues_nothing_and_its_run_is_unaffected(
        tmp_path: Path, pg_url: str, provider: ProviderFactory, runs: list[subprocess.Popen[str]]) -> None:
    """On PostgreSQL (no single-writer lock) a reject during a run is written at once: no journal, nothing for
    the run to save, which goes on and stops as ever (a guard: the run's chore is for the SQLite ledger)."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    videos = tmp_path / "videos"
    assert run_cli("run", str(manifest), "--ledger", pg_url, "--state", str(videos), *sim.engine_args(),
                   cwd=tmp_path).code == 0
    with open_postgres_ledger(pg_url, state_dir=videos, readonly=True) as ledger:
        keys = {job.vars["animal"]: job.key for job in ledger.iter_jobs("trio")}
    slow = provider(task_seconds=600.0)
    write_manifest(tmp_path, FOUR)
    run = start_cli("run", str(manifest), "--ledger", pg_url, "--state", str(videos), *slow.engine_args(),
                    "--allow-provider-change", cwd=tmp_path, env=EVERY)
    runs.append(run)
    wait_for(lambda: slow.accepted() >= 1, what="the run's paid task")
    rejected = run_cli("reject", str(manifest), keys["owl"], "--reason", "blurry", "--ledger", pg_url, "--state",
                       str(videos), cwd=tmp_path)
    assert rejected.code == 0 and "1 clip(s) rejected" in rejected.stdout and "queued" not in rejected.stdout, \
        str(rejected)
    assert not (videos / QUEUE_NAME).exists()
    with open_postgres_ledger(pg_url, state_dir=videos, readonly=True) as ledger:
        assert [r.reason for r in ledger.rejections(keys["owl"])] == ["blurry"]  # written at once, not queued
    assert run.poll() is None
    run.send_signal(signal.SIGINT)
    stderr = finish_cli(run)
    assert run.returncode == 3, stderr  # stopped, its task still running
    assert "review decision" not in stderr, stderr
    with open_postgres_ledger(pg_url, state_dir=videos, readonly=True) as ledger:
        assert [r.reason for r in ledger.rejections(keys["owl"])] == ["blurry"]
