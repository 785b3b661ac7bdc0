"""TASK_NOT_FOUND: when the provider's "I do not know this task" is final (F3), and losing a job then.

A task the provider says it does not know may be a glitch (a replica behind, a deploy); a paid job
is only declared ``lost`` when the answer persists: :attr:`Policy.gone_answers` answers spanning
:attr:`Policy.gone_after_s` within one run (on the monotonic clock), or answers recorded in
:attr:`Policy.gone_runs` distinct runs spanning that long. Any answer for the task since resets it, and so does an
answer recorded earlier than the one before it (the wall clock set back between them: how long went by cannot be
told, so only the answers since count). A wall clock stepped *ahead* between runs still counts as time gone by: the
runs themselves (three, each of its own answers) are the guard there.
Both the poller and the fetch lane (refreshing an expired URL) ask these rules.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from runner.engine import events as ev
from runner.engine.policy import Policy
from runner.engine.state import RunState
from runner.jobs import JobState
from runner.ledger import LedgerBackend

__all__ = ["GoneRules"]

log = logging.getLogger("runner.engine")


class GoneRules:
    """Not-found evidence of this run, and the ledger's of earlier runs."""

    def __init__(self, ledger: LedgerBackend, state: RunState, reporter: ev.Reporter, policy: Policy,
                 clock: Callable[[], float]) -> None:
        self.ledger = ledger
        self.state = state
        self.reporter = reporter
        self.policy = policy
        self.clock = clock
        self._not_found: dict[tuple[str, str], tuple[float, int]] = {}  # (key, task) -> first answer (clock), answers
        self._suspect: set[str] = ledger.not_found_keys()  # jobs with not-found answers no later answer cancelled

    def confirmed_gone(self, key: str, task_id: str) -> bool:
        """Whether TASK_NOT_FOUND for ``task_id`` (just recorded) is final: the job is then `lost`."""
        policy = self.policy
        now = self.clock()
        first, answers = self._not_found.get((key, task_id), (now, 0))
        self._not_found[(key, task_id)] = (first, answers + 1)
        self._suspect.add(key)
        if answers + 1 >= policy.gone_answers and now - first >= policy.gone_after_s:
            return True
        since_found: list[float] = []
        runs: set[int] = set()
        for attempt in self.ledger.attempts(key):
            if attempt.task_id != task_id or attempt.kind not in ("poll", "download"):
                continue
            if attempt.outcome == "found":
                since_found, runs = [], set()
            elif attempt.outcome == "not_found":
                if since_found and attempt.started_at < since_found[-1]:  # recorded before the answer before it: the
                    since_found, runs = [], set()  # clock was set back between them; how long went by cannot be told
                since_found.append(attempt.started_at)
                if attempt.run_id is not None:
                    runs.add(attempt.run_id)
        return (len(runs) >= policy.gone_runs and bool(since_found)
                and since_found[-1] - since_found[0] >= policy.gone_after_s)

    def found(self, key: str, task_id: str) -> None:
        """The provider answered for ``task_id``: earlier not-found answers no longer count (recorded once)."""
        if key in self._suspect:
            self._suspect.discard(key)
            self._not_found.pop((key, task_id), None)
            self.ledger.record_event(key, "poll", "found", task_id=task_id,
                                     detail="the provider answered for the task again; earlier TASK_NOT_FOUND answers no longer count")

    def lose(self, key: str, reason: str, *, was: JobState) -> None:
        """running|succeeded → lost, loudly."""
        if not self.ledger.mark_lost(key, reason=reason):
            return
        self.state.settled(key)
        log.error("job %s is LOST: %s — it was paid for but its video can no longer be fetched", key, reason)
        self.reporter.emit(ev.Lost(key=key, reason=reason, was=was))
