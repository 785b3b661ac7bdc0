"""Jobs failed before anything was sent because an input file changed or could not be read: planned again.

Before a job is sent, admission (:mod:`runner.engine.admission`) checks its local inputs against the bytes it was
planned with; a file changed, renamed away or unreadable fails the job unsent (reason ``UNSENT_REASON``), and
nothing is paid. Such a job stayed failed for good, even once the file was back (the image-input sweep: a run
after `mv f2.png f2-renamed.png` and a re-plan still exited 1). A job's key follows its inputs' bytes, so a job
the manifest still lists is the same bytes listed again: each run that submits puts its never-paid jobs failed
this way back to pending, and admission checks the file again before anything is sent (failing the job again,
unsent, if it is still not right). A job with any submit behind it (a failed task whose retry met a changed
file, even at a price of 0) is left for an explicit `runner retry --failed`.
"""

from __future__ import annotations

from runner.jobs import JobState
from runner.ledger import LedgerBackend
from runner.ledger.api import UNSENT_REASON
from runner.service.outcome import Notice, Notify

__all__ = ["reopen_unsent"]


def reopen_unsent(ledger: LedgerBackend, manifest: str, say: Notify) -> int:
    """Put ``manifest``'s never-paid jobs failed unsent back to pending; how many."""
    keys = [job.key for job in ledger.iter_jobs(manifest, states=[JobState.FAILED])
            if job.reason == UNSENT_REASON and job.attempts == 0 and job.spent_usd == 0]  # never sent at all
    moved = ledger.reset(manifest, JobState.FAILED, keys=keys) if keys else 0
    if moved:
        say(Notice(f"{moved} job(s) that failed unsent, an input file having changed or become unreadable, are"
                   " planned again: their files are checked again before anything is sent"))
    return moved
