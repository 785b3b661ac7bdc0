"""Task-update sources: whatever hears about tasks from the provider and sends :class:`TaskUpdate` s.

The poller (:mod:`runner.engine.sources.poller`) is the one source today; a webhook receiver would
be a second, passed to the engine as ``sources=`` and fed into the same idempotent consumer
(:mod:`runner.engine.updates`). A duplicate or late update is harmless.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Protocol

from runner.engine.updates import TaskUpdate

__all__ = ["SendUpdate", "TaskUpdateSource", "Watch"]

SendUpdate = Callable[[TaskUpdate], Awaitable[None]]


class TaskUpdateSource(Protocol):
    """Produces task updates until cancelled (or until it has nothing more to say)."""

    async def run(self, send: SendUpdate) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Watch:
    """Follow this task (sent to the poller once its id is recorded): ``at`` (clock) is its first poll;
    None: the poller places it, after ``answered`` (clock: when the provider answered the submit — the
    task was running by then; None: when the poller takes the watch, later)."""

    key: str
    task_id: str
    at: float | None = None
    answered: float | None = None
