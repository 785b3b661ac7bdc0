"""The crash harness's judge: the simulator's books against the ledger, body by body.

The simulator keeps, for every task it created (billed), the sha256 of the canonical JSON of the
body it received (``accepted_by_body``, ``tasks[…]["body_sha256"]``). The ledger keeps each job's
*stored request*, which is not always that body: an image-to-video request stores a local input
image as a reference ``{file, sha256, size, kind, mime}`` while the POST carries a
``data:image/…;base64,`` URI of its bytes (or ``inputs.base_url`` + its path). So a ledger row's
digest is the digest of its **wire body**, made by the runner's own code —
:meth:`runner.endpoints.EndpointSpec.wire_body` with the runner's input resolver
(:class:`runner.manifest.inputs.InputResolver`), the very calls the submit lane makes. For a
text-to-video row the wire body is the request itself (the digest is the one the judge always used).

An input file may be gone, renamed or rewritten by the time the judge looks (the i2v torture does
all three to it). :class:`ArchivedInputs` then reads the planned bytes from the harness's archive
(every version of every input it ever wrote, named by sha256), through the same resolver, which
checks them against the reference's sha256: the body rebuilt is byte for byte the one the runner
sent or would send. A row whose inputs can be found nowhere (or a hosted ``base_url`` file that
is no longer as planned) is **unjudged**: it owns no body, so any task billed for it counts as a
paid duplicate (and, unrecorded, as an unrecorded paid task) — a false alarm, never a silent pass —
and :attr:`Books.unjudged` says how many rows that was.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner import endpoints
from runner.endpoints.media import Inline, InputChanged
from runner.endpoints.media import InputResolver as Resolver
from runner.jobs import canonical_json
from runner.manifest.inputs import InputResolver

if TYPE_CHECKING:
    from runner.endpoints.local_file import LocalFile

__all__ = ["ArchivedInputs", "Books", "judge_books", "request_digest", "row_digest", "wire_digest"]

DEFAULT_MODEL = "kling-v3.0-pro-t2v"  # a row without a model column (never, in today's ledgers)


def request_digest(request: Mapping[str, Any]) -> str:
    """The sha256 of a body's canonical JSON, as the simulator computes it for every body it bills."""
    return hashlib.sha256(canonical_json(request).encode("utf-8")).hexdigest()


def wire_digest(model: str, request: Mapping[str, Any], inputs: Resolver | None = None) -> str:
    """The digest of the body the runner POSTs for a stored ``request`` of ``model`` (its wire body).

    ``inputs``: the resolver of local input files (a :class:`runner.endpoints.media.InputResolver`);
    raises :class:`runner.endpoints.media.InputChanged` when a local input cannot be resolved.
    """
    return request_digest(endpoints.get(model).wire_body(request, inputs))


def row_digest(row: Mapping[str, Any], inputs: Resolver | None = None) -> str | None:
    """The wire digest of one ledger row (a dict of its columns); None when its inputs cannot be resolved."""
    request = json.loads(row["request_json"])
    try:
        return wire_digest(row.get("model") or DEFAULT_MODEL, request, inputs)
    except InputChanged:
        return None


@dataclass(frozen=True, slots=True)
class ArchivedInputs:
    """The runner's input resolver at the manifest's folder, falling back to an archive of planned bytes.

    ``archive`` holds input files named by their sha256 (see :mod:`bench.crashimages`). A file the
    runner's resolver refuses at its path (gone, unreadable, other bytes) is resolved from the archive
    by the same resolver, which checks its size and sha256. With ``base_url`` (files the user hosts)
    the body names the file's path, not its bytes: no fallback there (the row is unjudged).
    """

    base: Path
    archive: Path | None = None
    base_url: str | None = None

    def wire_value(self, ref: LocalFile) -> str | Inline:
        try:
            return InputResolver(self.base, self.base_url).wire_value(ref)
        except InputChanged:
            if self.archive is None or self.base_url is not None:
                raise
            return InputResolver(self.archive).wire_value(ref.model_copy(update={"file": ref.sha256}))


@dataclass
class Books:
    """The two books compared: what the simulator billed for each body against the ledger's rows."""

    by_body: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # wire digest -> the rows owning it
    paid_duplicates: int = 0  # tasks billed beyond one per row for a body
    unrecorded_paid: int = 0  # billed tasks neither recorded nor owned by an in-doubt (or submitting) row
    billed_unrecorded: int = 0  # billed tasks whose id the ledger never recorded
    unjudged: int = 0  # rows whose wire body could not be rebuilt (their inputs found nowhere)


def judge_books(stats: Mapping[str, Any], rows: Iterable[dict[str, Any]], inputs: Resolver | None = None) -> Books:
    """Compare the simulator's ``stats`` (``/_sim/stats``) with the ledger's ``rows``, body by body."""
    books = Books()
    rows = list(rows)
    for row in rows:
        digest = row_digest(row, inputs)
        if digest is None:
            books.unjudged += 1
            continue
        books.by_body.setdefault(digest, []).append(row)
    recorded = {row["task_id"] for row in rows if row["task_id"]}
    # With in-doubt jobs held and no job-level retries, a job may own one paid task at most.
    books.paid_duplicates = sum(
        max(0, accepted - len(books.by_body.get(digest, []))) for digest, accepted in stats["accepted_by_body"].items()
    )
    # A task the simulator billed but the ledger never recorded must be owned by an in-doubt job.
    unrecorded_by_body: dict[str, int] = {}
    for task_id, task in stats["tasks"].items():
        if task_id not in recorded:
            unrecorded_by_body[task["body_sha256"]] = unrecorded_by_body.get(task["body_sha256"], 0) + 1
    books.unrecorded_paid = sum(
        # A row still `submitting` (its runner was killed mid-POST) becomes in_doubt at the next start.
        max(0, n - sum(1 for row in books.by_body.get(digest, []) if row["state"] in ("in_doubt", "submitting")))
        for digest, n in unrecorded_by_body.items()
    )
    books.billed_unrecorded = sum(unrecorded_by_body.values())
    return books
