"""bench/crashbooks.py: the crash torture's judge hashes the body the runner sends, not the request it stores.

An image-to-video job's stored request holds a local image by reference ``{file, sha256, …}``; the POST
carries a ``data:`` URI of its bytes (or, with ``inputs.base_url``, a URL naming its path). The old judge
hashed the stored request, so every such task looked like a paid duplicate and an unrecorded paid task.
Each test here bills one task at the in-process simulator with the body the runner builds, then asks
the judge: the old digest misses the simulator's, the new one matches it, and the books balance.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx

from bench.crashbooks import ArchivedInputs, judge_books, request_digest, row_digest
from runner import endpoints
from runner.jobs import canonical_json
from runner.manifest.inputs import InputFiles, InputResolver
from runner.simulator import SimConfig, Simulator, sim_transport
from runner.testing import make_jpeg, make_png

SLUG = "kling-v3.0-std-i2v"


def _bill(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """POST ``body`` to a fresh in-process simulator, as the runner would: (task id, the simulator's stats)."""
    sim = Simulator(SimConfig(task_seconds=1.0))

    async def post() -> str:
        async with httpx.AsyncClient(transport=sim_transport(sim), base_url="http://sim.test") as client:
            response = await client.post(f"/v3/async/{SLUG}", json=body, headers={"Authorization": "Bearer k"})
            response.raise_for_status()
            task_id: str = response.json()["task_id"]
            return task_id

    task_id = anyio.run(post)
    return task_id, sim.stats()


def _row(request: dict[str, Any], task_id: str, state: str = "running") -> dict[str, Any]:
    return {"model": SLUG, "request_json": canonical_json(request), "task_id": task_id, "state": state}


def _old_digest(row: dict[str, Any]) -> str:
    """What the judge hashed before: the stored request."""
    body = json.loads(row["request_json"])
    return request_digest(body)


def _local_request(folder: Path, name: str, data: bytes) -> dict[str, Any]:
    (folder / name).write_bytes(data)
    ref = InputFiles(folder).reference(name, "image")  # what planning stores: a reference, never the bytes
    return endpoints.get(SLUG).request_body({"image": ref, "prompt": "the fox turns its head"})


def test_an_inline_image_is_judged_by_its_data_uri(tmp_path: Path) -> None:
    request = _local_request(tmp_path, "first.png", make_png(640, 360, seed=7))
    wire = endpoints.get(SLUG).wire_body(request, InputResolver(tmp_path))  # the submit lane's call
    assert wire["image"].startswith("data:image/png;base64,")
    task_id, stats = _bill(wire)
    billed = stats["tasks"][task_id]["body_sha256"]
    row = _row(request, task_id)

    assert _old_digest(row) != billed  # the old judge: one paid duplicate and one unrecorded task per job
    assert row_digest(row, ArchivedInputs(tmp_path)) == billed
    books = judge_books(stats, [row], ArchivedInputs(tmp_path))
    assert (books.paid_duplicates, books.unrecorded_paid, books.unjudged) == (0, 0, 0)


def test_a_hosted_image_is_judged_by_its_url(tmp_path: Path) -> None:
    request = _local_request(tmp_path, "first.jpg", make_jpeg(400, 600, seed=3))
    base_url = "https://cdn.example.com/clips/"
    wire = endpoints.get(SLUG).wire_body(request, InputResolver(tmp_path, base_url))
    assert wire["image"] == "https://cdn.example.com/clips/first.jpg"
    task_id, stats = _bill(wire)
    row = _row(request, task_id)

    assert _old_digest(row) != stats["tasks"][task_id]["body_sha256"]
    assert row_digest(row, ArchivedInputs(tmp_path, base_url=base_url)) == stats["tasks"][task_id]["body_sha256"]
    books = judge_books(stats, [row], ArchivedInputs(tmp_path, base_url=base_url))
    assert (books.paid_duplicates, books.unrecorded_paid, books.unjudged) == (0, 0, 0)


def test_an_image_given_as_a_url_is_sent_as_stored(tmp_path: Path) -> None:
    """A URL in the manifest is stored and sent as is: both digests match (the case the old judge got right)."""
    request = endpoints.get(SLUG).request_body({"image": "https://example.com/frames/a.png", "prompt": "dawn"})
    task_id, stats = _bill(endpoints.get(SLUG).wire_body(request, InputResolver(tmp_path)))
    row = _row(request, task_id)
    assert _old_digest(row) == row_digest(row) == stats["tasks"][task_id]["body_sha256"]


def test_a_file_rewritten_or_removed_is_judged_from_the_archive_or_not_at_all(tmp_path: Path) -> None:
    """The planned bytes come from the archive (checked by sha256); with no archive the row is unjudged and its
    billed task counts as a duplicate and as unrecorded: a false alarm, never a silent pass."""
    original = make_png(640, 360, seed=1)
    request = _local_request(tmp_path, "first.png", original)
    wire = endpoints.get(SLUG).wire_body(request, InputResolver(tmp_path))
    archive = tmp_path / "archive"
    archive.mkdir()
    sha = request["image"]["sha256"]
    (archive / sha).write_bytes(original)
    (tmp_path / "first.png").write_bytes(make_png(640, 360, seed=2))  # the operator re-exports the image
    task_id, stats = _bill(wire)
    row = _row(request, task_id, state="in_doubt")
    billed = stats["tasks"][task_id]["body_sha256"]

    assert row_digest(row, ArchivedInputs(tmp_path, archive)) == billed
    assert judge_books(stats, [row], ArchivedInputs(tmp_path, archive)).unrecorded_paid == 0
    (tmp_path / "first.png").unlink()
    assert row_digest(row, ArchivedInputs(tmp_path, archive)) == billed
    (archive / sha).write_bytes(make_png(640, 360, seed=3))  # an archive that lies is caught by the sha256
    assert row_digest(row, ArchivedInputs(tmp_path, archive)) is None
    books = judge_books(stats, [{**row, "task_id": None}], ArchivedInputs(tmp_path))
    assert (books.unjudged, books.paid_duplicates, books.unrecorded_paid) == (1, 1, 1)
