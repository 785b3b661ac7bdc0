"""The submit lane's intake: which job to submit next (:class:`Intake`).

Due retries first — refused submits (429…) after their delay, and failed tasks the updates lane sends back
to be paid for again (job-level retries) — then the ledger's pending rows of the manifest, in planning
order, read in small batches (memory does not grow with the batch). On a shared ledger, pending jobs are
claimed one at a time for this runner instead (no other runner submits them). :meth:`Intake.ready` never
waits: the submit lane asks it for the jobs it can group with one it waited for.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from runner.engine.policy import EngineConfig
from runner.engine.state import RunState, StopReason
from runner.jobs import JobState
from runner.ledger import JobRecord, LedgerBackend

__all__ = ["Intake"]

log = logging.getLogger("runner.engine")


class Intake:
    """The jobs the submit lane takes, in order (see the module docstring)."""

    def __init__(self, ledger: LedgerBackend, config: EngineConfig, state: RunState, *, clock: Callable[[], float],
                 retries: MemoryObjectReceiveStream[str] | None, edited: Callable[[], str | None] | None = None) -> None:
        self.ledger = ledger
        self.config = config
        self.policy = config.policy
        self.state = state
        self.clock = clock
        self._retries = retries  # keys of failed tasks to submit again, from the updates lane (the lane closes it)
        self._retry_queue: deque[tuple[float, str]] = deque()  # (not before, key)
        self._pending: deque[JobRecord] = deque()
        self._cursor = 0
        self._drained = False
        self._edited = edited  # the manifest file (or a file it reads) that changed since it was planned, else None
        self._edit_checked = -float("inf")
        self._stopped_for_edit = False

    def edited(self) -> bool:
        """Whether the manifest changed since it was planned (a stat of its files, at most once a
        ``Policy.edit_check_interval``; once it has, always): then nothing more is submitted — the edit may drop
        the very jobs this run would pay for next. What was paid for is still collected; the next run plans it."""
        if self._stopped_for_edit:
            return True
        if self._edited is None or self.clock() - self._edit_checked < self.policy.edit_check_interval:
            return False
        self._edit_checked = self.clock()
        changed = self._edited()
        if changed is None:
            return False
        log.warning("%s changed during this run: no more submits (the edit may drop the jobs it would pay for next);"
                    " the tasks already paid for are collected. Run again to plan the edit", changed)
        self._stopped_for_edit = True
        self.state.stop(StopReason.EDITED, submitting_only=True)
        if self.config.shared:  # the pending jobs it claimed, for runners on other hosts to send now
            self.ledger.release_claims(self.ledger.owner)
        return True

    def retry_later(self, key: str, not_before: float) -> None:
        """A refused submit (nothing was created): the job is pending again, to be sent at ``not_before``."""
        self._retry_queue.append((not_before, key))

    def put_back(self, job: JobRecord) -> None:
        """A job to take again first (a shared ledger's write-ahead found no slot; a group's budget was counted
        with a job that was no longer pending)."""
        self._pending.appendleft(job)

    async def next(self) -> JobRecord | None:
        """The next job to submit, waiting for a retry's time if that is all there is; None: nothing is left
        (or the run halted meanwhile)."""
        while True:
            job, claimed_elsewhere = self.ready()
            if job is not None:
                return job
            if not self._retry_queue and not claimed_elsewhere:
                return None
            due = self._retry_queue[0][0] - self.clock() if self._retry_queue else self.policy.lease_ttl_s
            # Pending jobs another runner holds come back if its lease expires: look again within ttl/4.
            await self.state.wait_change(min(due, self.policy.lease_ttl_s / 4) if claimed_elsewhere else due)
            if self.state.halted:
                return None

    def ready(self) -> tuple[JobRecord | None, bool]:
        """The next job to submit if one is at hand now, never waiting; and, when none is, whether pending
        jobs are claimed by other runners (a shared ledger)."""
        self._take_retries()
        now = self.clock()
        while self._retry_queue and self._retry_queue[0][0] <= now:
            job = self.ledger.get(self._retry_queue.popleft()[1])
            if job is not None and job.state is JobState.PENDING:
                return job, False
        claimed_elsewhere = False
        if not self._pending and not self._drained:
            if self.config.shared:
                claimed_elsewhere = self._claim()
            else:
                batch = self.ledger.pending_batch(self.config.manifest, limit=self.policy.pending_batch,
                                                  after_rowid=self._cursor)
                if batch:
                    self._cursor = batch[-1][0]
                    self._pending.extend(job for _, job in batch)
                else:
                    self._drained = True
        if self._pending:
            return self._pending.popleft(), False
        return None, claimed_elsewhere

    def _claim(self) -> bool:
        """A shared ledger: claim one pending job for this runner (no other runner submits it). True when
        none could be claimed but the scope still has pending jobs (other runners' claims)."""
        # A job refused a moment ago is pending with no owner again, the first a claim takes: claimed (held for this
        # runner) but left to its retry's time, and the next claimed instead (it was sent again at once, its backoff
        # never applied; review of the refusal streak).
        waiting = {key for _, key in self._retry_queue}
        for _ in range(len(waiting) + 1):
            claimed = self.ledger.claim_pending(1, self.ledger.owner, manifest=self.config.manifest)
            fresh = [job for job in claimed if job.key not in waiting]
            if fresh:
                self._pending.extend(fresh)
                return False
            if not claimed:
                break
        if self.ledger.counts(self.config.manifest)[JobState.PENDING]:
            return True
        self._drained = True
        return False

    def _take_retries(self) -> None:
        if self._retries is None:
            return
        now = self.clock()
        while True:
            try:
                self._retry_queue.append((now, self._retries.receive_nowait()))
            except (anyio.WouldBlock, anyio.EndOfStream):
                return
