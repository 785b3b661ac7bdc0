"""Helpers for tests of runner and of code built on it: media files made from nothing, and a full disk.

Tests of image inputs need real PNG, JPEG, MP4 and MOV bytes of a chosen size and length without
shipping binaries or an imaging library. These builders write the smallest files whose headers say
what :func:`runner.endpoints.probe.probe` reads (a decodable PNG; a JPEG and an MP4 whose headers
are right but whose pixels are not a picture). ``seed`` makes two files of the same shape differ.
"""

from __future__ import annotations

import errno
import struct
import zlib
from pathlib import Path

__all__ = ["make_jpeg", "make_mp4", "make_png"]


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def make_png(width: int = 640, height: int = 360, *, seed: int = 0) -> bytes:
    """A valid greyscale PNG of ``width`` x ``height`` whose pixels depend on ``seed``."""
    row = b"\x00" + bytes((seed + x) % 256 for x in range(width))
    raw = row * height
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw, 1))
        + _png_chunk(b"IEND", b"")
    )


def make_jpeg(width: int = 640, height: int = 360, *, seed: int = 0) -> bytes:
    """JPEG bytes with a baseline frame header of ``width`` x ``height`` (not a decodable picture)."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    comment = b"\xff\xfe" + struct.pack(">H", 2 + 4) + struct.pack(">I", seed)
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    sos = b"\xff\xda" + struct.pack(">HB", 8, 1) + b"\x01\x00\x00\x3f\x00" + b"\x00" * 8  # a scan, then its end
    return b"\xff\xd8" + app0 + comment + sof0 + sos + b"\xff\xd9"


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def make_mp4(width: int = 640, height: int = 360, seconds: float = 5.0, *, mov: bool = False, seed: int = 0) -> bytes:
    """An ISO media file (MP4, or MOV with ``mov``) whose headers say ``width`` x ``height`` and ``seconds``."""
    timescale = 1000
    duration = round(seconds * timescale)
    mvhd = _box(b"mvhd", bytes(4) + struct.pack(">IIII", 0, 0, timescale, duration) + bytes(80))
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    tkhd = _box(
        b"tkhd",
        b"\x00\x00\x00\x03"
        + struct.pack(">IIIII", 0, 0, 1, 0, duration)
        + bytes(8)
        + struct.pack(">hhhH", 0, 0, 0, 0)
        + matrix
        + struct.pack(">II", width << 16, height << 16),
    )
    ftyp = _box(b"ftyp", (b"qt  " if mov else b"isom") + struct.pack(">I", 0x200) + (b"qt  " if mov else b"isommp41"))
    moov = _box(b"moov", mvhd + _box(b"trak", tkhd))
    return ftyp + moov + _box(b"mdat", bytes(16)) + _box(b"free", struct.pack(">I", seed))  # Kling's carry an mdat


def fill_disk(disk: Path, name: str = "filler") -> Path:
    """Write a file on ``disk`` until the disk refuses another byte (whole blocks, then the last few bytes); the
    file. For a test's own small file system (a tmpfs), never a shared one."""
    filler = disk / name
    with filler.open("wb", buffering=0) as out:
        for block in (b"\0" * 65536, b"\0"):
            while True:
                try:
                    out.write(block)
                except OSError as exc:
                    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                        raise
                    break
    return filler
