"""Which schema of its database a PostgreSQL ledger is in: the first of the connection's ``search_path`` that exists.

A DBA's habits move it: a schema named after the role (``CREATE SCHEMA AUTHORIZATION runner``; the default
``search_path`` is ``"$user", public``), or a ``search_path`` set for the role or the database. A runner then found
no ledger where it looked and made a new, empty one there — and the next run paid again for every job.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from runner.errors import LedgerSchemaError
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
