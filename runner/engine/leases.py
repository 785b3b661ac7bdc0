"""The engine as one of several runners on a shared ledger: its lease, and the work of runners that died.

Only with :attr:`EngineConfig.shared` (a PostgreSQL ledger); on SQLite the lock makes the runner the
only writer and nothing here runs. The rules are :mod:`runner.ledger.api`'s:

* the lease of this runner (:attr:`LedgerBackend.owner`) is renewed at once, then every
  ``lease_ttl_s / 4``: a runner that lives keeps its work. A renewal refused (the lease had expired —
  a stall longer than the TTL) stops the run: another runner may have taken its work over, so it
  must not submit on; its POSTs on the wire are still recorded (or journaled), never resubmitted;
* a POST leaves only while the lease it was written ahead under still holds in every runner's eyes
  (:meth:`LeaseKeeper.may_send`: under 3/4 of the TTL since the last renewal began, on the loop clock and on this
  boot's steady clock, ``CLOCK_BOOTTIME``, which runs on while the machine is suspended and is never stepped; the
  wall clock only where there is no such clock). A runner stopped between a write-ahead and its POST (SIGSTOP, a
  frozen or suspended machine) may have had the job taken over meanwhile — held in doubt, retried by the operator,
  sent again by another runner — so its POST is not sent: the job is pending again if it is still this runner's
  (sent once the lease is renewed), else the run says that nothing was sent for it;
* every ``lease_ttl_s / 2`` it calls :meth:`LedgerBackend.recover_expired`: the ``submitting`` rows
  of a runner whose lease expired become ``in_doubt`` (never resubmitted), its running tasks become
  this runner's and are followed (polled, then downloaded) from here, and its ``succeeded`` rows (a
  result known, its video not yet stored) go straight to this runner's downloads. A dead runner's
  work is thus finished by a live one within about 1.5 TTL; a run does not end while another
  owner's work of its scope (submitting, running, succeeded) may still come to it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from runner.boot import BootStamp, this_boot
from runner.engine import events as ev
from runner.engine.policy import EngineConfig
from runner.engine.sources import Watch
from runner.engine.state import RunState
from runner.errors import LedgerError
from runner.jobs import JobState
from runner.ledger import LedgerBackend

__all__ = ["LeaseKeeper"]

log = logging.getLogger("runner.engine")


def _steady(boot: Callable[[], BootStamp | None], wall: Callable[[], float]) -> Callable[[], float]:
    """This boot's steady clock (it counts a suspend and is never stepped); the wall clock where there is none."""
    if boot() is None:
        return wall

    def steady() -> float:
        stamp = boot()
        return wall() if stamp is None else stamp[1]

    return steady


class LeaseKeeper:
    """Renews this runner's lease and takes over the work of expired owners (runs until cancelled)."""

    def __init__(self, ledger: LedgerBackend, config: EngineConfig, state: RunState, reporter: ev.Reporter, *,
                 clock: Callable[[], float], watch: MemoryObjectSendStream[Watch] | None,
                 fetch: MemoryObjectSendStream[str] | None = None, wall: Callable[[], float] = time.time,
                 boot: Callable[[], BootStamp | None] = this_boot) -> None:
        self.ledger = ledger
        self.config = config
        self.ttl = config.policy.lease_ttl_s
        self.state = state
        self.reporter = reporter
        self.clock = clock
        self.steady = _steady(boot, wall)
        self._renewed: tuple[float, float] | None = None  # (loop clock, steady clock) as the last renewal that held began
        self._watch = watch  # the poller's stream (None: submitting only, nothing is followed)
        self._fetch = fetch  # the download lane's stream (None: nothing is downloaded)
        self._handoff: list[str] = []  # succeeded jobs taken over, not yet on the download stream

    @property
    def interval(self) -> float:
        """How often the lease is renewed (and the run's end re-checked while others hold work)."""
        return self.ttl / 4

    async def run(self) -> None:
        next_recovery = self.clock() + self.ttl / 2
        try:
            while True:
                if not self.renew():
                    self.state.fail(LedgerError(
                        f"this runner's lease on the ledger {self.ledger.location} expired (not renewed within"
                        f" {self.ttl:g} s): another runner may have taken its work over, so it submits nothing more."
                        " Run it again; nothing is paid twice"))
                    return
                if self.clock() >= next_recovery:
                    self.recover()
                    next_recovery = self.clock() + self.ttl / 2
                self._hand_over()
                await anyio.sleep(self.interval)
        finally:
            if self._watch is not None:
                self._watch.close()
            self.close_fetch()

    def renew(self) -> bool:
        """Renew this runner's lease now; False (nothing written) when it had expired."""
        began = (self.clock(), self.steady())  # the lease runs until at least a TTL after this
        if not self.ledger.renew_lease(self.ledger.owner, ttl=self.ttl):
            return False
        self._renewed = began
        return True

    def may_send(self) -> bool:
        """Whether a POST written ahead under this runner's lease may leave now: under 3/4 of the TTL has passed
        since the last renewal began, on the loop clock (it runs on while the process is stopped) and on the steady
        clock (it runs on while the machine is suspended). The last quarter is the margin for the other runners'
        view of the server's clock; a renewal every TTL/4 keeps it true while the run lives. The wall clock played the
        steady clock's part: set back during a suspend, a POST left on a lease other runners had seen expire (the
        job taken over meanwhile, paid twice); stepped ahead, a live lease's POST was held back."""
        if self._renewed is None:
            return False
        clock, steady = self._renewed
        limit = self.ttl * 3 / 4
        return self.clock() - clock < limit and self.steady() - steady < limit

    def close_fetch(self) -> None:
        """Collecting has ended: hand nothing more to the downloads (their stream may end)."""
        if self._fetch is not None:
            self._fetch.close()
            self._fetch = None
        self._handoff.clear()

    def recover(self) -> int:
        """Take over expired owners' work now; the running tasks taken over are followed. How many."""
        others = self._others_results() if self._fetch is not None else set()
        doubted = self.ledger.recover_expired(self.ledger.owner)
        if others:
            self._handoff.extend(job.key for job in self.ledger.iter_jobs(None, states=[JobState.SUCCEEDED])
                                 if job.key in others and job.owner == self.ledger.owner)
            if self._handoff:
                log.info("downloading %d result(s) of a runner whose lease expired", len(self._handoff))
            self._hand_over()
        if doubted:
            log.warning("%d job(s) of a runner whose lease expired were being submitted: now IN DOUBT (held,"
                        " never resubmitted automatically)", doubted)
        taken = 0
        if self._watch is None:
            return taken
        for job in self.ledger.iter_jobs(None, states=[JobState.RUNNING]):
            if job.owner != self.ledger.owner or self.state.holds(job.key) or job.task_id is None:
                continue
            try:
                self._watch.send_nowait(Watch(job.key, job.task_id))
            except anyio.WouldBlock:
                break  # the poller is busy: the rest at the next recovery
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return taken  # collecting has ended
            self.state.adopted(job.key)
            taken += 1
        if taken:
            log.info("following %d running task(s) of a runner whose lease expired", taken)
        return taken

    def _others_results(self, manifest: str | None = None) -> set[str]:
        """Succeeded jobs (of ``manifest``, or all) another owner holds: their downloads may come to this runner."""
        return {job.key for job in self.ledger.iter_jobs(manifest, states=[JobState.SUCCEEDED])
                if job.owner != self.ledger.owner}

    def _hand_over(self) -> None:
        """Taken-over results to the download stream, as many as it takes now (the rest at the next tick)."""
        while self._handoff and self._fetch is not None:
            try:
                self._fetch.send_nowait(self._handoff[0])
                self.state.to_store(self._handoff[0])
            except anyio.WouldBlock:
                return
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self.close_fetch()  # downloading has ended
                return
            self._handoff.pop(0)

    def others_busy(self) -> bool:
        """Whether work in the run's scope is still in flight under other owners — their lease may yet
        expire and that work come to this runner (a succeeded job's download too, when this run downloads)
        — or pending jobs this run may still submit are claimed, or taken-over results wait for a download."""
        if self._handoff:
            return True
        counts = self.ledger.counts(self.config.manifest)
        busy = counts[JobState.SUBMITTING] + counts[JobState.RUNNING]
        if self.config.submit and self.state.stop_reason is None:
            busy += counts[JobState.PENDING]
        if busy > self.state.held:
            return True
        return self._fetch is not None and counts[JobState.SUCCEEDED] > 0 and bool(
            self._others_results(self.config.manifest))
