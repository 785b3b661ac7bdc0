"""Planning a manifest's edit into its ledger: what every run does first, and what ``retry`` and ``regenerate`` do
before they queue paid work, so what they queue and quote is the edited manifest's (nothing is sent).

A ledger's plan of a manifest is the version a run last registered (its digest). An edit since — a budget
raised in ``limits:``, a job dropped — is planned by the next run; ``retry`` and ``regenerate`` plan it first
themselves rather than queue from the old version (a job the edit drops would wait, pending, for a run that
never sends it) or refuse until a run (which also sends) has planned it.
"""

from __future__ import annotations

from runner.engine import materialise_targets
from runner.layout import orphan_folder
from runner.ledger import LedgerBackend, needs_realigning, realign_outputs
from runner.manifest import Manifest, expand
from runner.service.left_behind import left_behind_text
from runner.service.manifest_files import note_manifest_file, refuse_case_twin
from runner.service.outcome import Notice, Notify

__all__ = ["is_planned", "plan_edit", "realign"]


def is_planned(ledger: LedgerBackend, manifest: Manifest) -> bool:
    """Whether the ledger's plan of ``manifest`` is this version of its files (or the ledger has none yet)."""
    return ledger.manifest_digest(manifest.name) in (None, manifest.digest)


def plan_edit(ledger: LedgerBackend, manifest: Manifest, say: Notify) -> bool:
    """Register ``manifest``'s jobs when the ledger holds another version of it (and realign the stored videos'
    names); whether it did. Sends nothing; the caller holds the ledger's lock."""
    refuse_case_twin(ledger, manifest, ledger.state_dir)
    replans = ledger.manifest_digest(manifest.name) != manifest.digest
    note_manifest_file(ledger, manifest, say, replans=replans)
    if replans:
        say(Notice(f"planning {manifest.path} …"))
        before = ledger.orphans(manifest.name)
        total = ledger.register(manifest.name, manifest.digest, expand(manifest), salt=manifest.salt)
        say(Notice(f"{total} job(s) in {manifest.name}"))
        left = {state: n - before.get(state, 0) for state, n in ledger.orphans(manifest.name).items()
                if n > before.get(state, 0)}  # paid jobs this edit leaves behind (said before anything is sent)
        if (text := left_behind_text(manifest.name, left, planned=True)) is not None:
            say(Notice(text, "warning", fields={"event": "paid_jobs_left_behind", "jobs": sum(left.values())}))
        if shared := realign(ledger, manifest.name, say):
            say(Notice(f"{shared} video(s) already paid for by another manifest were linked into place"))
    elif needs_realigning(ledger, manifest.name):
        realign(ledger, manifest.name, say)
    return replans


def realign(ledger: LedgerBackend, manifest: str, say: Notify) -> int:
    """Stored videos to the names the (edited) manifest gives them; say plainly what could not be renamed. Then the
    videos another manifest paid for linked into place (realigning removes stale links for this): how many."""
    done = realign_outputs(ledger, manifest)
    if done.renamed:
        say(Notice(f"renamed {done.renamed} stored video(s) to the names {manifest} gives them now"))
    if done.moved_aside:
        say(Notice(f"moved {done.moved_aside} stored video(s) of jobs {manifest} no longer lists to"
                   f" {orphan_folder(manifest)} to make room"))
    for line in done.blocked[:5]:
        say(Notice(line, "warning"))
    if done.blocked:
        more = f" ({len(done.blocked) - 5} more not shown)" if len(done.blocked) > 5 else ""
        say(Notice(f"{len(done.blocked)} stored video(s) do not match the names in {manifest}{more};"
                   " each run tries again, `runner status` counts them", "warning"))
    return materialise_targets(ledger, manifest)
