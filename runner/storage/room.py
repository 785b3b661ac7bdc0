"""The room a batch's videos need on disk: a guess made before they exist, and what is always kept free.

The provider says nothing of a video's size before its download, and the probe of a folder (an empty file) cannot
see a full disk. So the submit path (:mod:`runner.engine.admission`) and ``plan`` guess a video's bytes from the
seconds of video its job asks for, generously, and keep :data:`DISK_RESERVE` free for the ledger's own writes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["DISK_RESERVE", "MIB", "VIDEO_BYTES_A_SECOND", "by_size", "disk_room", "seconds_asked", "video_bytes"]

MIB = 1 << 20
DISK_RESERVE = 64 * MIB  # left free for the ledger, its rescue journal and the logs: never counted for videos
VIDEO_BYTES_A_SECOND = 2 * MIB  # generous for Kling's 720p/1080p MP4s (~0.5 to 1.5 MB a second); 4K: 4×
_SECONDS_UNKNOWN = 30  # a request without a duration (motion control follows its reference video): the most


def seconds_asked(request: Mapping[str, Any]) -> int:
    """The seconds of video a stored request asks for (the most a request without ``duration`` can make)."""
    seconds = request.get("duration")
    if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds <= 0:
        return _SECONDS_UNKNOWN
    return seconds


def video_bytes(model: str, request: Mapping[str, Any]) -> int:
    """What one job's video may take on disk: a generous guess from the seconds asked for."""
    fourk = "-4k-" in model or request.get("model_name") == "kling-v3-0-4k"
    return seconds_asked(request) * VIDEO_BYTES_A_SECOND * (4 if fourk else 1)


def by_size(count: int) -> str:
    """Bytes as a person reads them (MiB below 10 GiB, GiB above)."""
    return f"{count / MIB:.0f} MiB" if count < 10 << 30 else f"{count / (1 << 30):.1f} GiB"


def disk_room(folder: Path, root: Path) -> tuple[int, int] | None:
    """The bytes free to an unprivileged writer on the disk of ``folder`` — of the deepest of its folders that exists,
    ``root`` at least — and that disk's device number (two paths on one disk share it); None when neither can be
    read. Two system calls, no walk."""
    while True:
        try:
            found = os.statvfs(folder)
            device = os.stat(folder).st_dev
        except FileNotFoundError:
            if folder == root or folder == folder.parent:
                return None
            folder = folder.parent
            continue
        except OSError:
            return None
        return found.f_bavail * found.f_frsize, device
