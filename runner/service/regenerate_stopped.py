"""A ``runner regenerate`` killed between moving a rejected clip aside and queueing its fresh sample: finished by a run.

Killed there (kill -9, a power cut), the job stayed done and rejected with its video in ``_rejected/``: the next run
found nothing to do and ended "complete", the operator's regenerate silently dropped. A run of the manifest finishes
it first (:func:`~runner.ledger.set_aside.finish_stopped`), as ``regenerate`` again would: the job goes back to
pending, its fresh sample paid once by this run (the regenerate had checked the budget, and the run keeps it); the
rejected video stays aside, recorded where it is. ``runner accept`` before the run puts the clip back instead.
"""

from __future__ import annotations

from runner.ledger import LedgerBackend
from runner.ledger.set_aside import finish_stopped
from runner.service.outcome import Notice, Notify
from runner.storage.local import LocalStore

__all__ = ["finish_stopped_regenerates"]


def finish_stopped_regenerates(ledger: LedgerBackend, manifest: str, say: Notify) -> int:
    """Finish the regenerates of ``manifest``'s jobs stopped after their move, each said in one line; how many."""
    done = finish_stopped(ledger, LocalStore(ledger.state_dir), manifest)
    for key, kept in done:
        say(Notice(f"job {key}: the `runner regenerate` stopped after moving its rejected video to {kept} is finished:"
                   " the job is pending again for its fresh sample (one new paid task), the rejected video kept there",
                   "warning"))
    return len(done)
