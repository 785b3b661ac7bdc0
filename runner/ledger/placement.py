"""Stored videos at the names an edited manifest gives them.

An edit of a manifest's ``output`` template can give a done job another file
name, or swap two jobs' names. :func:`realign_outputs` (called when a manifest
is planned again) renames the stored files to match, and records each new
path in the ledger:

* every rename goes through a temporary name (``.renaming-<key>…``), so a
  swap or a cycle of names works, and is one atomic ``rename`` per file;
* every step is journaled in the ledger before it is made and recorded in the
  same transaction that clears its journal entry, so a run killed midway finds
  every file at the next planning (:func:`realign_outputs` finishes what the
  journal holds first);
* a file is never overwritten: a destination held by another job's stored
  video (one the manifest no longer lists) is moved aside first, to the
  manifest's ``_orphans`` folder; one that only duplicates a stored video
  (a link or a copy, same sha256) is removed; anything else in the way is left
  alone, the job keeps its old name, and the caller is told why.

Every file operation goes through the output store (:class:`~runner.storage.api.OutputStore`:
``kind``, ``digest``, ``same_file``, ``move``, ``remove``), never through paths; by default the
local store of the ledger's state directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

from runner.jobs import JobState
from runner.layout import manifest_folder, orphan_path, output_path
from runner.ledger.api import LedgerBackend
from runner.storage import OutputStore, UnsafeDestination
from runner.storage.api import caseless
from runner.storage.local import LocalStore

__all__ = ["Realigned", "is_foreign", "needs_realigning", "realign_outputs"]


@dataclass(slots=True)
class Realigned:
    """What :func:`realign_outputs` did: files renamed, moved aside, removed as duplicates, and the
    renames it could not make safely (one sentence each)."""

    renamed: int = 0
    moved_aside: int = 0
    duplicates_removed: int = 0
    blocked: list[str] = field(default_factory=list)


def realign_outputs(ledger: LedgerBackend, manifest: str, *, store: OutputStore | None = None) -> Realigned:
    """Rename the stored videos of ``manifest``'s done jobs to the names it gives them now.

    Links (or copies) of videos stored for another manifest that an edit left at a name now given
    to another job are removed, for the caller to link again (``materialise_targets``).
    """
    store = store if store is not None else LocalStore(ledger.state_dir)
    result = _realign(ledger, store, manifest)
    _clear_stale_links(ledger, store, manifest, result)
    return result


def is_foreign(ledger: LedgerBackend, rel: str, *, store: OutputStore | None = None) -> bool:
    """Whether ``rel`` (relative to the state directory) holds a file the ledger knows nothing of:
    neither a job's stored video nor a copy of one. A rename never replaces such a file."""
    store = store if store is not None else LocalStore(ledger.state_dir)
    if store.kind(rel) is None or ledger.key_at_path(rel) is not None:
        return False
    return not _duplicate(ledger, store, rel)


def _clear_stale_links(ledger: LedgerBackend, store: OutputStore, manifest: str, result: Realigned) -> None:
    for key, path, output, sha256 in ledger.stored_elsewhere(manifest, manifest_folder(manifest)):
        dest = output_path(manifest, output)
        if store.kind(dest) is None or not store.exists(path):
            continue
        try:
            if store.same_file(dest, path) or store.digest(dest) == sha256:
                continue
        except OSError:
            continue
        if not _duplicate(ledger, store, dest):
            result.blocked.append(f"{dest} should be a link to the video of job {key} ({path}), but holds a file"
                                  " the ledger does not know; move it away and run again")
            continue
        try:
            store.remove(dest)
        except (OSError, UnsafeDestination) as exc:
            result.blocked.append(f"cannot remove {dest}, a stale link: {_why(exc)}")
            continue
        result.duplicates_removed += 1


def needs_realigning(ledger: LedgerBackend, manifest: str) -> bool:
    """Whether a run should call :func:`realign_outputs` although the manifest was not planned again:
    a run stopped in the middle of renames, the last attempt left some undone, or a download had to
    take another name (its own was held by another video)."""
    return bool(ledger.journaled_renames()) or ledger.misplaced_count(manifest, manifest_folder(manifest)) > 0


def _realign(ledger: LedgerBackend, store: OutputStore, manifest: str) -> Realigned:
    result = Realigned()
    _finish_journal(ledger, store)
    moves = {key: (src, output_path(manifest, output))
             for key, src, output in ledger.misplaced(manifest, manifest_folder(manifest))}
    if not moves:
        return result
    leaving = {src: key for key, (src, _) in moves.items()}
    skipped: dict[str, str] = {}
    asides: dict[str, tuple[str, str]] = {}  # another job's file in the way: key → (its path, aside path)
    duplicates: set[str] = set()
    changed = True
    while changed:  # a skipped move keeps its source occupied, which may block another: to a fixpoint
        changed = False
        for key, (src, dst) in moves.items():
            if key in skipped:
                continue
            why = _obstacle(ledger, store, manifest, src, dst, leaving, skipped, asides, duplicates)
            if why is not None:
                skipped[key] = f"cannot rename {src} to {dst} (job {key}): {why}"
                changed = True
    result.blocked.extend(skipped.values())
    for path in sorted(duplicates):
        try:
            store.remove(path)
        except (OSError, UnsafeDestination) as exc:
            result.blocked.append(f"cannot remove {path}, a copy of a stored video: {_why(exc)}")
            continue
        result.duplicates_removed += 1
    for owner, (path, aside) in asides.items():
        why = _rename(ledger, store, owner, path, aside)
        if why is None:
            result.moved_aside += 1
        else:
            result.blocked.append(f"cannot move {path} (job {owner}) aside to {aside}: {why}")
    todo = [(key, src, dst) for key, (src, dst) in moves.items() if key not in skipped]
    # Phase 1: every source to its temporary name (this vacates every destination that is a source) …
    placed = {key: src for key, src, _ in todo if src == _temporary(manifest, key, src)}  # a run cut short
    staged = [(key, src, _temporary(manifest, key, src)) for key, src, _ in todo if key not in placed]
    ledger.journal_renames(staged)
    for key, src, tmp in staged:
        why = _rename(ledger, store, key, src, tmp, journaled=True)
        if why is None:
            placed[key] = tmp
        else:
            result.blocked.append(f"cannot rename {src} to {tmp} (job {key}): {why}")
    # … phase 2: every temporary name to its destination.
    final = [(key, placed[key], dst) for key, _, dst in todo if key in placed]
    ledger.journal_renames(final)
    for key, tmp, dst in final:
        why = _rename(ledger, store, key, tmp, dst, journaled=True)
        if why is None:
            result.renamed += 1
        else:
            result.blocked.append(f"cannot rename {tmp} to {dst} (job {key}): {why}")
    return result


def _obstacle(
    ledger: LedgerBackend,
    store: OutputStore,
    manifest: str,
    src: str,
    dst: str,
    leaving: dict[str, str],
    skipped: dict[str, str],
    asides: dict[str, tuple[str, str]],
    duplicates: set[str],
) -> str | None:
    """Why ``src`` cannot be renamed to ``dst`` (``None``: it can, perhaps after clearing the way)."""
    if store.kind(src) is None:
        return "the stored file is missing"
    mover = leaving.get(dst)
    if mover is not None:
        return None if mover not in skipped else f"{dst} keeps the video of job {mover}"
    if dst in duplicates or any(path == dst for path, _ in asides.values()):
        return None
    if store.kind(dst) is None:
        return None
    if _one_name(store, src, dst):  # its case edited, on a case-insensitive file system: renamed as any other
        return None
    owner = ledger.key_at_path(dst)
    if owner is not None:
        aside = orphan_path(manifest, owner, PurePosixPath(dst).suffix)
        if store.kind(aside) is not None:
            return f"{dst} holds the video of job {owner}, and {aside} is taken too"
        asides[owner] = (dst, aside)
        return None
    if _duplicate(ledger, store, dst):
        duplicates.add(dst)
        return None
    return f"{dst} is a file the ledger does not know; move it away and run again"


def _duplicate(ledger: LedgerBackend, store: OutputStore, rel: str) -> bool:
    """Whether ``rel`` is only a copy (or link) of a video the ledger records elsewhere."""
    if store.kind(rel) != "file":
        return False
    digest = store.digest(rel)
    if digest is None:
        return False
    return any(path != rel and store.exists(path) and not _one_name(store, path, rel)
               for path in ledger.paths_with_sha256(digest))


def _one_name(store: OutputStore, name: str, other: str) -> bool:
    """Whether two names the ledger tells apart are one name of one file: they differ only by case or Unicode form,
    and the store finds one file at both (a case-insensitive file system). Removing one would remove the other.
    A hard link under another name is not this (one whose names differ only by case, on a case-sensitive file
    system, is taken for it: then nothing is removed)."""
    return name != other and caseless(name) == caseless(other) and store.same_file(name, other)


def _rename(
    ledger: LedgerBackend, store: OutputStore, key: str, src: str, dst: str, *, journaled: bool = False
) -> str | None:
    """Rename one stored file (never over another file) and record its new path; why not, if it was not."""
    if store.kind(dst) is not None:
        if journaled:
            ledger.forget_rename(key)
        return f"{dst} is taken"
    if not journaled:
        ledger.journal_renames([(key, src, dst)])
    try:
        store.move(src, dst)
    except (OSError, UnsafeDestination) as exc:
        ledger.forget_rename(key)
        return _why(exc)
    ledger.finish_rename(key, src=src, dst=dst)
    return None


def _finish_journal(ledger: LedgerBackend, store: OutputStore) -> None:
    """Complete (or drop) the renames a run stopped in the middle of."""
    for key, src, dst in ledger.journaled_renames():
        job = ledger.get(key)
        if job is None or job.state is not JobState.DONE or job.path != src:
            ledger.forget_rename(key)
            continue
        have_src, have_dst = store.kind(src) is not None, store.kind(dst) is not None
        if have_src and not have_dst:
            _rename(ledger, store, key, src, dst, journaled=True)  # not made: the job stays at src, realigned below
        elif have_dst and not have_src:
            ledger.finish_rename(key, src=src, dst=dst)  # the rename was made; its record was not
        else:
            ledger.forget_rename(key)


def _temporary(manifest: str, key: str, src: str) -> str:
    return f"{manifest_folder(manifest)}.renaming-{key}{PurePosixPath(src).suffix}"


def _why(exc: OSError | UnsafeDestination) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
