"""Paid jobs an edit of a manifest leaves behind: said before anything is sent, by ``plan`` and by a run's planning.

A job is what is paid for (its request), so an edit that changes a value a job sends — a prompt rewritten, or only
re-saved by another tool that changed its text: a line end inside a spreadsheet cell, a no-break space, a number a
spreadsheet rewrote, a YAML block's final line break — lists a new job in its place. The earlier one stays paid and
its video is kept (an orphan: ``outputs/<manifest>/_orphans/`` once another takes its name); the new one is paid for when it is sent. Nothing in the ledger
says the two are one video, so the runner cannot tell an edit meant from a re-save: it says how many paid jobs the
edit leaves, before the run sends anything, and how to keep them (put the files back as they were).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from runner.jobs import JobState
from runner.ledger import LedgerBackend
from runner.ledger.api import PAID_STATES

__all__ = ["COUNTED_UP_TO", "left_behind_text", "paid_keys", "still_listed_elsewhere"]

#: ``plan`` counts the paid jobs an edit leaves behind for a manifest with up to this many paid jobs: it reads each
#: one (about 1.2 s and 16 MB a 100k); above, a run still counts them (two counts, before and after its planning).
COUNTED_UP_TO = 100_000


def paid_keys(ledger: LedgerBackend, manifest: str) -> dict[str, JobState] | None:
    """The jobs ``manifest`` lists in the ledger that may have been paid for (submitted, in any state since); None
    when there are more than :data:`COUNTED_UP_TO` (a million read one by one would double a plan's time and
    memory)."""
    paid = sum(n for state, n in ledger.counts(manifest).items() if state in PAID_STATES)
    if paid > COUNTED_UP_TO:
        return None
    return {job.key: job.state for job in ledger.iter_jobs(manifest, states=PAID_STATES)}


def still_listed_elsewhere(ledger: LedgerBackend, manifest: str, keys: Iterable[str]) -> set[str]:
    """Those of ``keys`` another manifest lists too: not left behind (that manifest keeps them)."""
    return {key for key in keys if any(name != manifest for name, _output in ledger.targets_of(key))}


def left_behind_text(manifest: str, by_state: Mapping[JobState, int], *, planned: bool) -> str | None:
    """What to tell the operator of the paid jobs (by state) ``manifest`` no longer lists; None when there are none.
    ``planned``: the edit is planned (a run, before it sends), else a run would plan it (``runner plan``)."""
    total = sum(by_state.values())
    if not total:
        return None
    states = ", ".join(f"{n} {state}" for state, n in sorted(by_state.items(), key=lambda item: -item[1]))
    how = "are no longer in it as edited" if planned else "would no longer be in it as edited"
    return (f"{total} job(s) of {manifest} already paid for ({states}) {how}: a value they send changed (an edit, or"
            " a re-save by another tool that changed text: a line end in a cell, a no-break space, a number a"
            " spreadsheet rewrote). They stay paid and their videos are kept (`runner status` counts them as"
            " orphans), and the jobs listed in their place are new: paid for when sent. To keep the earlier ones"
            " instead, put the manifest and its files back as they were before the next run")
