"""Helpers for tests of several runners on one PostgreSQL ledger: start one, finish it, read the jobs."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from runner.errors import LedgerSchemaError
from runner.jobs import JobState
from runner.ledger import AttemptRecord, JobRecord
from runner.ledger.postgres import open_postgres_ledger
from tests.acceptance.test_cli_support import KEY, clean_env, cli_argv

__all__ = ["TTL", "TWELVE", "finish", "jobs", "jobs_with_attempts", "owned_by", "start"]

TTL = "1.5"  # RUNNER_LEASE_TTL: a killed runner's work is taken over within a few seconds (60 s by default)
TWELVE = """\
name: twelve
defaults:
  duration: 3
prompt: "a {animal} at {time}"
matrix:
  animal: [cat, dog, owl, fox]
  time: [dawn, noon, dusk]
output: "{animal}-{time}.mp4"
"""


def start(tmp_path: Path, manifest: Path, url: str, base_url: str, *extra: str, ttl: str = TTL
          ) -> subprocess.Popen[str]:
    """``runner run`` on the shared ledger, videos under ``tmp_path/videos``; ``extra`` flags (e.g. ``--rpm``)."""
    args = ["run", str(manifest), "--ledger", url, "--state", str(tmp_path / "videos"), "--base-url", base_url,
            "--poll-rpm", "none", "--poll-interval", "0.05", *extra]
    env = clean_env({"NOVITA_API_KEY": KEY, "RUNNER_LEASE_TTL": ttl})
    return subprocess.Popen(cli_argv(*args), cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """Wait for a runner; its exit code and stderr (never a traceback)."""
    _, err = proc.communicate(timeout=90)
    assert "Traceback" not in err, err
    return proc.returncode, err


def jobs_with_attempts(url: str, tmp_path: Path) -> list[tuple[JobRecord, list[AttemptRecord]]]:
    """The manifest's jobs and their attempts; none before the first runner created the schema."""
    try:
        ledger = open_postgres_ledger(url, tmp_path / "videos", readonly=True)
    except LedgerSchemaError:
        return []
    with ledger:
        return [(job, ledger.attempts(job.key)) for job in ledger.iter_jobs("twelve")]


def jobs(url: str, tmp_path: Path) -> list[JobRecord]:
    return [job for job, _ in jobs_with_attempts(url, tmp_path)]


def owned_by(url: str, tmp_path: Path, pid: int, state: JobState) -> int:
    """Jobs in ``state`` owned by the runner with this pid on this host."""
    prefix = f"{socket.gethostname()}:{pid}:"
    return sum(1 for job in jobs(url, tmp_path) if job.state is state and (job.owner or "").startswith(prefix))
