"""A PostgreSQL ledger whose URL comes to lead to a server that refuses writes mid-run — a failover that left the URL on
a hot standby, or a database set ``default_transaction_read_only`` (SQLSTATE 25006) — between a POST and the record
of its task id. Real ``runner`` subprocesses, the simulator on loopback, a throwaway PostgreSQL server."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg

from runner.ledger.rescue import pending_entries
from runner.testing_pg import TempPostgres
from tests.acceptance.test_cli_support import (
    KEY,
    SIX_JOBS,
    ProviderFactory,
    clean_env,
    cli_argv,
    finish_cli,
    provider,
    run_cli,
    wait_for,
    write_manifest,
)

__all__ = ["provider"]

LEASE = {"RUNNER_LEASE_TTL": "3"}  # the refused runner cannot delete its lease: it lapses in seconds
LATER = {"RUNNER_LEASE_TTL": "6"}  # the run after it takes its work over within seconds, and rides out a loaded machine


def test_a_server_that_turns_read_only_between_a_post_and_its_record_loses_no_paid_task(
        tmp_path: Path, pg_server: TempPostgres, provider: ProviderFactory) -> None:
    """The provider holds its answer to the first POST (the task is made, paid); meanwhile the database turns read-only
    and the runner's connection is cut, as a failover does. The task id cannot be recorded: it is in the rescue
    journal, nothing more is sent (no write-ahead can be taken), the run stops with exit 6 naming a standby and the
    fix (the README's exit codes: the ledger could not be written); once the URL leads to a primary again, a run
    records the id and finishes, each job paid once."""
    sim = provider(p_slow=1.0, slow_seconds=2.0)
    manifest = write_manifest(tmp_path, SIX_JOBS)
    url = pg_server.create_database()
    name = url.rsplit("/", 1)[1]
    videos = tmp_path / "videos"
    argv = cli_argv("run", str(manifest), "--ledger", url, "--state", str(videos), *sim.engine_args())
    proc = subprocess.Popen(argv, cwd=tmp_path, env=clean_env({"NOVITA_API_KEY": KEY, **LEASE}),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: sim.accepted() == 1, what="the first task made, its answer held")
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s"
                      " AND pid <> pg_backend_pid()", (name,))
    said = finish_cli(proc)
    assert proc.returncode == 6, said
    assert "refuses writes" in said and "standby" in said and "point --ledger at the primary" in said, said
    assert "Traceback" not in said and "bug in runner" not in said, said
    assert sim.accepted() == 1, "nothing is sent once the ledger cannot take a write-ahead"
    assert len(pending_entries(videos)) == 1, said  # the paid task's id
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SET default_transaction_read_only = off")
        admin.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
    again = run_cli("run", str(manifest), "--ledger", url, "--state", str(videos), *sim.engine_args(), cwd=tmp_path,
                    env=LATER)
    assert again.code == 0, str(again)
    assert sim.accepted() == 6 and sim.max_per_body() == 1
