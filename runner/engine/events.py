"""What the engine tells its reporter: one frozen dataclass per kind of event.

Each event names the job state change it stands for (:meth:`Event.moves`), so a progress display
follows the ledger between two reads without guessing; its ``kind`` is the name a JSON log line
carries (kept from the string events these replaced, so log consumers see the same names).
The engine emits an event only after the ledger transition it reports has moved.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Protocol

from runner.jobs import JobState

__all__ = [
    "Accepted",
    "BudgetReached",
    "CopyFailed",
    "DownloadDeferred",
    "Event",
    "Failed",
    "Fatal",
    "FileProblem",
    "InDoubt",
    "InputRejected",
    "Lost",
    "NullReporter",
    "Refused",
    "Reporter",
    "RetryFailed",
    "RetryLater",
    "Running",
    "Stopping",
    "Stored",
    "Succeeded",
]

_Move = tuple[JobState, JobState] | None


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """Base of every engine event."""

    kind: ClassVar[str] = "event"
    MOVE: ClassVar[_Move] = None

    def moves(self) -> _Move:
        """The job state change this event reports (source, target), or None."""
        return self.MOVE

    def fields(self) -> dict[str, Any]:
        """The event's fields by name (for a JSON line)."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


@dataclasses.dataclass(frozen=True, slots=True)
class Accepted(Event):
    """The provider accepted a submit; its task id is recorded (pending → running)."""

    kind: ClassVar[str] = "submitted"
    MOVE: ClassVar[_Move] = (JobState.PENDING, JobState.RUNNING)
    key: str
    task_id: str
    estimated_usd: float


@dataclasses.dataclass(frozen=True, slots=True)
class InDoubt(Event):
    """A submit got no usable answer: the job is held, never resubmitted automatically."""

    kind: ClassVar[str] = "in_doubt"
    MOVE: ClassVar[_Move] = (JobState.PENDING, JobState.IN_DOUBT)
    key: str
    reason: str | None
    message: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class Refused(Event):
    """The provider refused a submit for good: nothing was created (pending → failed)."""

    kind: ClassVar[str] = "failed"
    MOVE: ClassVar[_Move] = (JobState.PENDING, JobState.FAILED)
    key: str
    reason: str | None
    message: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class RetryLater(Event):
    """The provider refused a submit for now (a 429, a connect error…): the job is pending again."""

    kind: ClassVar[str] = "retry_later"
    key: str
    reason: str | None
    delay: float


@dataclasses.dataclass(frozen=True, slots=True)
class InputRejected(Event):
    """A local input file is missing or changed since the plan: nothing was sent (pending → failed)."""

    kind: ClassVar[str] = "input_changed"
    MOVE: ClassVar[_Move] = (JobState.PENDING, JobState.FAILED)
    key: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Running(Event):
    """A poll found the task still queued or processing."""

    kind: ClassVar[str] = "progress"
    key: str
    status: str
    percent: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class Succeeded(Event):
    """The task finished; its result URL is recorded (running → succeeded)."""

    kind: ClassVar[str] = "succeeded"
    MOVE: ClassVar[_Move] = (JobState.RUNNING, JobState.SUCCEEDED)
    key: str
    task_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class Failed(Event):
    """The provider reported the task failed (running → failed)."""

    kind: ClassVar[str] = "failed"
    MOVE: ClassVar[_Move] = (JobState.RUNNING, JobState.FAILED)
    key: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class RetryFailed(Event):
    """A failed task is retried as a new paid task (running → failed → pending)."""

    kind: ClassVar[str] = "retry_failed"
    MOVE: ClassVar[_Move] = (JobState.RUNNING, JobState.PENDING)
    key: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Lost(Event):
    """Paid for, but the provider no longer knows the task: the video cannot be fetched."""

    kind: ClassVar[str] = "lost"
    key: str
    reason: str
    was: JobState  # running or succeeded

    def moves(self) -> _Move:
        return self.was, JobState.LOST


@dataclasses.dataclass(frozen=True, slots=True)
class Stored(Event):
    """The video is downloaded, verified and in place (succeeded → done)."""

    kind: ClassVar[str] = "done"
    MOVE: ClassVar[_Move] = (JobState.SUCCEEDED, JobState.DONE)
    key: str
    path: str
    bytes: int


@dataclasses.dataclass(frozen=True, slots=True)
class DownloadDeferred(Event):
    """The download kept failing this run; the job stays succeeded for the next."""

    kind: ClassVar[str] = "download_deferred"
    key: str


@dataclasses.dataclass(frozen=True, slots=True)
class FileProblem(Event):
    """The job's video could not be stored at its destination; it stays succeeded."""

    kind: ClassVar[str] = "file_error"
    key: str
    path: str
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class CopyFailed(Event):
    """A link (or copy) of a stored video for another manifest could not be placed."""

    kind: ClassVar[str] = "file_error"
    key: str
    path: str
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class BudgetReached(Event):
    """The next submit would pass the budget: no more submits; what is paid for is still collected."""

    kind: ClassVar[str] = "budget_reached"
    spent_usd: float
    budget_usd: float


@dataclasses.dataclass(frozen=True, slots=True)
class Stopping(Event):
    """A graceful stop: no new submits; POSTs on the wire finish and are recorded."""

    kind: ClassVar[str] = "stopping"
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Fatal(Event):
    """The run stops on an error no job can get past (a wrong key, no balance, an unreachable provider…)."""

    kind: ClassVar[str] = "fatal"
    message: str


class Reporter(Protocol):
    """Receives engine events (never blocks); the CLI renders them (progress, logs)."""

    def emit(self, event: Event, /) -> None: ...


class NullReporter:
    def emit(self, event: Event, /) -> None:
        pass
