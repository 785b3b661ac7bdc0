"""Planning a manifest into the SQLite ledger: one transaction, jobs consumed in batches."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable, Iterator

from runner.collector import fewer_collections
from runner.jobs import JobSpec, canonical_json
from runner.ledger import twins
from runner.ledger.connection import Connection
from runner.ledger.journal import rollback_journal
from runner.ledger.sqlite import first
from runner.ledger.sqlite.first import vars_json as _vars_json

__all__ = ["register"]


def register(conn: Connection, name: str, digest: str, jobs: Iterable[JobSpec], *, batch: int, now: float,
             salt: str | None = None) -> int:
    """Plan a manifest's jobs in one transaction; returns how many jobs it has.

    New jobs are added as pending, jobs already known (from this or any
    other manifest) keep their state (a known job whose stored request
    changed under the same key — a local input file moved — takes the new
    request and variables); the manifest's targets are set to
    exactly the jobs given, so targets it no longer lists are dropped
    (their jobs stay, and so does the record that the manifest once
    targeted them: its spend keeps counting them). A known job not yet
    submitted (pending, or failed / in doubt, whose retry would be a new
    task) takes the price estimated now; a submitted job keeps the spend
    it committed. Jobs are consumed in batches, never all held.
    If ``jobs`` raises midway, nothing is planned and the error propagates. ``salt`` is the manifest's, as typed:
    jobs planned under an older key derivation are found by it (:func:`_keep_earlier_jobs`).
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    iterator = iter(jobs)
    # Looked at before the transaction (foreign keys are turned off outside one), and again inside.
    empty = bool(conn.scalar("SELECT NOT EXISTS (SELECT 1 FROM jobs)"))
    if empty:
        # Every page written is new: with a rollback journal it is written once, not to the WAL and again.
        with rollback_journal(conn):
            try:
                return _register(conn, name, digest, iterator, batch=batch, now=now, empty=True, salt=salt)
            except _Raced:  # another process planned jobs in between (no job consumed): plan as into any ledger
                pass
    return _register(conn, name, digest, iterator, batch=batch, now=now, empty=False, salt=salt)


def _register(conn: Connection, name: str, digest: str, iterator: Iterator[JobSpec], *, batch: int, now: float,
              empty: bool, salt: str | None) -> int:
    # When empty, inside rollback_journal: durable, the directory synced once the journal is deleted.
    with (fewer_collections(), conn.bulk(), first.foreign_keys_off(conn, empty),
          conn.write(durable=empty, directory=empty) as db):
        raw = db.conn
        gen = int(
            raw.execute(
                "SELECT coalesce(max(gen), 0) + 1 FROM manifests WHERE name = ?", (name,)
            ).fetchone()[0]
        )
        if empty and not raw.execute("SELECT NOT EXISTS (SELECT 1 FROM jobs)").fetchone()[0]:
            raise _Raced
        if empty:
            # Nothing to keep, drop or compare: the targets and what the manifest targeted are all new.
            given = first.first(raw, name, gen, iterator, batch, now)
        else:
            given = _upsert(raw, name, gen, _chunks(iterator, batch), now)
            _retarget(raw, name, gen, now, salt)
        kept = int(
            raw.execute("SELECT count(*) FROM targets WHERE manifest = ?", (name,)).fetchone()[
                0
            ]
        )
        if kept != given:
            raise first.shared(name, given, kept)
        raw.execute(
            "INSERT INTO manifests (name, digest, jobs, gen, created_at, registered_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
            " digest = excluded.digest, jobs = excluded.jobs, gen = excluded.gen,"
            " registered_at = excluded.registered_at",
            (name, digest, kept, gen, now, now),
        )
    return kept


class _Raced(Exception):
    """The ledger had no job before the transaction and has some in it (see :func:`register`)."""


def _retarget(raw: sqlite3.Connection, name: str, gen: int, now: float, salt: str | None) -> None:
    """After a registration into a ledger with jobs: drop the targets of older generations, record what changed."""
    _keep_earlier_jobs(raw, name, gen, salt)
    raw.execute("DELETE FROM targets WHERE manifest = ? AND gen <> ?", (name, gen))
    # Remember what the manifest dropped (its spend and orphans are counted from here) …
    raw.execute(
        "UPDATE targeted SET dropped_at = ? WHERE manifest = ? AND dropped_at IS NULL"
        " AND job_id NOT IN (SELECT job_id FROM targets WHERE manifest = ?)",
        (now, name, name),
    )
    # … and what it lists now, for good (rows that did not change are not rewritten).
    raw.execute(
        "INSERT INTO targeted (manifest, job_id, output, first_at, dropped_at)"
        " SELECT manifest, job_id, output, ?, NULL FROM targets WHERE manifest = ? ORDER BY job_id"
        " ON CONFLICT (manifest, job_id) DO UPDATE SET output = excluded.output, dropped_at = NULL"
        " WHERE targeted.dropped_at IS NOT NULL OR targeted.output <> excluded.output",
        (now, name),
    )


def _chunks(iterator: Iterator[JobSpec], batch: int) -> Iterator[list[JobSpec]]:
    while chunk := list(itertools.islice(iterator, batch)):
        yield chunk


def _row(spec: JobSpec, now: float) -> tuple[object, ...]:
    return (spec.key, spec.model, spec.request_json or canonical_json(spec.request), _vars_json(spec.vars),
            spec.repeat, spec.estimated_usd, now, now)

def _upsert(conn: sqlite3.Connection, name: str, gen: int, chunks: Iterable[list[JobSpec]], now: float) -> int:
    """Plan the jobs into a ledger that has some: each job inserted, or updated when its key is known."""
    given = 0
    for chunk in chunks:
        before = _last_id(conn)
        conn.executemany(
            "INSERT INTO jobs (key, model, request_json, vars_json, repeat,"
            " estimated_usd, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET estimated_usd = CASE"
            " WHEN jobs.state IN ('pending', 'failed', 'in_doubt') THEN excluded.estimated_usd"
            " ELSE jobs.estimated_usd END,"
            # Same key, another stored request: a local input moved (its reference names the
            # new path; the key hashes only its content). The job keeps its state and spend.
            " request_json = excluded.request_json,"
            " vars_json = CASE WHEN jobs.request_json IS NOT excluded.request_json"
            " THEN excluded.vars_json ELSE jobs.vars_json END"
            " WHERE (jobs.state IN ('pending', 'failed', 'in_doubt')"
            " AND jobs.estimated_usd IS NOT excluded.estimated_usd)"
            " OR jobs.request_json IS NOT excluded.request_json",
            [_row(spec, now) for spec in chunk],
        )
        _target(conn, name, gen, chunk, before)
        given += len(chunk)
    return given


def _last_id(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(id), 0) FROM jobs").fetchone()[0])


def _target(conn: sqlite3.Connection, name: str, gen: int, chunk: list[JobSpec], before: int) -> None:
    """Point the manifest's targets at the chunk's jobs, just inserted or updated.

    When every job of the chunk was new (a new manifest into a ledger that has others' jobs), the
    insert gave them the ids after ``before``, in order: the targets take them without looking each
    key up again. REPLACE also evicts an older target that used the same output name.
    """
    if _last_id(conn) - before == len(chunk):
        conn.executemany(
            "INSERT OR REPLACE INTO targets (manifest, job_id, output, gen) VALUES (?, ?, ?, ?)",
            [(name, job_id, spec.output, gen) for job_id, spec in enumerate(chunk, before + 1)],
        )
        return
    conn.executemany(
        "INSERT OR REPLACE INTO targets (manifest, job_id, output, gen) SELECT ?, id, ?, ? FROM jobs WHERE key = ?",
        [(name, spec.output, gen, spec.key) for spec in chunk],
    )


# Any non-ASCII character (SQLite's GLOB compares code points): only such bodies can differ under NFC.
_NON_ASCII = "*[^" + chr(1) + "-" + chr(127) + "]*"


def _keep_earlier_jobs(conn: sqlite3.Connection, name: str, gen: int, salt: str | None) -> None:
    """Point the manifest at the jobs it planned under an older key derivation, instead of new twins.

    A ledger planned by an older runner keyed a prompt or a salt spelled in NFD (macOS, some editors) by those
    bytes, and an image typed as a ``data:`` URI by that string; the same manifest (the image now a file) yields
    other keys. Left alone, the next plan would add those keys as new pending jobs and pay again for videos
    already paid for. So a job this manifest listed until now whose exact twin (:mod:`runner.ledger.twins`: its
    key proven from its stored body and this manifest's ``salt``) the manifest lists now takes that twin's place;
    the twin — never sent — is dropped. Nothing looser is matched: a job of another salt (the salt changed:
    fresh samples asked for) keeps out. Only this manifest's own jobs are looked at, those an earlier plan dropped
    too (a runner between c1397a3 and this check dropped an NFD salt's jobs for twins: not sent yet, they are
    taken back); only bodies with non-ASCII text or a data: URI, or every job when the salt is not ASCII.
    """
    every = salt is not None and not salt.isascii()  # any job's key may have hashed the salt in NFD
    earlier = conn.execute(
        "SELECT j.id, j.key, j.model, j.repeat, j.request_json FROM targeted e JOIN jobs j ON j.id = e.job_id"
        " WHERE e.manifest = ?"
        " AND (? OR j.request_json GLOB ? OR j.request_json LIKE '%\"data:%')"
        " AND NOT EXISTS (SELECT 1 FROM targets t WHERE t.manifest = e.manifest AND t.job_id = e.job_id"
        " AND t.gen = ?) ORDER BY j.id",
        (name, every, _NON_ASCII, gen),
    ).fetchall()
    for old_id, key, model, repeat, request_json in earlier:
        twin_key = twins.twin_key(key, model, request_json, repeat, salt)
        if twin_key is None:
            continue
        twin = conn.execute(
            "SELECT j.id, t.output FROM targets t JOIN jobs j ON j.id = t.job_id WHERE t.manifest = ?"
            " AND t.gen = ? AND j.key = ? AND j.state = 'pending' AND j.attempts = 0",
            (name, gen, twin_key),
        ).fetchone()
        if twin is None:
            continue
        new_id, output = twin
        conn.execute("DELETE FROM targets WHERE manifest = ? AND job_id IN (?, ?)", (name, new_id, old_id))
        conn.execute(
            "INSERT INTO targets (manifest, job_id, output, gen) VALUES (?, ?, ?, ?)", (name, old_id, output, gen)
        )
        conn.execute(
            "DELETE FROM jobs WHERE id = ? AND NOT EXISTS (SELECT 1 FROM targets WHERE job_id = ?)"
            " AND NOT EXISTS (SELECT 1 FROM targeted WHERE job_id = ?)"
            " AND NOT EXISTS (SELECT 1 FROM attempts a JOIN jobs j ON j.key = a.key WHERE j.id = ?)",
            (new_id, new_id, new_id, new_id),
        )
