"""Work of the caller's that a run does now and then beside its lanes: a :class:`Chore`, and :func:`keep`.

A chore is a plain callable the service hands the engine (saving the review decisions queued while the run
holds the ledger is one: ``runner/service/live_review.py``); the engine knows nothing of what it does. It
is called every :attr:`Chore.every` seconds, on the event loop — the thread that makes the run's other
ledger writes, so the ledger still has one writer — and only while no POST is on the wire: never between a
submit's write-ahead and the record of its answer, so it never delays that record (a submit waiting to
write its intent ahead waits for the chore, as it waits for any other ledger write of the run). While POSTs
are on the wire the chore waits for the run's next change (an answer recorded) and looks again.

A chore must be cheap when it has nothing to do (one check, not one a job) and must not raise for a trouble
it expects. One that raises all the same is logged and not called again this run: the run goes on, its paid
tasks collected; a chore is never a reason to stop one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from runner.engine.state import RunState

__all__ = ["Chore", "keep"]

log = logging.getLogger("runner.engine")


@dataclass(frozen=True, slots=True)
class Chore:
    """``do`` every ``every`` seconds of the run (the first after ``every``), between POSTs."""

    name: str  # what the log calls it if it fails
    do: Callable[[], object]
    every: float


async def keep(chore: Chore, state: RunState, quiet: Callable[[], bool]) -> None:
    """Call ``chore`` every :attr:`Chore.every` seconds while ``quiet()`` (no POST on the wire); until cancelled."""
    while True:
        await anyio.sleep(chore.every)
        while not quiet():  # a POST is on the wire: after its answer is recorded (the run state changes)
            await state.wait_change(chore.every)
        try:
            chore.do()
        except Exception:
            log.exception("%s failed; the run goes on without it", chore.name)
            return
