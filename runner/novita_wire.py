"""Wire models of the Novita async video API shared by every endpoint.

Responses are tolerant (``extra="ignore"``): the docs and SDKs disagree on
some types, and the provider may add fields. Each endpoint's request model
lives with its spec in :mod:`runner.endpoints`; the submit / task-result flow
is shared.

Each model builds its validator on first use (``defer_build``), not at import: ``runner run`` reads
a provider answer only after its first submit, so building them is no part of its start-up (issue 14).
"""

from __future__ import annotations

import enum
import math
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
)

__all__ = [
    "TASK_RESULT_PATH",
    "VIDEO_URL_MAX",
    "ErrorEnvelope",
    "SubmitResponse",
    "TaskInfo",
    "TaskResult",
    "TaskStatus",
    "VideoResult",
]

class SubmitResponse(BaseModel):
    """Response 200 of a submit: ``{"task_id": "…"}``."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    task_id: str = Field(min_length=1)


class ErrorEnvelope(BaseModel):
    """The provider's error body ``{code, reason, message, metadata}``."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    code: int | None = None
    reason: str = ""
    message: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)


class TaskStatus(enum.StrEnum):
    QUEUED = "TASK_STATUS_QUEUED"
    PROCESSING = "TASK_STATUS_PROCESSING"
    SUCCEED = "TASK_STATUS_SUCCEED"
    FAILED = "TASK_STATUS_FAILED"
    UNKNOWN = "TASK_STATUS_UNKNOWN"

    @property
    def terminal(self) -> bool:
        return self in (TaskStatus.SUCCEED, TaskStatus.FAILED)


#: Beyond this a number from the provider is not a number of seconds or percent but noise
#: (``1e400``, a 400-digit integer): read as unknown rather than raise OverflowError later.
ABSURD = 2**53
ETA_MAX = 7 * 86400  # an eta beyond a week is clamped to a week
TEXT_MAX = 2000  # a task's reason, type or id longer than this is cut
DEBUG_ENTRIES = 32  # debug_info has four documented entries
DEBUG_NAME_MAX = 64
#: A real presigned video URL is 1 to 2 KB. A longer one is no URL but a hostile or broken answer, refused as malformed
#: (the poll is asked again; the paid task stays recorded): a 4 MB URL reached the ledger row, exports and logs.
VIDEO_URL_MAX = 16 * 1024


def _int_or_none(value: Any) -> int | None:
    """Ints arrive as ints, numeric strings, floats or empty strings; absurd ones read as None."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -ABSURD <= value <= ABSURD else None
    if isinstance(value, str) and len(value) > 64:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if not math.isfinite(number) or abs(number) > ABSURD:
        return None
    return int(number)


def _tame(value: Any) -> Any:
    """Free-form provider data with numbers no reader can choke on: non-finite floats and
    integers beyond ±2**63 become None (``extra``/``debug_info`` are stored and shown)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**63 else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _tame(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_tame(item) for item in value]
    return value


class TaskInfo(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)

    task_id: str = ""
    task_type: str = ""
    status: TaskStatus = TaskStatus.UNKNOWN
    reason: str = ""
    eta: int | None = None
    progress_percent: int | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: Any) -> TaskStatus:
        """One of the provider's constants, whatever its case and blanks around it; anything else is unknown
        (polled on, never guessed into an ending)."""
        try:
            return TaskStatus(value.strip().upper() if isinstance(value, str) and len(value) <= 64 else value)
        except ValueError:
            return TaskStatus.UNKNOWN

    @field_validator("eta", mode="before")
    @classmethod
    def _eta(cls, value: Any) -> int | None:
        eta = _int_or_none(value)
        return None if eta is None or eta < 0 else min(eta, ETA_MAX)

    @field_validator("progress_percent", mode="before")
    @classmethod
    def _percent(cls, value: Any) -> int | None:
        percent = _int_or_none(value)
        return None if percent is None else max(0, min(100, percent))

    @field_validator("reason", "task_id", "task_type", mode="before")
    @classmethod
    def _strings(cls, value: Any) -> str:
        if value is None:
            return ""
        try:
            text = value if isinstance(value, str) else str(value)
        except ValueError:  # an integer too long to print
            text = "?"
        return text if len(text) <= TEXT_MAX else text[: TEXT_MAX - 1] + "…"


class VideoResult(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)

    video_url: str = Field(max_length=VIDEO_URL_MAX)
    video_url_ttl: int | None = None
    video_type: str = ""

    @field_validator("video_url_ttl", mode="before")
    @classmethod
    def _ttl(cls, value: Any) -> int | None:
        ttl = _int_or_none(value)
        return None if ttl is None or ttl < 0 or ttl > ABSURD // 1000 else ttl


class TaskResult(BaseModel):
    """``GET /v3/async/task-result`` — read tolerantly."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    task: TaskInfo = Field(default_factory=TaskInfo)
    videos: list[VideoResult] = Field(default_factory=list)
    images: list[dict[str, Any]] = Field(default_factory=list)
    audios: list[dict[str, Any]] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("videos", "images", "audios", mode="before")
    @classmethod
    def _null_list(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("videos")
    @classmethod
    def _with_url(cls, videos: list[VideoResult]) -> list[VideoResult]:
        """An entry whose ``video_url`` is empty is no video (a URL "" was downloaded, failed and kept, every run)."""
        return [video for video in videos if video.video_url.strip()]

    @field_validator("extra", mode="before")
    @classmethod
    def _null_dict(cls, value: Any) -> Any:
        return _tame(value) if isinstance(value, dict) else {}

    def debug_info(self) -> dict[str, Any]:
        """``extra.debug_info``, as much of it as is kept: the documented entries are short scalars (times in epoch
        ms, a request id), so only scalar entries are kept, at most ``DEBUG_ENTRIES`` of them, a string cut at
        ``TEXT_MAX``. Every task result is stored in the ledger: a hostile answer's megabytes are not."""
        info = self.extra.get("debug_info") if isinstance(self.extra, dict) else None
        if not isinstance(info, dict):
            return {}
        kept: dict[str, Any] = {}
        for name, value in info.items():
            if len(kept) == DEBUG_ENTRIES:
                break
            if len(name) <= DEBUG_NAME_MAX and (value is None or isinstance(value, (bool, int, float, str))):
                kept[name] = value[:TEXT_MAX] if isinstance(value, str) else value
        return kept


TASK_RESULT_PATH = "/v3/async/task-result"

