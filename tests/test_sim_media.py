"""The simulator's media files are valid files of their kind, and what Telegram declares is true of them.

Pure-Python checks (headers, boxes, pages, tags) run everywhere; the checks that read the files with
ffmpeg/ffprobe through the real processors skip with a reason locally without ffmpeg and fail in CI.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from telethon.tl import types

from tobs_sync.model import MediaKind, MediaRef
from tobs_sync.processors.audio import AudioProcessor
from tobs_sync.processors.ffprobe import FfprobeProcessor
from tobs_sync.processors.image import ImageProcessor, image_size
from tobs_sync.sim import SimulatedTelegram, parse_spec, samples
from tobs_sync.sim.files import MAGIC, SimFile, read_all, read_range

SPEC = "chats=2,messages=60,media=0.5,seed=3"
EXTRA_KINDS = ("audio", "sticker", "animation", "image", "video", "round", "voice", "photo")
HAVE_FFMPEG = shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None


@pytest.fixture(scope="module")
def sim() -> SimulatedTelegram:
    """The issue's account plus one live message of every kind the generated mix may lack."""
    simulated = SimulatedTelegram(parse_spec(SPEC))
    for kind in EXTRA_KINDS:
        simulated.add_message(simulated.chat_ids[0], f"a {kind}", media_kind=kind)
    return simulated


@pytest.fixture(scope="module")
def tools() -> None:
    if not HAVE_FFMPEG:
        if os.environ.get("CI"):
            pytest.fail("ffmpeg/ffprobe are required in CI: apt-get install -y ffmpeg")
        pytest.skip("ffmpeg/ffprobe not installed (apt-get install ffmpeg)")


def media_objects(sim: SimulatedTelegram) -> Iterator[types.Photo | types.Document]:
    seen: set[tuple[type, int]] = set()
    for _, message in sim.media_messages():
        media = message.media
        item = media.photo if isinstance(media, types.MessageMediaPhoto) else media.document
        if (type(item), item.id) not in seen:
            seen.add((type(item), item.id))
            yield item


def documents(sim: SimulatedTelegram) -> list[types.Document]:
    return [d for d in media_objects(sim) if isinstance(d, types.Document)]


def attribute(document: types.Document, kind: type) -> Any:
    return next((a for a in document.attributes if isinstance(a, kind)), None)


def of_kind(sim: SimulatedTelegram, kind: str) -> list[types.Document]:
    """Documents of a tobs-sync media kind, told apart by their attributes as Telegram's clients do."""
    found = []
    for document in documents(sim):
        video = attribute(document, types.DocumentAttributeVideo)
        audio = attribute(document, types.DocumentAttributeAudio)
        if attribute(document, types.DocumentAttributeSticker):
            actual = "sticker"
        elif video is not None and video.round_message:
            actual = "video_note"
        elif attribute(document, types.DocumentAttributeAnimated):
            actual = "animation"
        elif video is not None:
            actual = "video"
        elif audio is not None:
            actual = "voice" if audio.voice else "audio"
        else:
            actual = "image" if document.mime_type == "image/png" else "document"
        if actual == kind:
            found.append(document)
    return found


# region pure-Python format checks


def mp4_boxes(data: bytes) -> dict[bytes, tuple[int, int]]:
    """Top-level boxes: type -> (offset, size); the sizes must tile the file exactly."""
    boxes, offset = {}, 0
    while offset < len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        assert size >= 8, f"box {kind!r} at {offset} has size {size}"
        boxes[kind] = (offset, size)
        offset += size
    assert offset == len(data), "the boxes do not end at the end of the file"
    return boxes


def mp4_duration(data: bytes) -> float:
    at = data.index(b"mvhd")
    assert data[at + 4] == 0, "version 0 mvhd"
    timescale, duration = struct.unpack(">II", data[at + 16 : at + 24])
    return duration / timescale


def ogg_pages(data: bytes) -> list[tuple[int, bytes]]:
    """(granule position, page) of every page; each page's CRC is checked with an independent CRC."""
    pages, offset = [], 0
    while offset < len(data):
        assert data[offset : offset + 4] == b"OggS"
        count = data[offset + 26]
        length = 27 + count + sum(data[offset + 27 : offset + 27 + count])
        page = data[offset : offset + length]
        granule, crc = struct.unpack("<q", page[6:14])[0], struct.unpack("<I", page[22:26])[0]
        assert crc == reference_ogg_crc(page[:22] + b"\0\0\0\0" + page[26:]), f"bad CRC on the page at {offset}"
        pages.append((granule, page))
        offset += length
    return pages


def reference_ogg_crc(data: bytes) -> int:
    """Bit by bit, as the Ogg specification defines it (not the table the simulator uses)."""
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFF_FFFF if crc & 0x8000_0000 else (crc << 1) & 0xFFFF_FFFF
    return crc


def id3_text(data: bytes, frame: bytes) -> str:
    assert data[:4] == b"ID3\x04"
    at = data.index(frame, 10)
    size = int.from_bytes(bytes(b & 0x7F for b in data[at + 4 : at + 8]), "big")  # loose syncsafe read
    payload = data[at + 10 : at + 10 + size]
    assert payload[0] == 3, "UTF-8 text"
    return payload[1:].decode()


def jpeg_segments(data: bytes) -> list[int]:
    """Markers up to the start of scan, each segment's length followed exactly; ends with EOI."""
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
    markers, offset = [], 2
    while True:
        assert data[offset] == 0xFF, f"no marker at {offset}"
        marker = data[offset + 1]
        markers.append(marker)
        if marker == 0xDA:
            return markers
        offset += 2 + int.from_bytes(data[offset + 2 : offset + 4], "big")


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_photos_and_thumbnails_are_jpegs_of_their_declared_size_and_dimensions(
    sim: SimulatedTelegram, tmp_path: Path
) -> None:
    checked = 0
    for item in media_objects(sim):
        if isinstance(item, types.Photo):
            sizes = [(s.type, s.w, s.h, s.sizes[-1] if isinstance(s, types.PhotoSizeProgressive) else s.size)
                     for s in item.sizes if isinstance(s, types.PhotoSize | types.PhotoSizeProgressive)]
        else:
            sizes = [(s.type, s.w, s.h, s.size) for s in item.thumbs or () if isinstance(s, types.PhotoSize)]
        for size_type, width, height, size in sizes:
            data = sim.file_bytes(sim.file_key(item, size_type))
            assert len(data) == size
            assert 0xC0 in jpeg_segments(data)  # a baseline frame header, reached through every segment
            assert image_size(write(tmp_path, "photo.jpg", data)) == (width, height)
            checked += 1
    assert checked > 50


def test_videos_round_videos_and_animations_are_mp4_files_of_their_declared_size_and_duration(
    sim: SimulatedTelegram,
) -> None:
    for kind in ("video", "video_note", "animation"):
        found = of_kind(sim, kind)
        assert found, kind
        for document in found:
            data = sim.file_bytes(sim.file_key(document))
            assert len(data) == document.size
            boxes = mp4_boxes(data)
            assert {b"ftyp", b"moov", b"mdat", b"free"} <= set(boxes)
            assert boxes[b"moov"][0] < boxes[b"mdat"][0], "moov first: playable while downloading"
            video = attribute(document, types.DocumentAttributeVideo)
            assert mp4_duration(data) == video.duration
            assert document.mime_type == "video/mp4"


def test_voice_notes_are_opus_in_ogg_with_valid_pages_and_the_declared_duration(sim: SimulatedTelegram) -> None:
    voices = of_kind(sim, "voice")
    assert voices
    for document in voices:
        data = sim.file_bytes(sim.file_key(document))
        assert len(data) == document.size
        pages = ogg_pages(data)
        assert pages[0][1][28:36] == b"OpusHead" and b"OpusTags" in pages[1][1]
        pre_skip = struct.unpack("<H", pages[0][1][38:40])[0]
        seconds = (pages[-1][0] - pre_skip) / 48_000
        assert round(seconds) == attribute(document, types.DocumentAttributeAudio).duration


def test_audio_files_are_mp3s_whose_tags_hold_the_declared_performer_and_title(sim: SimulatedTelegram) -> None:
    songs = of_kind(sim, "audio")
    assert songs
    for document in songs:
        data = sim.file_bytes(sim.file_key(document))
        audio = attribute(document, types.DocumentAttributeAudio)
        assert len(data) == document.size and document.mime_type == "audio/mpeg"
        assert (id3_text(data, b"TPE1"), id3_text(data, b"TIT2")) == (audio.performer, audio.title)
        tag_size = int.from_bytes(bytes(b & 0x7F for b in data[6:10]), "big")
        assert data[10 + tag_size] == 0xFF and data[11 + tag_size] & 0xE0 == 0xE0, "an MPEG frame after the tag"


def test_stickers_and_images_are_webp_and_png_of_their_declared_dimensions(
    sim: SimulatedTelegram, tmp_path: Path
) -> None:
    for kind, extension in (("sticker", "webp"), ("image", "png")):
        found = of_kind(sim, kind)
        assert found, kind
        for document in found:
            data = sim.file_bytes(sim.file_key(document))
            dims = attribute(document, types.DocumentAttributeImageSize)
            assert len(data) == document.size
            assert image_size(write(tmp_path, f"x.{extension}", data)) == (dims.w, dims.h)


def test_twins_are_identical_and_every_other_file_is_distinct(sim: SimulatedTelegram) -> None:
    by_digest: dict[bytes, set[str]] = {}
    for item in media_objects(sim):
        keys = [sim.file_key(item)]
        if isinstance(item, types.Photo):
            keys += [sim.file_key(item, s.type) for s in item.sizes if isinstance(s, types.PhotoSize)]
        else:
            keys += [sim.file_key(item, s.type) for s in item.thumbs or () if isinstance(s, types.PhotoSize)]
        for key in keys:
            by_digest.setdefault(hashlib.sha256(sim.file_bytes(key)).digest(), set()).add(key)
    names = {sim.file_key(d): attribute(d, types.DocumentAttributeFilename) for d in documents(sim)}
    shared = [keys for keys in by_digest.values() if len(keys) > 1]
    assert shared, "no twins in the account"
    for keys in shared:
        twins = {names[k].file_name.rsplit(" of ", 1)[-1] for k in keys if names.get(k) is not None}
        assert len(twins) == 1 and all(names.get(k) for k in keys), f"different files with equal bytes: {keys}"
    assert sum(len(keys) for keys in by_digest.values()) > 100


def jpeg_file(size: int, width: int = 1280, height: int = 720) -> SimFile:
    return SimFile("photo:1:y", size, 1, "photo:1:y", "image/jpeg", samples.jpeg(width, height))


@pytest.mark.parametrize("extra", [0, 3, 4, 65_536, 65_540, 2 * samples.COM_STRIDE + 1, 3 * samples.COM_STRIDE])
def test_jpeg_padding_in_comment_segments_keeps_the_file_valid_at_any_size(extra: int, tmp_path: Path) -> None:
    natural = samples.natural_size(7, "photo:1:y", samples.jpeg(1280, 720))
    file = jpeg_file(natural + extra)
    data = read_all(7, file)
    assert len(data) == natural + extra
    assert jpeg_segments(data).count(0xFE) >= 1 + extra // samples.COM_STRIDE
    assert image_size(write(tmp_path, "padded.jpg", data)) == (1280, 720)


def test_any_range_of_a_padded_file_equals_that_slice_of_the_whole_file() -> None:
    natural = samples.natural_size(7, "photo:1:y", samples.jpeg(1280, 720))
    jpeg = jpeg_file(natural + 2 * samples.COM_STRIDE + 500)
    video = SimFile("document:9", 300_000, 1, "document:9", "video/mp4",
                    samples.from_template("video_1280x720_3s.mp4"))
    for file in (jpeg, video):
        whole = read_all(7, file)
        shape = samples.layout(7, file.content_id, file.sample, file.size)
        edges = [0, len(shape.head), len(shape.head) + shape.body_size, file.size,
                 *(len(shape.head) + k * samples.COM_STRIDE for k in range(1, 3))]
        for edge in edges:
            for offset in (edge - 4097, edge - 3, edge, edge + 1):
                for limit in (1, 4, 4096, 70_000):
                    if offset >= 0:
                        assert read_range(7, file, offset, limit) == whole[offset : offset + limit], (offset, limit)


def test_a_500_mb_video_is_an_mp4_padded_by_one_free_box_read_in_ranges() -> None:
    sim = SimulatedTelegram(parse_spec("chats=1,messages=3,media=0,seed=2"))
    size = 500 * 1024 * 1024
    key = sim.file_key(sim.add_big_file(sim.chat_ids[0], size))
    head = sim.file_range(key, 0, 64 * 1024)
    boxes, offset = [], 0
    while offset + 8 <= len(head):
        box_size, kind = struct.unpack(">I4s", head[offset : offset + 8])
        boxes.append(kind)
        offset += box_size
    assert offset == size, "the last box runs to the end of the file"
    assert boxes[0] == b"ftyp" and boxes[-1] == b"free" and {b"moov", b"mdat"} <= set(boxes)
    assert len(sim.file_range(key, size - 100, 4096)) == 100


def test_a_video_past_4_gib_uses_a_64_bit_free_box() -> None:
    size = 5 * 1024**3
    shape = samples.layout(1, "document:5", samples.from_template("video_1280x720_3s.mp4"), size)
    movie = samples.template_bytes("video_1280x720_3s.mp4")
    header = shape.head[len(movie) : len(movie) + 16]
    assert header[:8] == b"\x00\x00\x00\x01free" and int.from_bytes(header[8:], "big") == size - len(movie)
    assert shape.size == size


def test_a_size_below_the_smallest_valid_video_keeps_synthetic_bytes_of_exactly_that_size() -> None:
    sim = SimulatedTelegram(parse_spec("chats=1,messages=3,media=0,seed=2"))
    key = sim.file_key(sim.add_big_file(sim.chat_ids[0], 1000))
    data = sim.file_bytes(key)
    assert len(data) == 1000 == sim.file_size(key)
    assert data.startswith(MAGIC["video/mp4"])


@pytest.mark.parametrize("count", [0, 1, 2, 3, 258, 259, 260, 261, 517, 99_072])
def test_hand_written_zlib_stream_of_png_images_inflates_to_zeros(count: int) -> None:
    assert zlib.decompress(samples.zlib_of_zeros(count)) == bytes(count)


# endregion

# region the processors read the simulated files


def ffmpeg_errors(path: Path) -> str:
    result = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
                            capture_output=True, timeout=60, check=False)
    return result.stderr.decode() + ("" if result.returncode == 0 else f"exit {result.returncode}")


def test_processors_read_duration_size_and_codec_of_every_simulated_kind(
    tools: None, sim: SimulatedTelegram, tmp_path: Path
) -> None:
    ffprobe, audio, image = FfprobeProcessor(), AudioProcessor(), ImageProcessor()
    for kind in ("video", "video_note", "animation"):
        document = of_kind(sim, kind)[0]
        path = write(tmp_path, f"{kind}.mp4", sim.file_bytes(sim.file_key(document)))
        video = attribute(document, types.DocumentAttributeVideo)
        found = ffprobe.process(path, MediaRef(kind, "x"))
        assert (found["duration"], found["width"], found["height"], found["codec"]) == (
            video.duration, video.w, video.h, "h264"), kind
        assert ffmpeg_errors(path) == "", kind
    for kind, extension in (("voice", "ogg"), ("audio", "mp3")):
        document = of_kind(sim, kind)[0]
        path = write(tmp_path, f"{kind}.{extension}", sim.file_bytes(sim.file_key(document)))
        found = audio.process(path, MediaRef(kind, "x"))
        assert abs(found["duration"] - attribute(document, types.DocumentAttributeAudio).duration) < 0.5, kind
        assert ffmpeg_errors(path) == "", kind
    photo = next(p for p in media_objects(sim) if isinstance(p, types.Photo))
    sticker = of_kind(sim, "sticker")[0]
    for name, data, kind, dims in (
        ("photo.jpg", sim.file_bytes(sim.file_key(photo)), MediaKind.PHOTO, (photo.sizes[-1].w, photo.sizes[-1].h)),
        ("sticker.webp", sim.file_bytes(sim.file_key(sticker)), MediaKind.STICKER, (512, 512)),
        ("image.png", sim.file_bytes(sim.file_key(of_kind(sim, "image")[0])), MediaKind.PHOTO, None),
    ):
        path = write(tmp_path, name, data)
        assert ffmpeg_errors(path) == "", name
        if dims is not None:
            assert image.process(path, MediaRef(kind.value, "x")) == {"width": dims[0], "height": dims[1]}


def test_padded_jpeg_decodes_to_its_flat_colour(tools: None, tmp_path: Path) -> None:
    natural = samples.natural_size(7, "photo:1:y", samples.jpeg(1280, 720))
    path = write(tmp_path, "padded.jpg", read_all(7, jpeg_file(natural + 2 * samples.COM_STRIDE + 9)))
    pixels = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, timeout=60, check=True,
    ).stdout
    assert len(pixels) == 1280 * 720 * 3
    expected = samples.rgb(samples.colour(7, "photo:1:y"))
    assert all(abs(a - b) <= 2 for a, b in zip(pixels[:3], expected, strict=True))
    assert pixels[:3] * (len(pixels) // 3) == pixels, "one flat colour"


# endregion

