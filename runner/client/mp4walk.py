"""Whether a downloaded MP4 arrived whole: its top-level boxes walked as the bytes pass (:class:`BoxWalk`).

A body framed by the end of its connection (no ``Content-Length``, not chunked), or one whose server announced
fewer bytes than the video has, reaches the store cut short with nothing else to tell: its first bytes are a
right ``ftyp``, and ``runner verify`` later checks the file against its own hash (hostile-data sweep,
2026-12-05: a 50-byte ``.mp4`` recorded done, exit 0). An ISO media file is a sequence of boxes, each starting
with its size: the file is whole only when the last box ends exactly where the bytes do (or a box says it runs
to the end), and it holds a ``moov`` and an ``mdat`` (Kling's MP4s always carry their samples in one: a body
cut right after its ``moov`` is whole boxes, and no picture). Only the box headers are read, as they pass: no second read of the file,
O(1) memory.
"""

from __future__ import annotations

import struct

__all__ = ["BoxWalk"]


class BoxWalk:
    """Feed a download's bytes in order; :meth:`problem` says what is wrong with the whole once they are all in."""

    __slots__ = ("_at", "_bad", "_head", "_mdat", "_moov", "_next", "_to_end")

    def __init__(self) -> None:
        self._at = 0  # bytes fed so far
        self._next = 0  # where the next top-level box starts
        self._head = b""  # the bytes of that box's header seen so far (a header may span chunks)
        self._to_end = False  # a box said it runs to the end of the file (size 0)
        self._bad: str | None = None
        self._moov = False
        self._mdat = False

    def feed(self, chunk: bytes) -> None:
        base, self._at = self._at, self._at + len(chunk)  # chunk[0] is byte `base` of the body
        while self._bad is None and not self._to_end:
            if not self._head:
                if self._next >= self._at:
                    return  # the next box starts in a later chunk
                pos = self._next - base  # >= 0: a header begun in an earlier chunk is in _head
            else:
                pos = 0
            self._head += chunk[pos:pos + 16 - len(self._head)]
            if len(self._head) < 8:
                return  # the rest of the header comes with the next chunk
            size, kind = struct.unpack(">I4s", self._head[:8])
            if size == 1:  # a 64-bit size follows the type
                if len(self._head) < 16:
                    return
                (size,) = struct.unpack(">Q", self._head[8:16])
                if size < 16:
                    self._bad = f"a box with an impossible size ({size}) at byte {self._next:,}"
            elif size == 0:  # the box runs to the end of the file
                self._to_end = True
            elif size < 8:
                self._bad = f"a box with an impossible size ({size}) at byte {self._next:,}"
            self._moov = self._moov or kind == b"moov"
            self._mdat = self._mdat or kind == b"mdat"
            self._next += size
            self._head = b""

    def problem(self) -> str | None:
        """None when the bytes fed are whole MP4 boxes, a ``moov`` and an ``mdat`` among them; else what is wrong."""
        if self._bad is not None:
            return self._bad
        if not self._to_end and self._next != self._at:
            return (f"cut short: its last box ends at byte {self._next:,}, the body at {self._at:,}"
                    if self._next > self._at else f"{self._at - self._next:,} bytes past its last box")
        if not self._moov:
            return "no moov box (cut short, or not a video)"
        if not self._mdat:
            return "no mdat box: the video's samples are missing (cut short after its moov, or not a video)"
        return None
