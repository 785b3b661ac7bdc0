"""The walk of a download's MP4 boxes as its bytes pass (runner/client/mp4walk.py)."""

from __future__ import annotations

import random
import struct

import pytest

from runner.client.mp4walk import BoxWalk
from runner.simulator.media import Video, base_video
from runner.testing import make_mp4

VIDEOS = {"sample": base_video(), "made": make_mp4(), "mov": make_mp4(mov=True),
          "simulated-5MB": Video("t-1", min_bytes=5_000_000).read()}


def walked(data: bytes, rng: random.Random) -> str | None:
    walk, at = BoxWalk(), 0
    while at < len(data):
        step = rng.choice([1, 2, 3, 7, 8, 15, 16, 17, 100, 4096, 65536])
        walk.feed(data[at:at + step])
        at += step
    return walk.problem()


@pytest.mark.parametrize("name", sorted(VIDEOS))
def test_a_whole_video_passes_in_chunks_of_any_size_and_any_cut_fails(name: str) -> None:
    data, rng = VIDEOS[name], random.Random(7)
    for _ in range(20):
        assert walked(data, rng) is None
    for cut in (1, 7, 8, 9, 50, len(data) // 2, len(data) - 1):
        assert walked(data[:cut], rng) is not None, cut
    assert walked(data + b"x", rng) is not None  # bytes past the last box


def test_a_64_bit_box_and_a_box_to_the_end_are_read() -> None:
    payload = b"\0" * 100
    large = struct.pack(">I4sQ", 1, b"mdat", 16 + len(payload)) + payload
    to_end = struct.pack(">I4s", 0, b"mdat") + payload
    rng = random.Random(1)
    assert walked(make_mp4() + large, rng) is None
    assert walked(make_mp4() + to_end, rng) is None
    assert walked(make_mp4() + large[:-1], rng) is not None


def test_impossible_sizes_and_a_missing_moov_are_refused() -> None:
    rng = random.Random(2)
    assert "impossible size" in (walked(struct.pack(">I4s", 4, b"ftyp"), rng) or "")
    assert "impossible size" in (walked(struct.pack(">I4sQ", 1, b"mdat", 8), rng) or "")
    assert "no moov" in (walked(struct.pack(">I4s", 8, b"ftyp"), rng) or "")


@pytest.mark.parametrize("name", sorted(VIDEOS))
def test_a_video_cut_right_after_its_moov_is_refused(name: str) -> None:
    """A body that stops exactly where its ``moov`` ends is whole boxes with a ``moov``, and passed: but it holds no
    picture. Kling's MP4s (and the simulator's, and make_mp4's) always carry an ``mdat``; the walk requires one."""
    data = VIDEOS[name]
    walk, at = BoxWalk(), 0
    while at < len(data):  # the end of the moov box, found by walking the top-level boxes
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        at += size
        if kind == b"moov":
            break
    assert b"mdat" in data[at:], name  # the fixture itself has one after its moov
    walk.feed(data[:at])
    assert "no mdat" in (walk.problem() or ""), name
