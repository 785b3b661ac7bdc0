"""Handing an item on to another lane: at once when the stream has room, else waiting for room.

``MemoryObjectSendStream.send`` yields to the event loop before it looks at the stream: the item
then waits behind everything else ready to run (downloads, other polls) even when the receiver is
idle. On the hot path (a poll's answer to the updates lane, a result to the fetch lane, whose
hand-over frees a slot for the next submit) :func:`put` hands it over first and yields only when
it must wait. The lanes still yield where they receive.
"""

from __future__ import annotations

from typing import TypeVar

import anyio
from anyio.streams.memory import MemoryObjectSendStream

__all__ = ["put"]

_T = TypeVar("_T")


async def put(stream: MemoryObjectSendStream[_T], item: _T) -> None:
    """``stream.send(item)`` without the trip through the loop when there is room (same errors)."""
    try:
        stream.send_nowait(item)
    except anyio.WouldBlock:
        await stream.send(item)
