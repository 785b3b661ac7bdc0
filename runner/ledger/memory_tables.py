"""The in-memory ledger's tables (:class:`Tables`: jobs, manifests, targets, attempts, runs, leases,
renames, in dictionaries) and what every part of :class:`~runner.ledger.memory.MemoryLedger`
reads them through: a job's record as a caller sees it, a manifest's jobs in planning order,
planning a manifest into them."""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runner.errors import LedgerError, ManifestError
from runner.jobs import JobSpec, JobState
from runner.ledger.api import Clock
from runner.ledger.records import AttemptRecord, JobRecord, RejectionRecord, RunRecord

__all__ = ["Lease", "Manifest", "Row", "Tables", "record", "register", "row_of", "scope", "targets"]


@dataclass(slots=True)
class Row:
    id: int
    job: JobRecord
    debug: dict[str, Any] | None = None


@dataclass(slots=True)
class Manifest:
    digest: str
    jobs: int
    created_at: float
    targets: dict[str, str] = field(default_factory=dict)  # key → output


@dataclass(slots=True)
class Lease:
    renewed_at: float
    expires_at: float


@dataclass(slots=True)
class Tables:
    """Everything one :class:`~runner.ledger.memory.MemoryLedger` holds."""

    state_dir: Path
    clock: Clock
    owner: str
    rows: dict[str, Row] = field(default_factory=dict)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    manifests: dict[str, Manifest] = field(default_factory=dict)
    targeted: dict[tuple[str, str], tuple[str, float | None]] = field(default_factory=dict)  # (manifest, key) → (output, dropped_at)
    attempts: list[AttemptRecord] = field(default_factory=list)
    runs: list[RunRecord] = field(default_factory=list)
    run_id: int | None = None
    meta: dict[str, str] = field(default_factory=dict)
    leases: dict[str, Lease] = field(default_factory=dict)
    renames: dict[str, tuple[str, str]] = field(default_factory=dict)
    rejections: list[RejectionRecord] = field(default_factory=list)


def register(t: Tables, name: str, digest: str, jobs: Iterable[JobSpec], *, batch: int) -> int:
    """Plan a manifest's jobs (the rules of :func:`runner.ledger.sqlite.planning.register`); how many it has."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    specs = list(jobs)  # if this raises, nothing is planned
    now = t.clock()
    if len({s.key for s in specs}) != len(specs) or len({s.output for s in specs}) != len(specs):
        kept = min(len({s.key for s in specs}), len({s.output for s in specs}))
        raise ManifestError(
            f"manifest {name!r}: {len(specs)} jobs map to only {kept} distinct jobs and "
            "output files (two jobs share a key or an output name); nothing was planned"
        )
    for spec in specs:
        row = t.rows.get(spec.key)
        if row is None:
            t.rows[spec.key] = Row(next(t.ids), JobRecord(
                key=spec.key, model=spec.model, request=json.loads(json.dumps(spec.request)),
                vars=json.loads(json.dumps(spec.vars, default=str)), repeat=spec.repeat,
                state=JobState.PENDING, task_id=None, attempts=0, spent_usd=0.0,
                estimated_usd=spec.estimated_usd, error=None, reason=None, video_url=None, url_expires_at=None,
                path=None, sha256=None, bytes=None, output=None, submitted_at=None, updated_at=now,
                created_at=now))
        else:
            if row.job.state in (JobState.PENDING, JobState.FAILED, JobState.IN_DOUBT):
                row.job = replace(row.job, estimated_usd=spec.estimated_usd)
            # The same key with another stored request (a local input moved): the job takes it.
            request = json.loads(json.dumps(spec.request))
            if request != row.job.request:
                row.job = replace(row.job, request=request, vars=json.loads(json.dumps(spec.vars, default=str)))
    old = t.manifests.get(name)
    listed = {s.key: s.output for s in sorted(specs, key=lambda s: t.rows[s.key].id)}
    for (manifest, key), (output, dropped) in list(t.targeted.items()):
        if manifest == name and dropped is None and key not in listed:
            t.targeted[(manifest, key)] = (output, now)
    for key, output in listed.items():
        t.targeted[(name, key)] = (output, None)
    t.manifests[name] = Manifest(digest, len(listed), now if old is None else old.created_at, listed)
    return len(listed)


def record(t: Tables, row: Row, manifest: str | None) -> JobRecord:
    """``row``'s job as a caller sees it: its output name through ``manifest``, a request of its own."""
    output = None if manifest is None else t.manifests[manifest].targets.get(row.job.key)
    return replace(row.job, output=output, request=copy.deepcopy(row.job.request))


def scope(t: Tables, manifest: str | None) -> list[Row]:
    """The jobs of ``manifest`` (or all), in planning order."""
    if manifest is None:
        return sorted(t.rows.values(), key=lambda r: r.id)
    found = t.manifests.get(manifest)
    if found is None:
        return []
    return sorted((t.rows[k] for k in found.targets), key=lambda r: r.id)


def targets(t: Tables, manifest: str) -> dict[str, str]:
    """Key → output name of the jobs ``manifest`` lists."""
    found = t.manifests.get(manifest)
    return {} if found is None else found.targets


def row_of(t: Tables, key: str) -> Row:
    """The row of ``key``; an unknown key is a bug."""
    row = t.rows.get(key)
    if row is None:
        raise LedgerError(f"unknown job {key}; this is a bug in runner")
    return row
