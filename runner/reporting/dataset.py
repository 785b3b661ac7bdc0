"""``runner export --format hf``: a folder Hugging Face ``datasets`` loads as it is.

    DIR/
      metadata.jsonl          one row per stored video
      Tokyo/dawn-1.mp4        the manifest's output names, hard-linked (or copied) from the state dir
      Tokyo/dawn-1.image.png  an image-to-video job's conditioning image, beside its video
      …

This is the "videofolder" layout (``load_dataset("videofolder", data_dir=DIR)``
or ``load_dataset(DIR)``): every row's ``file_name`` is relative to DIR. A row
carries the job key, every template variable, every request field exactly as
sent, the task_id, the file's sha256 and size, the estimated cost and the
provider's timings from ``debug_info``. Every row has the same columns (absent
values are null), because the loader infers one schema for the file.

Image inputs (``image``, ``end_image``) are copied beside the video and named in an
``<field>_file_name`` column (``image_file_name``: recent ``datasets`` versions load every
``*_file_name`` column as a file), so an image-to-video dataset is complete: the request columns
keep the reference (a URL, or the local file's path and sha256). A local image is read from
``inputs_root`` (the manifest's folder) and copied only if its bytes still hash to the recorded
sha256; an image given by URL is not fetched (its column is null, the URL is in ``image``).

Only ``done`` jobs have a video, so only they are rows (not those rejected: ``runner reject``); the others are counted.
``datasets`` is not a dependency: nothing here imports it.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from runner.errors import RunnerError, UsageError
from runner.jobs import JobState
from runner.ledger import JobRecord, LedgerBackend
from runner.reporting.inputs import job_inputs, write_input
from runner.reporting.inspect import timings
from runner.storage import OutputStore
from runner.storage.local import LocalStore

__all__ = ["METADATA_FILE", "HfExport", "export_hf", "hf_columns"]

METADATA_FILE = "metadata.jsonl"
_BASE_COLUMNS = ("file_name", "key", "manifest", "model", "repeat")
_TAIL_COLUMNS = ("task_id", "sha256", "bytes", "estimated_usd", "spent_usd", "submit_time_ms", "execute_time_ms",
                 "complete_time_ms", "queue_seconds", "generation_seconds", "provider_seconds")
_REQUEST_FIRST = ("prompt", "multi_prompt", "negative_prompt")


@dataclass(slots=True)
class HfExport:
    """What an export did."""

    dest: Path
    rows: int = 0
    linked: int = 0
    copied: int = 0
    not_done: Counter[str] = field(default_factory=Counter)
    missing: list[str] = field(default_factory=list)  # keys whose stored file is gone or altered


@dataclass(frozen=True, slots=True)
class _Columns:
    variables: dict[str, str]  # variable name -> column name
    request: tuple[str, ...]
    inputs: tuple[str, ...] = ()  # image input fields, each an <field>_file_name column

    @property
    def names(self) -> list[str]:
        files = [f"{name}_file_name" for name in self.inputs]
        return [*_BASE_COLUMNS, *files, *self.variables.values(), *self.request, *_TAIL_COLUMNS]


def hf_columns(jobs: Iterable[JobRecord]) -> _Columns:
    """The columns for these jobs: variables by name, request fields by name.

    A variable named like a request field shares its column when it always
    equals the field (it is what set it); otherwise, like a variable named
    like one of the fixed columns, it becomes ``var_<name>``.
    """
    variables: dict[str, None] = {}
    request: set[str] = set()
    differs: set[str] = set()
    inputs: dict[str, None] = {}
    for job in jobs:
        for item in job_inputs(job):
            if item.kind == "image":
                inputs.setdefault(item.field)
        for name, value in job.vars.items():
            variables.setdefault(name)
            if name in job.request and job.request[name] != value:
                differs.add(name)
        request.update(job.request)
    ordered_request = tuple([f for f in _REQUEST_FIRST if f in request] +
                            sorted(f for f in request if f not in _REQUEST_FIRST))
    fixed = set(_BASE_COLUMNS) | set(_TAIL_COLUMNS) | {f"{name}_file_name" for name in inputs}
    columns: dict[str, str] = {}
    for name in variables:
        if name in fixed or name in differs:
            columns[name] = f"var_{name}"
        elif name not in request:
            columns[name] = name
    return _Columns(variables=columns, request=ordered_request, inputs=tuple(inputs))


def _safe_relative(output: str) -> str:
    path = PurePosixPath(output)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise RunnerError(f"output name {output!r} is not a relative path inside the export folder")
    return path.as_posix()


def _row(job: JobRecord, manifest: str, file_name: str, columns: _Columns, debug: dict[str, Any],
         files: dict[str, str]) -> dict[str, Any]:
    row: dict[str, Any] = {"file_name": file_name, "key": job.key, "manifest": manifest, "model": job.model,
                           "repeat": job.repeat}
    for name in columns.inputs:
        row[f"{name}_file_name"] = files.get(name)
    for name, column in columns.variables.items():
        row[column] = job.vars.get(name)
    for name in columns.request:
        row[name] = job.request.get(name)
    row.update({"task_id": job.task_id, "sha256": job.sha256, "bytes": job.bytes,
                "estimated_usd": job.estimated_usd, "spent_usd": job.spent_usd})
    row.update(timings(debug))
    return row


def _copy_inputs(job: JobRecord, file_name: str, dest: Path, root: Path | None) -> dict[str, str]:
    """Copy the job's image inputs beside its video (``clip.mp4`` → ``clip.image.png``); field → file name."""
    copied: dict[str, str] = {}
    stem = PurePosixPath(file_name).with_suffix("")
    for item in job_inputs(job):
        if item.kind != "image":
            continue
        name = f"{stem.as_posix()}.{item.field}.{item.extension}"
        if write_input(item, root, dest / name):
            copied[item.field] = name
    return copied


def _kept(ledger: LedgerBackend, manifest: str) -> Iterator[JobRecord]:
    """The done jobs whose video the operator has not rejected (``runner reject``): the rows."""
    return (job for job in ledger.iter_jobs(manifest, states=[JobState.DONE]) if job.review != "rejected")


def export_hf(ledger: LedgerBackend, manifest: str, dest: Path, store: OutputStore | None = None,
              inputs_root: Path | None = None) -> HfExport:
    """Write ``dest/metadata.jsonl`` and the videos of ``manifest``'s done jobs; returns the tally.

    Two passes over the done jobs (columns, then rows): memory stays flat. The videos are read
    from ``store`` (by default the ledger's state directory), local input images from
    ``inputs_root`` (the manifest's folder; None: not copied).
    """
    store = store if store is not None else LocalStore(ledger.state_dir)
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"--to {dest} is a file; the hf format writes a folder")
    result = HfExport(dest=dest)
    for state, n in ledger.counts(manifest).items():
        if state is not JobState.DONE and n:
            result.not_done[str(state)] = n
    columns = hf_columns(_kept(ledger, manifest))
    try:
        dest.mkdir(parents=True, exist_ok=True)
        tmp = dest / f".{METADATA_FILE}.tmp-{os.getpid()}"
        with tmp.open("w", encoding="utf-8") as out:
            for job in _kept(ledger, manifest):
                if job.path is None or job.bytes is None or store.size(job.path) != job.bytes:
                    result.missing.append(job.key)
                    continue
                file_name = _safe_relative(job.output or job.path)
                how = store.export(job.path, dest / file_name)
                result.linked += how == "linked"
                result.copied += how == "copied"
                files = _copy_inputs(job, file_name, dest, inputs_root) if columns.inputs else {}
                row = _row(job, manifest, file_name, columns, ledger.debug_info(job.key), files)
                out.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
                result.rows += 1
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest / METADATA_FILE)
    except OSError as exc:
        raise RunnerError(f"cannot write the export to {dest}: {exc.strerror or exc}") from exc
    return result
