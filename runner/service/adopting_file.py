"""Record a held-back job as done from the video already at its output name (`runner adopt KEY --file`,
`runner adopt MANIFEST --held-back`).

A job not yet sent whose output name already holds a video no job in the ledger records is held back by every run
(:meth:`~runner.engine.admission.Destinations._name_problem`): after a ledger restored from a backup older than the
last run, or ``--new-ledger`` beside old videos, that file is most likely the job's own, paid for in a run the ledger
no longer records. The provider has no list of tasks, so its task id cannot be found; the only ways on were to move
the file away and pay again, or leave the job held back for ever. This is the operator's third way, never taken by
itself (a file at the name may be a hand-put one, or another batch's): the job becomes done from that file.

It takes a job only when it is pending (never sent in this ledger), its output name (or its beside name, where a
download puts a video when the name holds another) holds a regular file no job in the ledger records, and that file
is a whole video, checked as a download is (the endpoint's first-bytes check, then every top-level MP4 box:
:class:`~runner.client.mp4walk.BoxWalk`) and not the same bytes as a video another job records. The job is then
done with the file's sha256 and size (the file made read-only, as a stored video is), no task id, its estimate counted as spent (the video was paid for), and a
submit attempt ``adopted`` that says so (:meth:`~runner.ledger.LedgerBackend.adopt_file`), and the file linked at
the names other manifests give the job, as a download links it. Nothing is sent or paid.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from runner import endpoints
from runner.client.download import is_mp4
from runner.client.mp4walk import BoxWalk
from runner.errors import UsageError
from runner.jobs import JobState
from runner.layout import output_path
from runner.ledger import JobRecord, LedgerBackend
from runner.manifest import load_manifest
from runner.service.adopting import resolve_key
from runner.service.hints import runner_command
from runner.service.state import open_existing_ledger, resolve_state
from runner.storage import OutputStore, beside_name, place_at
from runner.storage.local import LocalStore
from runner.storage.read_only import make_read_only

__all__ = ["FileAdoptions", "FromFile", "adopt_files", "adopt_held_back"]

_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class FromFile:
    """Job ``key`` is (or, in a dry run, would be) done from the video at ``path`` (relative to the state dir)."""

    key: str
    path: str
    sha256: str
    bytes: int
    estimated_usd: float


@dataclass(slots=True)
class FileAdoptions:
    """What `runner adopt --file` / `--held-back` did in ``state``: the jobs adopted and those refused (key, why)."""

    state: Path
    dry_run: bool
    adopted: list[FromFile] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    linked: int = 0  # other manifests' names of the adopted videos, linked to them (as a download links them)
    unplaced: list[str] = field(default_factory=list)  # those that could not be: why, one line each


def adopt_files(keys: list[str], state_dir: Path | None = None, *, dry_run: bool = False) -> FileAdoptions:
    """Each of ``keys`` (full keys or unique prefixes) done from the video at its output name; a key that is not
    a held-back job with a whole video there is refused (a UsageError when it is the only one), nothing written."""
    state = resolve_state(state_dir)
    with open_existing_ledger(state, readonly=dry_run) as ledger:
        done = FileAdoptions(state, dry_run)
        store = LocalStore(ledger.state_dir)
        for key in map(lambda given: resolve_key(ledger, given), keys):
            job = ledger.get(key)
            assert job is not None
            _adopt(ledger, store, job, _video_of(ledger, store, job), ledger.paths_with_sha256, done,
                   missing_is_refusal=True)
    if len(keys) == 1 and done.refused:
        raise UsageError(done.refused[0][1])
    return done


def adopt_held_back(manifest_path: Path, state_dir: Path | None = None, *, dry_run: bool = False) -> FileAdoptions:
    """Every pending job of the manifest whose output name holds a video no job records, done from that file
    (the jobs a run holds back, exit 6); pending jobs with nothing at their name are left as they are."""
    spec = load_manifest(manifest_path)
    state = resolve_state(state_dir, manifest_path)
    with open_existing_ledger(state, readonly=dry_run, spec=spec, manifest=manifest_path) as ledger:
        done = FileAdoptions(state, dry_run)
        store = LocalStore(ledger.state_dir)
        # Only the jobs with a file at a name are kept (not every pending job: a batch held back whole after
        # --new-ledger), and the videos other jobs record are read for all of them at once.
        held = [(job, found) for job in ledger.iter_jobs(spec.name, states=[JobState.PENDING])
                if (found := _video_of(ledger, store, job)) is not None]
        recorded = _recorded(ledger, {found.sha256 for _, found in held if isinstance(found, FromFile)})
        for job, found in held:
            if _adopt(ledger, store, job, found, lambda sha256: recorded.get(sha256, []), done,
                      missing_is_refusal=False) and isinstance(found, FromFile):
                recorded.setdefault(found.sha256, []).append(found.path)  # a second copy of it is not adopted too
    return done


_ONE_BY_ONE = 16  # up to this many videos, each looked up (a full scan of the jobs each); more: one pass over them


def _recorded(ledger: LedgerBackend, digests: set[str]) -> dict[str, list[str]]:
    """The recorded paths of the done jobs whose video has one of these sha256s. One look-up a video was a full scan
    of the jobs each: 2,000 videos held back in a 200k-job ledger took 144 s, silent; past a few, one pass reads them
    all."""
    if len(digests) <= _ONE_BY_ONE:
        return {digest: ledger.paths_with_sha256(digest) for digest in digests}
    found: dict[str, list[str]] = {}
    for job in ledger.iter_jobs(None, states=[JobState.DONE]):
        if job.sha256 in digests and job.path is not None:
            found.setdefault(job.sha256, []).append(job.path)
    return found


def _adopt(ledger: LedgerBackend, store: OutputStore, job: JobRecord, found: FromFile | str | None,
           recorded: Callable[[str], list[str]], done: FileAdoptions, *, missing_is_refusal: bool) -> bool:
    """``job`` done from its file (``found`` by :func:`_video_of`), or why not in ``done.refused`` (a job with no
    file at its names: only when ``missing_is_refusal``; a copy of a video ``recorded`` at another path); whether
    it is (or, in a dry run, would be) done."""
    if isinstance(found, FromFile):
        same = [path for path in recorded(found.sha256) if path != found.path]
        if same:
            found = (f"{found.path} holds the same video as {same[0]}, which another job records (a copy?): not job"
                     f" {job.key}'s video, not adopted; move it away and the next run sends the job (and pays for it)")
    if found is None:
        if missing_is_refusal:
            targets = ledger.targets_of(job.key)
            where = output_path(*targets[0]) if targets else "its output name"
            done.refused.append((job.key, f"job {job.key}: no file at {where} (nor at its beside name"
                                          f" {beside_name(where, job.key)}); nothing changed"))
        return False
    if isinstance(found, str):
        done.refused.append((job.key, found))
        return False
    if not done.dry_run and (changed := _seal(store.describe(found.path), found.bytes)) is not None:
        done.refused.append((job.key, f"{store.describe(found.path)} {changed}; job {job.key} stays pending, nothing"
                                      " recorded: run the command again"))
        return False
    if not done.dry_run and not ledger.adopt_file(job.key, path=found.path, sha256=found.sha256, bytes=found.bytes,
                                                  detail=_detail(found)):
        now = ledger.get(job.key)
        done.refused.append((job.key, f"job {job.key} is {now.state if now else 'gone'} now (a run took it, or"
                                      f" another job records {found.path}); nothing changed"))
        return False
    done.adopted.append(found)
    if not done.dry_run:
        _place_elsewhere(ledger, store, job.key, found.path, done)
    return True


def _place_elsewhere(ledger: LedgerBackend, store: OutputStore, key: str, source: str, done: FileAdoptions) -> None:
    """The other manifests that ask for job ``key``'s video get a link to it at their names, as a download gives
    them (a run places them only when a manifest is planned again: without this, never). One that cannot be is said,
    and stays without it; the job is done all the same."""
    others = [rel for rel in (output_path(*target) for target in ledger.targets_of(key)) if rel != source]
    for rel, exc in place_at(store, source, others):
        if exc is None:
            done.linked += 1
        else:
            done.unplaced.append(f"job {key}: its video {source} could not be linked at {rel} ({exc}); it is done and"
                                 " stored, that name stays without it: link or copy it there by hand")


def _detail(found: FromFile) -> str:
    return (f"adopted from its file {found.path} ({found.bytes:,} bytes, sha256 {found.sha256}) by `runner adopt"
            " --file`: paid for in a run this ledger does not record; its task id is unknown")


def _video_of(ledger: LedgerBackend, store: OutputStore, job: JobRecord) -> FromFile | str | None:
    """The whole video at ``job``'s output name (or its beside name) no job records; why not (a line); or None when
    neither name holds a file. Whether another job records the same video is :func:`_adopt`'s to ask."""
    key = job.key
    if job.state is not JobState.PENDING:
        held = f" with task {job.task_id}" if job.task_id else ""
        return (f"job {key} is {job.state}{held}, not a job held back unsent; `runner adopt --file` only records a"
                " pending job from its file (nothing changed)")
    targets = ledger.targets_of(key)
    if not targets:
        return f"job {key} is in no manifest now: it has no output name to take a file from (nothing changed)"
    rel = output_path(*targets[0])
    files = [name for name in (rel, beside_name(rel, key)) if store.kind(name) is not None]
    if not files:
        return None
    for name in files:
        if store.kind(name) != "file":
            return (f"{store.describe(name)} is not a regular file (a link, a folder or a special file): not this"
                    f" job's video; job {key} stays pending, nothing changed")
    owners = [ledger.key_at_path(name) for name in files]
    free = [name for name, owner in zip(files, owners, strict=True) if owner is None]
    if not free:
        return (f"{files[0]} is the recorded video of job {owners[0]}, not of job {key}; job {key} stays pending (its"
                " next run sends it), nothing changed")
    if len(free) > 1:
        again, told = runner_command("adopt", key[:12], state_dir=ledger.state_dir)  # this ledger, as printed
        return (f"both {free[0]} and {free[1]} hold a video no job records: move away the one that is not job"
                f" {key}'s and run `{again} --file` again; nothing changed" + (f" ({told})" if told else ""))
    name = free[0]
    try:
        check_media = endpoints.get(job.model).check_media
    except endpoints.UnknownEndpoint:
        check_media = is_mp4
    try:
        sha256, size, problem = _read_whole(store.describe(name), check_media)
    except OSError as exc:
        return f"cannot read {store.describe(name)}: {exc.strerror or exc}; job {key} stays pending, nothing changed"
    if problem is not None:
        return (f"{store.describe(name)} is not a whole video ({problem}): not adopted; job {key} stays pending — move"
                " the file away and run again to send it (and pay for it again)")
    return FromFile(key, name, sha256, size, job.estimated_usd)


def _seal(path: str, size: int) -> str | None:
    """Make the file read-only, as a stored video is (exports and reports hard-link it); what changed since it was
    read (None: nothing)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        return f"cannot be opened again ({exc.strerror or exc})"
    try:
        make_read_only(fd)
        now = os.fstat(fd).st_size
    finally:
        os.close(fd)
    return None if now == size else f"changed while it was read ({size:,} bytes, now {now:,})"


def _read_whole(path: str, check_media: Callable[[bytes], str | None]) -> tuple[str, int, str | None]:
    """The sha256 and size of the file at ``path`` (not followed if a link), and what is wrong with it as a video
    (the endpoint's first-bytes check, then whole MP4 boxes with a moov and an mdat), or None."""
    digest, boxes, head, size = hashlib.sha256(), BoxWalk(), b"", 0
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
            boxes.feed(chunk)
            head = (head + chunk)[:8] if len(head) < 8 else head
            size += len(chunk)
    problem = check_media(head) if size else "an empty file"
    return digest.hexdigest(), size, problem or boxes.problem()
