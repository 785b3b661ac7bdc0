"""What a media input is, read from its bytes, and the provider's documented rules for inputs.

:func:`probe` reads the format, pixel size and (for a video) duration of an image or video from its
bytes alone — PNG's ``IHDR``, JPEG's start-of-frame marker, MP4/MOV's ``mvhd``, ``mehd``, ``mdhd``, ``elst``,
``tkhd`` and (fragmented) ``trun`` boxes — so no imaging library is needed, and nothing is ever decoded: a header saying 2^31-1 px
is read as such in microseconds (the PNG spec's limits are kept), never allocated. A video lasts the
longest of what its headers say (the movie, a fragmented movie, each track), as players take it. A
JPEG's EXIF orientation is not read: every rule below treats width and height alike (both sides ≥
300 px, the ratio both ways), so an image turned 90° passes or fails as it is stored. :func:`problems` checks a probed file against the rules Novita
documents for Kling v3.0 inputs (``docs/provider.md``):

- images: jpg/jpeg/png, ≤ 10 MB, width and height ≥ 300 px, aspect ratio between 1:2.5 and 2.5:1;
- videos (motion control's reference): mp4/mov, ≤ 10 MB, width and height ≥ 300 px, 3 to 30 s.

The manifest layer runs both on local files before anything is sent; the simulator runs them on the
data URIs it receives, so the two never disagree about what the provider accepts.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from runner.endpoints.media import MediaKind

__all__ = [
    "IMAGE_FORMATS",
    "MAX_ASPECT",
    "MAX_BYTES",
    "MIN_SIDE",
    "VIDEO_FORMATS",
    "VIDEO_SECONDS",
    "MediaInfo",
    "NotMedia",
    "probe",
    "problems",
    "too_large",
]

MAX_BYTES = 10 * 1024 * 1024
MIN_SIDE = 300
MAX_ASPECT = 2.5  # longer side / shorter side, both ways (1:2.5 … 2.5:1)
VIDEO_SECONDS = (3.0, 30.0)
IMAGE_FORMATS = {"png": "image/png", "jpeg": "image/jpeg"}
VIDEO_FORMATS = {"mp4": "video/mp4", "mov": "video/quicktime"}

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_SIDE = 2**31 - 1  # the PNG spec's largest width or height
# JPEG start-of-frame markers (baseline, progressive, lossless, …); C4/C8/CC are not frames.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_STANDALONE = {0x01, *range(0xD0, 0xDA)}  # markers without a length field
# Images of formats the provider does not take, named when refused (by first bytes; HEIF and AVIF by ftyp brand).
_OTHER_IMAGES = ((b"GIF87a", "a GIF image"), (b"GIF89a", "a GIF image"), (b"BM", "a BMP image"),
                 (b"II*\0", "a TIFF image"), (b"MM\0*", "a TIFF image"))
_HEIF = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
_AVIF = {b"avif", b"avis"}


class NotMedia(ValueError):
    """The bytes are not an image or video of a format runner can read."""


class MediaInfo(NamedTuple):  # a record: no methods generated at every start (a dataclass costs ~1 ms)
    """What :func:`probe` found: ``format`` is png, jpeg, mp4 or mov; ``duration`` is None for images."""

    kind: MediaKind
    format: str
    mime: str
    width: int
    height: int
    duration: float | None = None


def probe(data: bytes) -> MediaInfo:
    """The kind, format, size and duration of an image or video; :class:`NotMedia` when unreadable."""
    if data.startswith(_PNG_SIGNATURE):
        return _png(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg(data)
    other = _other_image(data)
    if other:
        raise NotMedia(f"{other}, a format the provider does not take")
    if len(data) >= 8 and data[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
        try:
            return _iso_media(data)
        except (IndexError, struct.error) as exc:  # a box shorter than its kind's fields (crafted, or damaged)
            raise NotMedia("an MP4/MOV file with a box cut short inside its moov (damaged?)") from exc
    raise NotMedia("not a PNG, JPEG, MP4 or MOV file (unrecognised first bytes)")


def _other_image(data: bytes) -> str:
    """What image of a format the provider does not take ``data`` is (a GIF renamed .png, an iPhone's HEIC photo
    renamed .jpg, whose ISO box was read as an MP4 without its moov); "" for none of them."""
    if data[4:8] == b"ftyp":
        major, compatible = data[8:12], {data[at : at + 4] for at in range(16, min(len(data), 8 + 64), 4)}
        if major in _AVIF or (major == b"mif1" and compatible & _AVIF):
            return "an AVIF image"
        if major in _HEIF:
            return "a HEIC image (as an iPhone saves photos)"
        return ""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "a WebP image"
    return next((name for magic, name in _OTHER_IMAGES if data.startswith(magic)), "")


def problems(info: MediaInfo, size: int, kind: MediaKind) -> list[str]:
    """Every documented rule a ``size``-byte file probed as ``info`` breaks, as ``kind`` of input."""
    found: list[str] = []
    if info.kind != kind:
        wanted = "an image (jpg/jpeg/png)" if kind == "image" else "a video (mp4/mov)"
        found.append(f"is a {info.format} {info.kind}, but this input takes {wanted}")
        return found
    if size > MAX_BYTES:
        found.append(too_large(size))
    if min(info.width, info.height) < MIN_SIDE:
        found.append(f"is {info.width}x{info.height} px; both sides must be at least {MIN_SIDE} px")
    if kind == "image" and min(info.width, info.height) > 0:
        ratio = max(info.width, info.height) / min(info.width, info.height)
        if ratio > MAX_ASPECT + 1e-9:
            found.append(f"has aspect ratio {info.width}:{info.height}; it must lie between 1:2.5 and 2.5:1")
    if kind == "video":
        low, high = VIDEO_SECONDS
        if info.duration is None:
            found.append("has no length in its headers (no mvhd box, a time scale of 0, or a length not known)")
        elif not low - 1e-6 <= info.duration <= high + 1e-6:
            found.append(f"lasts {_seconds(info.duration, (low, high))} s; it must last {low:g} to {high:g} s")
    return found


def too_large(size: int) -> str:
    """Why a file of ``size`` bytes is refused, in bytes: "10.5 MB" (10 MiB and a byte) over "10 MB" read as a file
    of 10.4 MB passing, which it does (the limit is read as 10 MiB)."""
    return f"is {size:,} bytes; the limit is {MAX_BYTES >> 20} MiB ({MAX_BYTES:,} bytes)"


def _seconds(value: float, bounds: tuple[float, ...]) -> str:
    """``value`` to two decimals, or to as many more as it takes not to read as a bound (30.0001, not 30.00)."""
    for places in range(2, 10):
        shown = f"{value:.{places}f}"
        if float(shown) not in bounds:
            return shown if places == 2 else shown.rstrip("0")
    return repr(value)


# ------------------------------------------------------------------ images


def _png(data: bytes) -> MediaInfo:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise NotMedia("a PNG without its IHDR header")
    if b"IDAT" not in data or b"IEND\xaeB`\x82" not in data:  # a copy still in progress, a header alone
        raise NotMedia("a PNG cut short (no image data, or no IEND chunk: a copy still in progress?)")
    width, height = struct.unpack(">II", data[16:24])
    if not (0 < width <= _PNG_SIDE and 0 < height <= _PNG_SIDE):  # never decoded: a header is believed within these
        raise NotMedia(f"a PNG whose header says {width}x{height} px, which no PNG is (each side is 1 to 2^31-1 px)")
    return MediaInfo("image", "png", IMAGE_FORMATS["png"], width, height)


def _jpeg(data: bytes) -> MediaInfo:
    at, end = 2, len(data)
    while at < end:
        if data[at] != 0xFF:
            raise NotMedia(f"a JPEG with a broken marker at byte {at}")
        while at < end and data[at] == 0xFF:  # fill bytes
            at += 1
        if at >= end:
            break
        marker = data[at]
        at += 1
        if marker in _STANDALONE:
            continue
        if at + 2 > end:
            break
        (length,) = struct.unpack(">H", data[at : at + 2])
        if marker in _SOF:
            if at + 7 > end:
                break
            # The first scan after this frame header, then its end-of-image marker: FF D9 cannot stand inside the
            # scans' data (an FF there is followed by 00 or a restart marker), and what follows the marker (a
            # motion photo's video, a second picture) is not looked at.
            scan = data.find(b"\xff\xda", at)
            if scan == -1 or data.find(b"\xff\xd9", scan) == -1:
                raise NotMedia("a JPEG cut short (no end-of-image marker after its image data: a copy still in"
                               " progress?)")
            height, width = struct.unpack(">HH", data[at + 3 : at + 7])
            return MediaInfo("image", "jpeg", IMAGE_FORMATS["jpeg"], width, height)
        if marker == 0xDA or length < 2:  # start of scan before any frame header: nothing more to read
            break
        at += length
    raise NotMedia("a JPEG without a frame header (no SOF marker)")


# ------------------------------------------------------------------ videos (ISO base media: MP4, MOV)


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """The boxes in ``data[start:end]``: (type, payload start, payload end)."""
    found: list[tuple[bytes, int, int]] = []
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        header = 8
        if size == 1:
            if at + 16 > end:
                break
            (size,) = struct.unpack(">Q", data[at + 8 : at + 16])
            header = 16
        elif size == 0:
            size = end - at
        if size < header or at + size > end:
            break  # a truncated or corrupt box: stop, keep what was read
        found.append((kind, at + header, at + size))
        at += size
    return found


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for found, begin, stop in _boxes(data, start, end):
        if found == kind:
            return begin, stop
    return None


def _timed(data: bytes, box: tuple[int, int] | None) -> tuple[int, int]:
    """The time scale and length of an mvhd or mdhd box (one layout); (0, 0) when absent, a length of 0 when "not
    known" (all ones); ``struct.error`` when the box is too short for them (the caller says "cut short")."""
    if box is None:
        return 0, 0
    begin, stop = box
    wide = begin < stop and data[begin] == 1  # version 1: 64-bit times
    fields = data[begin + 20 : begin + 32] if wide else data[begin + 12 : begin + 20]
    timescale, length = struct.unpack(">IQ" if wide else ">II", fields if len(fields) <= stop - begin else b"")
    return timescale, 0 if length == (2**64 - 1 if wide else 2**32 - 1) else length


def _overrun(data: bytes, top: list[tuple[bytes, int, int]]) -> bytes | None:
    """The kind of the top-level box after ``top`` (the boxes read) that runs past the end of the file: a file cut
    short, as a copy still in progress is (its headers, written first, whole); None when the boxes end with it."""
    at = top[-1][2] if top else 0
    if at + 8 > len(data):
        return None
    size, kind = struct.unpack(">I4s", data[at : at + 8])
    if size == 1 and at + 16 <= len(data):
        (size,) = struct.unpack(">Q", data[at + 8 : at + 16])
    return kind if size > 1 and at + size > len(data) else None


def _edited(data: bytes, elst: tuple[int, int] | None) -> int | None:
    """The length an edit list plays, in the movie's time scale (the sum of its edits, an empty edit's delay too);
    None without one. ``struct.error`` when it is shorter than its count says (the caller says "cut short")."""
    if elst is None:
        return None
    begin, stop = elst
    wide = begin < stop and data[begin] == 1
    (count,) = struct.unpack(">I", data[begin + 4 : begin + 8] if begin + 8 <= stop else b"")
    step = 20 if wide else 12
    if begin + 8 + count * step > stop:
        raise struct.error("an edit list shorter than its count")
    lengths: list[int] = [struct.unpack_from(">Q" if wide else ">I", data, begin + 8 + n * step)[0] for n in range(count)]
    return sum(lengths)


# A trun's optional fields before its samples (data offset, first sample's flags), and those of each sample (duration,
# size, flags, composition offset): 4 bytes each when its flag is set.
_TRUN_HEAD, _TRUN_SAMPLE = (0x001, 0x004), (0x100, 0x200, 0x400, 0x800)


def _fragments(data: bytes, top: list[tuple[bytes, int, int]], mvex: tuple[int, int] | None) -> dict[int, int]:
    """What the fragments of a fragmented MP4 play, by track id, in each track's time scale: its moof boxes' runs
    (trun), each sample timed by the run, else by its fragment's default (tfhd), else by the movie's (mvex/trex).
    A browser's MediaRecorder or ffmpeg's empty_moov writes the moov before the first frame: no length there.
    Only with an mvex in the moov, the box that says fragments follow: a moof without one is left over (a movie
    written again whole when its recording ended, its moov then holding every sample) and is not played.
    ``struct.error`` when a run holds fewer samples than it counts (the caller says "cut short")."""
    if mvex is None:
        return {}
    defaults = {}  # track id -> the trex's default sample duration
    for kind, begin, stop in _boxes(data, *mvex):
        if kind == b"trex" and begin + 16 <= stop:
            track, duration = struct.unpack_from(">I4xI", data, begin + 4)
            defaults[track] = duration
    played: dict[int, int] = {}
    for traf in (box for kind, begin, stop in top if kind == b"moof" for box in _boxes(data, begin, stop)):
        if traf[0] != b"traf" or (tfhd := _child(data, traf[1], traf[2], b"tfhd")) is None:
            continue
        flags, track = struct.unpack(">II", data[tfhd[0] : tfhd[0] + 8] if tfhd[0] + 8 <= tfhd[1] else b"")
        at = tfhd[0] + 8 + (8 if flags & 0x01 else 0) + (4 if flags & 0x02 else 0)  # base offset, description index
        default = struct.unpack(">I", data[at : at + 4] if at + 4 <= tfhd[1] else b"")[0] if flags & 0x08 else (
            defaults.get(track, 0))
        for kind, begin, stop in _boxes(data, traf[1], traf[2]):
            if kind != b"trun":
                continue
            flags, count = struct.unpack(">II", data[begin : begin + 8] if begin + 8 <= stop else b"")
            first = begin + 8 + 4 * sum(1 for bit in _TRUN_HEAD if flags & bit)
            step = 4 * sum(1 for bit in _TRUN_SAMPLE if flags & bit)
            if first + count * step > stop:
                raise struct.error("a track run shorter than its sample count")
            if flags & 0x100:  # each sample's duration, the first of its fields
                length = sum(struct.unpack_from(">I", data, first + n * step)[0] for n in range(count))
            else:
                length = count * default
            played[track] = played.get(track, 0) + length
    return played


def _track_id(data: bytes, tkhd: tuple[int, int]) -> int:
    """The track id a tkhd box gives its track (after its two times: 64-bit in version 1); 0 when cut short."""
    begin, stop = tkhd
    at = begin + (20 if data[begin] == 1 else 12)
    return int.from_bytes(data[at : at + 4], "big") if at + 4 <= stop else 0


def _iso_media(data: bytes) -> MediaInfo:
    top = _boxes(data, 0, len(data))
    brand = next((data[begin : begin + 4] for kind, begin, _ in top if kind == b"ftyp"), b"")
    fmt = "mov" if brand == b"qt  " or not brand else "mp4"
    overrun = _overrun(data, top)
    if overrun is not None:
        shown = overrun.decode("latin-1") if overrun.isalnum() else repr(overrun)
        raise NotMedia(f"an {fmt.upper()} cut short (its {shown} box runs past the end of the file: a copy still in"
                       " progress?)")
    moov = next(((begin, stop) for kind, begin, stop in top if kind == b"moov"), None)
    if moov is None:
        raise NotMedia(f"an {fmt.upper()} file without a moov box (truncated?)")
    # The longest length the headers say: the movie's (mvhd), a fragmented movie's (mvex/mehd, in the movie's time
    # scale) and each track's (what its edit list plays, else its media's: mdhd, in its own scale; its fragments' too,
    # in a fragmented movie whose moov was written before its frames): a movie header
    # saying less than its tracks play is believed by no player, and 0 or all ones is "not known", no length.
    movie_scale, movie = _timed(data, _child(data, *moov, b"mvhd"))
    lengths = [movie / movie_scale] if movie_scale and movie else []
    mvex = _child(data, *moov, b"mvex")
    mehd = _child(data, *mvex, b"mehd") if mvex is not None else None
    if mehd is not None and movie_scale:
        begin, stop = mehd
        wide = data[begin] == 1 and begin + 12 <= stop
        if wide or begin + 8 <= stop:
            (length,) = struct.unpack(">Q" if wide else ">I", data[begin + 4 : begin + (12 if wide else 8)])
            if length and length != (2**64 - 1 if wide else 2**32 - 1):
                lengths.append(length / movie_scale)
    fragments = _fragments(data, top, mvex)
    for kind, begin, stop in _boxes(data, *moov):
        if kind != b"trak":
            continue
        mdia = _child(data, begin, stop, b"mdia")
        scale, length = _timed(data, _child(data, *mdia, b"mdhd")) if mdia is not None else (0, 0)
        tkhd = _child(data, begin, stop, b"tkhd")
        fragmented = fragments.get(_track_id(data, tkhd), 0) if fragments and tkhd is not None else 0
        if scale and fragmented:  # its samples in the moov (mdhd), then those of its fragments
            lengths.append((length + fragmented) / scale)
        edts = _child(data, begin, stop, b"edts")
        played = _edited(data, _child(data, *edts, b"elst")) if edts is not None else None
        if played is not None:  # what its edit list plays (a trimmed clip: less than its media), in the movie's scale
            if movie_scale and played:
                lengths.append(played / movie_scale)
            continue
        if scale and length:
            lengths.append(length / scale)
    duration = max(lengths, default=None)
    width = height = 0
    for kind, begin, stop in _boxes(data, *moov):
        if kind != b"trak":
            continue
        tkhd = _child(data, begin, stop, b"tkhd")
        if tkhd is None:
            continue
        tb, te = tkhd
        offset = tb + (88 if data[tb] == 1 else 76)  # width, height: 16.16 fixed point after the matrix
        if offset + 8 <= te:
            w, h = (side >> 16 for side in struct.unpack(">II", data[offset : offset + 8]))
            if w * h > width * height:  # the video track (an audio track has 0x0)
                width, height = w, h
    return MediaInfo("video", fmt, VIDEO_FORMATS[fmt], width, height, duration)
