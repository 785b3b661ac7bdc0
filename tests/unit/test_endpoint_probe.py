"""Reading what an input is from its bytes, and the documented input rules."""

from __future__ import annotations

import pytest

from runner.endpoints.probe import MAX_BYTES, NotMedia, probe, problems
from runner.simulator.media import base_video
from runner.testing import make_jpeg, make_mp4, make_png


def test_png_jpeg_mp4_and_mov_are_read_from_their_headers() -> None:
    assert probe(make_png(640, 360)) == probe(make_png(640, 360, seed=3))
    png, jpeg = probe(make_png(641, 359)), probe(make_jpeg(1024, 768))
    assert (png.format, png.mime, png.width, png.height, png.duration) == ("png", "image/png", 641, 359, None)
    assert (jpeg.format, jpeg.mime, jpeg.width, jpeg.height) == ("jpeg", "image/jpeg", 1024, 768)
    mp4, mov = probe(make_mp4(720, 1280, 7.5)), probe(make_mp4(400, 300, 3, mov=True))
    assert (mp4.kind, mp4.format, mp4.mime, mp4.width, mp4.height, mp4.duration) == (
        "video", "mp4", "video/mp4", 720, 1280, 7.5)
    assert (mov.format, mov.mime, mov.duration) == ("mov", "video/quicktime", 3.0)


def test_a_real_encoded_mp4_is_read() -> None:
    info = probe(base_video())  # the simulator's H.264 sample: 160x90, 2 s
    assert (info.width, info.height, info.duration) == (160, 90, 2.0)


@pytest.mark.parametrize("data", [b"", b"GIF89a....", b"\xff\xd8\xff\xd9", b"\x89PNG\r\n\x1a\n", bytes(64)])
def test_unreadable_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(NotMedia):
        probe(data)


def test_a_good_image_and_video_break_no_rule() -> None:
    assert problems(probe(make_png(300, 750)), 10, "image") == []  # exactly 1:2.5
    assert problems(probe(make_mp4(300, 300, 30)), MAX_BYTES, "video") == []


@pytest.mark.parametrize(
    ("data", "size", "kind", "rule"),
    [
        (make_png(299, 600), 10, "image", "at least 300 px"),
        (make_png(300, 751), 10, "image", "between 1:2.5 and 2.5:1"),
        (make_png(800, 600), MAX_BYTES + 1, "image", "the limit is 10 MB"),
        (make_mp4(640, 360, 2.9), 10, "video", "3 to 30 s"),
        (make_mp4(640, 360, 30.5), 10, "video", "3 to 30 s"),
        (make_png(800, 600), 10, "video", "takes a video"),
        (make_mp4(640, 360, 5), 10, "image", "takes an image"),
    ],
)
def test_each_rule_is_named(data: bytes, size: int, kind: str, rule: str) -> None:
    found = problems(probe(data), size, kind)  # type: ignore[arg-type]
    assert any(rule in text for text in found), found


@pytest.mark.parametrize("inner", [b"mvhd", b"trak/tkhd"], ids=["empty-mvhd", "empty-tkhd"])
def test_a_box_cut_short_inside_moov_is_not_media_not_a_crash(inner: bytes) -> None:
    """An empty mvhd or tkhd box (crafted, or damaged) raised IndexError through `plan`: exit 1, a traceback's
    worth of nothing (hostile-data sweep, 2026-12-05). It is an unreadable input like any other."""
    import struct

    def box(kind: bytes, payload: bytes = b"") -> bytes:
        return struct.pack(">I", 8 + len(payload)) + kind + payload

    content = box(b"mvhd") if inner == b"mvhd" else box(b"trak", box(b"tkhd"))
    with pytest.raises(NotMedia, match="cut short"):
        probe(box(b"ftyp", b"isom\0\0\0\0") + box(b"moov", content))


@pytest.mark.parametrize(("data", "said"), [
    (make_png(640, 360)[:40], "PNG cut short"),  # a copy still in progress
    (make_png(640, 360)[:-12], "PNG cut short"),  # everything but the IEND chunk
    (make_png(640, 360)[:33] + make_png(640, 360)[-12:], "PNG cut short"),  # a header, no image data
    (make_jpeg(1024, 768)[:-2], "JPEG cut short"),  # no end-of-image marker
    (make_jpeg(1024, 768)[:-14], "JPEG cut short"),  # cut inside its scan
])
def test_an_image_cut_short_is_refused_before_it_is_paid_for(data: bytes, said: str) -> None:
    """The image-input sweep: the first 40 bytes of a PNG (a copy still in progress) and a 45-byte PNG whose
    header says 60000x60000 passed plan and were sent and billed. A PNG needs image data and its IEND chunk,
    a JPEG its end-of-image marker after its last scan."""
    with pytest.raises(NotMedia, match=said):
        probe(data)
    assert probe(make_png(640, 360)).width == 640 and probe(make_jpeg(1024, 768)).width == 1024


def test_what_follows_an_images_end_is_not_looked_at() -> None:
    """A motion photo appends a video after its JPEG's end-of-image marker, and some tools add bytes after a PNG's
    IEND: the picture is whole, and the bytes after it (here holding a scan marker and no end) change nothing."""
    trailer = b"\x00\x00\x00\x18ftypmp42" + b"\xff\xda\x00\x08" + bytes(64)
    assert probe(make_jpeg(1024, 768) + trailer).width == 1024
    assert probe(make_png(640, 360) + trailer).width == 640
