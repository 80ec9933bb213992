"""Valid media files for the simulator, made per file in pure Python (no ffmpeg at run time).

A :class:`Sample` names what a simulated file is (a JPEG of a given size, an H.264 MP4, an Opus voice
note, an MP3 with performer and title, a WEBP sticker, a PNG image); :func:`layout` turns it, with the
seed, the file's content id and the wanted size, into a :class:`Layout`: a small materialised ``head``,
a ``body`` of ``body_size`` filler bytes and a small ``tail``. The caller (:mod:`tobs_sync.sim.files`)
fills the body from a pseudo-random stream, so a file of any size costs only its head and tail, and any
range of it is cheap to compute; :func:`body_range` makes the filler valid for the format.

How each kind is made, and how it is made distinct per content id while staying valid:

- JPEG (photos, thumbnails): a baseline 4:2:0 JPEG of one colour derived from the content id, written
  by a tiny encoder (quantisation 1, a Huffman table whose "no change" codes are single zero bits),
  plus a ``COM`` segment naming the content id. It is padded up to the wanted size with more ``COM``
  segments (at most 65,537 bytes each) before the frame header.
- MP4 (videos, round videos, animations): an H.264 file made once with ffmpeg (``samples/*.mp4``), then
  a ``free`` box naming the content id, padded to the wanted size (a 64-bit box size past 4 GiB).
- Ogg Opus (voice): a template made once with ffmpeg; the content id is added as an ``OpusTags``
  comment (the page's CRC recomputed). Not padded: the size is the template's.
- MP3 (audio files): template frames behind an ID3v2.4 tag with ``TPE1`` (performer), ``TIT2``
  (title) and a ``TXXX`` naming the content id. Not padded.
- WEBP (stickers): a lossy template turned into the extended format (``VP8X``) with an ``XMP `` chunk
  naming the content id. Not padded.
- PNG (image documents): one palette colour at one bit per pixel, its zlib stream written by hand (so the
  bytes do not depend on the zlib library), with a ``tEXt`` comment. Not padded.

The templates were made once with ffmpeg 5.1 (``-map_metadata -1 -fflags +bitexact``): videos from
``color=c=...:s=WxH:r=12`` (``r=15`` for round videos and animations) with ``libx264 -preset veryslow
-crf 40 -pix_fmt yuv420p -movflags +faststart``; voice from ``sine`` with ``libopus -b:a 6k
-application voip`` (mono, 48 kHz); audio from ``sine`` at 8 kHz with ``libmp3lame -b:a 8k
-id3v2_version 0 -write_id3v1 0``; the sticker from ``color`` 512x512 with ``libwebp -q:v 30``.

Limits: pictures are flat colours and sounds are tones; durations and sizes come from the small set of
templates in :data:`TEMPLATES`; a wanted size below a padded format's smallest valid file, or any size
other than the natural one for unpadded formats, cannot be honoured (:func:`layout` raises
``ValueError``; callers then keep synthetic bytes).
"""

from __future__ import annotations

import functools
import hashlib
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType

JPEG = "jpeg"
MP4 = "mp4"
OGG = "ogg"
MP3 = "mp3"
WEBP = "webp"
PNG = "png"
PADDED = frozenset({JPEG, MP4})
"""Formats that can be padded to any size at or above their natural size."""

RAW = "raw"
COM_SEGMENTS = "jpeg-com"
COM_STRIDE = 65_537
"""Bytes of one full ``COM`` padding segment: marker (2), length (2) and 65,533 bytes of comment."""
_FREE_HEADER = 8
_FREE_LARGE_HEADER = 16
_MAX_BOX32 = 0xFFFF_FFFF


@dataclass(frozen=True, slots=True)
class Template:
    """A file made once with ffmpeg and shipped with the package."""

    name: str
    format: str
    duration: float
    width: int = 0
    height: int = 0


TEMPLATES: Mapping[str, Template] = MappingProxyType({
    t.name: t
    for t in (
        Template("video_1280x720_3s.mp4", MP4, 3.0, 1280, 720),
        Template("video_720x1280_8s.mp4", MP4, 8.0, 720, 1280),
        Template("video_1280x720_14s.mp4", MP4, 14.0, 1280, 720),
        Template("round_384_5s.mp4", MP4, 5.0, 384, 384),
        Template("round_384_11s.mp4", MP4, 11.0, 384, 384),
        Template("animation_480x270_2s.mp4", MP4, 2.0, 480, 270),
        Template("voice_2s.ogg", OGG, 2.0065),
        Template("voice_7s.ogg", OGG, 7.0065),
        Template("audio_3s.mp3", MP3, 3.168),
        Template("sticker_512.webp", WEBP, 0.0, 512, 512),
    )
})
VIDEO_TEMPLATES = ("video_1280x720_3s.mp4", "video_720x1280_8s.mp4", "video_1280x720_14s.mp4")
ROUND_TEMPLATES = ("round_384_5s.mp4", "round_384_11s.mp4")
ANIMATION_TEMPLATES = ("animation_480x270_2s.mp4",)
VOICE_TEMPLATES = ("voice_2s.ogg", "voice_7s.ogg")
AUDIO_TEMPLATES = ("audio_3s.mp3",)
STICKER_TEMPLATES = ("sticker_512.webp",)


@dataclass(frozen=True, slots=True)
class Sample:
    """What a simulated file is: a format, a template or picture size, and audio tags."""

    format: str
    template: str = ""
    width: int = 0
    height: int = 0
    performer: str = ""
    title: str = ""


@dataclass(frozen=True, slots=True)
class Layout:
    """A file as ``head + body + tail``; the body is ``body_size`` filler bytes in ``body_format``."""

    head: bytes
    body_size: int
    body_format: str
    tail: bytes

    @property
    def size(self) -> int:
        return len(self.head) + self.body_size + len(self.tail)


def jpeg(width: int, height: int) -> Sample:
    return Sample(JPEG, width=width, height=height)


def png(width: int, height: int) -> Sample:
    return Sample(PNG, width=width, height=height)


def from_template(name: str, *, performer: str = "", title: str = "") -> Sample:
    return Sample(TEMPLATES[name].format, template=name, performer=performer, title=title)


def natural_size(seed: int, content_id: str, sample: Sample) -> int:
    """The smallest valid size of ``sample`` (the only one for formats that are not padded)."""
    return layout(seed, content_id, sample, None).size


@functools.lru_cache(maxsize=512)
def layout(seed: int, content_id: str, sample: Sample, size: int | None) -> Layout:
    """The layout of ``sample`` at ``size`` bytes (``None``: its natural size).

    Raises ``ValueError`` when the format cannot be made exactly ``size`` bytes long.
    """
    tag = f"tobs-sync sample {content_id}".encode()
    builders = {JPEG: _jpeg_layout, MP4: _mp4_layout, OGG: _ogg_layout, MP3: _mp3_layout,
                WEBP: _webp_layout, PNG: _png_layout}
    try:
        built = builders[sample.format](seed, content_id, sample, tag, size)
    except KeyError:
        raise ValueError(f"unknown sample format {sample.format!r}") from None
    if size is not None and built.size != size:
        raise ValueError(f"a {sample.format} sample has {built.size} bytes, not {size}")
    return built


def body_range(body_format: str, body_size: int, offset: int, filler: bytes) -> bytes:
    """``filler`` (the body's bytes at ``offset``) made valid for ``body_format``.

    For JPEG padding this writes the marker and length of each ``COM`` segment over the filler.
    """
    if body_format == RAW or not filler:
        return filler
    data = bytearray(filler)
    end = offset + len(filler)
    for segment_start in range(offset - offset % COM_STRIDE, end, COM_STRIDE):
        length = min(COM_STRIDE, body_size - segment_start)
        header = b"\xff\xfe" + (length - 2).to_bytes(2, "big")
        for i, byte in enumerate(header):
            position = segment_start + i
            if offset <= position < end:
                data[position - offset] = byte
    return bytes(data)


# region templates


@functools.lru_cache(maxsize=16)
def template_bytes(name: str) -> bytes:
    """The bytes of a shipped template."""
    if name not in TEMPLATES:
        raise ValueError(f"no sample template {name!r}")
    return resources.files("tobs_sync.sim").joinpath("samples", name).read_bytes()


def _template(sample: Sample) -> bytes:
    return template_bytes(sample.template)


def _mp4_layout(seed: int, content_id: str, sample: Sample, tag: bytes, size: int | None) -> Layout:
    movie = _template(sample)
    natural = len(movie) + _FREE_HEADER + len(tag)
    box = natural - len(movie) if size is None else size - len(movie)
    if box < _FREE_HEADER + len(tag):
        raise ValueError(f"an MP4 sample needs at least {natural} bytes, not {size}")
    if box <= _MAX_BOX32:
        header = box.to_bytes(4, "big") + b"free"
    else:
        header = (1).to_bytes(4, "big") + b"free" + box.to_bytes(8, "big")
    head = movie + header + tag
    return Layout(head, box - len(header) - len(tag), RAW, b"")


def _ogg_layout(seed: int, content_id: str, sample: Sample, tag: bytes, size: int | None) -> Layout:
    return Layout(_ogg_with_comment(_template(sample), b"TOBS_SYNC_SAMPLE=" + content_id.encode()), 0, RAW, b"")


def _mp3_layout(seed: int, content_id: str, sample: Sample, tag: bytes, size: int | None) -> Layout:
    frames = [
        _id3_text_frame(b"TPE1", sample.performer),
        _id3_text_frame(b"TIT2", sample.title),
        _id3_frame(b"TXXX", b"\x03tobs-sync sample\x00" + content_id.encode()),
    ]
    body = b"".join(f for f in frames if f)
    header = b"ID3\x04\x00\x00" + _syncsafe(len(body))
    return Layout(header + body + _template(sample), 0, RAW, b"")


def _webp_layout(seed: int, content_id: str, sample: Sample, tag: bytes, size: int | None) -> Layout:
    simple = _template(sample)
    if simple[:4] != b"RIFF" or simple[8:16] != b"WEBPVP8 ":
        raise ValueError(f"{sample.template} is not a simple lossy WEBP")
    template = TEMPLATES[sample.template]
    image = simple[12:]
    vp8x = b"VP8X" + struct.pack("<I", 10) + bytes([0x04, 0, 0, 0])
    vp8x += (template.width - 1).to_bytes(3, "little") + (template.height - 1).to_bytes(3, "little")
    xmp_payload = b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><!-- " + tag + b" --></x:xmpmeta>"
    xmp = b"XMP " + struct.pack("<I", len(xmp_payload)) + xmp_payload + b"\x00" * (len(xmp_payload) % 2)
    chunks = vp8x + image + xmp
    return Layout(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WEBP" + chunks, 0, RAW, b"")


# endregion

# region pictures


def colour(seed: int, content_id: str) -> tuple[int, int, int]:
    """The flat ``(Y, Cb, Cr)`` colour of a picture (Y 16..240, Cb and Cr 64..192) from the seed and content id."""
    digest = hashlib.blake2b(f"{seed}|{content_id}|colour".encode(), digest_size=3).digest()
    return 16 + digest[0] * 224 // 255, 64 + digest[1] * 128 // 255, 64 + digest[2] * 128 // 255


def rgb(ycbcr: tuple[int, int, int]) -> tuple[int, int, int]:
    """JFIF's YCbCr to RGB conversion, clamped."""
    y, cb, cr = ycbcr
    values = (y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128), y + 1.772 * (cb - 128))
    red, green, blue = (max(0, min(255, round(v))) for v in values)
    return red, green, blue


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload


# DC table: category 0 is the one-bit code "0", categories 1..11 five-bit codes; AC table: EOB only, "0".
_DC_BITS = bytes([1, 0, 0, 0, 11] + [0] * 11)
_DC_VALUES = bytes(range(12))
_AC_BITS = bytes([1] + [0] * 15)
_AC_VALUES = b"\x00"
_JPEG_TABLES = (
    _segment(0xDB, b"\x00" + b"\x01" * 64)  # one quantisation table of ones
    + _segment(0xC4, b"\x00" + _DC_BITS + _DC_VALUES + b"\x10" + _AC_BITS + _AC_VALUES)
)
_SOS = _segment(0xDA, bytes([3, 1, 0x00, 2, 0x00, 3, 0x00, 0, 63, 0]))


def _dc_bits(value: int) -> str:
    """The Huffman code and extra bits of a DC difference (always coded against table 0)."""
    category = abs(value).bit_length()
    if category == 0:
        return "0"
    extra = value if value > 0 else value + (1 << category) - 1
    return format(16 + category - 1, "05b") + format(extra, f"0{category}b")


def _stuffed(data: bytes) -> bytes:
    return data.replace(b"\xff", b"\xff\x00")


def _jpeg_scan(width: int, height: int, ycbcr: tuple[int, int, int]) -> bytes:
    """Entropy-coded data of a flat 4:2:0 picture: the first MCU sets the colour, the rest repeat it."""
    y, cb, cr = (8 * (c - 128) for c in ycbcr)  # DC coefficient of a flat block with quantisation 1
    first = _dc_bits(y) + "0" + "00" * 3 + _dc_bits(cb) + "0" + _dc_bits(cr) + "0"
    mcus = -(-width // 16) * -(-height // 16)
    total = len(first) + 12 * (mcus - 1)  # every later block: DC difference 0 ("0") and EOB ("0")
    head_bits = first + "0" * (-len(first) % 8)
    if len(head_bits) > total:
        bits = first + "0" * (total - len(first))
        bits += "1" * (-len(bits) % 8)
        return _stuffed(int(bits, 2).to_bytes(len(bits) // 8, "big"))
    zeros = total - len(head_bits)
    tail_bits = "0" * (zeros % 8)
    tail_bits += "1" * (-len(tail_bits) % 8)
    head = _stuffed(int(head_bits, 2).to_bytes(len(head_bits) // 8, "big"))
    tail = _stuffed(int(tail_bits, 2).to_bytes(len(tail_bits) // 8, "big")) if tail_bits else b""
    return head + b"\x00" * (zeros // 8) + tail


def _jpeg_layout(seed: int, content_id: str, sample: Sample, tag: bytes, size: int | None) -> Layout:
    width, height = sample.width, sample.height
    if not (0 < width < 65_536 and 0 < height < 65_536):
        raise ValueError(f"a JPEG cannot be {width}x{height}")
    jfif = _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    frame = _segment(0xC0, b"\x08" + struct.pack(">HH", height, width) + bytes([3, 1, 0x22, 0, 2, 0x11, 0, 3, 0x11, 0]))
    tail = _JPEG_TABLES + frame + _SOS + _jpeg_scan(width, height, colour(seed, content_id)) + b"\xff\xd9"
    head = b"\xff\xd8" + jfif + _segment(0xFE, tag)
    padding = 0 if size is None else size - len(head) - len(tail)
    if padding < 0:
        raise ValueError(f"a {width}x{height} JPEG sample needs at least {len(head) + len(tail)} bytes, not {size}")
    short = padding % COM_STRIDE
    if 0 < short < 4:  # too short for a segment of its own: lengthen the tag comment instead
        head = b"\xff\xd8" + jfif + _segment(0xFE, tag + b" " * short)
        padding -= short
    return Layout(head, padding, COM_SEGMENTS, tail)


def _huffman(bits: list[int], code: int, length: int) -> None:
    """Append a Huffman code, most significant bit first (as Deflate packs codes)."""
    bits.extend((code >> shift) & 1 for shift in range(length - 1, -1, -1))


def _extra(bits: list[int], value: int, length: int) -> None:
    """Append extra bits, least significant bit first."""
    bits.extend((value >> shift) & 1 for shift in range(length))


_LENGTH_BASES = (3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
                 163, 195, 227, 258)
_LENGTH_EXTRA = (0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0)


def _length_code(bits: list[int], length: int) -> None:
    """A match length (3..258) in the fixed Huffman code, with distance 1."""
    index = max(i for i, base in enumerate(_LENGTH_BASES) if base <= length)
    symbol = 257 + index
    if symbol <= 279:
        _huffman(bits, symbol - 256, 7)
    else:
        _huffman(bits, 0xC0 + symbol - 280, 8)
    _extra(bits, length - _LENGTH_BASES[index], _LENGTH_EXTRA[index])
    _huffman(bits, 0, 5)  # distance code 0: distance 1


def zlib_of_zeros(count: int) -> bytes:
    """A zlib stream of ``count`` zero bytes, written by hand so its bytes never depend on the zlib
    library: one fixed-Huffman block, a literal 0 and copies of the previous byte."""
    bits: list[int] = [1, 1, 0]  # last block, fixed Huffman codes (type 01, least significant bit first)
    if count:
        _huffman(bits, 0x30, 8)  # literal 0
    left = count - 1
    while left > 0:
        if left < 3:
            _huffman(bits, 0x30, 8)
            left -= 1
            continue
        step = min(258, left if left <= 258 or left - 258 >= 3 else left - 3)
        _length_code(bits, step)
        left -= step
    _huffman(bits, 0, 7)  # end of block
    bits.extend([0] * (-len(bits) % 8))
    data = bytes(sum(bit << i for i, bit in enumerate(bits[at : at + 8])) for at in range(0, len(bits), 8))
    return b"\x78\x01" + data + struct.pack(">I", zlib.adler32(bytes(count)))


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_layout(seed: int, content_id: str, sample: Sample, tag: bytes, size: int | None) -> Layout:
    width, height = sample.width, sample.height
    if not (0 < width <= 4096 and 0 < height <= 4096):
        raise ValueError(f"a PNG sample cannot be {width}x{height}")
    row = bytes(1 + (width + 7) // 8)  # filter 0, then one bit per pixel: palette entry 0
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 3, 0, 0, 0))
        + _png_chunk(b"PLTE", bytes(rgb(colour(seed, content_id))))
        + _png_chunk(b"tEXt", b"Comment\x00" + tag)
        + _png_chunk(b"IDAT", zlib_of_zeros(len(row) * height))
        + _png_chunk(b"IEND", b"")
    )
    return Layout(data, 0, RAW, b"")


# endregion

# region Ogg and ID3


def _ogg_crc_table() -> tuple[int, ...]:
    table = []
    for index in range(256):
        value = index << 24
        for _ in range(8):
            value = ((value << 1) ^ 0x04C11DB7) if value & 0x8000_0000 else value << 1
        table.append(value & 0xFFFF_FFFF)
    return tuple(table)


_OGG_CRC = _ogg_crc_table()


def ogg_crc(data: bytes) -> int:
    """The CRC of an Ogg page (polynomial 0x04C11DB7, not reflected, no final xor)."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF_FFFF) ^ _OGG_CRC[((crc >> 24) ^ byte) & 0xFF]
    return crc


def _ogg_pages(data: bytes) -> list[tuple[bytes, list[int], bytes]]:
    """``(26-byte header, lacing values, body)`` of every page."""
    pages, offset = [], 0
    while offset < len(data):
        if data[offset : offset + 4] != b"OggS":
            raise ValueError("not an Ogg page")
        count = data[offset + 26]
        lacing = list(data[offset + 27 : offset + 27 + count])
        start = offset + 27 + count
        pages.append((data[offset : offset + 26], lacing, data[start : start + sum(lacing)]))
        offset = start + sum(lacing)
    return pages


def _ogg_page(header: bytes, body: bytes) -> bytes:
    lacing = [255] * (len(body) // 255) + [len(body) % 255]
    if len(lacing) > 255:
        raise ValueError("an Ogg comment page this long needs more than one page")
    page = bytearray(header[:22] + b"\x00\x00\x00\x00" + bytes([len(lacing)]) + bytes(lacing) + body)
    page[22:26] = struct.pack("<I", ogg_crc(bytes(page)))
    return bytes(page)


def _ogg_with_comment(data: bytes, comment: bytes) -> bytes:
    """The Opus file with one more ``OpusTags`` comment (the tags must fill the second page alone)."""
    pages = _ogg_pages(data)
    header, lacing, tags = pages[1]
    if not tags.startswith(b"OpusTags") or lacing[-1] == 255:
        raise ValueError("the second Ogg page does not hold the whole OpusTags packet")
    vendor_length = struct.unpack_from("<I", tags, 8)[0]
    count_at = 12 + vendor_length
    count = struct.unpack_from("<I", tags, count_at)[0]
    tags = (
        tags[:count_at] + struct.pack("<I", count + 1) + tags[count_at + 4 :]
        + struct.pack("<I", len(comment)) + comment
    )
    rebuilt = [h + bytes([len(lc)]) + bytes(lc) + body for h, lc, body in pages]
    rebuilt[1] = _ogg_page(header, tags)
    return b"".join(rebuilt)


def _syncsafe(value: int) -> bytes:
    return bytes((value >> shift) & 0x7F for shift in (21, 14, 7, 0))


def _id3_frame(kind: bytes, payload: bytes) -> bytes:
    return kind + _syncsafe(len(payload)) + b"\x00\x00" + payload


def _id3_text_frame(kind: bytes, text: str) -> bytes:
    return _id3_frame(kind, b"\x03" + text.encode()) if text else b""


# endregion
