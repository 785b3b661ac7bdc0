"""Review decisions made during a run, saved while it runs: the run's :class:`LiveReview` chore.

A run holds the SQLite ledger's single-writer lock for its whole life, so an accept or reject from
``runner review`` or ``runner accept/reject`` is queued in ``<state>/review-queue.jsonl``
(:mod:`runner.ledger.review_queue`). The run saves them itself, within seconds: the engine calls this
chore every :data:`REVIEW_SAVE_EVERY_S` seconds (``RUNNER_REVIEW_SAVE_EVERY`` sets it), on the thread of the
run's other ledger writes and never while a POST is on the wire (:mod:`runner.engine.chores`). With nothing
queued it costs one ``stat``; with decisions queued, one durable transaction each, checked as
:func:`~runner.ledger.review_queue.apply_queued` checks them (a clip generated again since is never
decided on), the journal removed only once they are committed. ``status``, ``export``, ``report`` and
``regenerate`` see them from then on; the run's ending saves what came after its last turn.

A shared (PostgreSQL) ledger has no such lock and queues nothing: decisions are written at once, and a
run there gets no chore.
"""

from __future__ import annotations

from collections.abc import Mapping

from runner.engine.chores import Chore
from runner.ledger import LedgerBackend
from runner.ledger.factory import seconds_setting
from runner.ledger.review_queue import apply_queued
from runner.service.outcome import Notice, Notify

__all__ = ["REVIEW_SAVE_ENV", "REVIEW_SAVE_EVERY_S", "LiveReview", "review_save_every"]

REVIEW_SAVE_EVERY_S = 5.0  # a decision made on the review page during a run is in the ledger within this long
REVIEW_SAVE_ENV = "RUNNER_REVIEW_SAVE_EVERY"


def review_save_every(environ: Mapping[str, str]) -> float:
    """Seconds between two looks at the review queue during a run: ``RUNNER_REVIEW_SAVE_EVERY``, else the default."""
    return seconds_setting(environ, REVIEW_SAVE_ENV, REVIEW_SAVE_EVERY_S, low=0.1)


class LiveReview:
    """Saves the decisions queued during the run into its ledger; :attr:`saved` counts them."""

    def __init__(self, ledger: LedgerBackend, say: Notify, *, every: float) -> None:
        self.ledger = ledger
        self.say = say
        self.every = every
        self.saved = 0

    def chore(self) -> Chore:
        return Chore("saving the review decisions queued during the run", self.save_now, self.every)

    def save_now(self, *, wait: bool = False) -> int:
        """Apply what is queued now; how many were saved (said, and counted in :attr:`saved`). ``wait``: for the
        journal's lock (the run's ending), else a decision being queued now is left to the next look."""
        saved = apply_queued(self.ledger, told=True, wait=wait)
        if saved:
            self.saved += saved
            self.say(Notice(f"{saved} review decision(s) made during the run saved",
                            fields={"event": "review_saved", "decisions": saved}))
        return saved
