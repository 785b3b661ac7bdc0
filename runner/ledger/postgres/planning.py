"""Planning a manifest into the PostgreSQL ledger: one transaction, jobs sent in batches as arrays.

The rules are those of the SQLite ledger's ``planning.register`` (read its docstring); what differs
is how. Registrations are serialised by an advisory lock (:func:`~runner.ledger.postgres.moves.bulk`): two runners
planning at once (the same manifest, or two sharing jobs) wait for each other instead of
deadlocking on the shared jobs' rows. Within a batch a job key given twice is inserted once, and a
second target at one output name or one job is skipped (``ON CONFLICT DO NOTHING``): either way the
manifest then has fewer targets than jobs given, and nothing is planned (:class:`ManifestError`).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable

from runner.errors import ManifestError
from runner.jobs import JobSpec, canonical_json
from runner.ledger import twins
from runner.ledger.postgres.connection import PgConnection, Tx
from runner.ledger.postgres.moves import bulk

__all__ = ["register"]

_INSERT_JOBS = (
    "INSERT INTO jobs (key, model, request_json, vars_json, repeat, estimated_usd, created_at, updated_at)"
    " SELECT u.k, u.m, u.r, u.v, u.rp, u.e, %(now)s, %(now)s FROM unnest(%(keys)s::text[], %(models)s::text[],"
    " %(reqs)s::text[], %(vars)s::text[], %(repeats)s::int[], %(prices)s::float8[]) WITH ORDINALITY"
    " AS u(k, m, r, v, rp, e, i) ORDER BY u.i"
    " ON CONFLICT (key) DO UPDATE SET estimated_usd = CASE"
    " WHEN jobs.state IN ('pending', 'failed', 'in_doubt') THEN excluded.estimated_usd"
    " ELSE jobs.estimated_usd END,"
    # Same key, another stored request: a local input moved (its reference names the new path;
    # the key hashes only its content). The job keeps its state and spend.
    " request_json = excluded.request_json,"
    " vars_json = CASE WHEN jobs.request_json IS DISTINCT FROM excluded.request_json"
    " THEN excluded.vars_json ELSE jobs.vars_json END"
    " WHERE (jobs.state IN ('pending', 'failed', 'in_doubt')"
    " AND jobs.estimated_usd IS DISTINCT FROM excluded.estimated_usd)"
    " OR jobs.request_json IS DISTINCT FROM excluded.request_json"
)
_INSERT_TARGETS = (
    "INSERT INTO targets (manifest, job_id, output, gen) SELECT %(name)s, j.id, u.o, %(gen)s"
    " FROM unnest(%(keys)s::text[], %(outputs)s::text[]) WITH ORDINALITY AS u(k, o, i)"
    " JOIN jobs j ON j.key = u.k ORDER BY u.i ON CONFLICT DO NOTHING"
)
# An earlier registration's target at one of these names or jobs makes way (SQLite: INSERT OR REPLACE).
_EVICT_TARGETS = (
    "DELETE FROM targets t USING unnest(%(outputs)s::text[]) AS u(o)"
    " WHERE t.manifest = %(name)s AND t.output = u.o AND t.gen <> %(gen)s",
    "DELETE FROM targets t USING unnest(%(keys)s::text[]) AS u(k) JOIN jobs j ON j.key = u.k"
    " WHERE t.manifest = %(name)s AND t.job_id = j.id AND t.gen <> %(gen)s",
)


def register(conn: PgConnection, name: str, digest: str, jobs: Iterable[JobSpec], *, batch: int, now: float,
             salt: str | None = None) -> int:
    """Plan a manifest's jobs in one transaction; returns how many jobs it has (see the module docstring)."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    with conn.write() as tx:
        bulk(tx)
        gen = int(tx.scalar("SELECT coalesce(max(gen), 0) + 1 FROM manifests WHERE name = %s", (name,)))
        given = 0
        iterator = iter(jobs)
        while chunk := list(itertools.islice(iterator, batch)):
            unique = list({spec.key: spec for spec in reversed(chunk)}.values())[::-1]  # first of each key
            tx.execute(_INSERT_JOBS, {
                "now": now, "keys": [s.key for s in unique], "models": [s.model for s in unique],
                "reqs": [canonical_json(s.request) for s in unique], "vars": [_vars_json(s.vars) for s in unique],
                "repeats": [s.repeat for s in unique], "prices": [s.estimated_usd for s in unique],
            })
            names = {"name": name, "gen": gen, "keys": [s.key for s in chunk], "outputs": [s.output for s in chunk]}
            for evict in _EVICT_TARGETS:
                tx.execute(evict, names)
            tx.execute(_INSERT_TARGETS, names)
            given += len(chunk)
        _keep_earlier_jobs(tx, name, gen, salt)
        tx.execute("DELETE FROM targets WHERE manifest = %s AND gen <> %s", (name, gen))
        # Remember what the manifest dropped (its spend and orphans are counted from here) …
        tx.execute(
            "UPDATE targeted SET dropped_at = %(now)s WHERE manifest = %(name)s AND dropped_at IS NULL"
            " AND job_id NOT IN (SELECT job_id FROM targets WHERE manifest = %(name)s)",
            {"now": now, "name": name},
        )
        # … and what it lists now, for good (rows that did not change are not rewritten).
        tx.execute(
            "INSERT INTO targeted (manifest, job_id, output, first_at, dropped_at)"
            " SELECT manifest, job_id, output, %s, NULL FROM targets WHERE manifest = %s"
            " ON CONFLICT (manifest, job_id) DO UPDATE SET output = excluded.output, dropped_at = NULL"
            " WHERE targeted.dropped_at IS NOT NULL OR targeted.output <> excluded.output",
            (now, name),
        )
        kept = int(tx.scalar("SELECT count(*) FROM targets WHERE manifest = %s", (name,)))
        if kept != given:
            raise ManifestError(
                f"manifest {name!r}: {given} jobs map to only {kept} distinct jobs and "
                "output files (two jobs share a key or an output name); nothing was planned"
            )
        tx.execute(
            "INSERT INTO manifests (name, digest, jobs, gen, created_at, registered_at)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET"
            " digest = excluded.digest, jobs = excluded.jobs, gen = excluded.gen,"
            " registered_at = excluded.registered_at",
            (name, digest, kept, gen, now, now),
        )
    return kept


# Template variables: YAML dates and the like become strings rather than failing.
_vars_json = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode


def _keep_earlier_jobs(tx: Tx, name: str, gen: int, salt: str | None) -> None:
    """Point the manifest at the jobs it planned under an older key derivation, instead of new twins
    (the SQLite ledger's ``_keep_earlier_jobs``, its rules and reasons: a ledger copied from an older one keeps
    paying once; a job is matched only by its exact twin, :mod:`runner.ledger.twins`)."""
    every = salt is not None and not salt.isascii()  # any job's key may have hashed the salt in NFD
    earlier = tx.execute(
        "SELECT j.id, j.key, j.model, j.repeat, j.request_json FROM targeted e JOIN jobs j ON j.id = e.job_id"
        " WHERE e.manifest = %s"
        r" AND (%s OR j.request_json ~ '[^\x01-\x7f]'"
        """ OR j.request_json ILIKE '%%"data:%%')"""
        " AND NOT EXISTS (SELECT 1 FROM targets t WHERE t.manifest = e.manifest AND t.job_id = e.job_id"
        " AND t.gen = %s) ORDER BY j.id",
        (name, every, gen),
    ).fetchall()
    for row in earlier:
        old_id = row["id"]
        twin_key = twins.twin_key(row["key"], row["model"], row["request_json"], row["repeat"], salt)
        if twin_key is None:
            continue
        twin = tx.execute(
            "SELECT j.id, t.output FROM targets t JOIN jobs j ON j.id = t.job_id WHERE t.manifest = %s"
            " AND t.gen = %s AND j.key = %s AND j.state = 'pending' AND j.attempts = 0",
            (name, gen, twin_key),
        ).fetchone()
        if twin is None:
            continue
        new_id, output = twin["id"], twin["output"]
        tx.execute("DELETE FROM targets WHERE manifest = %s AND job_id IN (%s, %s)", (name, new_id, old_id))
        tx.execute("INSERT INTO targets (manifest, job_id, output, gen) VALUES (%s, %s, %s, %s)",
                   (name, old_id, output, gen))
        tx.execute(
            "DELETE FROM jobs WHERE id = %(id)s AND NOT EXISTS (SELECT 1 FROM targets WHERE job_id = %(id)s)"
            " AND NOT EXISTS (SELECT 1 FROM targeted WHERE job_id = %(id)s)"
            " AND NOT EXISTS (SELECT 1 FROM attempts a JOIN jobs j ON j.key = a.key WHERE j.id = %(id)s)",
            {"id": new_id},
        )
