"""Simulated tasks: what was paid for, and where each task stands at a given time.

A task walks QUEUED → PROCESSING → SUCCEED | FAILED as the simulator's clock
moves; nothing is stored per step, the status is computed from the clock. Its
outcome (and failure reason) is drawn once, when the task is created, and so is
the shape of its video (:mod:`~runner.simulator.outputs`). A failed task reports
0 % progress: it produced nothing (the real value is not documented).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from runner.novita_wire import TaskStatus
from runner.simulator.media import Video
from runner.simulator.outputs import VideoShape

__all__ = ["FAILURE_REASONS", "Progress", "SimTask", "TaskSnapshot", "task_type"]

FAILURE_REASONS = (
    "content moderation: the generated video was flagged by the safety filter",
    "upstream generation failed: model inference error",
    "task timed out in the upstream model service",
)



def task_type(slug: str) -> str:
    """``task.task_type`` for a task of ``slug``: kling-v3.0-pro-t2v → KLING_V3_PRO_T2V.

    [guess]: the real values for Kling v3 are not documented.
    """
    return slug.replace("v3.0", "v3").replace("-", "_").replace(".", "_").upper()


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a task stands at one instant."""

    status: TaskStatus
    eta: int
    progress_percent: int


@dataclass(slots=True)
class SimTask:
    """One paid task. Times are on the simulator's clock."""

    task_id: str
    slug: str
    body: dict[str, Any]
    body_sha256: str
    submitted_at: float
    task_seconds: float
    queue_fraction: float
    fail_reason: str | None
    video_min_bytes: int
    shape: VideoShape | None = None
    signed_url: str | None = None  # the one URL handed out when SimConfig.fresh_urls is off
    account: str = ""  # the account (a hash of the key) that created it: SimConfig.tasks_per_key
    _video_sha256: str | None = field(default=None, repr=False)

    @property
    def executes_at(self) -> float:
        """When the task leaves the queue."""
        return self.submitted_at + self.queue_fraction * self.task_seconds

    @property
    def finishes_at(self) -> float:
        return self.submitted_at + self.task_seconds

    def progress(self, now: float) -> Progress:
        """Status, eta (whole seconds left) and progress_percent at ``now``."""
        if now >= self.finishes_at:
            if self.fail_reason:
                return Progress(TaskStatus.FAILED, 0, 0)
            return Progress(TaskStatus.SUCCEED, 0, 100)
        eta = max(1, math.ceil(self.finishes_at - now))
        if now < self.executes_at:
            return Progress(TaskStatus.QUEUED, eta, 0)
        span = self.finishes_at - self.executes_at
        percent = int(100 * (now - self.executes_at) / span) if span > 0 else 99
        return Progress(TaskStatus.PROCESSING, eta, min(99, max(0, percent)))

    def forgotten(self, now: float, retention: float | None) -> bool:
        """True once a finished task is past its retention and answers TASK_NOT_FOUND."""
        return retention is not None and now >= self.finishes_at + retention

    def video(self) -> Video:
        return Video(self.task_id, self.video_min_bytes, self.shape)

    def video_sha256(self) -> str:
        """sha256 of this task's video (computed once)."""
        if self._video_sha256 is None:
            self._video_sha256 = self.video().sha256()
        return self._video_sha256


@dataclass(frozen=True, slots=True)
class TaskSnapshot:
    """A read-only view of a task for tests: ``sim.task(task_id)``.

    ``video_sha256`` and ``video_bytes`` are set once the task has succeeded.
    """

    task_id: str
    body: dict[str, Any]
    body_sha256: str
    status: TaskStatus
    reason: str
    eta: int
    progress_percent: int
    submitted_at: float
    finishes_at: float
    video_sha256: str | None
    video_bytes: int | None
    slug: str = ""
