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
        (make_png(800, 600), MAX_BYTES + 1, "image", "is 10,485,761 bytes; the limit is 10 MiB (10,485,760 bytes)"),
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


def _box(kind: bytes, payload: bytes = b"") -> bytes:
    import struct

    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _timed(kind: bytes, timescale: int, duration: int, *, version: int = 0) -> bytes:
    """An mvhd or mdhd box: version, flags, two times, the time scale and the duration (the rest zeros)."""
    import struct

    if version == 1:
        return _box(kind, b"\x01\0\0\0" + struct.pack(">QQIQ", 0, 0, timescale, duration) + bytes(80))
    return _box(kind, bytes(4) + struct.pack(">IIII", 0, 0, timescale, duration) + bytes(80))


def _edits(*lengths: int) -> bytes:
    """An edts box whose edit list plays ``lengths`` (in the movie's time scale) of the media, each from its start."""
    import struct

    entries = b"".join(struct.pack(">IiI", length, 0, 0x10000) for length in lengths)
    return _box(b"edts", _box(b"elst", bytes(4) + struct.pack(">I", len(lengths)) + entries))


def _movie(mvhd: bytes, *tracks: bytes | tuple[bytes, bytes], extra: bytes = b"") -> bytes:
    """An MP4 whose moov holds ``mvhd`` and one 640x360 video track per entry of ``tracks`` (an mdhd, or b""; or an
    mdhd and the track's edts)."""
    tkhd = make_mp4(640, 360, 5)
    start = tkhd.index(b"tkhd") - 4
    tkhd = tkhd[start:start + int.from_bytes(tkhd[start:start + 4], "big")]
    pairs = [track if isinstance(track, tuple) else (track, b"") for track in tracks]
    traks = b"".join(_box(b"trak", tkhd + edts + (_box(b"mdia", mdhd) if mdhd else b"")) for mdhd, edts in pairs)
    return _box(b"ftyp", b"isom\0\0\x02\0isommp41") + _box(b"moov", mvhd + traks + extra) + _box(b"mdat", bytes(16))


@pytest.mark.parametrize(("movie", "seconds"), [
    # The movie header says 10 s, its video track's media header 60 s: the track plays for 60 s (ffprobe's duration
    # is the longest of the two), and a check or an estimate of the 10 s said passed a 60 s reference as 10 s.
    (_movie(_timed(b"mvhd", 1000, 10_000), _timed(b"mdhd", 90_000, 5_400_000)), 60.0),
    (_movie(_timed(b"mvhd", 1000, 10_000, version=1), _timed(b"mdhd", 600, 36_000, version=1)), 60.0),
    (_movie(_timed(b"mvhd", 1000, 10_000), _timed(b"mdhd", 1000, 9_000)), 10.0),  # a shorter track: the movie's
    (_movie(_timed(b"mvhd", 1000, 10_000), b""), 10.0),  # no mdhd: the movie's
    # A clip trimmed without encoding again (an editor's trim, ffmpeg -c copy): 35 s of media, of which its edit list
    # plays 28 s, as its movie header says. The edit list is what plays: 28 s, not the media's 35.
    (_movie(_timed(b"mvhd", 1000, 28_000), (_timed(b"mdhd", 90_000, 3_150_000), _edits(20_000, 8_000))), 28.0),
    (_movie(_timed(b"mvhd", 1000, 10_000), (_timed(b"mdhd", 90_000, 5_400_000), _edits(60_000))), 60.0),
    (_movie(_timed(b"mvhd", 1000, 0), _timed(b"mdhd", 1000, 12_000)), 12.0),  # the movie's 0 is no length
    # A fragmented MP4 (a browser's MediaRecorder, a streaming packager) says 0 in its mvhd and its length in mehd.
    (_movie(_timed(b"mvhd", 1000, 0), b"", extra=_box(b"mvex", _box(b"mehd", bytes(4) + (8_000).to_bytes(4, "big")))),
     8.0),
])
def test_a_videos_length_is_the_longest_its_headers_say(movie: bytes, seconds: float) -> None:
    assert probe(movie).duration == seconds


@pytest.mark.parametrize(("movie", "said"), [
    (_movie(_timed(b"mvhd", 0, 5000), b""), "a time scale of 0"),
    (_movie(_timed(b"mvhd", 1000, 0xFFFFFFFF), b""), "a length not known"),  # all ones: "not known" (ISO 14496-12)
])
def test_a_video_without_a_readable_length_says_why(movie: bytes, said: str) -> None:
    """Both were refused as "has no readable duration (no mvhd box)", and the mvhd box is there."""
    found = problems(probe(movie), 100, "video")
    assert len(found) == 1 and said in found[0] and "(no mvhd box)" not in found[0], found


@pytest.mark.parametrize(("seconds", "shown"), [(30.0001, "30.0001 s"), (2.99999, "2.99999 s"), (30.5, "30.50 s")])
def test_a_length_just_out_of_bounds_is_shown_to_the_digit_that_breaks_the_rule(seconds: float, shown: str) -> None:
    """30.0001 s was said as "lasts 30.00 s; it must last 3 to 30 s": a refusal that reads as a contradiction."""
    movie = _movie(_timed(b"mvhd", 1_000_000, round(seconds * 1_000_000)), b"")
    (found,) = problems(probe(movie), 100, "video")
    assert f"lasts {shown}; it must last 3 to 30 s" in found


@pytest.mark.parametrize("side", [2**31, 2**32 - 1, 0])
def test_a_png_header_past_the_png_limits_is_not_an_image(side: int) -> None:
    """A PNG's width and height are 1 to 2^31-1; a 3 KB PNG said to be 2^31 x 2^31 px passed plan as a square image
    (and would have been sent). Only the header is read: nothing is decoded, whatever size it claims."""
    import struct
    import zlib

    good = make_png(640, 360)
    header = b"IHDR" + struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    data = good[:8] + struct.pack(">I", 13) + header + struct.pack(">I", zlib.crc32(header)) + good[33:]
    with pytest.raises(NotMedia, match=f"says {side}x{side} px"):
        probe(data)


@pytest.mark.parametrize(("data", "said"), [
    (_box(b"ftyp", b"heic\0\0\0\0mif1heic") + _box(b"meta", bytes(8)), "a HEIC image (as an iPhone saves photos)"),  # an iPhone's photo
    (_box(b"ftyp", b"mif1\0\0\0\0mif1heix") + _box(b"meta", bytes(8)), "a HEIC image (as an iPhone saves photos)"),
    (_box(b"ftyp", b"avif\0\0\0\0avifmif1") + _box(b"meta", bytes(8)), "an AVIF image"),
    (b"GIF89a" + bytes(40), "a GIF image"),
    (b"RIFF\0\1\0\0WEBPVP8 " + bytes(40), "a WebP image"),
    (b"BM" + bytes(60), "a BMP image"),
    (b"II*\0" + bytes(60), "a TIFF image"),
], ids=["heic", "heix", "avif", "gif", "webp", "bmp", "tiff"])
def test_an_image_of_another_format_is_named_as_such(data: bytes, said: str) -> None:
    """A photo from an iPhone (HEIC) renamed .jpg was refused as "an MP4 file without a moov box (truncated?)", and a
    GIF or WebP renamed .png as "unrecognised first bytes": the format is named (plan adds what the input takes)."""
    with pytest.raises(NotMedia) as info:
        probe(data)
    assert str(info.value) == f"{said}, a format the provider does not take"
    assert "moov" not in str(info.value)


def test_a_file_one_byte_over_the_limit_is_told_in_bytes() -> None:
    """10 MiB + 1 byte was "is 10.5 MB; the limit is 10 MB": a file of 10.4 MB passes, one of 10.5 MB said to be over
    "10 MB" is one byte over 10 MiB. The size and the limit are said in bytes; exactly 10 MiB passes."""
    assert problems(probe(make_png(800, 600)), MAX_BYTES, "image") == []
    assert problems(probe(make_png(800, 600)), MAX_BYTES + 1, "image") == [
        "is 10,485,761 bytes; the limit is 10 MiB (10,485,760 bytes)"]


def test_a_jpegs_exif_orientation_and_thumbnail_are_not_read_and_change_no_verdict() -> None:
    """The decision the docs state: a JPEG is judged by its stored frame (an EXIF thumbnail's own frame header, inside
    APP1, is skipped), and since every rule treats both sides alike, turned 90° (EXIF orientation 6) or not it passes
    or fails the same: 1000x300 is refused as 1:3.33 either way, 750x300 passes either way."""
    import struct

    def turned(width: int, height: int) -> bytes:
        thumbnail = make_jpeg(160, 120)  # its SOF says 160x120: never taken for the picture's
        tiff = b"MM\0*\0\0\0\x08" + struct.pack(">HHHIHH", 1, 0x0112, 3, 1, 6, 0) + struct.pack(">I", 0)
        payload = b"Exif\0\0" + tiff + thumbnail
        plain = make_jpeg(width, height)
        return plain[:2] + b"\xff\xe1" + struct.pack(">H", 2 + len(payload)) + payload + plain[2:]

    for width, height, verdict in [(1000, 300, 1), (300, 1000, 1), (750, 300, 0), (300, 750, 0)]:
        info = probe(turned(width, height))
        assert (info.width, info.height) == (width, height)
        assert len(problems(info, 100, "image")) == verdict == len(problems(probe(make_jpeg(height, width)), 100, "image"))


@pytest.mark.parametrize("cut", [4, 30, 2000], ids=["last-box", "mdat", "half"])
def test_a_video_cut_short_is_refused_as_an_image_cut_short_is(cut: int) -> None:
    """A copy still in progress of a video whose moov comes first (as encoders write for the web) kept its headers
    whole: half of it passed plan as the video, its hash keyed the job, and its length priced it. A top-level box
    that runs past the end of the file is a file cut short, as a PNG without its IEND is."""
    whole = base_video()  # ftyp, moov, free, then 4.6 KB of mdat
    assert probe(whole).duration == 2.0
    with pytest.raises(NotMedia, match=r"an MP4 cut short \(its (mdat|free) box runs past the end of the file"):
        probe(whole[:-cut] if cut != 2000 else whole[: len(whole) // 2])
    with pytest.raises(NotMedia, match="cut short"):
        probe(make_mp4()[:-cut] if cut < 30 else make_mp4()[:-20])


def _fragment(durations: list[int] | None, *, count: int = 0, default: int | None = None) -> bytes:
    """A moof (and its mdat) with one traf of track 1: a trun of ``durations`` (each sample's, flag 0x100), or of
    ``count`` samples timed by ``default`` in the tfhd (flag 0x08), else by the trex's default."""
    import struct

    tfhd_flags = 0x020000 | (0x08 if default is not None else 0)  # default-base-is-moof, as ffmpeg and browsers write
    tfhd = _box(b"tfhd", struct.pack(">II", tfhd_flags, 1) + (struct.pack(">I", default) if default is not None else b""))
    if durations is not None:  # data offset (0x001), then each sample's duration and size (0x100, 0x200)
        trun = _box(b"trun", struct.pack(">IIi", 0x000301, len(durations), 0)
                    + b"".join(struct.pack(">II", duration, 10) for duration in durations))
    else:  # data offset, first sample's flags (0x004), then each sample's size only
        trun = _box(b"trun", struct.pack(">IIiI", 0x000205, count, 0, 0) + struct.pack(">I", 10) * count)
    return _box(b"moof", _box(b"mfhd", bytes(8)) + _box(b"traf", tfhd + _box(b"tfdt", bytes(8)) + trun)) + _box(
        b"mdat", bytes(16))


def _fragmented(*fragments: bytes, trex_default: int = 0, mdhd: int = 0) -> bytes:
    """An MP4 whose moov says no length (mvhd 0, mdhd ``mdhd``, an edit list of 0 as ffmpeg writes in a fragmented
    file, no mehd) and whose samples are in ``fragments`` (moof + mdat), timed in the track's 90 kHz."""
    import struct

    trex = _box(b"trex", struct.pack(">IIIIII", 0, 1, 1, trex_default, 0, 0))
    movie = _movie(_timed(b"mvhd", 1000, 0), (_timed(b"mdhd", 90_000, mdhd), _edits(0)), extra=_box(b"mvex", trex))
    return movie + b"".join(fragments)


@pytest.mark.parametrize(("movie", "seconds"), [
    # A browser's MediaRecorder, OBS's fragmented MP4, ffmpeg -movflags frag_keyframe+empty_moov: the moov knows no
    # length (it was written before the first frame); each fragment's trun times its samples.
    (_fragmented(*[_fragment([3000] * 60)] * 4), 8.0),  # each sample's own duration: 4 x 2 s
    (_fragmented(*[_fragment(None, count=60, default=3000)] * 5), 10.0),  # the tfhd's default: 5 x 2 s
    (_fragmented(*[_fragment(None, count=90)] * 2, trex_default=3000), 6.0),  # the trex's default: 2 x 3 s
    (_fragmented(_fragment([3000] * 60), mdhd=180_000), 4.0),  # 2 s of samples in the moov, 2 s in a fragment
    # Fragments without an mvex in the moov are not the movie's (left over by a writer that wrote the moov again
    # whole): the 4 s its headers say, not 4 + 2.
    (_movie(_timed(b"mvhd", 1000, 4000), _timed(b"mdhd", 90_000, 360_000)) + _fragment([3000] * 60), 4.0),
    # An mvhd whose length is "not known" (all ones) still gives the scale its mehd is read in.
    (_movie(_timed(b"mvhd", 1000, 0xFFFFFFFF), b"", extra=_box(b"mvex", _box(b"mehd", bytes(4) + (9_000).to_bytes(4, "big")))),
     9.0),
])
def test_a_fragmented_mp4_lasts_what_its_fragments_play(movie: bytes, seconds: float) -> None:
    """Refused as 'has no length in its headers' (before: 'lasts 0.00 s'), though every player and ffprobe read its
    length from its fragments: a reference recorded in a browser could not be used for motion control."""
    info = probe(movie)
    assert info.duration == pytest.approx(seconds), info
    assert problems(info, len(movie), "video") == []


def test_a_fragment_shorter_than_its_sample_count_is_cut_short_not_a_length() -> None:
    import struct

    cut = _fragment([3000] * 60)
    at = cut.index(b"trun") + 8
    cut = cut[:at] + struct.pack(">I", 10_000) + cut[at + 4:]  # a trun saying 10,000 samples, holding 60
    with pytest.raises(NotMedia, match="cut short"):
        probe(_fragmented(cut))
