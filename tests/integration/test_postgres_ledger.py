"""The PostgreSQL ledger against a throwaway server: its schema, its connection, its secrets.

The backend's behaviour is the contract suite's (tests/contract/test_ledger_backends.py); here is
what only a shared database has: several runners creating one schema at once, a newer or foreign
schema refused, durable commits whatever the server's default, the password kept out of every
message, the test server itself.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from runner import testing_pg
from runner.distribution import installed_version
from runner.errors import LedgerDiskError, LedgerError, LedgerSchemaError
from runner.jobs import JobSpec, JobState
from runner.ledger.api import LEASE_TTL_S
from runner.ledger.postgres import PostgresLedger, open_postgres_ledger, redacted, version
from runner.ledger.postgres.moves import BULK_LOCK
from runner.ledger.postgres.schema import SCHEMA_VERSION
from runner.service.outcome import EXIT_LOCAL, EXIT_STOPPED, exit_code_for
from runner.testing_pg import TempPostgres

ROOT = Path(__file__).resolve().parents[2]


def spec(i: int) -> JobSpec:
    return JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"clip {i}", "duration": 5},
                         vars={}, repeat=1, output=f"c{i}.mp4", estimated_usd=0.56)


def test_several_runners_creating_one_ledger_at_once_create_it_once(pg_url: str, tmp_path: Path) -> None:
    start = threading.Barrier(6)
    opened: list[PostgresLedger] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        start.wait()
        try:
            opened.append(open_postgres_ledger(pg_url, tmp_path))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert errors == []
        assert sum(ledger.created for ledger in opened) == 1
        opened[0].register("m", "d", [spec(1)])
        assert all(ledger.total() == 1 for ledger in opened)
    finally:
        for ledger in opened:
            ledger.close()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version FROM runner_schema").fetchall() == [(SCHEMA_VERSION,)]


def test_a_ledger_created_by_another_runner_during_the_catalog_look_is_not_called_foreign(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another runner commits a new ledger right after this one's first look at the catalog (the three-runner
    torture met it): this one must find a ledger, not "tables of something else" from two looks that saw
    the database before and after that commit."""
    real = psycopg.Connection.execute
    state = {"looked": False, "creating": False}

    def execute(self: psycopg.Connection[object], query: object, *args: object, **kwargs: object) -> object:
        cursor = real(self, query, *args, **kwargs)  # type: ignore[arg-type]  # its answer is in the cursor
        if "pg_tables" in str(query) and not state["looked"] and not state["creating"]:
            state["looked"] = state["creating"] = True
            open_postgres_ledger(pg_url, tmp_path / "other").close()  # the other runner commits a new ledger
            state["creating"] = False
        return cursor

    monkeypatch.setattr(psycopg.Connection, "execute", execute)
    with open_postgres_ledger(pg_url, tmp_path) as ledger:
        assert ledger.total() == 0 and not ledger.created
    assert state["looked"]


def test_a_newer_schema_is_refused_and_left_alone(pg_url: str, tmp_path: Path) -> None:
    open_postgres_ledger(pg_url, tmp_path).close()
    with psycopg.connect(pg_url) as conn:
        conn.execute("UPDATE runner_schema SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(LedgerSchemaError, match="newer runner"):
        open_postgres_ledger(pg_url, tmp_path)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version FROM runner_schema").fetchone() == (SCHEMA_VERSION + 1,)


def test_newer_runners_migrating_one_ledger_at_once_migrate_it_once_and_an_older_one_is_told_both_versions(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rolling upgrade: the first hosts upgraded open the ledger together, each seeing the older schema; under the
    advisory lock one migrates it, the others find it done. An older runner opened after is refused at open, the
    message naming the runner that wrote the schema, its own version and the upgrade."""
    open_postgres_ledger(pg_url, tmp_path).close()
    step = "CREATE TABLE upgrade_probe (id BIGINT PRIMARY KEY); ALTER TABLE jobs ADD COLUMN probe INTEGER DEFAULT 0;"
    with monkeypatch.context() as newer:  # a newer runner: one migration more, version 99.0.0
        newer.setattr(version, "MIGRATIONS", (*version.MIGRATIONS, step))
        newer.setattr(version, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
        newer.setattr(version, "installed_version", lambda: "99.0.0", raising=False)
        start = threading.Barrier(4)
        errors: list[BaseException] = []

        def open_one() -> None:
            start.wait()
            try:
                open_postgres_ledger(pg_url, tmp_path).close()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=open_one) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version FROM runner_schema").fetchall() == [(SCHEMA_VERSION + 1,)]
    with pytest.raises(LedgerSchemaError) as refused:
        open_postgres_ledger(pg_url, tmp_path)
    said = str(refused.value)
    assert f"newer runner, 99.0.0 (schema {SCHEMA_VERSION + 1} > {SCHEMA_VERSION} of this runner, " in said, said
    assert installed_version() in said and "upgrade runner to 99.0.0 or later (`pip install -U kling-runner`" in said


def test_a_database_of_something_else_is_refused(pg_url: str, tmp_path: Path) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE jobs (id int)")
    with pytest.raises(LedgerSchemaError, match="something else"):
        open_postgres_ledger(pg_url, tmp_path)


def test_create_false_and_readonly_create_nothing(pg_url: str, tmp_path: Path) -> None:
    with pytest.raises(LedgerSchemaError, match="no runner ledger"):
        open_postgres_ledger(pg_url, tmp_path, create=False)
    with open_postgres_ledger(pg_url, tmp_path, readonly=True) as reader:  # reads as empty (as SQLite's missing file)
        assert reader.total() == 0 and reader.counts()[JobState.PENDING] == 0 and list(reader.iter_jobs()) == []
        assert reader.runs() == [] and reader.leases() == []
        with pytest.raises(LedgerError, match="read-only"):
            reader.set_meta("k", "v")
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT to_regclass('runner_schema')").fetchone() == (None,)


def test_a_read_only_ledger_reads_and_refuses_writes(pg_url: str, tmp_path: Path) -> None:
    with open_postgres_ledger(pg_url, tmp_path) as ledger:
        ledger.register("m", "d", [spec(1)])
    with open_postgres_ledger(pg_url, tmp_path, readonly=True) as reader:
        assert reader.readonly and reader.total() == 1
        with pytest.raises(LedgerError, match="read-only"):
            reader.mark_submitting(spec(1).key)
    with open_postgres_ledger(pg_url, tmp_path) as ledger:
        assert ledger.attempts(spec(1).key) == []


def test_commits_are_durable_even_where_the_server_default_is_not(pg_url: str, tmp_path: Path) -> None:
    dbname = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{dbname}" SET synchronous_commit = off')
    with open_postgres_ledger(pg_url, tmp_path) as ledger:
        assert ledger._conn.scalar("SHOW synchronous_commit") == "on"


def test_the_password_appears_in_no_location_or_error(pg_server: TempPostgres, tmp_path: Path) -> None:
    secret = "s3cr3t-Pa55"
    url = pg_server.create_database().replace("runner@", f"runner:{secret}@")
    with open_postgres_ledger(url, tmp_path) as ledger:  # trust: the password is not checked, only carried
        assert secret not in ledger.location and secret not in repr(ledger)
        assert ledger.location == f"postgresql://runner@127.0.0.1:{pg_server.port}/{url.rsplit('/', 1)[1]}"
    closed_port = url.replace(f":{pg_server.port}/", ":1/")
    with pytest.raises(LedgerError) as refused:
        open_postgres_ledger(closed_port, tmp_path)
    assert "cannot connect" in str(refused.value) and secret not in str(refused.value)
    with pytest.raises(LedgerError) as missing:
        open_postgres_ledger(url.rsplit("/", 1)[0] + "/no_such_db", tmp_path)
    assert "no_such_db" in str(missing.value) and secret not in str(missing.value)
    assert redacted(f"postgresql://u:{secret}@h:5/db?sslmode=require") == ("postgresql://u@h:5/db", secret)


def _failing_moves_to_running(pg_url: str, condition: str) -> None:
    """Every move of a job to ``running`` fails on the server with SQLSTATE ``condition``, as a full disk would."""
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f"""
            CREATE FUNCTION fail_running() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'could not extend file "base/1/2": No space left on device'
                  USING ERRCODE = '{condition}', HINT = 'Check free disk space.'; END $$;
            CREATE TRIGGER fail_running BEFORE UPDATE ON jobs FOR EACH ROW
                WHEN (NEW.state = 'running') EXECUTE FUNCTION fail_running();""")


def _running_refused(ledger: PostgresLedger, pg_url: str, condition: str) -> tuple[int, LedgerError]:
    """Job 1 submitting, then its move to running (an accepted task's id) failed by the server with
    ``condition``: the attempt, and the error the ledger raised."""
    ledger.register("m", "d", [spec(1)])
    attempt = ledger.mark_submitting(spec(1).key)
    assert attempt is not None
    _failing_moves_to_running(pg_url, condition)
    with pytest.raises(LedgerError) as failed:
        ledger.mark_running(spec(1).key, attempt, task_id="task-1", http_status=200)
    return attempt, failed.value


@pytest.mark.parametrize("condition", ["disk_full", "io_error"])
def test_a_server_whose_disk_fails_is_a_ledger_disk_error_exit_6(pg_url: str, tmp_path: Path, condition: str) -> None:
    """The server answers 53100 disk_full or 58030 io_error to the money path's write (an accepted task's id): a
    LedgerDiskError naming the server, exit 6 as SQLite's FULL/IOERR, not 3 (which a unit takes as success);
    the write was rolled back whole and the same connection records the id once the disk is fixed."""
    with open_postgres_ledger(pg_url, tmp_path) as ledger:
        attempt, error = _running_refused(ledger, pg_url, condition)
        assert isinstance(error, LedgerDiskError), f"{type(error).__name__}: {error}"
        assert exit_code_for(error) == EXIT_LOCAL
        assert ledger.location in str(error) and "PostgreSQL server" in str(error) and "run again" in str(error)
        assert ("Free space on the PostgreSQL server's disk" if condition == "disk_full" else "I/O error") in str(error)
        held = ledger.get(spec(1).key)
        assert held is not None and held.state is JobState.SUBMITTING and held.task_id is None  # rolled back whole
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("DROP TRIGGER fail_running ON jobs")
        assert ledger.mark_running(spec(1).key, attempt, task_id="task-1", http_status=200)
        recorded = ledger.get(spec(1).key)
        assert recorded is not None and recorded.state is JobState.RUNNING and recorded.task_id == "task-1"


@pytest.mark.parametrize("condition", ["insufficient_resources", "out_of_memory", "too_many_connections"])
def test_other_resource_errors_of_the_server_keep_exit_3(pg_url: str, tmp_path: Path, condition: str) -> None:
    """Class 53's other conditions (too many open files, memory, connections) pass with time or are the server's
    configuration: no disk to free, so a plain LedgerError and exit 3 (the next run resumes)."""
    with open_postgres_ledger(pg_url, tmp_path) as ledger:
        _, error = _running_refused(ledger, pg_url, condition)
        assert not isinstance(error, LedgerDiskError) and exit_code_for(error) == EXIT_STOPPED


BULK = {
    "register": lambda led: led.register("m", "d2", [spec(1), spec(2)]),
    "recover_expired": lambda led: led.recover_expired(led.owner),
    "reset": lambda led: led.reset(None, JobState.FAILED),
    "release_claims": lambda led: led.release_claims(led.owner),
}


@pytest.mark.parametrize("name", list(BULK))
def test_statements_that_move_many_jobs_wait_for_each_other(pg_url: str, tmp_path: Path, name: str) -> None:
    """register, recover, reset and release take one advisory lock: two of them never lock shared rows in
    opposite orders (PostgreSQL would fail one with a deadlock)."""
    with open_postgres_ledger(pg_url, tmp_path) as ledger:
        ledger.register("m", "d", [spec(1)])
        done = threading.Event()
        with psycopg.connect(pg_url, autocommit=True) as holder:
            with holder.transaction():
                holder.execute("SELECT pg_advisory_xact_lock(%s)", (BULK_LOCK,))
                worker = threading.Thread(target=lambda: (BULK[name](ledger), done.set()))
                worker.start()
                with psycopg.connect(pg_url, autocommit=True) as watch:
                    for _ in range(400):  # until the worker's backend waits on the advisory lock
                        waiting = watch.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                                                " AND NOT granted").fetchone()
                        if waiting == (1,):
                            break
                        done.wait(0.01)
                    assert waiting == (1,) and not done.is_set()
            worker.join(timeout=30)
        assert done.is_set()


def test_the_throwaway_server_is_loopback_only_and_removed_afterwards(tmp_path: Path) -> None:
    with TempPostgres.start() as server:
        root = server.root
        with psycopg.connect(server.url()) as conn:
            assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
            assert conn.execute("SHOW fsync").fetchone() == ("on",)
            assert conn.execute("SHOW unix_socket_directories").fetchone() == (str(root),)
    assert not root.exists()


@pytest.mark.parametrize("env, outcome", [({"RUNNER_REQUIRE_POSTGRES": "1"}, "1 error"), ({"CI": "true"}, "1 error"),
                                          ({}, "1 skipped")], ids=["required", "ci", "elsewhere"])
def test_a_server_that_cannot_start_fails_in_ci_and_skips_elsewhere(env: dict[str, str], outcome: str,
                                                                     tmp_path: Path) -> None:
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "RUNNER_REQUIRE_POSTGRES")}
    target = f"{Path(__file__).relative_to(ROOT)}::test_a_newer_schema_is_refused_and_left_alone"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", "-rs", target],
        env=base | env | {"RUNNER_PG_BINDIR": str(tmp_path)}, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert outcome in run.stdout, run.stdout[-2000:]
    if outcome == "1 skipped":
        assert "no PostgreSQL server binaries" in run.stdout


def test_leases_follow_the_database_clock_not_a_skewed_host_clock(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runner whose host clock is an hour slow still writes leases that others see as live."""
    real = time.time
    with open_postgres_ledger(pg_url, tmp_path) as setup:
        setup.register("m", "d", [spec(1)])
    monkeypatch.setattr(time, "time", lambda: real() - 3600)
    slow = open_postgres_ledger(pg_url, tmp_path)  # its default clock: the server's
    try:
        assert abs(slow._clock() - real()) < 5
        assert slow.mark_submitting(spec(1).key) is not None
        assert slow.renew_lease(slow.owner)
        monkeypatch.setattr(time, "time", real)
        with open_postgres_ledger(pg_url, tmp_path) as other:
            assert other.recover_expired(other.owner) == 0, "the slow host's runner is live"
    finally:
        slow.close()


def test_the_throwaway_server_moves_to_another_port_when_its_port_was_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    real = testing_pg._free_port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = iter([taken.getsockname()[1]])
        monkeypatch.setattr(testing_pg, "_free_port", lambda: next(ports, None) or real())
        with TempPostgres.start() as server:
            assert server.port != taken.getsockname()[1]
            with psycopg.connect(server.url()) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)


_SUBMIT_AND_HANG = """
import sys, time
from pathlib import Path
from runner.ledger.postgres import open_postgres_ledger
ledger = open_postgres_ledger(sys.argv[1], Path(sys.argv[2]))
attempt = ledger.mark_submitting(sys.argv[3])
print(ledger.owner, attempt, flush=True)
time.sleep(120)  # "on the wire" until killed
"""


def test_a_killed_runner_s_submit_is_held_in_doubt_only_once_its_lease_expires(pg_url: str, tmp_path: Path) -> None:
    with open_postgres_ledger(pg_url, tmp_path) as setup:
        setup.register("m", "d", [spec(1), spec(2)])
    child = subprocess.Popen([sys.executable, "-c", _SUBMIT_AND_HANG, pg_url, str(tmp_path), spec(1).key],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        owner, attempt = child.stdout.readline().split()
        assert attempt != "None"
    finally:
        child.kill()
        child.wait(timeout=30)
        if child.stdout is not None:
            child.stdout.close()
    with open_postgres_ledger(pg_url, tmp_path) as other:
        assert other.recover_expired(other.owner) == 0, "its lease runs: the POST might still be answered"
        assert other.mark_submitting(spec(1).key) is None
        job = other.get(spec(1).key)
        assert job is not None and job.owner == owner and job.state is JobState.SUBMITTING
    later = time.time() + LEASE_TTL_S + 1
    with open_postgres_ledger(pg_url, tmp_path, clock=lambda: later) as other:
        assert other.recover_expired(other.owner) == 1
        assert other.get(spec(1).key).state is JobState.IN_DOUBT  # type: ignore[union-attr]
        assert other.mark_submitting(spec(1).key) is None, "never paid for again automatically"
        assert other.spent_usd() == pytest.approx(0.56)


def test_a_database_that_refuses_writes_is_named_as_such_not_as_a_bug(pg_url: str, tmp_path: Path) -> None:
    """The multi-host hunt: a URL that leads to a hot standby (a failover moved the primary, a load balancer chose the
    replica) or a database the DBA set ``default_transaction_read_only``: the first write was refused with "the ledger
    was opened read-only; this is a bug in runner". It names the server's refusal and what to check; exit 6, as a
    SQLite ledger on a read-only file system (it was 3, which a timer takes as success, every night until someone
    looked)."""
    open_postgres_ledger(pg_url, tmp_path).close()
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{pg_url.rsplit("/", 1)[1]}" SET default_transaction_read_only = on')
    with pytest.raises(LedgerError) as refused:
        open_postgres_ledger(pg_url, tmp_path)
    said = str(refused.value)
    assert "bug in runner" not in said and "refuses writes" in said and "standby" in said, said
    assert exit_code_for(refused.value) == EXIT_LOCAL


def test_an_older_hosts_reads_keep_working_after_a_newer_one_adds_a_column_to_every_table(
        pg_url: str, tmp_path: Path) -> None:
    """A rolling upgrade's migration only adds (postgres/schema.py): a column more in ``runs``, ``jobs``, ``attempts``.
    psycopg prepares a statement run 5 times on one connection, and a prepared ``SELECT *`` whose table gained a
    column fails from then on ('cached plan must not change result type'): an older host still running failed each
    listing of its runs after the upgrade. Every read names its columns."""
    with open_postgres_ledger(pg_url, tmp_path) as ledger:
        ledger.register("m", "d", [spec(1), spec(2)])
        run = ledger.start_run(argv=["run", "m.yaml"])
        for _ in range(6):  # prepared from the 5th
            assert [r.id for r in ledger.runs(limit=5)] == [run]
            assert ledger.attempts(spec(1).key) == []
            assert ledger.get(spec(1).key) is not None
        with psycopg.connect(pg_url, autocommit=True) as admin:
            for table in ("runs", "jobs", "attempts", "targets"):
                admin.execute(f"ALTER TABLE {table} ADD COLUMN newer_runner_note TEXT")
        for _ in range(2):
            assert [r.id for r in ledger.runs(limit=5)] == [run]
            assert ledger.attempts(spec(1).key) == []
            assert ledger.get(spec(1).key) is not None
