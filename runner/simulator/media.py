"""The simulated result videos: a real, playable MP4, distinct for every task.

``assets/sample.mp4`` is a 2 s, 160x90, 12 fps H.264 (constrained baseline,
yuv420p) test pattern with ``moov`` before ``mdat``, made once with::

    ffmpeg -f lavfi -i "testsrc=size=160x90:rate=12:duration=2" -c:v libx264 \\
        -profile:v baseline -level 3.0 -pix_fmt yuv420p -crf 30 -g 24 \\
        -movflags +faststart -map_metadata -1 -fflags +bitexact \\
        -flags:v +bitexact -x264-params no-info=1 sample.mp4

Each task's video is that file, its headers saying the display size and
length the request asked for (:func:`shaped_video`: ``tkhd`` width/height,
``mvhd``/``tkhd`` duration — the frames stay 160x90 and play scaled), followed
by one top-level ``free`` box that names the task and pads the file to
``SimConfig.video_bytes``. Players skip
``free`` boxes, and appending a box moves no sample offsets, so the result
still plays; its bytes, and so its sha256, differ from task to task.
ffmpeg is not needed at run time or in tests.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from collections.abc import Iterator
from importlib import resources

from runner.simulator.outputs import VideoShape

__all__ = ["CHUNK_SIZE", "Video", "base_video", "shaped_video"]

CHUNK_SIZE = 64 * 1024
_ASSET = "sample.mp4"
_SMALL_BOX_MAX = 0xFFFFFFFF
_ZEROS = bytes(CHUNK_SIZE)


@functools.cache
def base_video() -> bytes:
    """The MP4 shipped with the package (a few KB)."""
    return resources.files("runner.simulator").joinpath("assets").joinpath(_ASSET).read_bytes()


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """The (type, payload start, payload end) of the 32-bit-sized boxes in ``data[start:end]``."""
    found, at = [], start
    while at + 8 <= end:
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        if size < 8 or at + size > end:
            break
        found.append((kind, at + 8, at + size))
        at += size
    return found


@functools.cache
def shaped_video(shape: VideoShape | None) -> bytes:
    """``base_video()`` whose headers say ``shape``'s display size and length (the sample if None).

    Patched in place (same length, no offsets move): ``mvhd`` and each ``tkhd`` duration, and the
    width/height (16.16 fixed point) of each track that has a picture.
    """
    base = base_video()
    if shape is None:
        return base
    data = bytearray(base)
    moov = next((begin, stop) for kind, begin, stop in _boxes(base, 0, len(base)) if kind == b"moov")
    timescale = 1000
    for kind, begin, _stop in _boxes(base, *moov):
        if kind == b"mvhd":  # version 0: flags(4) created(4) modified(4) timescale(4) duration(4)
            (timescale,) = struct.unpack(">I", base[begin + 12 : begin + 16])
            struct.pack_into(">I", data, begin + 16, round(shape.seconds * timescale))
    for kind, begin, stop in _boxes(base, *moov):
        if kind != b"trak":
            continue
        for inner, tb, _te in _boxes(base, begin, stop):
            if inner != b"tkhd":
                continue
            struct.pack_into(">I", data, tb + 20, round(shape.seconds * timescale))  # v0 duration (movie timescale)
            width, height = struct.unpack(">II", base[tb + 76 : tb + 84])
            if width and height:
                struct.pack_into(">II", data, tb + 76, shape.width << 16, shape.height << 16)
    return bytes(data)


class Video:
    """The video of one task: ``shaped_video(shape)`` plus a ``free`` box naming the task."""

    __slots__ = ("_head", "length", "task_id")

    def __init__(self, task_id: str, min_bytes: int = 0, shape: VideoShape | None = None) -> None:
        self.task_id = task_id
        base = shaped_video(shape)
        payload = f"runner.simulator task_id={task_id}\n".encode()
        box_size = max(8 + len(payload), min_bytes - len(base))
        if box_size <= _SMALL_BOX_MAX:
            header = struct.pack(">I4s", box_size, b"free")
        else:  # a 64-bit "largesize" box
            box_size = max(16 + len(payload), box_size)
            header = struct.pack(">I4sQ", 1, b"free", box_size)
        # Everything but the zero padding; the padding is produced while streaming.
        self._head = base + header + payload
        self.length = len(base) + box_size
        """Size of the file in bytes (the Content-Length of a download)."""

    def chunks(self, chunk_size: int = CHUNK_SIZE, start: int = 0) -> Iterator[bytes]:
        """The file from byte ``start`` on, in chunks of at most ``chunk_size`` bytes, without holding it all in
        memory (``start`` > 0: a range request's tail)."""
        head = self._head[start:]
        for at in range(0, len(head), chunk_size):
            yield head[at : at + chunk_size]
        remaining = self.length - max(start, len(self._head))
        zeros = _ZEROS if chunk_size == CHUNK_SIZE else bytes(chunk_size)
        while remaining > 0:
            step = min(remaining, chunk_size)
            yield zeros[:step]
            remaining -= step

    def read(self) -> bytes:
        """The whole file."""
        return b"".join(self.chunks())

    def sha256(self) -> str:
        """Hex sha256 of the file, as a client would record it after download."""
        digest = hashlib.sha256()
        for chunk in self.chunks():
            digest.update(chunk)
        return digest.hexdigest()
