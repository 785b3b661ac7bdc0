"""Output stores: where videos are written, found and linked (see :mod:`runner.storage.api`).

    api.py      the OutputStore and Sink protocols, names and their limits
    local.py    the state directory (temp file, fsync, no-overwrite placement, hard links)
    memory.py   a dict, for tests
    read_only.py  a stored video's mode, where the file system keeps its own r and x bits
    folder_sync.py  a folder's fsync, passed over where the file system syncs no folder
"""

from __future__ import annotations

from runner.storage.api import (
    MAX_NAME_BYTES,
    MAX_OUTPUT_PATH_BYTES,
    RESERVED_NAME_BYTES,
    WHOLE_DISK_ERRNOS,
    Kind,
    OutputStore,
    Placed,
    Room,
    Sink,
    Stored,
    UnsafeDestination,
    beside_name,
    check_rel,
    place_at,
    whole_disk_fix,
)

__all__ = [
    "MAX_NAME_BYTES",
    "MAX_OUTPUT_PATH_BYTES",
    "RESERVED_NAME_BYTES",
    "WHOLE_DISK_ERRNOS",
    "Kind",
    "OutputStore",
    "Placed",
    "Room",
    "Sink",
    "Stored",
    "UnsafeDestination",
    "beside_name",
    "check_rel",
    "place_at",
    "whole_disk_fix",
]
