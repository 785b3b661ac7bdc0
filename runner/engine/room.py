"""The memory of inline request bodies: :class:`BodyRoom`, a weighted limiter of their bytes.

A body carrying a local image inline is its bytes (13 MB for a 10 MB image, :mod:`runner.client.body`), held from
when the submit lane builds it until its POST is answered. Without a bound, ``concurrency`` such bodies are held
at once (1.2 GB at 24 images of 10 MB): a dataset of large images at a high concurrency could exhaust a small
machine's memory mid-batch, and an OOM kill is the worst moment to stop (POSTs on the wire become in doubt).

The submit lane's :class:`Bodies` takes room for a body's size — known exactly before any file is read — before
making its bytes, and the lane gives it back when its POST is answered and recorded (or when the body is not sent
after all). The bytes held stay at most ``cap`` (the ``inline_memory`` setting), except that a body larger than
the cap is let through alone, when nothing else is held. The lane waits for room only before a job's write-ahead,
never with room or a write-ahead of its own pending, and only while other bodies are held — each belonging to a
POST on the wire, whose answer gives its room back — so the wait always ends.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import anyio

from runner.client.body import InlineBody
from runner.engine.admission import Admission
from runner.ledger import JobRecord

__all__ = ["Bodies", "BodyRoom", "NotNow"]


class NotNow(enum.Enum):
    LATER = "later"  # no room for its bytes now (the caller puts the job back)
    STOPPED = "stopped"  # the run stopped submitting while the job waited for room


class Bodies:
    """The submit lane's wire bodies (:meth:`Admission.body`), an inline body's bytes made once room is taken."""

    def __init__(self, admission: Admission, cap: int) -> None:
        self.admission = admission
        self.room = BodyRoom(cap)

    def now(self, job: JobRecord) -> dict[str, Any] | bytes | NotNow | None:
        """``job``'s body if it can be made now (LATER: no room for its bytes); None: the job failed unsent."""
        wire = self.admission.body(job)
        if not isinstance(wire, InlineBody):
            return wire
        if not self.room.try_take(wire.size):
            return NotNow.LATER
        return self._made(job, wire)

    async def when_room(self, job: JobRecord, stopped: Callable[[], bool]) -> dict[str, Any] | bytes | NotNow | None:
        """``job``'s body, waiting for room for its bytes (the lane's one wait for room, before the job's write-ahead);
        STOPPED (no room kept) when ``stopped()`` says the run no longer submits once the wait is over."""
        wire = self.admission.body(job)
        if not isinstance(wire, InlineBody):
            return wire
        if not self.room.try_take(wire.size):
            await self.room.take(wire.size)
            if stopped():
                self.room.give(wire.size)
                return NotNow.STOPPED
        return self._made(job, wire)

    def give(self, body: dict[str, Any] | bytes) -> None:
        """A body answered, or that will not be sent: the room of its bytes back (nothing for a JSON object)."""
        if isinstance(body, bytes):
            self.room.give(len(body))

    def _made(self, job: JobRecord, wire: InlineBody) -> bytes | None:
        data = self.admission.encoded(job, wire)
        if data is None:  # an input not as planned: the job failed unsent
            self.room.give(wire.size)
        return data


class BodyRoom:
    """The bytes of inline bodies built and not yet answered: at most ``cap`` (a larger body alone)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.held = 0
        self.peak = 0  # the most ever held at once (tests, figures)
        self._freed: anyio.Event | None = None  # set when room is given back, for a waiter

    def fits(self, size: int) -> bool:
        return self.held == 0 or self.held + size <= self.cap

    def try_take(self, size: int) -> bool:
        """Take room for ``size`` bytes now if it fits; False (nothing taken) otherwise."""
        if not self.fits(size):
            return False
        self.held += size
        self.peak = max(self.peak, self.held)
        return True

    async def take(self, size: int) -> None:
        """Take room for ``size`` bytes, waiting while it does not fit (for bodies held to be given back)."""
        while not self.try_take(size):
            if self._freed is None:
                self._freed = anyio.Event()
            await self._freed.wait()

    def give(self, size: int) -> None:
        """Give back the room of a body answered (or not sent)."""
        self.held -= size
        assert self.held >= 0, "room given back twice"
        freed, self._freed = self._freed, None
        if freed is not None:
            freed.set()
