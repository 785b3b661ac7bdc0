"""How a run ended, from its engine's result and its ledger's counts: the exit code, and the word the summary line
ends on (``… [complete]``), which never says more than the exit code does.

The engine's own word is why it stopped (:class:`~runner.engine.StopReason`); ``complete`` there means nothing was
left that *this* run could do, which is not a complete batch when jobs failed (exit 1), are held in doubt (4) or
are still pending after a ``collect`` (3), nor when the run ends on an error (``fatal``). Those get a word of their
own: ``finished: 2 failed``, ``held: 1 in doubt``, ``collected: 3 pending``. A ``submit`` that finds the batch finished (nothing pending or outstanding)
exits as ``run`` would, 0 or 1, not 3.
"""

from __future__ import annotations

from collections.abc import Mapping

from runner.engine import RunResult, StopReason
from runner.errors import LedgerError
from runner.jobs import JobState
from runner.ledger import LedgerBackend
from runner.reporting.progress import FINISHED_WITH_FAILURES
from runner.service.outcome import EXIT_FAILED, EXIT_IN_DOUBT, EXIT_OK, EXIT_STOPPED

__all__ = ["ending_of", "exit_code_of", "summary_word"]

_OUTSTANDING = (JobState.PENDING, JobState.SUBMITTING, JobState.RUNNING, JobState.SUCCEEDED)
# Nothing left this run could do; with nothing outstanding either, the batch has its own answer (0 or 1): a `submit`
# tick after the last video is not "stopped with work outstanding".
_FINISHED = (StopReason.COMPLETE, StopReason.SUBMITTED)


def exit_code_of(result: RunResult, counts: Mapping[JobState, int], orphans: Mapping[JobState, int] | None = None) -> int:
    """The run's exit code from the manifest's jobs, and from the paid jobs an edit dropped from it
    (orphans): the run is not complete while one of those is still to be stored, and a lost one counts."""
    orphans = orphans or {}
    if counts[JobState.IN_DOUBT]:
        return EXIT_IN_DOUBT
    outstanding = sum(counts[s] for s in _OUTSTANDING)
    outstanding += sum(orphans.get(s, 0) for s in (JobState.SUBMITTING, JobState.RUNNING, JobState.SUCCEEDED))
    if result.reason not in _FINISHED or outstanding:
        return EXIT_STOPPED
    if counts[JobState.FAILED] or counts[JobState.LOST] or orphans.get(JobState.LOST):
        return EXIT_FAILED
    return EXIT_OK


def summary_word(result: RunResult, counts: Mapping[JobState, int], orphans: Mapping[JobState, int] | None = None,
                 *, submits: bool = True) -> str:
    """The summary's last word: the engine's reason, unless the engine finished (``complete``, or ``submitted`` with
    nothing outstanding) and the exit code says more. A run that finished what it could and ends on an error (jobs not
    sent because their folder could not take a video, jobs held back: exit 6) says ``fatal``, not ``complete``."""
    if result.reason not in _FINISHED:
        return str(result.reason)
    if result.error is not None:
        return str(StopReason.FATAL)
    orphans = orphans or {}
    code = exit_code_of(result, counts, orphans)
    if result.reason is StopReason.SUBMITTED and code == EXIT_STOPPED:
        return str(result.reason)  # `submit` did its part: the rest is collect's
    if code == EXIT_IN_DOUBT:
        return f"held: {counts[JobState.IN_DOUBT]} in doubt"
    if code == EXIT_STOPPED:
        pending = counts[JobState.PENDING]
        if not submits and pending:
            return f"collected: {pending} pending"
        outstanding = sum(counts[s] for s in _OUTSTANDING) + sum(orphans.get(s, 0) for s in _OUTSTANDING[1:])
        return f"stopped: {outstanding} outstanding"
    if code == EXIT_FAILED:
        lost = counts[JobState.LOST] + orphans.get(JobState.LOST, 0)
        parts = [f"{n} {what}" for n, what in ((counts[JobState.FAILED], "failed"), (lost, "lost")) if n]
        return FINISHED_WITH_FAILURES + ", ".join(parts)
    return str(StopReason.COMPLETE)


def ending_of(ledger: LedgerBackend, scope: str | None, result: RunResult, *, submits: bool) -> str | None:
    """The summary's last word as the exit code will have it (:func:`summary_word`); None when the ledger cannot be
    read now (its server went away): the engine's reason then."""
    try:
        counts, orphans = ledger.counts(scope), ledger.orphans(scope) if scope is not None else {}
    except LedgerError:
        return None
    return summary_word(result, counts, orphans, submits=submits)
