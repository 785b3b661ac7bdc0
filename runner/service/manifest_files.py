"""Which manifest file a manifest's name was last run from (a fact of the ledger's ``meta``).

In one state directory a manifest's ``name:`` is one batch: a second file that says the same name (a copy
made to try a variant) replaces the first one's jobs at each run. The run says so, naming both files.
"""

from __future__ import annotations

from pathlib import Path

from runner.ledger import LedgerBackend
from runner.manifest import Manifest
from runner.service.outcome import Notice, Notify

__all__ = ["MANIFEST_FILE_META", "note_manifest_file"]

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
