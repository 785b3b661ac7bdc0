"""What a DBA's settings of the database or the role do to a PostgreSQL ledger.

Which schema of its database a ledger is in: the first of the connection's ``search_path`` that exists. A DBA's
habits move it: a schema named after the role (``CREATE SCHEMA AUTHORIZATION runner``; the default
``search_path`` is ``"$user", public``), or a ``search_path`` set for the role or the database. A runner then found
no ledger where it looked and made a new, empty one there — and the next run paid again for every job.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from runner.errors import LedgerError, LedgerSchemaError
from runner.jobs import JobSpec, JobState
from runner.ledger.postgres import open_postgres_ledger
from runner.service.outcome import EXIT_USAGE, exit_code_for

SPEC = JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": "clip", "duration": 5}, vars={}, repeat=1,
                     output="c.mp4", estimated_usd=0.56)


def _paid(url: str, state: Path) -> None:
    with open_postgres_ledger(url, state) as ledger:
        ledger.register("m", "d", [SPEC])
        attempt = ledger.mark_submitting(SPEC.key)
        assert attempt is not None and ledger.mark_running(SPEC.key, attempt, task_id="task-PAID", http_status=200)


@pytest.mark.parametrize("dba", ["CREATE SCHEMA runner", "CREATE SCHEMA batch; ALTER DATABASE {db} SET search_path = batch"])
def test_a_schema_a_dba_made_since_is_never_taken_for_a_new_ledger(pg_url: str, tmp_path: Path, dba: str) -> None:
    _paid(pg_url, tmp_path)
    with psycopg.connect(pg_url, autocommit=True) as admin:
        for statement in dba.format(db=pg_url.rsplit("/", 1)[1]).split("; "):
            admin.execute(statement)
    with pytest.raises(LedgerSchemaError, match=r"holds a runner ledger in schema public.*nothing was changed") as refused:
        open_postgres_ledger(pg_url, tmp_path)
    assert exit_code_for(refused.value) == EXIT_USAGE and "options=-csearch_path%3Dpublic" in str(refused.value)
    with psycopg.connect(pg_url, autocommit=True) as admin:
        assert admin.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'jobs'").fetchone() == (1,)
    with open_postgres_ledger(f"{pg_url}?options=-csearch_path%3Dpublic", tmp_path) as ledger:  # as the line says
        job = ledger.get(SPEC.key)
        assert job is not None and job.state is JobState.RUNNING and job.task_id == "task-PAID"


def test_a_new_ledger_in_a_schema_the_url_names_is_made_beside_another(pg_url: str, tmp_path: Path) -> None:
    """One database, a ledger per schema (docs/postgres.md): chosen in the URL, a second one is made on purpose."""
    _paid(pg_url, tmp_path)
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("CREATE SCHEMA other")
    with open_postgres_ledger(f"{pg_url}?options=-csearch_path%3Dother", tmp_path) as ledger:
        assert ledger.created and ledger.total() == 0


@pytest.mark.parametrize("setting", ["statement_timeout", "lock_timeout"])
def test_a_timeout_a_dba_set_for_the_database_does_not_cut_the_ledgers_statements(
    pg_url: str, tmp_path: Path, setting: str
) -> None:
    """A DBA's `ALTER DATABASE … SET statement_timeout` (or `lock_timeout`) cancelled the runner's long statements — a
    large manifest's first registration, a wait for another runner's row — as a plain ledger error, exit 3: every run
    of the batch stopped so, which a timer takes as success. The ledger's sessions run without them (as pg_dump's);
    the one wait the ledger bounds itself (a COMMIT's fate, 15 s) keeps its own."""
    with open_postgres_ledger(pg_url, tmp_path) as ledger:
        ledger.register("m", "d", [SPEC])
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE {pg_url.rsplit('/', 1)[1]} SET {setting} = '100ms'")
    with open_postgres_ledger(pg_url, tmp_path) as ledger, psycopg.connect(pg_url) as other:
        if setting == "statement_timeout":
            assert ledger._conn.scalar("SELECT pg_sleep(0.3)::text || 'slow'") == "slow"
        else:
            other.execute("SET lock_timeout = 0")
            other.execute("SELECT 1 FROM jobs FOR UPDATE")  # another session holds the job's row a while
            release = threading.Timer(0.3, other.commit)
            release.start()
            assert ledger.mark_submitting(SPEC.key) is not None
            release.join()


def _waiting_on_a_lock(admin: psycopg.Connection, database: str) -> tuple[int, object]:
    """(pid, query_start) of the ledger's backend once it waits for a lock; fails after 10 s."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        row = admin.execute("SELECT pid, query_start FROM pg_stat_activity WHERE application_name = 'runner'"
                            " AND datname = %s AND wait_event_type = 'Lock'", (database,)).fetchone()
        if row is not None:
            return row[0], row[1]
        time.sleep(0.01)
    raise AssertionError("the ledger's read never waited for the lock")


def test_a_read_a_dba_cancels_is_read_once_more(pg_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`pg_cancel_backend` (SQLSTATE 57014, a DBA stopping what looks stuck, a monitoring script) cut a read — here one
    waiting for a table a maintenance job locked — as a plain ledger error, exit 3, and the run stopped. A read
    changes nothing: it is read once more (once; a write stays a plain error)."""
    database = pg_url.rsplit("/", 1)[1]
    with open_postgres_ledger(pg_url, tmp_path) as ledger, psycopg.connect(pg_url) as maintenance, \
            psycopg.connect(pg_url, autocommit=True) as admin:
        ledger.register("m", "d", [SPEC])
        maintenance.execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")  # a VACUUM FULL, a CLUSTER
        answer: list[object] = []
        reader = threading.Thread(target=lambda: answer.append(_total_or_error(ledger)))
        reader.start()
        pid, started = _waiting_on_a_lock(admin, database)
        assert admin.execute("SELECT pg_cancel_backend(%s)", (pid,)).fetchone() == (True,)
        deadline = time.monotonic() + 10  # the read ended (an error) or waits again (read once more)
        while time.monotonic() < deadline and reader.is_alive() and admin.execute(
                "SELECT query_start = %s FROM pg_stat_activity WHERE pid = %s", (started, pid)).fetchone() == (True,):
            time.sleep(0.01)
        maintenance.commit()
        reader.join(10)
        assert answer == [1]
        assert "cancel" in caplog.text


def _total_or_error(ledger: object) -> object:
    try:
        return ledger.total()  # type: ignore[attr-defined]
    except LedgerError as exc:
        return exc


def _running_or_error(ledger: object, attempt: int) -> object:
    try:
        return ledger.mark_running(SPEC.key, attempt, task_id="task-PAID", http_status=200)  # type: ignore[attr-defined]
    except LedgerError as exc:
        return exc


def _cancel_when_it_waits(admin: psycopg.Connection, database: str, reader: threading.Thread, wait: str) -> None:
    """Cancel the ledger's statement once it waits (``wait``: 'Lock', or 'Timeout' for a pg_sleep), then wait until
    it ended or was sent again."""
    deadline = time.monotonic() + 10
    row = None
    while row is None and time.monotonic() < deadline:
        row = admin.execute("SELECT pid, query_start FROM pg_stat_activity WHERE application_name = 'runner'"
                            " AND datname = %s AND wait_event_type = %s", (database, wait)).fetchone()
        time.sleep(0.01)
    assert row is not None, "the ledger's write never waited"
    pid, started = row
    assert admin.execute("SELECT pg_cancel_backend(%s)", (pid,)).fetchone() == (True,)
    while time.monotonic() < deadline and reader.is_alive() and admin.execute(
            "SELECT query_start = %s FROM pg_stat_activity WHERE pid = %s", (started, pid)).fetchone() == (True,):
        time.sleep(0.01)


def test_a_task_id_write_a_dba_cancels_is_written_once_more(pg_url: str, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """`pg_cancel_backend` cut the write of a paid task's id (here waiting for the job's row a maintenance session
    held): a plain ledger error, the id sent to the rescue journal and the run stopped, exit 3. A statement cancelled
    before its COMMIT was sent is rolled back whole: the write is done once more, as one cut by a lost connection."""
    database = pg_url.rsplit("/", 1)[1]
    with open_postgres_ledger(pg_url, tmp_path) as ledger, psycopg.connect(pg_url) as maintenance, \
            psycopg.connect(pg_url, autocommit=True) as admin:
        ledger.register("m", "d", [SPEC])
        attempt = ledger.mark_submitting(SPEC.key)
        assert attempt is not None
        maintenance.execute("SELECT 1 FROM jobs FOR UPDATE")  # holds the job's row
        answer: list[object] = []
        writer = threading.Thread(target=lambda: answer.append(_running_or_error(ledger, attempt)))
        writer.start()
        _cancel_when_it_waits(admin, database, writer, "Lock")
        maintenance.commit()
        writer.join(10)
        assert answer == [True]
        job = ledger.get(SPEC.key)
        assert job is not None and job.state is JobState.RUNNING and job.task_id == "task-PAID"
        assert "cancel" in caplog.text


def test_a_write_cancelled_during_its_commit_is_written_once_more_only_when_it_was_rolled_back(
        pg_url: str, tmp_path: Path) -> None:
    """A cancel that lands on the COMMIT itself (a deferred trigger of a DBA's running there): the server rolled the
    transaction back (an error of a COMMIT is no commit); the connection's write mark says so, and the write is done
    once more — once: the job holds its id, one attempt closed."""
    database = pg_url.rsplit("/", 1)[1]
    with open_postgres_ledger(pg_url, tmp_path) as ledger, psycopg.connect(pg_url, autocommit=True) as admin:
        ledger.register("m", "d", [SPEC])
        attempt = ledger.mark_submitting(SPEC.key)
        assert attempt is not None
        admin.execute("CREATE SEQUENCE slow_once")
        admin.execute("CREATE FUNCTION slow_once() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                      " IF nextval('slow_once') = 1 THEN PERFORM pg_sleep(30); END IF; RETURN NULL; END $$")
        admin.execute("CREATE CONSTRAINT TRIGGER slow_once AFTER UPDATE ON jobs DEFERRABLE INITIALLY DEFERRED"
                      " FOR EACH ROW EXECUTE FUNCTION slow_once()")
        answer: list[object] = []
        writer = threading.Thread(target=lambda: answer.append(_running_or_error(ledger, attempt)))
        writer.start()
        _cancel_when_it_waits(admin, database, writer, "Timeout")
        writer.join(10)
        assert answer == [True]
        job = ledger.get(SPEC.key)
        assert job is not None and job.state is JobState.RUNNING and job.task_id == "task-PAID"
        assert [a.task_id for a in ledger.attempts(SPEC.key)] == ["task-PAID"]


@pytest.mark.parametrize("isolation", ["repeatable read", "serializable"])
def test_a_stricter_default_isolation_does_not_fail_the_rate_bucket_of_runners_at_once(
        pg_url: str, tmp_path: Path, isolation: str) -> None:
    """A DBA's ``ALTER DATABASE … SET default_transaction_isolation`` (``serializable``, a habit of some shops): every
    runner takes its submit token in one upsert of one row, out of an explicit transaction, so under that default a
    runner that waited for another's token failed with 'could not serialize access due to concurrent update' — a
    plain ledger error before a write-ahead, exit 3, the run stopped (four runners taking 300 tokens each: 707
    failures). The ledger's sessions run READ COMMITTED, as their transactions already did: the token is taken."""
    database = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE {database} SET default_transaction_isolation = '{isolation}'")
    with open_postgres_ledger(pg_url, tmp_path) as ledger, psycopg.connect(pg_url) as other, \
            psycopg.connect(pg_url, autocommit=True) as admin:
        ledger.take_token("submit", per_minute=600)
        other.execute("UPDATE rate_buckets SET tokens = tokens WHERE name = 'submit'")  # another runner's token
        answer: list[object] = []
        taker = threading.Thread(target=lambda: answer.append(_token_or_error(ledger)))
        taker.start()
        _waiting_on_a_lock(admin, database)
        other.commit()
        taker.join(10)
        assert len(answer) == 1 and isinstance(answer[0], float), answer


def _token_or_error(ledger: object) -> object:
    try:
        return ledger.take_token("submit", per_minute=600)  # type: ignore[attr-defined]
    except LedgerError as exc:
        return exc
