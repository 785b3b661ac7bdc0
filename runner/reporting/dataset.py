"""``runner export --format hf``: a folder Hugging Face ``datasets`` loads as it is.

    DIR/
      README.md               the dataset card: YAML configs/data_files (one train split), columns, upload
      metadata.jsonl          one row per exported video
      Tokyo/dawn-1.mp4        the manifest's output names, hard-linked (or copied) from the state dir
      Tokyo/dawn-1.image.png  an image-to-video job's conditioning image, beside its video
      …

``datasets.load_dataset(DIR)`` loads it through the card (:mod:`runner.reporting.hf_card`): one
``train`` split with every row and its metadata whatever words the output folders hold; the
folder uploads as it is (``hf upload USER/NAME DIR --repo-type dataset``). Every
row's ``file_name`` is relative to DIR. A row carries the job key, ``text`` (the prompt; a
multi-shot job's shot prompts, one per line), every template variable, every request field as
sent, the task_id, the file's sha256 and size, the estimated cost and the provider's timings
from ``debug_info``. Every row has the same columns (absent values are null) and each column one
JSON type (a variable whose values mix types is written as text), because the loader infers one
schema for the file. A variable that always equals the column of the same name (a request field
it set, ``model``, ``repeat``…) shares it; one that differs becomes ``var_<name>``.

Image inputs (``image``, ``end_image``) are copied beside the video and named in an
``<field>_file_name`` column, which ``datasets`` loads as a file column ``<field>`` (cast it with
``datasets.Image()``); the reference stays in ``<field>_source`` (the URL, the local file's path,
or ``inline``) and ``<field>_sha256``, not as the raw request field (it would take the file
column's name, and an inline image would put megabytes of base64 in the row). A local image is
read from ``inputs_root`` (the manifest's folder) and copied only if its bytes still hash to the
recorded sha256; an image given by URL is not fetched (its file column is null).

Only ``done`` jobs have a video, so only they are rows (not those rejected: ``runner reject``, unless
``include_rejected``: each row's ``review`` is ``accepted``, ``unreviewed`` or ``rejected``; a variable named
``review`` becomes ``var_review``, as one named like any fixed column); the
others are counted, and so are done jobs :func:`exportable` leaves out. A re-export removes the files
the previous one listed that are no longer exported, if they still hold what it wrote. The export
changes only what a runner export wrote: before writing anything it refuses a folder whose README.md
or metadata.jsonl is someone else's, that holds a file at an exported name which no runner export
listed and which is not already that video or image, or in which a folder of an exported name is a
symbolic link leading out of it (:mod:`runner.reporting.links_out`). ``datasets`` is not a dependency: nothing here imports it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from runner import endpoints
from runner.errors import DiskError, RunnerError, UsageError
from runner.host import place_tag
from runner.jobs import JobState
from runner.ledger import JobRecord, LedgerBackend
from runner.ledger.rescue import crash_point
from runner.reporting.hf_card import CARD_FILE, card_text, check_card, listed_files, prune
from runner.reporting.inputs import JobInput, job_inputs, write_input
from runner.reporting.inspect import timings
from runner.reporting.json_lines import json_line
from runner.reporting.left_behind import LeftBehind
from runner.reporting.links_out import refuse_links_out
from runner.reporting.records import review_of
from runner.reporting.stored_copy import stored_elsewhere
from runner.reporting.ticker import Ticker
from runner.reporting.whole_file import whole_file
from runner.storage import OutputStore
from runner.storage.folder_sync import sync_folder, sync_folders_of
from runner.storage.local import LocalStore, file_sha256
from runner.storage.ownership import refused

__all__ = ["CARD_FILE", "METADATA_FILE", "HfExport", "export_hf", "exportable", "hf_columns", "job_text"]

METADATA_FILE = "metadata.jsonl"
_BASE_COLUMNS = ("file_name", "key", "manifest", "model", "repeat", "text", "review")
_TAIL_COLUMNS = ("task_id", "sha256", "bytes", "estimated_usd", "spent_usd", "submit_time_ms", "execute_time_ms",
                 "complete_time_ms", "queue_seconds", "generation_seconds", "provider_seconds")
_REQUEST_FIRST = ("prompt", "multi_prompt", "negative_prompt")
_LOADED_AS = "video"  # the column datasets makes of file_name: a variable of that name becomes var_video


def exportable(job: JobRecord, *, include_rejected: bool = False) -> bool:
    """Whether a done job goes into the export: the one filter (a clip the operator rejected does not, unless
    ``include_rejected``)."""
    return include_rejected or job.review != "rejected"


@dataclass(slots=True)
class HfExport:
    """What an export did."""

    dest: Path
    rows: int = 0
    linked: int = 0
    copied: int = 0
    removed: int = 0  # files of the previous export no longer exported
    changed: list[str] = field(default_factory=list)  # ones not removed: changed since the export wrote them
    only_copy: list[str] = field(default_factory=list)  # ones not removed: no stored video other than them
    excluded: int = 0  # done jobs :func:`exportable` left out
    not_done: Counter[str] = field(default_factory=Counter)
    missing: list[str] = field(default_factory=list)  # keys whose stored file is gone or altered
    inputs_missing: list[str] = field(default_factory=list)  # keys whose input image is gone or no longer as sent


@dataclass(frozen=True, slots=True)
class _Columns:
    variables: dict[str, str]  # variable name -> column name (a shared one is absent)
    request: tuple[str, ...]  # request fields written as they are (media inputs are not)
    inputs: tuple[str, ...] = ()  # image input fields, each an <field>_file_name column
    media: tuple[str, ...] = ()  # media input fields, each <field>_source and <field>_sha256 columns
    as_text: frozenset[str] = frozenset()  # columns whose values mix JSON types: written as text

    @property
    def names(self) -> list[str]:
        files = [f"{name}_file_name" for name in self.inputs]
        media = [f"{name}_{part}" for name in self.media for part in ("source", "sha256")]
        return [*_BASE_COLUMNS, *files, *self.variables.values(), *self.request, *media, *_TAIL_COLUMNS]


def job_text(job: JobRecord) -> str | None:
    """The caption: the prompt, or a multi-shot job's shot prompts one per line (None if neither)."""
    prompt = job.request.get("prompt")
    if isinstance(prompt, str) and prompt:
        return prompt
    shots = job.request.get("multi_prompt")
    if isinstance(shots, list):
        texts = [str(shot["prompt"]) for shot in shots if isinstance(shot, dict) and shot.get("prompt")]
        return "\n".join(texts) or None
    return None


def _media_fields(job: JobRecord) -> tuple[str, ...]:
    try:
        return tuple(endpoints.get(job.model).media_fields)
    except endpoints.UnknownEndpoint:
        return ()


def _kind(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def hf_columns(jobs: Iterable[JobRecord], manifest: str = "") -> _Columns:
    """The columns for these jobs: variables by name, request fields by name.

    A variable named like a request field or a fixed column (``model``, ``repeat``, ``text``…)
    shares its column when it always equals it (it is what set it); otherwise it becomes
    ``var_<name>``. A column whose values mix JSON types is written as text.
    """
    variables: dict[str, None] = {}
    request: set[str] = set()
    differs: set[str] = set()
    inputs: dict[str, None] = {}
    media: dict[str, None] = {}
    kinds: dict[str, set[str]] = {}
    for job in jobs:
        for name in _media_fields(job):
            if job.request.get(name) is not None:
                media.setdefault(name)
        for item in job_inputs(job):
            if item.kind == "image":
                inputs.setdefault(item.field)
        fixed_values = {"key": job.key, "manifest": manifest, "model": job.model, "repeat": job.repeat,
                        "text": job_text(job)}
        for name, value in job.vars.items():
            variables.setdefault(name)
            kinds.setdefault(name, set()).add(_kind(value) or "null")
            same = job.request.get(name, fixed_values.get(name, _Absent))
            if same is not _Absent and same != value:
                differs.add(name)
        for name, value in job.request.items():
            request.add(name)
            kinds.setdefault(f"request:{name}", set()).add(_kind(value) or "null")
    request -= set(media)
    ordered_request = tuple([f for f in _REQUEST_FIRST if f in request] +
                            sorted(f for f in request if f not in _REQUEST_FIRST))
    fixed = (set(_BASE_COLUMNS) | set(_TAIL_COLUMNS) | {f"{name}_file_name" for name in inputs}
             | {f"{name}_{part}" for name in media for part in ("source", "sha256")} | set(media)
             | {_LOADED_AS})
    comparable = {"key", "manifest", "model", "repeat", "text"}
    columns: dict[str, str] = {}
    for name in variables:
        if name in differs or (name in fixed and name not in comparable):
            columns[name] = f"var_{name}"
        elif name not in request and name not in comparable:
            columns[name] = name
    mixed = {name for name, seen in kinds.items() if len(seen - {"null"}) > 1}
    as_text = {columns[name] for name in columns if name in mixed}
    as_text |= {name for name in ordered_request if f"request:{name}" in mixed}
    return _Columns(variables=columns, request=ordered_request, inputs=tuple(inputs), media=tuple(media),
                    as_text=frozenset(as_text))


class _AbsentType:
    pass


_Absent: Any = _AbsentType()


def _safe_relative(output: str) -> str:
    path = PurePosixPath(output)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise RunnerError(f"output name {output!r} is not a relative path inside the export folder")
    return path.as_posix()


def _as_text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _source(item: JobInput) -> str:
    return item.url or item.file or "inline"


def _row(job: JobRecord, manifest: str, file_name: str, columns: _Columns, debug: dict[str, Any],
         files: dict[str, str]) -> dict[str, Any]:
    row: dict[str, Any] = {"file_name": file_name, "key": job.key, "manifest": manifest, "model": job.model,
                           "repeat": job.repeat, "text": job_text(job), "review": review_of(job)}
    for name in columns.inputs:
        row[f"{name}_file_name"] = files.get(name)
    for name, column in columns.variables.items():
        row[column] = job.vars.get(name)
    for name in columns.request:
        row[name] = job.request.get(name)
    given = {item.field: item for item in job_inputs(job)}
    for name in columns.media:
        item = given.get(name)
        row[f"{name}_source"] = _source(item) if item is not None else None
        row[f"{name}_sha256"] = item.sha256 if item is not None else None
    for name in columns.as_text:
        row[name] = _as_text(row[name])
    row.update({"task_id": job.task_id, "sha256": job.sha256, "bytes": job.bytes,
                "estimated_usd": job.estimated_usd, "spent_usd": job.spent_usd})
    row.update(timings(debug))
    return row


def _exported_name(job: JobRecord) -> str:
    """The job's video's name in the export (its output name in the manifest)."""
    assert job.path is not None
    return _safe_relative(job.output or job.path)


def _input_name(file_name: str, item: JobInput) -> str:
    """An image input's name beside its video in the export: ``clip.mp4`` → ``clip.image.png``."""
    return f"{PurePosixPath(file_name).with_suffix('').as_posix()}.{item.field}.{item.extension}"


def _copy_inputs(job: JobRecord, file_name: str, dest: Path, root: Path | None,
                 missing: list[str] | None = None) -> dict[str, str]:
    """Copy the job's image inputs beside its video (:func:`_input_name`); field → file name. A job one of whose
    local inputs could not be copied (the file gone, or no longer the bytes sent) goes into ``missing`` (a URL
    input is not copied, and not missing)."""
    copied: dict[str, str] = {}
    for item in job_inputs(job):
        if item.kind != "image":
            continue
        name = _input_name(file_name, item)
        if write_input(item, root, dest / name):
            copied[item.field] = name
        elif missing is not None and item.file is not None and root is not None and missing[-1:] != [job.key]:
            missing.append(job.key)
    return copied


def _done(ledger: LedgerBackend, manifest: str, excluded: HfExport | None = None, *,
          include_rejected: bool = False) -> Iterator[JobRecord]:
    """The done jobs of ``manifest`` the export takes; those it leaves out counted in ``excluded``."""
    for job in ledger.iter_jobs(manifest, states=[JobState.DONE]):
        if exportable(job, include_rejected=include_rejected):
            yield job
        elif excluded is not None:
            excluded.excluded += 1


def _check_names(jobs: Iterable[JobRecord], dest: Path, listed: Collection[str], inputs: bool,
                 store: OutputStore) -> None:
    """Refuse when a file the export would write is already in ``dest``, was not listed by a runner
    export (``listed``) and does not already hold those bytes (the video, the input image), or when a folder on
    its way is a symbolic link out of ``dest`` (:func:`~runner.reporting.links_out.refuse_links_out`)."""
    folders: set[str] = set()  # checked for links out of dest: each once
    for job in jobs:
        if job.path is None or job.bytes is None:
            continue  # left out as missing: nothing written for it
        file_name = _exported_name(job)
        names = [(file_name, job.sha256)]
        if inputs:
            names += [(_input_name(file_name, item), item.sha256) for item in job_inputs(job)
                      if item.kind == "image" and item.sha256 is not None]
        for name, sha256 in names:
            folder = name.rpartition("/")[0]
            if folder and folder not in folders:
                refuse_links_out(dest, name, what="hf export")
                folders.add(folder)
            path = dest / name
            if name in listed or not (path.exists() or path.is_symlink()):
                continue
            try:
                same = not path.is_symlink() and path.is_file() and file_sha256(path) == sha256
            except OSError:
                same = False
            if not same and store.size(job.path) == job.bytes:  # else left out as missing
                raise UsageError(f"{path} was not written by runner and the hf export would replace it with"
                                 f" {job.key}'s file; nothing in {dest} was changed; move it away, or export to"
                                 " an empty folder or one a runner export made")


def _last_copy(ledger: LedgerBackend, store: OutputStore, path: Path, sha256: str) -> bool:
    """Whether ``path`` holds a done job's video (an input image copied beside a video is not one) that no other
    stored file holds: its stored original removed, or ``path`` that original itself."""
    return bool(ledger.paths_with_sha256(sha256)) and not stored_elsewhere(ledger, store, path, sha256)


def export_hf(ledger: LedgerBackend, manifest: str, dest: Path, store: OutputStore | None = None,
              inputs_root: Path | None = None, *, include_rejected: bool = False,
              ticker: Ticker | None = None) -> HfExport:
    """Write ``dest/metadata.jsonl``, the dataset card and the videos of ``manifest``'s done jobs;
    remove the files of the previous export's jobs no longer exported; returns the tally.

    Three passes over the done jobs (columns and those left out, the names already in ``dest``, then rows):
    memory stays flat. The videos are read
    from ``store`` (by default the ledger's state directory), local input images from
    ``inputs_root`` (the manifest's folder; None: not copied). The clips rejected in review are rows too with
    ``include_rejected`` (their ``review`` says so), else left out and counted. ``ticker`` is told of each row.
    """
    store = store if store is not None else LocalStore(ledger.state_dir)
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"--to {dest} is a file; the hf format writes a folder")
    check_card(dest, METADATA_FILE)
    result = HfExport(dest=dest)
    for state, n in ledger.counts(manifest).items():
        if state is not JobState.DONE and n:
            result.not_done[str(state)] = n
    done = ledger.counts(manifest)[JobState.DONE]
    first = _done(ledger, manifest, excluded=result, include_rejected=include_rejected)
    if ticker is not None:
        first = ticker.over(first, done, "export: {done} of {total} done job(s) read (pass 1 of 3: the columns)")
    columns = hf_columns(first, manifest)  # the excluded counted on the way
    before = listed_files(dest / METADATA_FILE)
    second = _done(ledger, manifest, include_rejected=include_rejected)
    if ticker is not None:
        second = ticker.over(second, done - result.excluded,
                             "export: {done} of {total} done job(s) read (pass 2 of 3: the names in the folder)")
    _check_names(second, dest, before, bool(columns.inputs), store)
    written: set[str] = set()
    suffixes: set[str] = set()
    try:
        dest.mkdir(parents=True, exist_ok=True)
        left = LeftBehind(dest)  # what a killed export left beside each name it places (whole_file clears its own)
        # Each file whole or not at all, its temporary file removed on a failure (a full disk): the card replaced
        # first, the metadata when its block ends after it.
        with whole_file(dest / METADATA_FILE, follow=False) as out:
            tick = ticker.of(done - result.excluded) if ticker is not None else None
            for job in _done(ledger, manifest, include_rejected=include_rejected):
                if tick is not None:
                    tick()
                if job.path is None or job.bytes is None or store.size(job.path) != job.bytes:
                    result.missing.append(job.key)
                    continue
                file_name = _exported_name(job)
                left.clear(file_name)
                how = store.export(job.path, dest / file_name, writer=place_tag())
                result.linked += how == "linked"
                result.copied += how == "copied"
                files = _copy_inputs(job, file_name, dest, inputs_root, result.inputs_missing) if columns.inputs else {}
                for name in files.values():
                    left.clear(name)
                written.update([file_name, *files.values()])
                suffixes.add(PurePosixPath(file_name).suffix)  # as written: the card's globs match case
                row = _row(job, manifest, file_name, columns, ledger.debug_info(job.key), files)
                out.write(json_line(row, default=str) + "\n")
                result.rows += 1
            sync_folders_of(dest, written)  # the files' folder entries on the disk before the metadata lists them
            crash_point("export-rows")  # tests: killed with every row written, metadata.jsonl not yet in place
            with whole_file(dest / CARD_FILE, follow=False) as card:  # the card first: a metadata.jsonl without it is not runner's
                card.write(card_text(manifest, METADATA_FILE, suffixes - {""}, result.rows, columns.names))
        sync_folder(dest)  # the metadata's own name, before the prune removes what it no longer lists
    except OSError as exc:
        if (whose := refused(exc)) is not None:  # another user's (a `sudo runner export` before): exit 6, was 3
            raise DiskError(f"cannot write the export to {dest}: {exc.strerror}: {whose}") from exc
        raise RunnerError(f"cannot write the export to {dest}: {exc.strerror or exc}") from exc
    pruned = prune(dest, before, written, lambda path, sha256: _last_copy(ledger, store, path, sha256))
    result.removed, result.changed, result.only_copy = pruned.removed, pruned.changed, pruned.only_copy
    return result
