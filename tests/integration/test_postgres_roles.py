"""A PostgreSQL ledger used by a role with fewer rights than the throwaway server's superuser, as operators deploy it:
no CREATE on the schema (PostgreSQL 15 gives none on ``public`` but to its owner), the ledger made by an admin, the
rights on its tables given or not, a role that may read and not write, a role whose ``search_path`` names no schema
there. Each works or is refused in one line naming
what the role lacks and the fix (exit 2: no rerun helps), never a half-made ledger.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest

from runner.errors import LedgerError
from runner.jobs import JobSpec, JobState
from runner.ledger.postgres import open_postgres_ledger
from runner.service.outcome import EXIT_USAGE, exit_code_for
from runner.testing_pg import TempPostgres


def spec(i: int) -> JobSpec:
    return JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"clip {i}", "duration": 5},
                         vars={}, repeat=1, output=f"c{i}.mp4", estimated_usd=0.56)


def _database_and_role(pg_server: TempPostgres) -> tuple[str, str]:
    """A new database whose ``public`` schema only its owner may create in, and a new login role (the admin's URL,
    the role's)."""
    admin = pg_server.create_database()
    role = f"app_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    return admin, admin.replace("postgresql://runner@", f"postgresql://{role}@")


def _tables(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]


def _refused(exc: LedgerError, *needles: str) -> None:
    said = str(exc)
    assert exit_code_for(exc) == EXIT_USAGE, said
    assert "may not do what the ledger needs" in said and "nothing was written" in said, said
    for needle in needles:
        assert needle in said, said


def test_a_role_that_may_not_create_in_the_schema_is_refused_and_makes_nothing(
        pg_server: TempPostgres, tmp_path: Path) -> None:
    """The database holds no ledger and the role may not create tables: 'permission denied for schema public LINE 2:
    CREATE TABLE …', a plain ledger error (exit 3 where a run's open did not make it 2: work outstanding, which a timer
    takes for success), naming no fix. It names CREATE on the schema and the owner, exit 2; the ledger is made in one
    transaction, so nothing of it is there."""
    admin, url = _database_and_role(pg_server)
    with pytest.raises(LedgerError) as refused:
        open_postgres_ledger(url, tmp_path)
    _refused(refused.value, "permission denied for schema public", "CREATE on the schema")
    assert _tables(admin) == []


def test_a_ledger_an_admin_made_is_refused_to_a_role_without_rights_on_its_tables(
        pg_server: TempPostgres, tmp_path: Path) -> None:
    """An admin made the ledger; the runners' role has no rights on its tables yet: a plain ledger error before, naming
    no fix. Exit 2, naming the GRANT it needs."""
    admin, url = _database_and_role(pg_server)
    open_postgres_ledger(admin, tmp_path).close()
    with pytest.raises(LedgerError) as refused:
        open_postgres_ledger(url, tmp_path / "other")
    _refused(refused.value, "permission denied for table", "GRANT")


def test_a_role_that_may_read_and_not_write_reads_and_is_refused_a_run(pg_server: TempPostgres, tmp_path: Path) -> None:
    """SELECT only (a reporting role): the read-only commands read the ledger; a writable open (a run) is refused, exit
    2, naming what it lacks, before anything can be written ahead or sent."""
    admin, url = _database_and_role(pg_server)
    with open_postgres_ledger(admin, tmp_path) as ledger:
        ledger.register("m", "d", [spec(1)])
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {url.split('//')[1].split('@')[0]}")
    with open_postgres_ledger(url, tmp_path, readonly=True) as reader:
        assert reader.total() == 1
    with pytest.raises(LedgerError) as refused:
        open_postgres_ledger(url, tmp_path)
    _refused(refused.value, "permission denied for table")


def test_a_role_with_rights_on_the_tables_an_admin_made_runs_without_create(pg_server: TempPostgres,
                                                                           tmp_path: Path) -> None:
    """No CREATE on the schema is no obstacle once the ledger is made: the role writes ahead and records."""
    admin, url = _database_and_role(pg_server)
    open_postgres_ledger(admin, tmp_path).close()
    role = url.split("//")[1].split("@")[0]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
        conn.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}")
    with open_postgres_ledger(url, tmp_path) as ledger:
        ledger.register("m", "d", [spec(1)])
        attempt = ledger.mark_submitting(spec(1).key)
        assert attempt is not None
        assert ledger.mark_running(spec(1).key, attempt, task_id="t-1", http_status=200)
        assert ledger.get(spec(1).key).state is JobState.RUNNING  # type: ignore[union-attr]


def test_a_right_revoked_mid_run_refuses_the_write_ahead(pg_server: TempPostgres, tmp_path: Path) -> None:
    """A DBA revokes the role's rights while a run goes on: the write-ahead was a plain ledger error, exit 3 (a timer
    runs it again, to the same end); it is refused, exit 2, naming the GRANT, and the job is still pending —
    nothing could be sent for it."""
    admin, url = _database_and_role(pg_server)
    open_postgres_ledger(admin, tmp_path).close()
    role = url.split("//")[1].split("@")[0]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
        conn.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}")
    with open_postgres_ledger(url, tmp_path) as ledger:
        ledger.register("m", "d", [spec(1)])
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"REVOKE INSERT ON attempts FROM {role}")
        with pytest.raises(LedgerError) as refused:
            ledger.mark_submitting(spec(1).key)
        _refused(refused.value, "permission denied for table attempts")
        assert ledger.get(spec(1).key).state is JobState.PENDING  # type: ignore[union-attr]


def test_a_role_whose_search_path_names_no_schema_there_is_told_to_name_one(pg_server: TempPostgres,
                                                                           tmp_path: Path) -> None:
    """The role's ``search_path`` (``ALTER ROLE … SET search_path``, a DBA's) names a schema this database lacks, and
    the database holds no ledger: 'no schema has been selected to create in LINE 2: CREATE TABLE …', a plain ledger
    error (exit 3 mid-run, or for a command that is not a run). It says the search_path names no schema and how to
    name one in the URL, exit 2; nothing made."""
    admin, url = _database_and_role(pg_server)
    role = url.split("//")[1].split("@")[0]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"GRANT CREATE ON SCHEMA public TO {role}")
        conn.execute(f"ALTER ROLE {role} SET search_path = nowhere")
    with pytest.raises(LedgerError) as refused:
        open_postgres_ledger(url, tmp_path)
    said = str(refused.value)
    assert exit_code_for(refused.value) == EXIT_USAGE, said
    assert "search_path" in said and "options=-csearch_path" in said and "nothing was written" in said, said
    assert _tables(admin) == []
