"""A rolling upgrade of the hosts sharing one PostgreSQL ledger: one host runs a newer runner, whose schema has a
migration more, while another still runs this one, both mid-batch.

Real runner subprocesses, the simulator on loopback, a throwaway PostgreSQL server. The newer runner is this
checkout with ``newer_runner/sitecustomize.py`` on its ``PYTHONPATH`` (one migration more, version 99.0.0).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psycopg
import pytest

from runner.jobs import JobState
from runner.ledger.postgres.schema import SCHEMA_VERSION
from tests.acceptance.multihost_support import TWELVE, finish, jobs, owned_by
from tests.acceptance.test_cli_support import (
    KEY,
    ProviderFactory,
    clean_env,
    cli_argv,
    provider,
    run_cli,
    wait_for,
    write_manifest,
)

__all__ = ["provider"]

pytestmark = pytest.mark.timeout(150)

NEWER_RUNNER = Path(__file__).resolve().parent / "newer_runner"
# Longer than the other multi-host tests' TTL: the older runner must still hold its lease when the newer one's
# migration lands. At 1.5 s a renewal late under a loaded suite (3 workers on 2 cores, a PostgreSQL server, the
# simulator) ended it on "lease expired" first, and the line this test reads never came (CI, 2026-12-06 10:54).
UPGRADE_TTL = "5"


def _newer_env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": f"{NEWER_RUNNER}:{path}" if path else str(NEWER_RUNNER)}


def _start(tmp_path: Path, manifest: Path, url: str, base_url: str, *extra: str, newer: bool = False
           ) -> subprocess.Popen[str]:
    args = ["run", str(manifest), "--ledger", url, "--state", str(tmp_path / "videos"), "--base-url", base_url,
            "--poll-rpm", "none", "--poll-interval", "0.05", *extra]
    env = clean_env({"NOVITA_API_KEY": KEY, "RUNNER_LEASE_TTL": UPGRADE_TTL, **(_newer_env() if newer else {})})
    return subprocess.Popen(cli_argv(*args), cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _schema(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT version FROM runner_schema").fetchone()
    return 0 if row is None else int(row[0])


def _submitted(url: str, tmp_path: Path) -> int:
    return sum(1 for job in jobs(url, tmp_path) if job.state is not JobState.PENDING)


def test_an_older_host_stops_sending_once_a_newer_one_migrated_the_schema_under_it_and_the_batch_finishes(
        tmp_path: Path, pg_url: str, provider: ProviderFactory) -> None:
    sim = provider(task_seconds=1.0, slow_seconds=45.0)  # released below (45 s: under the runner's read timeout)
    manifest = write_manifest(tmp_path, TWELVE, "twelve.yaml")
    older = _start(tmp_path, manifest, pg_url, sim.base_url, "--rpm", "20", "--concurrency", "3")  # 3 s apart
    newer: subprocess.Popen[str] | None = None
    try:
        wait_for(lambda: older.poll() is not None or _submitted(pg_url, tmp_path) >= 2, timeout=60,
                 what="the older runner's first submits")
        sim.sim.configure(p_slow=1.0)  # its next POST creates a task and is held: on the wire as the schema moves
        wait_for(lambda: older.poll() is not None or owned_by(pg_url, tmp_path, older.pid, JobState.SUBMITTING) >= 1,
                 timeout=30, what="a submit of the older runner on the wire")
        sim.sim.configure(p_slow=0.0)
        assert older.poll() is None, older.communicate()
        assert _submitted(pg_url, tmp_path) < 12
        newer = upgraded = _start(tmp_path, manifest, pg_url, sim.base_url, "--rpm", "none", "--concurrency", "3",
                                  newer=True)
        wait_for(lambda: upgraded.poll() is not None or _schema(pg_url) > SCHEMA_VERSION, timeout=30,
                 what="the newer runner's migration")
        assert older.poll() is None, "the older runner waits for the answer of its POST on the wire"
        sim.sim.release_slow()  # the answer comes once the schema moved: recorded on the newer one
        code, err = finish(older)
        new_code, new_err = finish(newer)
    finally:
        for proc in (older, newer):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
    # The older runner saw the newer schema at its next write-ahead: nothing more sent, one plain line, exit 3.
    assert code == 3, err
    assert "99.0.0" in err and f"schema {SCHEMA_VERSION + 1} > {SCHEMA_VERSION}" in err, err
    assert "this run sent nothing more" in err and "pip install -U kling-runner" in err, err
    # Its POST on the wire was answered and recorded before it stopped (none in doubt); the newer one finished the
    # batch, the older one's tasks included: each job paid once.
    assert new_code == 0, new_err
    with psycopg.connect(pg_url) as conn:  # (this checkout is the older runner: it refuses the ledger now)
        assert conn.execute("SELECT version FROM runner_schema").fetchall() == [(SCHEMA_VERSION + 1,)]
        assert conn.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall() == [("done", 12)]
    assert sim.accepted() == 12 and sim.max_per_body() == 1
    assert len(list((tmp_path / "videos").rglob("*.mp4"))) == 12
    # Started again before its upgrade, the older runner is refused at open, naming both versions and the fix.
    again = run_cli("run", str(manifest), "--ledger", pg_url, "--state", str(tmp_path / "videos"), "--base-url",
                    sim.base_url, cwd=tmp_path)
    assert again.code == 2 and "99.0.0" in again.stderr and "pip install -U kling-runner" in again.stderr, again.stderr
    assert sim.accepted() == 12
