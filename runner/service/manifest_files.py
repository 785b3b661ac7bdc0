"""Which manifest file a manifest's name was last run from (a fact of the ledger's ``meta``).

In one state directory a manifest's ``name:`` is one batch: a second file that says the same name (a copy
made to try a variant) replaces the first one's jobs at each run. The run says so, naming both files. Two names
that differ only in case (``Cats``, ``cats``) are two batches whose folders under ``outputs/`` are one on a
case-insensitive disk: plan and run refuse the second (:func:`refuse_case_twin`).
"""

from __future__ import annotations

import os
from pathlib import Path

from runner.errors import ManifestError
from runner.layout import manifest_folder
from runner.ledger import LedgerBackend
from runner.manifest import Manifest
from runner.service.outcome import Notice, Notify
from runner.storage.inside import case_twin

__all__ = ["MANIFEST_FILE_META", "note_manifest_file", "refuse_case_twin"]

MANIFEST_FILE_META = "manifest_file:"  # + a manifest's name: the file it was last run from (absolute)


def note_manifest_file(ledger: LedgerBackend, manifest: Manifest, say: Notify, *, replans: bool) -> None:
    """Record which file this manifest's name was last run from; when that was another file that still exists and
    says otherwise (``replans``: this run plans a digest other than the one registered — a copy made to try a
    variant, its ``name:`` left as it was), say so before this run replaces the other's jobs: in one state
    directory a name is one batch."""
    key, here = f"{MANIFEST_FILE_META}{manifest.name}", str(manifest.path.resolve())
    before = ledger.meta(key)
    if before == here:
        return
    if before is not None and replans and Path(before).is_file():
        say(Notice(f"{here} and {before} have the same name (`name: {manifest.name}`): in one state directory each"
                   " run of one replaces the other's jobs (the other's videos move to its _orphans folder and back,"
                   " and `ls`, `export` and `status` show whichever ran last). Give one of them its own `name:`, or"
                   " its own --state", "warning"))
    ledger.set_meta(key, here)


def refuse_case_twin(ledger: LedgerBackend, manifest: Manifest, state_dir: Path) -> None:
    """Refuse (:class:`~runner.errors.ManifestError`, exit 2) a manifest whose videos' folder is, on this disk, the
    folder of another manifest of this ledger spelt otherwise only in case (``name: Cats`` beside ``name: cats``): on a
    disk that does not tell case apart (macOS, exFAT, vfat, SMB) ``outputs/cats`` is ``outputs/Cats``, where the videos
    of both mix and a name of one may hold the other's video (the second's then goes beside it, and every run warns of
    a rename it cannot make). The same file with its ``name:`` recased is one batch, not two: it goes on. On a disk
    that tells case apart (ext4) the two are two folders and both go on: refused there (or once both folders were
    made), a pair planned before this rule stopped the first batch too, its paid tasks left uncollected."""
    twin = case_twin(state_dir, manifest_folder(manifest.name))
    if twin is None or ledger.manifest_digest(twin) is None:
        return  # no other manifest's folder: a folder of the user's, or none
    if not _one_folder(state_dir / manifest_folder(manifest.name), state_dir / manifest_folder(twin)):
        return  # two folders on this disk, or this one not made where the disk tells case apart: nothing mixes
    here, there = str(manifest.path.resolve()), ledger.meta(f"{MANIFEST_FILE_META}{twin}")
    if there == here:
        return
    other = f"`name: {twin}`" + (f" (last run from {there})" if there is not None else "")
    raise ManifestError(
        f"its `name: {manifest.name}` differs only in case from {other}: their videos' folders"
        f" {manifest_folder(manifest.name)} and {manifest_folder(twin)} are one folder on this disk (it does not tell"
        " case apart: macOS, exFAT, vfat, SMB), where their videos would mix and a name of one may hold the other's;"
        " nothing was planned or sent. Give this manifest another `name:` (one that differs in more than case), or its"
        " own --state", path=str(manifest.path), rule="case-twin")


def _one_folder(mine: Path, theirs: Path) -> bool:
    """Whether both names reach one folder (a disk that folds case, or a link): False when either is not there."""
    try:
        one, other = os.stat(mine), os.stat(theirs)
    except OSError:
        return False
    return (one.st_dev, one.st_ino) == (other.st_dev, other.st_ino)
