"""TASK_NOT_FOUND: when the provider's "I do not know this task" is final (F3), and losing a job then.

A task the provider says it does not know may be a glitch (a replica behind, a deploy); a paid job
is only declared ``lost`` when the answer persists: :attr:`Policy.gone_answers` answers spanning
:attr:`Policy.gone_after_s` within one run (on the monotonic clock), or answers recorded in
:attr:`Policy.gone_runs` distinct runs spanning that long. Any answer for the task since resets it, and so does an
answer recorded earlier than the one before it (the wall clock set back between them: how long went by cannot be
told, so only the answers since count).

The time between two answers recorded in one boot of the machine is read on its steady clock, never the wall clock:
each not-found answer's detail ends with its boot's id and ``CLOCK_BOOTTIME`` (:mod:`runner.boot`), as
``[boot <id> +<seconds>s]``, and when the first answer of the span and the last are of one boot the span is the
difference of the two. A wall clock stepped ahead a day between three runs minutes apart spanned a day, and a paid
job was made lost by a glitch of minutes. Answers of different boots (a reboot between them, another host on a
shared ledger, an answer recorded before this rule) or of a system without that clock are timed by the ledger's
clock as before: a step of the wall clock between runs across a reboot still counts, and the runs themselves (three,
each of its own answers) are the guard there.
Both the poller and the fetch lane (refreshing an expired URL) ask these rules.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from runner.boot import BootStamp, stamp_of, stamped, this_boot
from runner.engine import events as ev
from runner.engine.policy import Policy
from runner.engine.state import RunState
from runner.jobs import JobState
from runner.ledger import LedgerBackend

__all__ = ["GoneRules"]

log = logging.getLogger("runner.engine")


def _elapsed(first: tuple[float, BootStamp | None], last: tuple[float, BootStamp | None]) -> float:
    """Seconds from one recorded answer to another: on the boot's steady clock when both are of one boot."""
    (first_at, first_boot), (last_at, last_boot) = first, last
    if first_boot is not None and last_boot is not None and first_boot[0] == last_boot[0]:
        return last_boot[1] - first_boot[1]
    return last_at - first_at


class GoneRules:
    """Not-found evidence of this run, and the ledger's of earlier runs."""

    def __init__(self, ledger: LedgerBackend, state: RunState, reporter: ev.Reporter, policy: Policy,
                 clock: Callable[[], float], boot: Callable[[], BootStamp | None] = this_boot) -> None:
        self.ledger = ledger
        self.state = state
        self.reporter = reporter
        self.policy = policy
        self.clock = clock
        self.boot = boot
        self._not_found: dict[tuple[str, str], tuple[float, int]] = {}  # (key, task) -> first answer (clock), answers
        self._suspect: set[str] = ledger.not_found_keys()  # jobs with not-found answers no later answer cancelled

    def record(self, key: str, kind: str, task_id: str, detail: str) -> None:
        """Record a TASK_NOT_FOUND answer for ``task_id`` (a ``poll`` or a ``download``), stamped with this boot."""
        self.ledger.record_event(key, kind, "not_found", http_status=404, detail=stamped(detail, self.boot()),
                                 task_id=task_id)

    def confirmed_gone(self, key: str, task_id: str) -> bool:
        """Whether TASK_NOT_FOUND for ``task_id`` (just recorded) is final: the job is then `lost`."""
        policy = self.policy
        now = self.clock()
        first, answers = self._not_found.get((key, task_id), (now, 0))
        self._not_found[(key, task_id)] = (first, answers + 1)
        self._suspect.add(key)
        if answers + 1 >= policy.gone_answers and now - first >= policy.gone_after_s:
            return True
        since_found: list[tuple[float, BootStamp | None]] = []
        runs: set[int] = set()
        for attempt in self.ledger.attempts(key):
            if attempt.task_id != task_id or attempt.kind not in ("poll", "download"):
                continue
            if attempt.outcome == "found":
                since_found, runs = [], set()
            elif attempt.outcome == "not_found":
                answer = (attempt.started_at, stamp_of(attempt.detail))
                if since_found and _elapsed(since_found[-1], answer) < 0:  # recorded before the answer before it: the
                    since_found, runs = [], set()  # clock was set back between them; how long went by cannot be told
                since_found.append(answer)
                if attempt.run_id is not None:
                    runs.add(attempt.run_id)
        return (len(runs) >= policy.gone_runs and bool(since_found)
                and _elapsed(since_found[0], since_found[-1]) >= policy.gone_after_s)

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
