"""``runner run`` on a PostgreSQL ledger as a role that may not make it (no CREATE on the schema: PostgreSQL 15 gives
none on ``public`` but to its owner). A real ``runner`` subprocess, the simulator on loopback."""

from __future__ import annotations

from pathlib import Path

import psycopg

from runner.testing_pg import TempPostgres
from tests.acceptance.test_cli_support import SIX_JOBS, ProviderFactory, provider, run_cli, write_manifest

__all__ = ["provider"]


def test_a_run_as_a_role_that_may_not_make_the_ledger_is_one_line_and_exit_2(
        tmp_path: Path, pg_server: TempPostgres, provider: ProviderFactory) -> None:
    """It said 'permission denied for schema public LINE 2: CREATE TABLE runner_schema ( ^': the statement's text, not
    what the role lacks or what to do. Now one line naming CREATE on the schema and the fix, exit 2; nothing sent,
    nothing of a ledger made."""
    sim = provider()
    manifest = write_manifest(tmp_path, SIX_JOBS)
    admin = pg_server.create_database()
    role = f"cli_{admin.rsplit('/', 1)[1]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    url = admin.replace("postgresql://runner@", f"postgresql://{role}@")
    ran = run_cli("run", str(manifest), "--ledger", url, "--state", str(tmp_path / "videos"), *sim.engine_args(),
                  cwd=tmp_path)
    assert ran.code == 2, str(ran)
    errors = [line for line in ran.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "CREATE on the schema" in errors[0] and "LINE" not in errors[0], str(ran)
    assert sim.accepted() == 0
    with psycopg.connect(admin) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
