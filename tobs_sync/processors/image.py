"""Width and height of photos and stickers, read from the file header in pure Python.

Formats: PNG (``IHDR``), GIF (logical screen), WEBP (``VP8 `` lossy, ``VP8L`` lossless, ``VP8X``
extended/animated canvas) and JPEG (the first SOF marker, walking the segments with seeks). The file
is opened unbuffered and read in small pieces: at most 32 bytes for PNG/GIF/WEBP and a few bytes per
segment for JPEG (so a large EXIF block is skipped, not read), capped at :data:`MAX_JPEG_SEGMENTS`.

Limits: the stored size, before any EXIF orientation; no AVIF/HEIC/BMP/TIFF; animated stickers
(``.tgs``, gzipped Lottie) and video stickers (``.webm``) are not images and get nothing. A file in
an unknown format is not an error (debug log); a known format with a truncated or corrupt header
logs one warning and gives ``{}``.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO

from tobs_sync.model import MediaKind, MediaRef
from tobs_sync.processors.base import LOGGER, Properties

MAX_JPEG_SEGMENTS = 512
MAX_JPEG_FILL_BYTES = 4096
MAX_IMAGE_DIMENSION = 1 << 24
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# SOF0-SOF15 except DHT (C4), JPG (C8) and DAC (CC).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RST0-7, SOI


class UnknownFormat(Exception):
    """The file is not a PNG, JPEG, GIF or WEBP."""


def image_format(head: bytes) -> str | None:
    """``"png"``, ``"jpeg"``, ``"gif"``, ``"webp"`` from the first 12+ bytes, or ``None``."""
    if head.startswith(_PNG_SIGNATURE):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def image_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` from the header of the image at ``path``; ``None`` if truncated or corrupt.

    Raises :class:`UnknownFormat` for other files and ``OSError`` if the file cannot be read.
    """
    with open(path, "rb", buffering=0) as handle:
        head = _read(handle, 32)
        kind = image_format(head)
        if kind is None:
            raise UnknownFormat(path)
        if kind == "png":
            size = _png_size(head)
        elif kind == "gif":
            size = _gif_size(head)
        elif kind == "webp":
            size = _webp_size(head)
        else:
            size = _jpeg_size(handle)
    if size is None:
        return None
    width, height = size
    if 0 < width <= MAX_IMAGE_DIMENSION and 0 < height <= MAX_IMAGE_DIMENSION:
        return width, height
    return None


def _read(handle: BinaryIO, count: int) -> bytes:
    """Up to ``count`` bytes (a raw file may return fewer per call)."""
    chunks = []
    while count > 0:
        chunk = handle.read(count)
        if not chunk:
            break
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def _png_size(head: bytes) -> tuple[int, int] | None:
    if len(head) < 24 or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def _gif_size(head: bytes) -> tuple[int, int] | None:
    if len(head) < 10:
        return None
    width, height = struct.unpack("<HH", head[6:10])
    return width, height


def _webp_size(head: bytes) -> tuple[int, int] | None:
    if len(head) < 30:
        return None
    chunk = head[12:16]
    if chunk == b"VP8 ":
        if head[23:26] != b"\x9d\x01\x2a":  # key frame start code
            return None
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        if head[20] != 0x2F:
            return None
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    return None


def _jpeg_size(handle: BinaryIO) -> tuple[int, int] | None:
    handle.seek(2)  # after SOI
    fill = 0
    for _ in range(MAX_JPEG_SEGMENTS):
        if _read(handle, 1) != b"\xff":
            return None  # every segment starts with 0xFF
        marker = _read(handle, 1)
        while marker == b"\xff":  # fill bytes before a marker
            fill += 1
            if fill > MAX_JPEG_FILL_BYTES:
                return None
            marker = _read(handle, 1)
        if not marker:
            return None
        code = marker[0]
        if code in _JPEG_STANDALONE:
            continue
        if code in (0xD9, 0xDA):  # EOI or start of scan before any frame header
            return None
        length_bytes = _read(handle, 2)
        if len(length_bytes) < 2:
            return None
        length = int.from_bytes(length_bytes, "big")
        if length < 2:
            return None
        if code in _JPEG_SOF:
            frame = _read(handle, 5)  # precision, height, width
            if len(frame) < 5:
                return None
            height, width = struct.unpack(">HH", frame[1:5])
            return width, height
        handle.seek(length - 2, os.SEEK_CUR)
    return None


class ImageProcessor:
    """``width`` and ``height`` of photos and (static) stickers from their headers."""

    name = "image"
    kinds = frozenset({MediaKind.PHOTO.value, MediaKind.STICKER.value})

    def available(self) -> bool:
        return True  # pure Python

    def process(self, path: Path, media: MediaRef) -> Properties:
        try:
            size = image_size(path)
        except UnknownFormat:
            LOGGER.debug("%s is not a PNG, JPEG, GIF or WEBP image; no size read", path)
            return {}
        except OSError as exc:
            LOGGER.info("cannot read image %s: %s", path, exc)
            return {}
        if size is None:
            LOGGER.info("image %s has a truncated or corrupt header; no size read", path)
            return {}
        return {"width": size[0], "height": size[1]}
