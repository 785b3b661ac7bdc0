"""The first registration into an empty ledger (issue 14 item 5): rows in order, unique indexes built once.

A manifest of a million jobs used to insert each job key and output name into its UNIQUE index in
random order (52 s of CPU); now the first registration into an empty ledger drops the two unique
indexes, inserts the rows in id order and builds each index once, inside its one transaction. These
tests hold it to the same guarantees: a key is never registered twice, a duplicate is refused as
before with nothing planned, a kill midway leaves a ledger the next run opens and completes, and
the schema afterwards is exactly a new ledger's. ``_V6_scale`` moved the two inline ``UNIQUE``
constraints into named indexes; an older ledger keeps its rows, ids and references through it.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from children import reap

from runner.errors import ManifestError
from runner.jobs import JobSpec, JobState
from runner.ledger import SCHEMA_VERSION, SqliteLedger, open_ledger
from runner.ledger.schema import APPLICATION_ID, MIGRATIONS, statements
from runner.ledger.sqlite import first

MODEL = "kling-v3.0-pro-t2v"


def spec(i: int, *, output: str | None = None) -> JobSpec:
    return JobSpec.build(model=MODEL, request={"prompt": f"harbour {i}", "duration": 5}, vars={"i": i},
                         repeat=1, output=output or f"{i}.mp4", estimated_usd=0.56)


def specs(n: int, start: int = 0) -> Iterator[JobSpec]:
    return (spec(i) for i in range(start, start + n))


def schema(db: Path) -> list[tuple[str, str, str | None]]:
    raw = sqlite3.connect(db)
    try:
        return [(str(t), str(n), s) for t, n, s in
                raw.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")]
    finally:
        raw.close()


@pytest.fixture
def fresh_schema(tmp_path: Path) -> list[tuple[str, str, str | None]]:
    with open_ledger(tmp_path / "fresh"):
        pass
    return schema(tmp_path / "fresh" / "ledger.db")


def traced(ledger: SqliteLedger) -> list[str]:
    seen: list[str] = []
    ledger._conn.db.conn.set_trace_callback(seen.append)
    return seen


def test_first_registration_builds_the_unique_indexes_once(tmp_path: Path, fresh_schema: object) -> None:
    """Into an empty ledger: no job row goes into the key index one at a time; the schema ends as a new one's."""
    with open_ledger(tmp_path / "state") as ledger:
        seen = traced(ledger)
        assert ledger.register("m", "d", specs(5000), batch=2000) == 5000
        ledger._conn.db.conn.set_trace_callback(None)
        inserts = [i for i, sql in enumerate(seen) if sql.startswith("INSERT INTO jobs")]
        dropped = seen.index("DROP INDEX jobs_key")
        built = seen.index("CREATE UNIQUE INDEX jobs_key ON jobs (key)")
        assert dropped < inserts[0] and inserts[-1] < built
        assert seen.index("DROP INDEX targets_output") < seen.index(
            "CREATE UNIQUE INDEX targets_output ON targets (output, manifest)")
        assert [job.key for job in ledger.iter_jobs("m")] == [s.key for s in specs(5000)]
        assert [job.output for job in ledger.iter_jobs("m")] == [f"{i}.mp4" for i in range(5000)]
        assert ledger.counts("m")[JobState.PENDING] == ledger.total() == 5000
        # The second registration (the ledger is not empty) takes the usual path: an upsert per job.
        seen = traced(ledger)
        assert ledger.register("m", "d2", specs(5001)) == 5001
        assert not any(sql.startswith("DROP INDEX") for sql in seen)
        assert ledger.total() == 5001
    assert schema(tmp_path / "state" / "ledger.db") == fresh_schema


@pytest.mark.parametrize("duplicate", ["key", "output"])
def test_a_duplicate_in_the_first_registration_is_refused_and_plans_nothing(
    tmp_path: Path, fresh_schema: object, duplicate: str
) -> None:
    """A key or an output name given twice, chunks apart, is refused as on the usual path; nothing stays."""
    second = spec(3, output="again.mp4") if duplicate == "key" else spec(4500, output="3.mp4")
    with open_ledger(tmp_path / "state") as ledger:
        with pytest.raises(ManifestError, match="4501 jobs map to only 4500 distinct jobs and output files"):
            ledger.register("m", "d", [*specs(4500), second], batch=2000)
        assert ledger.total() == 0 and ledger.manifest_digest("m") is None
    assert schema(tmp_path / "state" / "ledger.db") == fresh_schema
    with open_ledger(tmp_path / "state") as ledger:
        assert ledger.register("m", "d", specs(4500), batch=2000) == 4500
        raw = ledger._conn.db.conn
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            raw.execute("INSERT INTO jobs (key, model, request_json, vars_json, repeat, created_at, updated_at)"
                        " VALUES (?, 'm', '{}', '{}', 1, 0, 0)", (spec(7).key,))
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            raw.execute("INSERT INTO targets (manifest, job_id, output, gen) VALUES ('m', 4500, '8.mp4', 9)")
        sums = "SELECT sum(j.estimated_usd) FROM jobs j JOIN targets t ON t.job_id = j.id AND t.manifest = 'm'"
        # A manifest's targets are read in job order (the primary key), not through the output index.
        assert "SEARCH t USING PRIMARY KEY" in str(raw.execute("EXPLAIN QUERY PLAN " + sums).fetchall())
        with pytest.raises(ManifestError, match="share a key or an output"):
            ledger.register("m", "d2", [*specs(10), spec(3, output="again.mp4")])
        assert ledger.total() == 4500


def test_a_failing_job_stream_in_the_first_registration_plans_nothing(tmp_path: Path, fresh_schema: object) -> None:
    def broken() -> Iterator[JobSpec]:
        yield from specs(3000)
        raise ManifestError("bad job", path="m.yaml", line=7)

    with open_ledger(tmp_path / "state") as ledger:
        with pytest.raises(ManifestError, match="bad job"):
            ledger.register("m", "d", broken(), batch=1000)
        assert ledger.total() == 0
    assert schema(tmp_path / "state" / "ledger.db") == fresh_schema


KILLED_MIDWAY = """
import sys
from pathlib import Path
from runner.jobs import JobSpec
from runner.ledger import open_ledger
from runner.ledger.sqlite import first

first.FIRST_BATCH = 2000  # chunks of the caller's batch

def jobs():
    for i in range(50_000):
        if i == 30_000:  # 15 chunks inserted, the unique indexes dropped: wait to be killed
            print("midway", flush=True)
            sys.stdin.read()
        job = JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"harbour {i}", "duration": 5},
                            vars={"i": i}, repeat=1, output=f"{i}.mp4", estimated_usd=0.56)
        # sys.argv[2] == "key": the default names, whose targets SQLite makes from the rows (INSERT … SELECT)
        yield job if sys.argv[2] != "key" else JobSpec.build(model=job.model, request=job.request, vars=job.vars,
                                                             repeat=1, output=job.key + ".mp4", estimated_usd=0.56)

with open_ledger(Path(sys.argv[1])) as ledger:
    ledger.register("m", "d", jobs(), batch=2000)
"""


@pytest.mark.parametrize("names", ["given", "key"])
def test_a_kill_midway_through_the_first_registration_leaves_a_ledger_the_next_run_completes(
    tmp_path: Path, fresh_schema: object, names: str
) -> None:
    state = tmp_path / "state"
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(KILLED_MIDWAY), str(state), names],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "midway\n", proc.stderr.read() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        reap(proc)
    # Killed inside the transaction, which writes with a rollback journal (its pages once, not via the WAL).
    journal = state / "ledger.db-journal"
    assert journal.stat().st_size > 0
    left = (state / "ledger.db").read_bytes(), journal.read_bytes()
    with open_ledger(state, readonly=True) as reader:  # status/plan/export: the rolled-back ledger, file untouched
        assert reader.total() == 0 and reader.manifest_digest("m") is None
    assert ((state / "ledger.db").read_bytes(), journal.read_bytes()) == left
    with open_ledger(state) as ledger:
        assert not journal.exists()  # rolled back by the writable open
        assert ledger._conn.db.conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert ledger.total() == 0 and ledger.manifest_digest("m") is None
        assert ledger.register("m", "d", specs(5000), batch=2000) == 5000
        assert ledger.counts("m")[JobState.PENDING] == ledger.total() == 5000
        with pytest.raises(ManifestError, match="share a key or an output"):
            ledger.register("m", "d2", [*specs(10), spec(3, output="again.mp4")])
    assert schema(state / "ledger.db") == fresh_schema


def _v5_ledger(tmp_path: Path) -> list[tuple[object, ...]]:
    """A ledger as the runner before ``_V6_scale`` left it (three jobs with gaps in their ids); its job rows."""
    db = tmp_path / "state" / "ledger.db"
    db.parent.mkdir()
    raw = sqlite3.connect(db, isolation_level=None)
    before = next(i for i, script in enumerate(MIGRATIONS) if "jobs_v6" in script)  # _V6_scale
    for script in MIGRATIONS[:before]:
        for statement in statements(script):
            raw.execute(statement)
    raw.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    raw.execute(f"PRAGMA user_version = {before}")
    raw.execute("PRAGMA foreign_keys = ON")
    for i in (5, 9, 12):  # ids with gaps: a job deleted once
        raw.execute("INSERT INTO jobs (id, key, model, request_json, vars_json, repeat, state, path, owner, sample,"
                    " review, created_at, updated_at) VALUES (?, ?, 'm', '{}', '{}', 1, 'done', ?, 'o', 1,"
                    " 'accepted', 1, 2)", (i, f"k{i}", f"outputs/{i}.mp4"))
        raw.execute("INSERT INTO targets VALUES ('m', ?, ?, 1)", (i, f"{i}.mp4"))
        raw.execute("INSERT INTO targeted VALUES ('m', ?, ?, 1, NULL)", (i, f"{i}.mp4"))
        raw.execute("INSERT INTO attempts (key, kind, started_at, task_id) VALUES (?, 'submit', 1, ?)",
                    (f"k{i}", f"t{i}"))
    raw.execute("INSERT INTO rejections (key, sample, reason, rejected_at) VALUES ('k9', 0, 'blurry', 1)")
    raw.execute("INSERT INTO renames VALUES ('k12', 'a', 'b')")
    raw.execute("INSERT INTO manifests VALUES ('m', 'd', 3, 1, 1, 1)")
    jobs_before = raw.execute("SELECT * FROM jobs ORDER BY id").fetchall()
    raw.close()
    return jobs_before


def test_an_older_ledger_keeps_its_rows_ids_and_references_through_v6(tmp_path: Path, fresh_schema: object) -> None:
    """``_V6_scale`` rebuilds ``jobs`` and ``targets``: every row, id and reference survives; uniqueness holds."""
    jobs_before = _v5_ledger(tmp_path)
    with open_ledger(tmp_path / "state") as ledger:
        raw = ledger._conn.db.conn
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert raw.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert raw.execute("SELECT * FROM jobs ORDER BY id").fetchall() == jobs_before
        assert raw.execute("SELECT job_id, output FROM targets ORDER BY job_id").fetchall() == [
            (5, "5.mp4"), (9, "9.mp4"), (12, "12.mp4")]
        assert raw.execute("PRAGMA foreign_key_check").fetchall() == []
        assert [job.key for job in ledger.iter_jobs("m")] == ["k5", "k9", "k12"]
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            raw.execute("INSERT INTO jobs (key, model, request_json, vars_json, repeat, created_at, updated_at)"
                        " VALUES ('k9', 'm', '{}', '{}', 1, 0, 0)")
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            raw.execute("INSERT INTO targets VALUES ('m', 77, '77.mp4', 1)")
        # A job with a target cannot be deleted: the references point at the new table.
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            raw.execute("DELETE FROM jobs WHERE id = 5")
    assert schema(tmp_path / "state" / "ledger.db") == fresh_schema


def test_a_read_only_open_reads_a_v5_ledger_as_it_is(tmp_path: Path) -> None:
    """``_V6_scale`` changes indexes and constraints only: ``status``/``top`` read a ledger not yet migrated
    from the file itself, not from an in-memory copy rebuilt at every open (seconds at 1M jobs)."""
    _v5_ledger(tmp_path)
    before = (tmp_path / "state" / "ledger.db").read_bytes()
    with open_ledger(tmp_path / "state", readonly=True) as ledger:
        raw = ledger._conn.db.conn
        assert raw.execute("PRAGMA database_list").fetchone()[2] != "", "read from a copy in memory"
        assert [job.key for job in ledger.iter_jobs("m")] == ["k5", "k9", "k12"]
        assert ledger.counts("m")[JobState.DONE] == 3
    assert (tmp_path / "state" / "ledger.db").read_bytes() == before


def test_default_output_names_are_made_by_sqlite_from_the_keys_just_inserted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk whose names are all ``{key}.mp4`` gets its targets from one INSERT … SELECT over its job rows; a
    chunk with any other name takes them from the JSON its jobs came in (one statement). Same rows either way."""
    monkeypatch.setattr(first, "FIRST_BATCH", 2000)
    named = [spec(i, output=f"{spec(i).key}.mp4") for i in range(5000)]
    named[2500] = spec(2500, output="custom.mp4")  # the second chunk (2000…3999) keeps its names as given
    with open_ledger(tmp_path / "state") as ledger:
        seen = traced(ledger)
        assert ledger.register("m", "d", named, batch=2000) == 5000
        ledger._conn.db.conn.set_trace_callback(None)
        targets = [sql for sql in seen if sql.startswith("INSERT INTO targets")]
        assert ["FROM jobs" in sql for sql in targets] == [True, False, True]  # chunk 2: from its JSON
        assert [(job.key, job.output) for job in ledger.iter_jobs("m")] == [(s.key, s.output) for s in named]
        raw = ledger._conn.db.conn
        assert raw.execute("SELECT count(*) FROM targeted WHERE manifest = 'm' AND dropped_at IS NULL").fetchone() == (
            5000,)
        assert raw.execute("SELECT DISTINCT gen FROM targets").fetchall() == [(1,)]
