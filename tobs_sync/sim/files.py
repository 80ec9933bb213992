"""Simulated file storage: every media file's bytes are computed on demand, never stored.

A file is described by a :class:`SimFile` (its key, size, data centre and a *content id*). The bytes
of any range are derived from ``(seed, content id, 4 KiB block number)`` with SHAKE-256, so a 500 MB
file costs nothing until a range of it is requested, reading a range costs time proportional to its
length only, and two files with the same content id (different Telegram ids) have identical bytes.

Media files carry a :class:`~tobs_sync.sim.samples.Sample` and are valid files of their format
(JPEG, H.264 MP4, Ogg Opus, MP3, WEBP, PNG; see :mod:`tobs_sync.sim.samples`): a small head and tail
computed once per file (and cached), around a body of the same pseudo-random blocks made valid as
padding. Files without a sample (PDF and ZIP documents, and media whose requested size no valid
file of its kind can have) keep synthetic bytes: a short magic header for the file kind (JPEG,
MP4, Ogg, PDF, ZIP) so type sniffing sees something plausible, then pseudo-random bytes.

File keys name one downloadable file: ``photo:<id>:<size type>`` for a photo size,
``document:<id>`` for a document and ``document:<id>:<thumb type>`` for a document thumbnail.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from telethon.tl import types

from tobs_sync.sim.samples import Sample, body_range, layout

BLOCK = 4096
MAX_MATERIALISE = 64 * 1024 * 1024

MAGIC: Mapping[str, bytes] = MappingProxyType({
    "image/jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    "video/mp4": b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom",
    "audio/ogg": b"OggS\x00\x02",
    "application/pdf": b"%PDF-1.7\n",
    "application/zip": b"PK\x03\x04",
})


@dataclass(frozen=True, slots=True)
class SimFile:
    """One downloadable file: where it lives and how its bytes are derived."""

    key: str
    size: int
    dc_id: int
    content_id: str
    mime_type: str
    sample: Sample | None = None


def photo_key(photo_id: int, size_type: str) -> str:
    return f"photo:{photo_id}:{size_type}"


def document_key(document_id: int, thumb_size: str = "") -> str:
    return f"document:{document_id}:{thumb_size}" if thumb_size else f"document:{document_id}"


def media_id_of_key(file_key: str) -> tuple[str, int]:
    """``("photo"|"document", id)`` of a file key (or of a bare ``photo:<id>``/``document:<id>``)."""
    kind, _, rest = file_key.partition(":")
    if kind not in ("photo", "document") or not rest:
        raise ValueError(f"not a simulator file key: {file_key!r}")
    return kind, int(rest.partition(":")[0])


def key_of_location(location: types.TypeInputFileLocation) -> str | None:
    """The file key a GetFile location asks for, or ``None`` for locations the simulator does not serve."""
    if isinstance(location, types.InputPhotoFileLocation):
        return photo_key(location.id, location.thumb_size)
    if isinstance(location, types.InputDocumentFileLocation):
        return document_key(location.id, location.thumb_size)
    return None


def _block(seed: int, content_id: str, index: int) -> bytes:
    return hashlib.shake_256(f"{seed}|{content_id}|{index}".encode()).digest(BLOCK)


def read_range(seed: int, file: SimFile, offset: int, limit: int) -> bytes:
    """The bytes ``[offset, offset + limit)`` of ``file`` (shorter at the end of the file)."""
    end = min(file.size, offset + limit)
    if offset >= end:
        return b""
    if file.sample is not None:
        return _read_sample(seed, file, file.sample, offset, end)
    return _read_synthetic(seed, file, offset, end)


def _read_blocks(seed: int, content_id: str, offset: int, end: int) -> bytes:
    """Bytes ``[offset, end)`` of the pseudo-random stream of ``content_id``."""
    first, last = offset // BLOCK, (end - 1) // BLOCK
    data = b"".join(_block(seed, content_id, index) for index in range(first, last + 1))
    start = offset - first * BLOCK
    return data[start : start + (end - offset)]


def _read_sample(seed: int, file: SimFile, sample: Sample, offset: int, end: int) -> bytes:
    shape = layout(seed, file.content_id, sample, file.size)
    body_start, tail_start = len(shape.head), len(shape.head) + shape.body_size
    parts = []
    if offset < body_start:
        parts.append(shape.head[offset : min(end, body_start)])
    low, high = max(offset, body_start), min(end, tail_start)
    if low < high:
        filler = _read_blocks(seed, file.content_id, low - body_start, high - body_start)
        parts.append(body_range(shape.body_format, shape.body_size, low - body_start, filler))
    if end > tail_start:
        parts.append(shape.tail[max(0, offset - tail_start) : end - tail_start])
    return b"".join(parts)


def _read_synthetic(seed: int, file: SimFile, offset: int, end: int) -> bytes:
    first, last = offset // BLOCK, (end - 1) // BLOCK
    parts = []
    for index in range(first, last + 1):
        block = _block(seed, file.content_id, index)
        if index == 0:
            magic = MAGIC.get(file.mime_type, b"")
            block = magic + block[len(magic) :]
        parts.append(block)
    data = b"".join(parts)
    start = offset - first * BLOCK
    return data[start : start + (end - offset)]


def read_all(seed: int, file: SimFile) -> bytes:
    """The whole file; refuses files above 64 MiB (stream those with :func:`read_range`)."""
    if file.size > MAX_MATERIALISE:
        raise ValueError(f"{file.key} has {file.size} bytes; read it in ranges instead")
    return read_range(seed, file, 0, file.size)
