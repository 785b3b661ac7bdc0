"""Migrations: atomic whatever sqlite-utils version is installed, and the ``meta`` table."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from sqlite_utils import Database

from runner.errors import LedgerError
from runner.jobs import JobSpec, JobState
from runner.ledger import SCHEMA_VERSION, open_ledger
from runner.ledger import connection as connection_module
from runner.ledger.schema import APPLICATION_ID, MIGRATIONS, statements

_FAILS_MIDWAY = """
CREATE TABLE extra_one (x INTEGER);
CREATE TABLE extra_two (y TEXT);
INSERT INTO no_such_table VALUES (1);
CREATE TABLE extra_three (z REAL);
"""


def _tables(db: Path) -> set[str]:
    raw = sqlite3.connect(db)
    try:
        return {str(row[0]) for row in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        raw.close()


def _user_version(db: Path) -> int:
    raw = sqlite3.connect(db)
    try:
        return int(raw.execute("PRAGMA user_version").fetchone()[0])
    finally:
        raw.close()


@pytest.fixture
def executescript_commits_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """sqlite-utils 3.x: ``Database.executescript`` is ``sqlite3.executescript``, which COMMITs first."""

    def legacy(self: Database, sql: str) -> sqlite3.Cursor:
        return self.conn.executescript(sql)

    monkeypatch.setattr(Database, "executescript", legacy)


@pytest.mark.usefixtures("executescript_commits_first")
def test_first_open_works_when_executescript_commits_first(tmp_path: Path) -> None:
    """A new ledger is created and migrated with sqlite-utils 3.x's executescript too."""
    with open_ledger(tmp_path) as ledger:
        assert ledger.total() == 0
    assert _user_version(tmp_path / "ledger.db") == SCHEMA_VERSION


@pytest.mark.usefixtures("executescript_commits_first")
def test_a_migration_that_fails_midway_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing migration leaves the ledger at its old version with none of the new tables."""
    with open_ledger(tmp_path):
        pass
    db = tmp_path / "ledger.db"
    before = _tables(db)
    monkeypatch.setattr(connection_module, "MIGRATIONS", (*MIGRATIONS, _FAILS_MIDWAY))
    monkeypatch.setattr(connection_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(LedgerError, match="no_such_table"):
        open_ledger(tmp_path)
    assert _user_version(db) == SCHEMA_VERSION
    assert _tables(db) == before
    assert not {"extra_one", "extra_two", "extra_three"} & _tables(db)


def test_an_old_ledger_gains_the_meta_table_and_keeps_its_jobs(tmp_path: Path) -> None:
    """A ledger at schema 1 is migrated on the next writable open; its rows stay."""
    db = tmp_path / "ledger.db"
    raw = sqlite3.connect(db, isolation_level=None)
    for statement in statements(MIGRATIONS[0]):
        raw.execute(statement)
    raw.execute(f"PRAGMA application_id={connection_module.APPLICATION_ID}")
    raw.execute("PRAGMA user_version=1")
    raw.execute(
        "INSERT INTO jobs (key, model, request_json, vars_json, repeat, created_at, updated_at)"
        " VALUES ('k', 'm', '{}', '{}', 1, 0, 0)"
    )
    raw.close()
    with open_ledger(tmp_path, readonly=True) as reader:
        assert reader.total() == 1 and reader.meta("provider") is None
    assert _user_version(db) == 1  # a reader never migrates the file
    with open_ledger(tmp_path) as ledger:
        assert ledger.total() == 1
        ledger.set_meta("provider", "simulator")
    with open_ledger(tmp_path, readonly=True) as reader:
        assert reader.meta("provider") == "simulator"
    assert _user_version(db) == SCHEMA_VERSION


def test_statements_split_only_where_a_statement_ends() -> None:
    """A ``;`` in a string or a comment does not split a statement; a trailing fragment is refused."""
    script = "CREATE TABLE t (x TEXT);\nINSERT INTO t VALUES ('a;b'); -- note; more\nSELECT 1;\n"
    assert statements(script) == [
        "CREATE TABLE t (x TEXT);",
        "INSERT INTO t VALUES ('a;b');",
        "-- note; more\nSELECT 1;",
    ]
    assert statements("  \n") == []
    with pytest.raises(ValueError, match="incomplete"):
        statements("SELECT 1; SELECT")


def test_a_ledger_from_before_owners_recovers_its_submitting_rows(tmp_path: Path) -> None:
    """``_V2_ledgerapi`` on a ledger left with a POST in flight: the row has no owner, so it is expired
    and becomes in_doubt at the next start; its reservation stays."""
    job = JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": "p"}, vars={}, repeat=1, output="a.mp4",
                        estimated_usd=0.5)
    db = tmp_path / "ledger.db"
    raw = sqlite3.connect(db, isolation_level=None)
    before = MIGRATIONS.index(next(m for m in MIGRATIONS if "CREATE TABLE leases" in m))
    for script in MIGRATIONS[:before]:
        for statement in statements(script):
            raw.execute(statement)
    raw.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    raw.execute(f"PRAGMA user_version = {before}")
    raw.execute("INSERT INTO jobs (key, model, request_json, vars_json, repeat, state, attempts, spent_usd,"
                " estimated_usd, created_at, updated_at) VALUES (?, ?, '{}', '{}', 1, 'submitting', 1, 0.5, 0.5, 1, 1)",
                (job.key, job.model))
    raw.execute("INSERT INTO attempts (key, kind, started_at) VALUES (?, 'submit', 1)", (job.key,))
    raw.close()
    with open_ledger(tmp_path) as ledger:
        assert _user_version(db) == SCHEMA_VERSION
        assert ledger.recover_expired(ledger.owner) == 1
        record = ledger.get(job.key)
        assert record is not None and record.state is JobState.IN_DOUBT and record.owner is None
        assert ledger.spent_usd() == pytest.approx(0.5)
        assert ledger.attempts(job.key)[0].outcome == "interrupted"


def test_a_ledger_of_the_first_numbering_of_budget_is_resumed(tmp_path: Path) -> None:
    """A ledger written by main between 2026-12-03 08:18 and 08:36 (eeaafa8) is at schema 2 with the budget
    tables (its ``_V2_budget``, word for word today's ``_V3_budget``) and no ``meta``: the migrations were
    renumbered after it (8727a71). Resumed, it must not be refused ("table targeted already exists"), which
    left the operator with a ledger no runner opens but a new one, paying for every job again."""
    running = JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": "r"}, vars={}, repeat=1, output="r.mp4",
                            estimated_usd=0.5)
    sending = JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": "s"}, vars={}, repeat=1, output="s.mp4",
                            estimated_usd=0.5)
    db = tmp_path / "ledger.db"
    raw = sqlite3.connect(db, isolation_level=None)
    budget = next(m for m in MIGRATIONS if "CREATE TABLE targeted" in m)
    for script in (MIGRATIONS[0], budget):  # eeaafa8's MIGRATIONS = (_V1, _V2_budget)
        for statement in statements(script):
            raw.execute(statement)
    raw.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    raw.execute("PRAGMA user_version = 2")
    for job, state, task in ((running, "running", "task-r"), (sending, "submitting", None)):
        raw.execute("INSERT INTO jobs (key, model, request_json, vars_json, repeat, state, task_id, attempts,"
                    " spent_usd, estimated_usd, created_at, updated_at) VALUES (?, ?, ?, '{}', 1, ?, ?, 1, 0.5, 0.5,"
                    " 1, 1)", (job.key, job.model, json.dumps(job.request), state, task))
        raw.execute("INSERT INTO attempts (key, kind, started_at, task_id) VALUES (?, 'submit', 1, ?)", (job.key, task))
    raw.execute("INSERT INTO manifests VALUES ('m', 'd1', 2, 1, 1, 1)")
    raw.execute("INSERT INTO targets SELECT 'm', id, substr(key, 1, 4) || '.mp4', 1 FROM jobs")
    raw.execute("INSERT INTO targeted SELECT 'm', id, substr(key, 1, 4) || '.mp4', 1, NULL FROM jobs")
    raw.close()
    with open_ledger(tmp_path, readonly=True) as reader:  # status, plan: read as it is
        assert reader.total() == 2 and reader.meta("provider") is None
    with open_ledger(tmp_path) as ledger:
        assert _user_version(db) == SCHEMA_VERSION
        assert ledger.recover_expired(ledger.owner) == 1
        kept = ledger.get(running.key)
        assert kept is not None and kept.state is JobState.RUNNING and kept.task_id == "task-r"
        doubted = ledger.get(sending.key)
        assert doubted is not None and doubted.state is JobState.IN_DOUBT
        assert ledger.spent_usd("m") == pytest.approx(1.0)
        ledger.set_meta("provider", "simulator")
