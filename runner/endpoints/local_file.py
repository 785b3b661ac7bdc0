"""The stored reference of a local media input: :class:`LocalFile` (see :mod:`runner.endpoints.media`).

A module of its own so that :mod:`runner.endpoints.media` imports no pydantic (issue 14: start-up).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from runner.endpoints.media import MediaKind

__all__ = ["LocalFile"]


class LocalFile(BaseModel):
    """A local input file by reference, as the ledger stores it inside a job's request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str = Field(min_length=1)  # POSIX path relative to the manifest's folder
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    kind: MediaKind
    mime: str = Field(min_length=1)  # image/png, image/jpeg, video/mp4, video/quicktime
    duration: float | None = Field(default=None, ge=0)  # a video's seconds, probed at planning (for estimates)
