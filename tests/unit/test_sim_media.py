"""Simulated videos are real MP4 files, distinct per task, padded on request."""

from __future__ import annotations

import hashlib
import struct

from runner.simulator.media import Video, base_video


def _boxes(data: bytes) -> list[tuple[str, int, bytes]]:
    """Top-level MP4 boxes as (type, size, first payload bytes); fails on a malformed layout."""
    boxes = []
    offset = 0
    while offset < len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        header = 8
        if size == 1:
            (size,) = struct.unpack(">Q", data[offset + 8 : offset + 16])
            header = 16
        assert size >= header, f"box {kind!r} at {offset} has size {size}"
        boxes.append((kind.decode("latin-1"), size, data[offset + header : offset + min(size, header + 80)]))
        offset += size
    assert offset == len(data), "boxes must tile the file exactly"
    return boxes


def test_base_asset_is_a_small_faststart_mp4() -> None:
    """The shipped asset is a small MP4 with ftyp first and moov before mdat (streamable)."""
    data = base_video()
    assert len(data) < 50_000
    kinds = [kind for kind, _, _ in _boxes(data)]
    assert kinds[0] == "ftyp"
    assert kinds.index("moov") < kinds.index("mdat")


def test_each_task_gets_distinct_bytes_naming_it() -> None:
    """Two tasks' videos differ, start with ftyp, and end with a free box holding the task id."""
    first, second = Video("task-aaa").read(), Video("task-bbb").read()
    assert first != second
    for data, task_id in ((first, "task-aaa"), (second, "task-bbb")):
        assert data[4:8] == b"ftyp"
        assert data.startswith(base_video())
        kind, _, payload = _boxes(data)[-1]
        assert kind == "free"
        assert task_id.encode() in payload
    assert Video("task-aaa").read() == first, "a task's video is stable across reads"


def test_padding_reaches_video_bytes_and_keeps_the_layout() -> None:
    """With min_bytes the file is exactly that long, the padding inside one free box."""
    video = Video("task-pad", 200_000)
    data = video.read()
    assert len(data) == video.length == 200_000
    assert [kind for kind, _, _ in _boxes(data)][-1] == "free"
    assert Video("task-pad", 10).length == len(Video("task-pad").read()), "padding never shrinks a file"


def test_chunks_stream_without_changing_the_bytes() -> None:
    """Streaming in small chunks yields the same bytes and sha256 as reading whole."""
    video = Video("task-chunks", 100_000)
    chunks = list(video.chunks(4096))
    assert all(0 < len(chunk) <= 4096 for chunk in chunks)
    assert b"".join(chunks) == video.read()
    assert video.sha256() == hashlib.sha256(video.read()).hexdigest()


def test_huge_padding_uses_a_64_bit_box() -> None:
    """Past 4 GiB the free box switches to a 64-bit size (computed without building the file)."""
    video = Video("task-huge", 5 * 2**30)
    assert video.length == 5 * 2**30
    head = b""
    for chunk in video.chunks():
        head += chunk
        if len(head) > len(base_video()) + 16:
            break
    box = head[len(base_video()) :]
    size, kind, large = struct.unpack(">I4sQ", box[:16])
    assert (size, kind) == (1, b"free")
    assert large == video.length - len(base_video())
