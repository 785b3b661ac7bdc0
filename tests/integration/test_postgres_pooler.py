"""A PostgreSQL ledger behind a connection pooler in transaction mode (PgBouncer's ``pool_mode=transaction``, the
default of many managed PostgreSQL offers), imitated by :mod:`tests.integration.pooler`: each transaction may run on
another server connection, so the session a runner set up — ``synchronous_commit`` raised to on, no
``statement_timeout``, the driver's prepared statements, a read-only session's temporary tables — is not sure to be
there. Such a ledger is refused (exit 2) naming the fix, a pool in session mode or the server's own port, as soon as a
transaction shows it; a write so refused is rolled back whole.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from runner.errors import LedgerError, LedgerSetupError
from runner.jobs import JobSpec
from runner.ledger.postgres import open_postgres_ledger
from runner.service.outcome import EXIT_USAGE, exit_code_for
from runner.testing_pg import TempPostgres
from tests.integration.pooler import TransactionPooler


def spec(i: int) -> JobSpec:
    return JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"clip {i}", "duration": 5},
                         vars={}, repeat=1, output=f"c{i}.mp4", estimated_usd=0.56)


def _refusal(said: str) -> None:
    assert "transaction mode" in said and "session mode" in said and "not the pooler's" in said, said


@pytest.mark.parametrize("prepared", [True, False], ids=["prepared", "pooler-keeps-prepared"])
def test_a_write_in_another_session_than_the_one_set_up_is_refused_and_rolled_back(
        pg_server: TempPostgres, tmp_path: Path, prepared: bool) -> None:
    """The server's default is ``synchronous_commit = off`` (the runner raises it to on in its session); the pool's
    server connection goes to another client between a write-ahead and the record of its task id, and the record
    runs on a fresh server connection, without the session's settings: it used to commit there, not durably (a
    crash of the server could lose a paid task's id). It is refused and rolled back: the job is still submitting
    (the engine then keeps the id in the rescue journal). With or without the driver's prepared statements (a pooler
    may keep them: PgBouncer 1.21's ``max_prepared_statements``; then only the session's name shows the move)."""
    url = pg_server.create_database()
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    with TransactionPooler((pg_server.host, pg_server.port), backends=1) as pool:
        ledger = open_postgres_ledger(pool.url(name), tmp_path)
        if not prepared:
            ledger._conn.raw.prepare_threshold = None
        try:
            ledger.register("m", "d", [spec(1)])
            attempt = ledger.mark_submitting(spec(1).key)
            assert attempt is not None
            pool.retire()
            with pytest.raises(LedgerSetupError) as refused:
                ledger.mark_running(spec(1).key, attempt, task_id="task-1", http_status=200)
        finally:
            ledger.close()
    _refusal(str(refused.value))
    assert exit_code_for(refused.value) == EXIT_USAGE
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT state, task_id FROM jobs").fetchall() == [("submitting", None)]


def test_a_statement_the_driver_prepared_in_another_session_names_the_pooler(
        pg_server: TempPostgres, tmp_path: Path) -> None:
    """psycopg prepares a statement sent five times; through a transaction pool the next one runs where it was never
    prepared: 'prepared statement "_pg3_0" does not exist', exit 3 — a timer takes 3 for work outstanding and runs
    again, to the same end, every night. It names the pooler, exit 2."""
    name = pg_server.create_database().rsplit("/", 1)[1]
    with TransactionPooler((pg_server.host, pg_server.port), backends=2) as pool:
        url = pool.url(name)
        open_postgres_ledger(pg_server.url(name), tmp_path).close()  # made straight on the server
        with pytest.raises(LedgerError) as refused, open_postgres_ledger(url, tmp_path, readonly=True) as reader:
            for _ in range(12):
                reader.counts()
    _refusal(str(refused.value))
    assert exit_code_for(refused.value) == EXIT_USAGE


def test_a_write_commits_durably_whatever_another_client_of_the_pool_left_on_its_session(
        pg_server: TempPostgres, tmp_path: Path) -> None:
    """A pool of one server connection that another application shares: its ``SET synchronous_commit = off`` stays on
    the server connection (no reset in transaction mode), and the runner's session name with it, so nothing shows the
    runner another session: its write-aheads committed with synchronous_commit off (a crash of the server could lose a
    write-ahead whose POST went out). Each write's COMMIT is durable now (a deferred trigger reads the setting as
    the COMMIT runs)."""
    url = pg_server.create_database()
    name = url.rsplit("/", 1)[1]
    with TransactionPooler((pg_server.host, pg_server.port), backends=1) as pool, \
            open_postgres_ledger(pool.url(name), tmp_path) as ledger:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("CREATE TABLE seen (setting text)")
            admin.execute("CREATE FUNCTION note() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                          " INSERT INTO seen VALUES (current_setting('synchronous_commit')); RETURN NULL; END $$")
            admin.execute("CREATE CONSTRAINT TRIGGER note AFTER INSERT OR UPDATE ON write_marks"
                          " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION note()")
        with psycopg.connect(pool.url(name), autocommit=True) as other:
            other.execute("SET synchronous_commit = off")
        ledger.register("m", "d", [spec(1)])
        assert ledger.mark_submitting(spec(1).key) is not None
    with psycopg.connect(url) as conn:
        settings = [row[0] for row in conn.execute("SELECT setting FROM seen")]
    assert settings and set(settings) == {"on"}, settings  # the registration, the write-ahead, the lease given back
