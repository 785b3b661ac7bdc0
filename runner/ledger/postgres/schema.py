"""The PostgreSQL ledger's schema and its numbered migrations (PostgreSQL dialect).

``MIGRATIONS[i]`` brings a database from version ``i`` to ``i + 1``; the version is the one row
of ``runner_schema``. Migrations only ever append, as for SQLite (:mod:`runner.ledger.schema`):
a released script is never edited. Nor may a script break the statements of the runners before it: hosts sharing
a ledger are upgraded one at a time, and an older runner whose write-ahead began before the migration's commit
records its POST's answer with them (:func:`~.version.still_current` stops it at its next one). It adds tables,
columns with defaults and indexes; it never renames, drops or tightens — and no statement reads ``*``: psycopg
prepares a statement run five times on a connection, and a prepared ``SELECT *`` fails once its table gained a
column. The tables and columns are those of the SQLite ledger at its
current version (so ``runner ledger copy`` moves rows as they are), in PostgreSQL types: times
are epoch seconds (``double precision``, from the ledger's clock), money estimated USD.

Differences from SQLite: ``jobs.id`` and ``attempts.id``/``runs.id`` are identity columns (planning
order is ``jobs.id``); ``leases`` is what makes an owner live across hosts.

Every runner that creates or migrates a database takes :data:`ADVISORY_LOCK` (``pg_advisory_xact_lock``)
inside the transaction that reads the version again and runs the missing scripts (:mod:`.version`), so several runners creating
the same ledger at once create it once. ``runner_schema.application`` marks the database as a
runner ledger: a database with tables of something else is refused, never written to.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["ADVISORY_LOCK", "APPLICATION", "MIGRATIONS", "SCHEMA_VERSION", "elsewhere", "read_as_empty"]

APPLICATION = "runner-ledger"
ADVISORY_LOCK = 0x52554E52  # "RUNR": serialises creation and migration of the schema

_V1 = """
CREATE TABLE runner_schema (
    application TEXT NOT NULL,
    version INTEGER NOT NULL
);

CREATE TABLE jobs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    model TEXT NOT NULL,
    request_json TEXT NOT NULL,
    vars_json TEXT NOT NULL,
    repeat INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN (
        'pending', 'submitting', 'in_doubt', 'running',
        'succeeded', 'done', 'failed', 'lost')),
    task_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    spent_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
    estimated_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
    error TEXT,
    reason TEXT,
    video_url TEXT,
    url_expires_at DOUBLE PRECISION,
    debug_json TEXT,
    path TEXT,
    sha256 TEXT,
    bytes BIGINT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    submitted_at DOUBLE PRECISION,
    finished_at DOUBLE PRECISION,
    owner TEXT
);
CREATE INDEX jobs_state ON jobs (state, id);
CREATE INDEX jobs_owner ON jobs (owner) WHERE owner IS NOT NULL;
CREATE INDEX jobs_path ON jobs (path) WHERE path IS NOT NULL;
CREATE INDEX jobs_task ON jobs (task_id) WHERE task_id IS NOT NULL;

CREATE TABLE targets (
    manifest TEXT NOT NULL,
    job_id BIGINT NOT NULL REFERENCES jobs (id),
    output TEXT NOT NULL,
    gen INTEGER NOT NULL,
    PRIMARY KEY (manifest, job_id),
    UNIQUE (manifest, output)
);
CREATE INDEX targets_job ON targets (job_id);

CREATE TABLE targeted (
    manifest TEXT NOT NULL,
    job_id BIGINT NOT NULL REFERENCES jobs (id),
    output TEXT NOT NULL,
    first_at DOUBLE PRECISION NOT NULL,
    dropped_at DOUBLE PRECISION,
    PRIMARY KEY (manifest, job_id)
);
CREATE INDEX targeted_job ON targeted (job_id);

CREATE TABLE manifests (
    name TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    jobs INTEGER NOT NULL,
    gen INTEGER NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    registered_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE runs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    argv TEXT NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    ended_at DOUBLE PRECISION,
    exit_code INTEGER,
    counts_json TEXT
);

CREATE TABLE attempts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key TEXT NOT NULL REFERENCES jobs (key),
    kind TEXT NOT NULL CHECK (kind IN ('submit', 'poll', 'download')),
    started_at DOUBLE PRECISION NOT NULL,
    ended_at DOUBLE PRECISION,
    outcome TEXT,
    task_id TEXT,
    http_status INTEGER,
    detail TEXT,
    run_id BIGINT REFERENCES runs (id)
);
CREATE INDEX attempts_key ON attempts (key, id);
CREATE INDEX attempts_task ON attempts (task_id) WHERE task_id IS NOT NULL;

CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE renames (
    key TEXT PRIMARY KEY REFERENCES jobs (key),
    src TEXT NOT NULL,
    dst TEXT NOT NULL
);

CREATE TABLE leases (
    owner TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    renewed_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
"""

# The operator's review (SQLite's ``_V5_review``): how many times a job's rejected video was
# regenerated, the verdict on its current video, and every rejection.
_V2_review = """
ALTER TABLE jobs ADD COLUMN sample INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN review TEXT CHECK (review IN ('accepted', 'rejected'));
CREATE INDEX jobs_review ON jobs (review) WHERE review IS NOT NULL;
CREATE TABLE rejections (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key TEXT NOT NULL REFERENCES jobs (key),
    sample INTEGER NOT NULL,
    reason TEXT NOT NULL,
    rejected_at DOUBLE PRECISION NOT NULL,
    task_id TEXT,
    path TEXT,
    sha256 TEXT,
    bytes BIGINT,
    kept_path TEXT,
    closed_at DOUBLE PRECISION,
    outcome TEXT CHECK (outcome IN ('regenerated', 'withdrawn'))
);
CREATE INDEX rejections_key ON rejections (key);
"""

# Global limits of several runners (issue 13): the shared submit rate's token bucket, on the server's
# clock (``runner.ledger.postgres.limits``). PostgreSQL only: one SQLite runner paces itself in memory;
# ``runner ledger copy`` does not copy it (a bucket is a few seconds of state, rebuilt at the first take).
_V6_pglimits = """
CREATE TABLE rate_buckets (
    name TEXT PRIMARY KEY,
    tokens DOUBLE PRECISION NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
"""

# The last write of each connection (``runner.ledger.postgres.connection``): a transaction that writes sets its
# connection's row to a new mark before its COMMIT, so a COMMIT whose answer was lost is looked up by its mark on a
# new connection (the row lock waits for a COMMIT still in progress; a crash that lost the COMMIT lost the mark).
# Not copied by ``runner ledger copy``; a connection's row stays after it closes, checked by later opens against the
# state directory's marks (``hostmarks``), and goes five weeks after its last write (``marks.PRUNE``).
_V4_marks = """
CREATE TABLE write_marks (
    conn TEXT PRIMARY KEY,
    mark BIGINT NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
"""

MIGRATIONS: tuple[str, ...] = (_V1, _V2_review, _V6_pglimits, _V4_marks)
SCHEMA_VERSION = len(MIGRATIONS)


def read_as_empty(raw: Any) -> None:
    """Read-only, a database without a ledger reads as an empty one (as a missing SQLite file does): the schema is
    made in this session's temporary tables, which alone it reads; the database is not written to (``runner plan``
    or ``export`` before any run). ``raw``: the psycopg connection (its errors are the caller's to turn)."""
    raw.execute("SET search_path = pg_temp")
    with raw.transaction():
        raw.execute("SET TRANSACTION READ WRITE")
        for script in MIGRATIONS:
            raw.execute(script.encode())


def elsewhere(tx: Any, url: str) -> str | None:
    """Before a new ledger is made: why not, when the database holds one in another schema and the URL does not
    choose the schema (``options=-csearch_path=…``, or ``PGOPTIONS``). The schema a connection uses is the first of its
    ``search_path`` that exists: a schema named after the user made later (``CREATE SCHEMA AUTHORIZATION``, a DBA's
    habit) or a ``search_path`` set for the role or database took runners to a new, empty ledger there, which paid
    again for every job. ``tx``: the creating transaction (rows as dicts)."""
    from psycopg.conninfo import conninfo_to_dict

    if "search_path" in f"{conninfo_to_dict(url).get('options') or ''} {os.environ.get('PGOPTIONS', '')}":
        return None
    row = tx.execute("SELECT current_schema() AS here, array_agg(DISTINCT schemaname::text) AS there"
                     " FROM pg_catalog.pg_tables WHERE tablename = 'runner_schema'"
                     " AND schemaname IS DISTINCT FROM current_schema() AND schemaname !~ '^pg_temp_'").fetchone()
    if not row["there"]:
        return None
    there = ", ".join(sorted(row["there"]))
    return (f"this database holds a runner ledger in schema {there}, but the connection's search_path now leads to"
            f" schema {row['here']}, which has none (a schema named after the user made since, or a search_path set"
            " for the role or database): a new ledger there would pay for the batch again. Name the ledger's schema"
            f" in the URL: ...?options=-csearch_path%3D{sorted(row['there'])[0]} (the same way, to make a new ledger in"
            f" {row['here']} on purpose); nothing was changed")
