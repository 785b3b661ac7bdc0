"""A PostgreSQL ledger reached through a connection pooler in transaction mode (PgBouncer's ``pool_mode=transaction``,
common in managed PostgreSQL), imitated by ``tests/integration/pooler.py``: each transaction goes to the next of its
server connections, so no session state is sure to be there for the next one, and what one client's session left on a
server connection is there for the next client. Real ``runner`` subprocesses, the simulator on loopback."""

from __future__ import annotations

from pathlib import Path

import psycopg

from runner.ledger.rescue import pending_entries
from runner.testing_pg import TempPostgres
from tests.acceptance.test_cli_support import SIX_JOBS, ProviderFactory, provider, run_cli, write_manifest
from tests.integration.pooler import TransactionPooler

__all__ = ["provider"]

LEASE = {"RUNNER_LEASE_TTL": "3"}  # a refused runner's lease (it cannot delete it) lapses in seconds, not a minute
LATER = {"RUNNER_LEASE_TTL": "6"}  # the run after it takes its work over within seconds, and rides out a loaded machine


def _names_the_pooler(said: str) -> None:
    assert "connection pooler in transaction mode" in said and "session mode" in said, said
    assert "Traceback" not in said, said


def test_a_run_through_a_transaction_pooler_is_refused_before_anything_is_sent(
        tmp_path: Path, pg_server: TempPostgres, provider: ProviderFactory) -> None:
    """Each transaction on the next of two server connections: the run stopped with 'prepared statement "_pg3_0" does
    not exist', exit 3 (work outstanding: a timer runs it again, to the same end). It names the pooler and the fix,
    exit 2, nothing sent."""
    sim = provider()
    manifest = write_manifest(tmp_path, SIX_JOBS)
    name = pg_server.create_database().rsplit("/", 1)[1]
    with TransactionPooler((pg_server.host, pg_server.port)) as pool:
        ran = run_cli("run", str(manifest), "--ledger", pool.url(name), "--state", str(tmp_path / "videos"),
                      *sim.engine_args(), cwd=tmp_path)
    assert ran.code == 2, str(ran)
    _names_the_pooler(ran.stderr)
    assert sim.accepted() == 0


def test_what_a_plan_left_on_a_pooled_server_connection_is_refused_by_the_next_run(
        tmp_path: Path, pg_server: TempPostgres, provider: ProviderFactory) -> None:
    """A pool of one server connection, shared by one command after another. ``runner plan`` on a database without a
    ledger reads an empty one made in its session's temporary tables (``search_path`` set to ``pg_temp``); the run
    after it, handed that server connection, read those tables as the ledger and stopped with 'is not a runner
    ledger (runner_schema says otherwise)'. It names the pooler, exit 2; nothing sent, no ledger made."""
    sim = provider()
    manifest = write_manifest(tmp_path, SIX_JOBS)
    url = pg_server.create_database()
    name = url.rsplit("/", 1)[1]
    with TransactionPooler((pg_server.host, pg_server.port), backends=1) as pool:
        planned = run_cli("plan", str(manifest), "--ledger", pool.url(name), "--state", str(tmp_path / "videos"),
                          cwd=tmp_path)
        assert planned.code == 0, str(planned)
        ran = run_cli("run", str(manifest), "--ledger", pool.url(name), "--state", str(tmp_path / "videos"),
                      *sim.engine_args(), cwd=tmp_path)
    assert ran.code == 2, str(ran)
    _names_the_pooler(ran.stderr)
    assert sim.accepted() == 0
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT to_regclass('public.jobs')").fetchone() == (None,)


def test_a_pool_that_moves_a_run_to_another_server_connection_mid_batch_loses_no_paid_task(
        tmp_path: Path, pg_server: TempPostgres, provider: ProviderFactory) -> None:
    """The pool moves the run to a fresh server connection right after its first write-ahead (as PgBouncer does once
    the one it had goes to another client): every write after it is refused (exit 2, naming the pooler, where the
    line about the paid tasks told to run again 'with a working key and base URL', as for a key revoked); a task the
    provider accepted whose id could not be recorded is in the rescue journal, and a run on the server's own port
    afterwards records it and finishes the batch, each job paid once."""
    sim = provider(task_seconds=0.2)
    manifest = write_manifest(tmp_path, SIX_JOBS)
    url = pg_server.create_database()
    name = url.rsplit("/", 1)[1]
    videos = tmp_path / "videos"
    with TransactionPooler((pg_server.host, pg_server.port), backends=1, retire_after=b"INSERT INTO attempts") as pool:
        ran = run_cli("run", str(manifest), "--ledger", pool.url(name), "--state", str(videos), *sim.engine_args(),
                      cwd=tmp_path, env=LEASE)
        assert pool.retired
    assert ran.code == 2, str(ran)
    _names_the_pooler(ran.stderr)
    assert "working key" not in ran.stderr, str(ran)  # the key is not what to fix
    paid = sim.accepted()
    assert paid <= 1, "nothing is sent once the ledger cannot take a write-ahead"
    with psycopg.connect(url) as conn:
        recorded = conn.execute("SELECT count(*) FROM jobs WHERE task_id IS NOT NULL").fetchone()
    rescued = pending_entries(videos)
    assert recorded is not None and recorded[0] + len(rescued) >= paid, (recorded, rescued, ran)
    again = run_cli("run", str(manifest), "--ledger", url, "--state", str(videos), *sim.engine_args(), cwd=tmp_path,
                    env=LATER)  # the refused run's claims and lease, which it could not give back, lapse first
    assert again.code == 0, str(again)
    assert sim.accepted() == 6
    assert sim.max_per_body() == 1
