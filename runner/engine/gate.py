"""The shared limits in front of the write-ahead, on a ledger that several runners share (PostgreSQL).

Only with :attr:`EngineConfig.shared`; one runner on SQLite paces itself (:mod:`runner.engine.ratelimit`)
and checks its budget from its own tally. Here every runner together holds to:

* **the submit rate**: before each write-ahead the runner takes a token of the ledger's ``submit``
  bucket (:meth:`LedgerBackend.take_token`, refilled at ``rpm``) and waits the time it is told. The
  adaptive limiter (429 backoff) still paces each runner first; the bucket caps all of them together.
  A token is taken before the write-ahead, never between the POST and its record;
* **the budget**: the write-ahead carries it (``mark_submitting(budget=(manifest, USD))``) and the
  ledger refuses it when every runner's reservations plus this job would pass it
  (:meth:`SharedGate.refusal` then says ``budget``: the run stops submitting, as one runner does);
* **the concurrency**: the write-ahead carries it too (``max_outstanding``). While every slot is held by
  tasks outstanding anywhere, the runner waits without taking tokens and looks again at a growing
  interval — ``shared_slot_wait_s`` doubled per look, up to ``shared_idle_max_s`` (one cheap count a
  look) — or at once when its own run changes (one of its tasks ends: a slot frees);
* **the lease, after the write-ahead**: a POST leaves only while the lease it was written ahead under may still
  hold (:meth:`~runner.engine.leases.LeaseKeeper.may_send`). A runner stopped between the two past its lease
  (SIGSTOP, a frozen or suspended machine) may have had the job taken over — held in doubt, retried, sent again by
  another runner — so its POST is not sent (:meth:`SharedGate.lapsed`).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable

from runner.engine import events as ev
from runner.engine.admission import AdoptCommands
from runner.engine.landing import not_sent
from runner.engine.policy import EngineConfig
from runner.engine.ratelimit import SAFETY
from runner.engine.state import RunState
from runner.jobs import JobState
from runner.ledger import JobRecord, LedgerBackend

__all__ = ["SUBMIT_BUCKET", "Refusal", "SharedGate"]

log = logging.getLogger("runner.engine")

SUBMIT_BUCKET = "submit"  # the ledger's rate bucket of every runner's POSTs


class Refusal(enum.Enum):
    """Why a shared ledger refused a write-ahead."""

    GONE = "gone"  # the job is no longer pending, or another live runner holds it
    SLOTS = "slots"  # every runner's tasks fill the concurrency
    BUDGET = "budget"  # every runner's reservations plus this job would pass the budget


class SharedGate:
    """Tokens, slots and the budget of a shared ledger (see the module docstring)."""

    def __init__(self, ledger: LedgerBackend, config: EngineConfig, state: RunState, reporter: ev.Reporter, *,
                 clock: Callable[[], float], may_send: Callable[[], bool] | None = None) -> None:
        self.ledger = ledger
        self.reporter = reporter
        self._may_send = may_send  # whether this runner's lease may still hold (None: not checked, a test's gate)
        self.config = config
        self.state = state
        self.clock = clock
        self._slots_full = False
        self._wait = config.policy.shared_slot_wait_s

    @property
    def budget(self) -> tuple[str, float] | None:
        """The write-ahead's budget argument: (manifest, USD), or None without a budget."""
        if self.config.budget_usd is None or self.config.manifest is None:
            return None
        return self.config.manifest, self.config.budget_usd

    async def admit(self) -> bool:
        """Wait for a free slot (after a write-ahead found none) and for a token of the shared rate;
        False when the run halted meanwhile (nothing to submit)."""
        state = self.state
        while not self.may_send() and not state.halted:  # a lease not renewed lately: write nothing ahead under it
            await state.wait_change(self.config.policy.shared_slot_wait_s)
        while self._slots_full and not state.halted:
            # the write-ahead's own count: in-doubt jobs whose task may still run hold their slot
            if self.ledger.outstanding(in_doubt_hold_s=self.config.policy.in_doubt_hold_s) < self.config.concurrency:
                self._slots_full = False
            else:
                await self.idle()
        if self.config.rpm and not state.halted:
            wait = self.ledger.take_token(SUBMIT_BUCKET, per_minute=self.config.rpm / SAFETY)
            due = self.clock() + wait
            while wait > 0 and not state.halted:
                await state.wait_change(wait)
                wait = due - self.clock()
        return not state.halted

    async def idle(self) -> None:
        """Wait a growing interval (or until this run changes): every runner's tasks fill the slots."""
        await self.state.wait_change(self._wait)
        self._wait = min(self._wait * 2, max(self.config.policy.shared_idle_max_s, self.config.policy.shared_slot_wait_s))

    def write_ahead(self, job: JobRecord) -> int | None:
        """The shared ledger's ``mark_submitting`` of ``job``, which carries every runner's limits: its attempt,
        or None when refused (:meth:`refusal` says why)."""
        attempt = self.ledger.mark_submitting(job.key, max_outstanding=self.config.concurrency,
                                              in_doubt_hold_s=self.config.policy.in_doubt_hold_s, budget=self.budget)
        if attempt is not None:
            self._wait = self.config.policy.shared_slot_wait_s  # the next wait for a slot starts short again
        return attempt

    def refusal(self, job: JobRecord) -> tuple[Refusal, JobRecord | None]:
        """Why the write-ahead of ``job`` was refused, and the job as it is now when it is still this
        runner's to submit (SLOTS: it waits for a slot and is tried again)."""
        budget = self.budget
        if budget is not None:
            spent = self.ledger.spent_usd(budget[0])
            if spent + job.estimated_usd > budget[1] + 1e-9:
                self.state.spent_usd = spent  # every runner's spend: what the stop reports
                return Refusal.BUDGET, None
        current = self.ledger.get(job.key)
        if current is None or current.state is not JobState.PENDING or current.owner not in (None, self.ledger.owner):
            return Refusal.GONE, None
        self._slots_full = True
        return Refusal.SLOTS, current

    def may_send(self) -> bool:
        """Whether a POST written ahead under this runner's lease may leave now (asked before the write-ahead, before
        the POST, and by the client as its first byte is about to go: a connect or a stalled loop may come between)."""
        return self._may_send is None or self._may_send()

    def lapsed(self, job: JobRecord, attempt: int, retry_later: Callable[[str, float], None]) -> bool:
        """Whether this runner's lease may have lapsed since ``job``'s write-ahead (attempt ``attempt``): then its POST
        is not sent (:meth:`give_back`)."""
        if self.may_send():
            return False
        self.give_back(job, attempt, retry_later)
        return True

    def give_back(self, job: JobRecord, attempt: int, retry_later: Callable[[str, float], None]) -> None:
        """``job``'s POST (write-ahead ``attempt``) was not sent, as this runner's lease may have lapsed: the job is
        pending again if it is still this runner's (``retry_later``: once the lease is renewed), else the run stops
        saying that nothing was sent for it (:func:`~.landing.not_sent`)."""
        error = not_sent(self.ledger, job.key, attempt, AdoptCommands.of(self.config))
        if error is None:
            retry_later(job.key, self.clock() + self.config.policy.lease_ttl_s / 4)
        elif self.state.fail(error):
            self.reporter.emit(ev.Fatal(message=str(error)))
        else:  # the run stops already (its lease found expired first): what became of this job is said all the same
            log.error("%s", error)
        self.state.refused(job.key, job.estimated_usd)  # this run paid nothing for it
