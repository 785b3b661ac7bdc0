"""The ledger's schema and its numbered migrations.

``MIGRATIONS[i]`` brings a ledger from ``PRAGMA user_version = i`` to
``i + 1``; a ledger is at :data:`SCHEMA_VERSION` once every script has run.
Migrations only ever append: a released script is never edited, a change is
a new script. ``PRAGMA application_id`` marks the file as a runner ledger, so
an unrelated SQLite file is refused instead of being written to.

Tables (times are epoch seconds, money is estimated USD):

* ``jobs`` — one row per job key, shared by every manifest that asks for it;
  ``id`` (an alias of the rowid, stable across VACUUM) orders the work.
* ``targets`` — (manifest, job) → output file name in that manifest; keyed by
  the job's ``id`` so a manifest's jobs are read in order from the primary
  key; ``gen`` is the registration that last saw the pair, so the targets a
  manifest no longer lists can be dropped.
* ``manifests`` — name → digest of the file last registered and its job count;
  ``created_at`` (first registration) decides which manifest's output path
  is a shared job's primary one.
* ``attempts`` — every submit POST and every poll / download error.
* ``runs`` — one row per ``runner`` process that opened the ledger to write.
* ``targeted`` (``_V3_budget``) — every (manifest, job) pair a manifest ever
  targeted, kept when an edit drops the job: a manifest's spend (and its
  budget) counts every job it ever asked for, and a paid job that no
  manifest lists any more (an *orphan*) is still stored, in the orphans
  folder of the manifest that dropped it last. ``output`` is the last name
  the manifest gave it; ``dropped_at`` is when the manifest stopped listing
  it (``NULL`` while it still does).
* ``renames`` (``_V3_budget``) — the write-ahead journal of stored files being
  renamed to match an edited manifest: one step (``src`` → ``dst``, relative to
  the state directory) per job at a time, so a run killed mid-rename finds
  every file again.
* ``jobs.owner`` and ``leases`` (``_V2_ledgerapi``) — the runner that claimed a pending job or
  owns its in-flight work, and each runner's lease (renewed while it lives; see
  :mod:`runner.ledger.api`).
* ``jobs.sample``, ``jobs.review`` and ``rejections`` (``_V5_review``) — how many times a job's
  rejected video was regenerated, the operator's verdict on its current video, and every
  rejection (the video's path, sha256 and task when rejected, where it was moved aside).
* ``_V6_scale`` — the same tables, with the uniqueness of ``jobs.key`` and of a manifest's
  output names held by named indexes (``jobs_key``, ``targets_output`` on (output, manifest)) instead of inline
  ``UNIQUE`` constraints (whose indexes cannot be dropped): the first registration into an empty
  ledger drops them, inserts its rows in order and builds each index once, in the same
  transaction (see :mod:`runner.ledger.sqlite.planning`).
* ``_V7_task_index`` — partial indexes on the task ids of ``jobs`` and ``attempts``: which job holds a task.
* ``meta`` — key → value facts about the ledger itself (``provider``: the
  provider it was made with, a base URL or ``simulator``).

:func:`statements` splits a script into its statements, so that a migration
runs them one by one inside its own transaction (``executescript`` would
commit first).
"""

from __future__ import annotations

import sqlite3

__all__ = ["APPLICATION_ID", "MIGRATIONS", "READS_AS_CURRENT_FROM", "SCHEMA_VERSION", "pending", "statements"]

APPLICATION_ID = 0x52554E52  # "RUNR"

_V1 = """
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
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
    spent_usd REAL NOT NULL DEFAULT 0,
    estimated_usd REAL NOT NULL DEFAULT 0,
    error TEXT,
    reason TEXT,
    video_url TEXT,
    url_expires_at REAL,
    debug_json TEXT,
    path TEXT,
    sha256 TEXT,
    bytes INTEGER,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    submitted_at REAL,
    finished_at REAL
);
CREATE INDEX jobs_state ON jobs (state);

CREATE TABLE targets (
    manifest TEXT NOT NULL,
    job_id INTEGER NOT NULL REFERENCES jobs (id),
    output TEXT NOT NULL,
    gen INTEGER NOT NULL,
    PRIMARY KEY (manifest, job_id),
    UNIQUE (manifest, output)
) WITHOUT ROWID;
CREATE INDEX targets_job ON targets (job_id);

CREATE TABLE manifests (
    name TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    jobs INTEGER NOT NULL,
    gen INTEGER NOT NULL,
    created_at REAL NOT NULL,
    registered_at REAL NOT NULL
);

CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    argv TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    exit_code INTEGER,
    counts_json TEXT
);

CREATE TABLE attempts (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL REFERENCES jobs (key),
    kind TEXT NOT NULL CHECK (kind IN ('submit', 'poll', 'download')),
    started_at REAL NOT NULL,
    ended_at REAL,
    outcome TEXT,
    task_id TEXT,
    http_status INTEGER,
    detail TEXT,
    run_id INTEGER REFERENCES runs (id)
);
CREATE INDEX attempts_key ON attempts (key);
"""

_V2_ledger = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"""

_V3_budget = """
CREATE TABLE targeted (
    manifest TEXT NOT NULL,
    job_id INTEGER NOT NULL REFERENCES jobs (id),
    output TEXT NOT NULL,
    first_at REAL NOT NULL,
    dropped_at REAL,
    PRIMARY KEY (manifest, job_id)
) WITHOUT ROWID;
CREATE INDEX targeted_job ON targeted (job_id);
CREATE INDEX targeted_dropped ON targeted (manifest, job_id) WHERE dropped_at IS NOT NULL;
INSERT INTO targeted (manifest, job_id, output, first_at, dropped_at)
    SELECT t.manifest, t.job_id, t.output, coalesce(m.created_at, 0), NULL
    FROM targets t LEFT JOIN manifests m ON m.name = t.manifest;
CREATE INDEX jobs_path ON jobs (path) WHERE path IS NOT NULL;
CREATE TABLE renames (
    key TEXT PRIMARY KEY REFERENCES jobs (key),
    src TEXT NOT NULL,
    dst TEXT NOT NULL
) WITHOUT ROWID;
"""

_V2_ledgerapi = """
ALTER TABLE jobs ADD COLUMN owner TEXT;
CREATE INDEX jobs_owner ON jobs (owner) WHERE owner IS NOT NULL;
CREATE TABLE leases (
    owner TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at REAL NOT NULL,
    renewed_at REAL NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
"""

_V5_review = """
ALTER TABLE jobs ADD COLUMN sample INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN review TEXT CHECK (review IN ('accepted', 'rejected'));
CREATE INDEX jobs_review ON jobs (review) WHERE review IS NOT NULL;
CREATE TABLE rejections (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL REFERENCES jobs (key),
    sample INTEGER NOT NULL,
    reason TEXT NOT NULL,
    rejected_at REAL NOT NULL,
    task_id TEXT,
    path TEXT,
    sha256 TEXT,
    bytes INTEGER,
    kept_path TEXT,
    closed_at REAL,
    outcome TEXT CHECK (outcome IN ('regenerated', 'withdrawn'))
);
CREATE INDEX rejections_key ON rejections (key);
"""

# Rebuilds ``jobs`` and ``targets`` (same columns, same ids) with named unique indexes, and the state's
# CHECK as a chain of ORs: SQLite builds a constant ``IN (…)`` list of more than two values into a
# temporary table each time a statement runs, 3 µs of every row written one statement at a time
# (half the cost of inserting a job). The output index leads with ``output``: led by ``manifest`` it would
# serve SQLite's planner for reading a manifest's targets (in output order, a random walk over ``jobs``:
# 4.4 s against 0.6 s for a sum over 1M jobs) instead of the primary key. Runs with
# foreign keys off (``Connection.migrate``): dropping the old ``jobs`` would otherwise cascade checks
# onto every row that references it; the rows are copied with their ids, so every reference holds.
_V6_scale = """
CREATE TABLE jobs_v6 (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    model TEXT NOT NULL,
    request_json TEXT NOT NULL,
    vars_json TEXT NOT NULL,
    repeat INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state = 'pending' OR state = 'submitting'
        OR state = 'in_doubt' OR state = 'running' OR state = 'succeeded' OR state = 'done'
        OR state = 'failed' OR state = 'lost'),
    task_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    spent_usd REAL NOT NULL DEFAULT 0,
    estimated_usd REAL NOT NULL DEFAULT 0,
    error TEXT,
    reason TEXT,
    video_url TEXT,
    url_expires_at REAL,
    debug_json TEXT,
    path TEXT,
    sha256 TEXT,
    bytes INTEGER,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    submitted_at REAL,
    finished_at REAL,
    owner TEXT,
    sample INTEGER NOT NULL DEFAULT 0,
    review TEXT CHECK (review IN ('accepted', 'rejected'))
);
INSERT INTO jobs_v6 (id, key, model, request_json, vars_json, repeat, state, task_id, attempts, spent_usd,
    estimated_usd, error, reason, video_url, url_expires_at, debug_json, path, sha256, bytes, created_at,
    updated_at, submitted_at, finished_at, owner, sample, review)
    SELECT id, key, model, request_json, vars_json, repeat, state, task_id, attempts, spent_usd,
    estimated_usd, error, reason, video_url, url_expires_at, debug_json, path, sha256, bytes, created_at,
    updated_at, submitted_at, finished_at, owner, sample, review FROM jobs ORDER BY id;
DROP TABLE jobs;
ALTER TABLE jobs_v6 RENAME TO jobs;
CREATE UNIQUE INDEX jobs_key ON jobs (key);
CREATE INDEX jobs_state ON jobs (state);
CREATE INDEX jobs_path ON jobs (path) WHERE path IS NOT NULL;
CREATE INDEX jobs_owner ON jobs (owner) WHERE owner IS NOT NULL;
CREATE INDEX jobs_review ON jobs (review) WHERE review IS NOT NULL;
CREATE TABLE targets_v6 (
    manifest TEXT NOT NULL,
    job_id INTEGER NOT NULL REFERENCES jobs (id),
    output TEXT NOT NULL,
    gen INTEGER NOT NULL,
    PRIMARY KEY (manifest, job_id)
) WITHOUT ROWID;
INSERT INTO targets_v6 (manifest, job_id, output, gen) SELECT manifest, job_id, output, gen FROM targets;
DROP TABLE targets;
ALTER TABLE targets_v6 RENAME TO targets;
CREATE UNIQUE INDEX targets_output ON targets (output, manifest);
CREATE INDEX targets_job ON targets (job_id);
"""

# Recording a task id the provider gives asks which job already holds it (``mark_running``'s own read,
# ``moves.task_holder``; ``key_of_task``): a full scan of ``jobs`` and ``attempts`` without these. Partial: a job planned but not yet
# submitted has no task id, so the first registration of a large manifest does not maintain them.
_V7_task_index = """
CREATE INDEX jobs_task ON jobs (task_id) WHERE task_id IS NOT NULL;
CREATE INDEX attempts_task ON attempts (task_id) WHERE task_id IS NOT NULL;
"""

MIGRATIONS: tuple[str, ...] = (_V1, _V2_ledger, _V3_budget, _V2_ledgerapi, _V5_review, _V6_scale, _V7_task_index)
SCHEMA_VERSION = len(MIGRATIONS)
# A ledger at this version or later is read as it is by a read-only open (status, plan, ls, top): the
# migrations after it change only indexes and constraints, never a column a reader selects. An older
# one is upgraded in a private in-memory copy, which for _V6_scale would rebuild every table at each
# read-only open (seconds and a second copy in memory at 1M jobs, at every refresh of `runner top`).
READS_AS_CURRENT_FROM = 5


def pending(migrations: tuple[str, ...], version: int, tables: set[str]) -> tuple[str, ...]:
    """The scripts of ``migrations`` (:data:`MIGRATIONS`) a ledger at ``version`` holding ``tables`` still needs,
    in order: ``migrations[version:]``.

    Save one numbering that main shipped before the migrations were renumbered (eeaafa8, 2026-12-03): its
    ``(_V1, _V2_budget)``, ``_V2_budget`` word for word today's ``_V3_budget``. A ledger it wrote is at version 2
    with ``targeted`` and without ``meta``; it needs ``_V2_ledger`` and what follows ``_V3_budget``.
    """
    if version == 2 and "targeted" in tables and "meta" not in tables:
        return (_V2_ledger, *migrations[3:])
    return migrations[version:]


def statements(script: str) -> list[str]:
    """The statements of ``script``, in order, each ending with its ``;``.

    Split where :func:`sqlite3.complete_statement` says a statement ends, so a
    ``;`` inside a string, a comment or a trigger body does not cut one in two.
    Raises ``ValueError`` when the script ends with an incomplete statement.
    """
    found: list[str] = []
    pending = ""
    pieces = script.split(";")
    for index, piece in enumerate(pieces):
        pending += piece if index == len(pieces) - 1 else piece + ";"
        if index < len(pieces) - 1 and sqlite3.complete_statement(pending):
            if pending.strip(" \t\r\n;"):
                found.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement at the end of a script: {pending.strip()[:80]!r}")
    return found
