"""How much of an in-doubt job's hold is left when a run starts: a job an earlier run left in doubt keeps its slot.

An in-doubt submit may have created a task that runs at the provider for up to the hold
(:attr:`~runner.engine.policy.Policy.in_doubt_hold_s`): the job keeps a concurrency slot until then, so the provider
never runs more tasks than ``concurrency``. Within the run that put it in doubt the run's monotonic clock times the
hold (:meth:`~runner.engine.state.RunState.doubted`); here, a run starting later asks what is left of it.

Across runs of one boot of the machine the boot's steady clock (``CLOCK_BOOTTIME``: :mod:`runner.boot`) times it: the
SQLite ledger stamps each write-ahead with it (``[boot <id> +<s>s]``, the submit attempt's detail, kept when the
attempt closes in doubt, or interrupted by a runner's death). The wall clock timed it before: stepped ahead between two
runs (an NTP correction, ``date -s``, a VM restored from a snapshot), it ended every hold at once and the slot went
to a new POST while the in-doubt task might still run. Across a reboot, or without a stamp (a ledger written before
the stamps, a system without that clock), the wall clock still times it — a submit time ahead of it (a clock set back
since) is never held longer than the hold — and a step of it between runs across a reboot still counts.
"""

from __future__ import annotations

from collections.abc import Sequence

from runner.boot import BootStamp, stamp_of
from runner.ledger.records import AttemptRecord, JobRecord

__all__ = ["hold_left"]

_IN_DOUBT = ("ambiguous", "interrupted")  # the outcomes of a submit attempt that left its job in doubt


def hold_left(job: JobRecord, attempts: Sequence[AttemptRecord], *, hold: float, wall: float,
              boot: BootStamp | None) -> float:
    """Seconds left of in-doubt ``job``'s hold (``attempts``: the job's, oldest first; ``wall``: the wall clock now;
    ``boot``: this boot's steady clock now); 0 or less when its task, if any, can no longer run."""
    last = next((a for a in reversed(attempts) if a.kind == "submit" and a.outcome in _IN_DOUBT), None)
    sent = None if last is None else stamp_of(last.detail)
    if sent is not None and boot is not None and sent[0] == boot[0]:
        return min(hold, sent[1] + hold - boot[1])
    if job.submitted_at is None:
        return 0.0
    return min(hold, job.submitted_at + hold - wall)
