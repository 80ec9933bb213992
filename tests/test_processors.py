"""Media processors: real ffprobe/ffmpeg on clips made here, real ffprobe outputs, hostile input.

No mocks: media is generated with ffmpeg into temp folders, fakes are small classes, and
failures are provoked by subclassing. Without ffmpeg the tests that need it are skipped with a
visible reason locally, and fail in CI (``CI`` set), where ffmpeg must be installed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Mapping
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tobs_sync.model import MediaKind, MediaRef
from tobs_sync.processors import (
    ENTRY_POINT_GROUP,
    Processor,
    ProcessorPool,
    builtin_processors,
    load_processors,
)
from tobs_sync.processors.audio import AudioProcessor
from tobs_sync.processors.ffprobe import MAX_FPS, FfprobeProcessor, parse_ffprobe, parse_frame_rate, run_ffprobe
from tobs_sync.processors.image import ImageProcessor, image_size
from tobs_sync.processors.reencode import REENCODED_MARKER, EncoderPlan, ReencodeProcessor
from tobs_sync.processors.registry import BUILTIN_ENTRY_POINTS

LOGGER_NAME = "tobs_sync.processors"
PROJECT = Path(__file__).resolve().parents[1]
EXTERNAL = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "external"
HAVE_FFMPEG = shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None

VIDEO = MediaRef(kind=MediaKind.VIDEO, locator="x")
ANIMATION = MediaRef(kind=MediaKind.ANIMATION, locator="x")
VOICE = MediaRef(kind=MediaKind.VOICE, locator="x")
AUDIO = MediaRef(kind=MediaKind.AUDIO, locator="x")
PHOTO = MediaRef(kind=MediaKind.PHOTO, locator="x")
STICKER = MediaRef(kind=MediaKind.STICKER, locator="x")


def records(caplog: pytest.LogCaptureFixture, level: int = logging.DEBUG) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER_NAME and r.levelno >= level]


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y", *args], check=True, timeout=60)


def probe(path: Path) -> dict[str, Any]:
    data = run_ffprobe(shutil.which("ffprobe") or "ffprobe", path)
    assert data is not None
    return data


@pytest.fixture(scope="session")
def tools() -> None:
    if not HAVE_FFMPEG:
        if os.environ.get("CI"):
            pytest.fail("ffmpeg/ffprobe are required in CI: apt-get install -y ffmpeg")
        pytest.skip("ffmpeg/ffprobe not installed (apt-get install ffmpeg)")


@pytest.fixture(scope="session")
def clips(tools: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every media file the tests read, made once with ffmpeg."""
    folder = tmp_path_factory.mktemp("clips")
    out = {name: folder / name for name in (
        "video.mp4", "ntsc.mp4", "anim.gif", "voice.ogg", "cover.png", "cover.flac", "original.mp4",
        "red.png", "red.jpg", "red.gif", "red.webp", "red-lossless.webp", "red-alpha.webp",
    )}
    ffmpeg("-f", "lavfi", "-i", "testsrc=duration=1:size=320x240:rate=25", "-f", "lavfi", "-i", "sine=duration=1",
           "-shortest", str(out["video.mp4"]))
    ffmpeg("-f", "lavfi", "-i", "testsrc=duration=1:size=160x120:rate=24000/1001", str(out["ntsc.mp4"]))
    ffmpeg("-f", "lavfi", "-i", "testsrc=duration=1:size=64x48:rate=10", str(out["anim.gif"]))
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "libopus", str(out["voice.ogg"]))
    ffmpeg("-f", "lavfi", "-i", "color=c=blue:s=100x80", "-frames:v", "1", str(out["cover.png"]))
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-i", str(out["cover.png"]), "-map", "0:a", "-map", "1:v",
           "-c:a", "flac", "-c:v", "copy", "-disposition:v", "attached_pic", str(out["cover.flac"]))
    # Lossless H.264: large, so a CRF 28 re-encode is certainly smaller.
    ffmpeg("-f", "lavfi", "-i", "testsrc=duration=2:size=320x240:rate=25", "-f", "lavfi", "-i", "sine=duration=2",
           "-shortest", "-c:v", "libx264", "-qp", "0", "-preset", "ultrafast", "-c:a", "aac", str(out["original.mp4"]))
    # rgb24/rgba: through the color source's default yuv420p, odd sizes would be rounded down to even.
    red = ["-f", "lavfi", "-i", "color=c=red:s=37x21,format=rgb24", "-frames:v", "1"]
    ffmpeg(*red, str(out["red.png"]))
    ffmpeg(*red, str(out["red.jpg"]))
    ffmpeg(*red, str(out["red.gif"]))
    ffmpeg(*red, "-pix_fmt", "yuv420p", "-c:v", "libwebp", str(out["red.webp"]))
    ffmpeg(*red, "-c:v", "libwebp", "-lossless", "1", str(out["red-lossless.webp"]))
    ffmpeg("-f", "lavfi", "-i", "color=c=red@0.5:s=37x21,format=rgba", "-frames:v", "1", "-c:v", "libwebp",
           "-pix_fmt", "yuva420p", str(out["red-alpha.webp"]))
    return out


# -- ffprobe on generated media -------------------------------------------------------------------


def test_ffprobe_reads_duration_size_rate_and_codec_of_a_clip(clips: dict[str, Path]) -> None:
    properties = FfprobeProcessor().process(clips["video.mp4"], VIDEO)
    assert properties["duration"] == pytest.approx(1.0, abs=0.1)
    assert (properties["width"], properties["height"], properties["fps"], properties["codec"]) == (320, 240, 25.0,
                                                                                                   "h264")


def test_ffprobe_reads_the_ntsc_film_rate(clips: dict[str, Path]) -> None:
    assert FfprobeProcessor().process(clips["ntsc.mp4"], VIDEO)["fps"] == 23.976


def test_ffprobe_reads_a_gif_animation(clips: dict[str, Path]) -> None:
    properties = FfprobeProcessor().process(clips["anim.gif"], ANIMATION)
    assert properties == {"duration": 1.0, "width": 64, "height": 48, "fps": 10.0, "codec": "gif"}


def test_voice_gets_its_duration_and_nothing_else(clips: dict[str, Path]) -> None:
    properties = AudioProcessor().process(clips["voice.ogg"], VOICE)
    assert list(properties) == ["duration"]
    assert properties["duration"] == pytest.approx(1.0, abs=0.05)


def test_cover_art_is_not_taken_for_a_video_size(clips: dict[str, Path]) -> None:
    properties = FfprobeProcessor().process(clips["cover.flac"], AUDIO)
    assert "width" not in properties and "fps" not in properties
    assert properties["codec"] == "flac"
    assert AudioProcessor().process(clips["cover.flac"], AUDIO) == {"duration": pytest.approx(1.0, abs=0.05)}


@pytest.mark.parametrize("name", ["-i.mp4", "-version", "http:example.mp4", "concat:a.mp4|b.mp4", "fake%d.mp4"])
def test_names_that_look_like_options_or_protocols_are_read_as_plain_files(
    clips: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    target = tmp_path / name
    shutil.copyfile(clips["video.mp4"], target)
    monkeypatch.chdir(tmp_path)  # a relative path would start with "-"; the processor must make it absolute
    properties = FfprobeProcessor().process(Path(name), VIDEO)
    assert properties["width"] == 320


def test_unreadable_media_gives_nothing_and_one_info_line_naming_the_file(
    tools: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(300))
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)
    assert FfprobeProcessor().process(bad, VIDEO) == {}
    assert AudioProcessor().process(tmp_path / "missing.ogg", VOICE) == {}
    # A file a processor cannot read is common (odd encoders, truncated uploads) and harmless: the
    # note just lacks its properties. One info line per file, no warning noise.
    lines = [r for r in records(caplog, logging.INFO) if r.levelno == logging.INFO]
    assert not records(caplog, logging.WARNING)
    assert len(lines) == 2
    assert str(bad) in lines[0].getMessage() and "missing.ogg" in lines[1].getMessage()


# -- real ffprobe outputs (Jellyfin's probing fixtures) ---------------------------------------------

EXPECTED_EXTERNAL = {
    "ffprobe-jellyfin-mp4-large-fraction.json": {
        # No "format": the duration is the video stream's. avg 1704753000/71073479, not r 120/1.
        "duration": 15794.106, "width": 720, "height": 358, "fps": 23.986, "codec": "h264",
        "display_aspect": "1280:537", "display_width": 853,
    },
    "ffprobe-jellyfin-flac-cover-art.json": {"duration": 214.24, "codec": "flac"},  # the 500x500 mjpeg is cover art
    "ffprobe-jellyfin-mp4-ntsc-24000-1001.json": {
        "duration": 1213.184, "width": 1920, "height": 1080, "fps": 23.976, "codec": "h264",
    },
}


@pytest.fixture
def ffprobe_samples() -> Path:
    if not EXTERNAL.is_dir():
        pytest.skip(f"external ffprobe samples not available ({EXTERNAL} is absent outside the project's workspace)")
    return EXTERNAL


@pytest.mark.parametrize("name", sorted(EXPECTED_EXTERNAL))
def test_real_ffprobe_outputs_give_exact_properties(
    ffprobe_samples: Path, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    text = (ffprobe_samples / name).read_text(encoding="utf-8")
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)
    assert parse_ffprobe(json.loads(text), source=name) == EXPECTED_EXTERNAL[name]
    assert records(caplog) == []


def test_form_feed_in_handler_names_does_no_harm(ffprobe_samples: Path) -> None:
    data = json.loads((ffprobe_samples / "ffprobe-jellyfin-mp4-ntsc-24000-1001.json").read_text(encoding="utf-8"))
    assert data["streams"][0]["tags"]["handler_name"].startswith("\f")
    properties = parse_ffprobe(data)
    assert all("\f" not in str(value) for value in properties.values())


# -- frame rates ------------------------------------------------------------------------------------

HOSTILE_RATES = [
    "0/0", "", "N/A", "   ", "garbage", "1/0", "0", "0.0", "-1", "-25/1", "25/-1", "+25/1", "25 / 1", "25/1/1",
    "1e3", "inf", "nan", "-inf", "0x19", "1_000/1", "25/1; rm -rf /", "25/1\x00", "\u0662\u0665/1",
    "__import__('os')", "__import__('os').system('id')", "lambda: 1", "(25)", "25/(1)", "[25]",
    "99999999999999999999/1", "1" + "0" * 400 + "/1", "9" * 41, "90000/1", "1000/1", "1/1000000", "1/0.5",
]


@pytest.mark.parametrize("text", HOSTILE_RATES)
def test_hostile_frame_rate_strings_are_no_frame_rate(text: str) -> None:
    assert parse_frame_rate(text) is None


@pytest.mark.parametrize(
    ("text", "fps"),
    [("24000/1001", 23.976), ("30000/1001", 29.97), ("25/1", 25.0), ("1704753000/71073479", 23.986),
     ("2997/125", 23.976), (" 50/1\n", 50.0), ("29.97", 29.97), ("120/1", 120.0), ("60", 60.0)],
)
def test_frame_rates_are_parsed_as_fractions_and_rounded(text: str, fps: float) -> None:
    assert parse_frame_rate(text) == fps


@pytest.mark.parametrize("text", HOSTILE_RATES)
def test_hostile_rates_in_ffprobe_output_give_no_fps_and_one_warning(
    text: str, caplog: pytest.LogCaptureFixture
) -> None:
    stream = {"codec_type": "video", "codec_name": "h264", "width": 16, "height": 16}
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)
    properties = parse_ffprobe({"streams": [{**stream, "avg_frame_rate": text, "r_frame_rate": text}]}, "x.mp4")
    assert "fps" not in properties and properties["width"] == 16
    warnings = records(caplog)
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING and "x.mp4" in warnings[0].getMessage()


@pytest.mark.parametrize("text", HOSTILE_RATES)
def test_a_hostile_average_rate_falls_back_to_the_base_rate(text: str, caplog: pytest.LogCaptureFixture) -> None:
    stream = {"codec_type": "video", "width": 16, "height": 16, "avg_frame_rate": text, "r_frame_rate": "25/1"}
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)
    assert parse_ffprobe({"streams": [stream]})["fps"] == 25.0
    ffprobe_unknown = text.strip() in ("", "0/0", "N/A")
    assert len(records(caplog)) == (0 if ffprobe_unknown else 1)


@given(st.one_of(st.text(), st.from_regex(r"\A[-+ ]?[0-9]{0,30}[/.:]?[-+]?[0-9]{0,30}\s?\Z")))
def test_parse_frame_rate_never_raises_and_gives_a_finite_positive_rate_or_none(text: str) -> None:
    fps = parse_frame_rate(text)
    assert fps is None or (isinstance(fps, float) and math.isfinite(fps) and 0 < fps < MAX_FPS)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
STREAM = st.fixed_dictionaries(
    {},
    optional={
        "codec_type": st.sampled_from(["video", "audio", "subtitle", 3, None]),
        "codec_name": JSON, "width": JSON, "height": JSON, "duration": JSON, "sample_aspect_ratio": JSON,
        "avg_frame_rate": st.one_of(st.sampled_from(HOSTILE_RATES), JSON), "r_frame_rate": JSON,
        "disposition": JSON, "side_data_list": JSON, "tags": JSON,
    },
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(JSON, st.fixed_dictionaries({}, optional={"streams": st.lists(STREAM, max_size=4), "format": JSON})))
def test_parse_ffprobe_never_raises_on_any_json(data: object) -> None:
    properties = parse_ffprobe(data)
    for key, value in properties.items():
        assert isinstance(value, str | int | float | bool), key
    for key in ("width", "height", "display_width"):
        assert key not in properties or (type(properties[key]) is int and properties[key] > 0)
    assert "fps" not in properties or 0 < properties["fps"] < MAX_FPS


def test_anamorphic_and_rotated_video_report_the_displayed_shape() -> None:
    stream = {"codec_type": "video", "width": 1920, "height": 1080, "avg_frame_rate": "30/1",
              "side_data_list": [{"side_data_type": "Display Matrix", "rotation": -90}]}
    assert parse_ffprobe({"streams": [stream]}) == {"width": 1080, "height": 1920, "rotation": -90, "fps": 30.0}
    stream = {"codec_type": "video", "width": 720, "height": 576, "sample_aspect_ratio": "16:15"}
    assert parse_ffprobe({"streams": [stream]}, "x")["display_aspect"] == "4:3"


# -- missing tools ----------------------------------------------------------------------------------


def test_a_missing_ffprobe_disables_the_processor_with_one_log_line(
    clips: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)
    processor = FfprobeProcessor("tobs-no-such-ffprobe")
    image = ImageProcessor()

    async def scenario() -> dict[str, Any]:
        async with ProcessorPool([processor, image]) as pool:
            assert pool.processors == (image,)
            return await pool.run(clips["video.mp4"], VIDEO)

    assert asyncio.run(scenario()) == {}
    assert processor.available() is False and processor.process(clips["video.mp4"], VIDEO) == {}
    lines = records(caplog)
    assert len(lines) == 1
    assert "'ffprobe' disabled" in lines[0].getMessage() and "tobs-no-such-ffprobe" in lines[0].getMessage()


def test_other_tool_processors_say_once_what_is_missing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)
    audio = AudioProcessor("tobs-no-such-ffprobe")
    reencode = ReencodeProcessor("tobs-no-such-ffmpeg", "tobs-no-such-ffprobe")
    for _ in range(3):
        assert not audio.available() and not reencode.available()
    assert reencode.reencode(Path("/nonexistent.mp4")) is None
    messages = [r.getMessage() for r in records(caplog)]
    assert len(messages) == 2
    assert "tobs-no-such-ffmpeg" in messages[1] and "tobs-no-such-ffprobe" in messages[1]


# -- image headers ----------------------------------------------------------------------------------

IMAGES = {
    "red.png": (37, 21, b"IHDR"), "red.jpg": (37, 21, b"JFIF"), "red.gif": (37, 21, b"GIF89a"),
    "red.webp": (37, 21, b"VP8 "), "red-lossless.webp": (37, 21, b"VP8L"), "red-alpha.webp": (37, 21, b"VP8X"),
}


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_image_size_comes_from_the_header(clips: dict[str, Path], name: str) -> None:
    width, height, chunk = IMAGES[name]
    data = clips[name].read_bytes()
    assert chunk in data[:32]  # the variant this case is meant to exercise
    assert ImageProcessor().process(clips[name], PHOTO) == {"width": width, "height": height}
    stream = probe(clips[name])["streams"][0]
    assert (stream["width"], stream["height"]) == (width, height)  # ffprobe agrees


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_truncated_images_give_the_right_size_or_nothing(
    clips: dict[str, Path], tmp_path: Path, name: str
) -> None:
    width, height, _ = IMAGES[name]
    data = clips[name].read_bytes()
    target = tmp_path / name
    processor = ImageProcessor()
    for cut in range(min(len(data), 700)):
        target.write_bytes(data[:cut])
        assert processor.process(target, STICKER) in ({}, {"width": width, "height": height}), cut


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload


def test_jpeg_size_is_found_after_large_segments_fill_bytes_and_progressive_frames(tmp_path: Path) -> None:
    sof2 = jpeg_segment(0xC2, bytes([8]) + (1080).to_bytes(2, "big") + (1920).to_bytes(2, "big") + b"\x03" + b"\0" * 9)
    data = (b"\xff\xd8" + jpeg_segment(0xE1, b"Exif\0\0" + os.urandom(65000)) + jpeg_segment(0xC4, b"\0" * 20)
            + b"\xff\xff\xff" + sof2[1:] + b"\xff\xda")
    path = tmp_path / "progressive.jpg"
    path.write_bytes(data)
    assert image_size(path) == (1920, 1080)


def test_unknown_formats_are_debug_and_corrupt_headers_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)
    tgs = tmp_path / "sticker.tgs"
    tgs.write_bytes(b"\x1f\x8b\x08\x00" + b"\0" * 40)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF" + b"\x00" * 40)
    assert ImageProcessor().process(tgs, STICKER) == {}
    assert ImageProcessor().process(corrupt, PHOTO) == {}
    assert ImageProcessor().process(tmp_path / "missing.png", PHOTO) == {}
    lines = [r.getMessage() for r in records(caplog, logging.INFO)]
    assert not records(caplog, logging.WARNING)
    assert len(lines) == 2 and "corrupt.jpg" in lines[0] and "missing.png" in lines[1]


MAGICS = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"RIFF\0\0\0\0WEBPVP8 ", b"RIFF\0\0\0\0WEBPVP8L",
          b"RIFF\0\0\0\0WEBPVP8X"]


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(MAGICS), st.binary(max_size=200))
def test_garbage_images_never_raise(tmp_path: Path, magic: bytes, tail: bytes) -> None:
    path = tmp_path / "garbage.bin"
    path.write_bytes(magic + tail)
    properties = ImageProcessor().process(path, PHOTO)
    assert properties == {} or (properties["width"] > 0 and properties["height"] > 0)


# -- the pool ---------------------------------------------------------------------------------------


class FixedProcessor:
    """Returns fixed properties for some kinds."""

    def __init__(self, name: str, properties: Any, kinds: frozenset[str] = frozenset({"video"})) -> None:
        self.name = name
        self.kinds = kinds
        self.properties = properties
        self.calls = 0

    def available(self) -> bool:
        return True

    def process(self, path: Path, media: MediaRef) -> Any:
        self.calls += 1
        return self.properties


class Gauge:
    """Counts calls running at once, across every processor that shares it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.max_running = 0
        self.max_in_flight = 0


class SlowProcessor(FixedProcessor):
    """Sleeps, recording in its gauge how many calls run at once and how many jobs the pool holds."""

    def __init__(self, name: str = "slow", gauge: Gauge | None = None, delay: float = 0.03) -> None:
        super().__init__(name, {})
        self.gauge = gauge or Gauge()
        self.delay = delay
        self.pool: ProcessorPool | None = None

    def process(self, path: Path, media: MediaRef) -> Any:
        gauge = self.gauge
        with gauge.lock:
            self.calls += 1
            gauge.running += 1
            gauge.max_running = max(gauge.max_running, gauge.running)
            if self.pool is not None:
                gauge.max_in_flight = max(gauge.max_in_flight, self.pool.in_flight)
        time.sleep(self.delay)
        with gauge.lock:
            gauge.running -= 1
        return {self.name: True, "file": path.name}


class RaisingProcessor(FixedProcessor):
    def process(self, path: Path, media: MediaRef) -> Any:
        raise RuntimeError("this processor is broken")


def run_all(pool: ProcessorPool, count: int, media: MediaRef = VIDEO) -> list[dict[str, Any]]:
    async def scenario() -> list[dict[str, Any]]:
        try:
            return list(await asyncio.gather(*(pool.run(Path(f"/v/{i}.mp4"), media) for i in range(count))))
        finally:
            await pool.aclose()

    return asyncio.run(scenario())


def test_one_pool_runs_at_most_max_workers_calls_at_once_across_processors() -> None:
    gauge = Gauge()
    first, second = SlowProcessor("first", gauge), SlowProcessor("second", gauge)
    results = run_all(ProcessorPool([first, second], max_workers=2), 8)
    assert gauge.max_running == 2  # bounded, and the bound is actually used
    assert first.calls == second.calls == 8
    assert [r["file"] for r in results] == [f"{i}.mp4" for i in range(8)]
    assert all(r["first"] and r["second"] for r in results)
    assert not any(t.name.startswith("tobs-processor") for t in threading.enumerate())  # closed: workers gone


def test_backpressure_bounds_the_jobs_held_by_the_pool() -> None:
    slow = SlowProcessor(delay=0.005)
    pool = ProcessorPool([slow], max_workers=1, max_pending=2)
    slow.pool = pool
    assert len(run_all(pool, 20)) == 20
    assert slow.gauge.max_running == 1
    assert 2 <= slow.gauge.max_in_flight <= 3  # 1 running + at most 2 waiting; the queue did fill


def test_a_raising_processor_does_not_break_the_others(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)
    broken = RaisingProcessor("broken", {})
    good = FixedProcessor("good", {"duration": 1.5})
    assert run_all(ProcessorPool([broken, good]), 3) == [{"duration": 1.5}] * 3
    errors = records(caplog, logging.ERROR)
    assert len(errors) == 3 and "'broken'" in errors[0].getMessage() and errors[0].exc_info is not None


def test_properties_merge_in_order_without_overwriting_and_drop_unusable_values(
    caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)
    first = FixedProcessor("first", {"width": 1, "codec": "h264"})
    second = FixedProcessor("second", {"width": 2, "fps": 25.0, "bad": None, "nan": float("nan"), 3: "x"})
    third = FixedProcessor("third", ["not", "a", "mapping"])
    photo_only = FixedProcessor("photo", {"never": True}, kinds=frozenset({"photo"}))
    [merged] = run_all(ProcessorPool([first, second, third, photo_only]), 1)
    assert merged == {"width": 1, "codec": "h264", "fps": 25.0}
    assert photo_only.calls == 0
    assert len(records(caplog, logging.WARNING)) == 2  # one per misbehaving processor


def test_processors_that_replace_the_file_run_after_the_readers() -> None:
    events: list[str] = []

    class Reader(FixedProcessor):
        def process(self, path: Path, media: MediaRef) -> Any:
            time.sleep(0.02)
            events.append(f"read {self.name}")
            return {self.name: True}

    class Writer(FixedProcessor):
        replaces_file = True

        def process(self, path: Path, media: MediaRef) -> Any:
            events.append("write")
            return {"reencoded": True}

    pool = ProcessorPool([Writer("writer", {}), Reader("a", {}), Reader("b", {})], max_workers=4)
    [merged] = run_all(pool, 1)
    assert events[-1] == "write" and sorted(events[:2]) == ["read a", "read b"]
    assert merged == {"a": True, "b": True, "reencoded": True}


def test_a_processor_whose_availability_check_raises_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    class Flaky(FixedProcessor):
        def available(self) -> bool:
            raise OSError("cannot tell")

    pool = ProcessorPool([Flaky("flaky", {"x": 1}), FixedProcessor("good", {"y": 2})])
    assert run_all(pool, 1) == [{"y": 2}]
    assert any("flaky" in r.getMessage() for r in records(caplog, logging.ERROR))


def test_a_closed_pool_refuses_work() -> None:
    async def scenario() -> None:
        pool = ProcessorPool([FixedProcessor("x", {})])
        await pool.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            await pool.run(Path("/v.mp4"), VIDEO)

    asyncio.run(scenario())


def test_the_builtins_run_together_on_real_media(clips: dict[str, Path]) -> None:
    async def scenario() -> list[dict[str, Any]]:
        async with ProcessorPool(load_processors()) as pool:
            return list(await asyncio.gather(
                pool.run(clips["video.mp4"], VIDEO), pool.run(clips["voice.ogg"], VOICE),
                pool.run(clips["red.jpg"], PHOTO), pool.run(clips["red.webp"], STICKER),
            ))

    video, voice, photo, sticker = asyncio.run(scenario())
    assert video["width"] == 320 and "reencoded" not in video  # reencode is off by default
    assert set(voice) == {"duration"}
    assert photo == sticker == {"width": 37, "height": 21}


# -- re-encoding ------------------------------------------------------------------------------------


def test_vaapi_detection_says_unavailable_here_and_logs_once(
    tools: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "renderD128").write_bytes(b"")  # readable and writable, but not a character device
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)
    processor = ReencodeProcessor(render_devices=str(tmp_path / "renderD*"))
    plans = {processor.detect() for _ in range(3)}
    assert plans == {EncoderPlan(vaapi_device=None, cpu_encoder="libx264")}
    lines = [r.getMessage() for r in records(caplog)]
    assert len(lines) == 1 and "VA-API unavailable" in lines[0] and "libx264" in lines[0]


@pytest.fixture
def original(clips: dict[str, Path], tmp_path: Path) -> Path:
    path = tmp_path / "clip.mp4"
    shutil.copyfile(clips["original.mp4"], path)
    return path


def cpu_only(tmp_path: Path) -> ReencodeProcessor:
    return ReencodeProcessor(render_devices=str(tmp_path / "no-dri" / "renderD*"))


def test_reencode_on_the_cpu_replaces_the_file_with_a_smaller_valid_one(original: Path, tmp_path: Path) -> None:
    before = original.stat().st_size
    processor = cpu_only(tmp_path)
    assert processor.process(original, VIDEO) == {"reencoded": True, "original_size": before}
    after = original.stat().st_size
    assert after < before
    data = probe(original)
    video = next(s for s in data["streams"] if s["codec_type"] == "video")
    assert video["codec_name"] == "h264" and (video["width"], video["height"]) == (320, 240)
    assert float(data["format"]["duration"]) == pytest.approx(2.0, abs=0.1)
    assert any(s["codec_type"] == "audio" for s in data["streams"])
    assert data["format"]["tags"]["comment"] == REENCODED_MARKER
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4"]  # no temp file left behind
    assert processor.process(original, VIDEO) == {}  # never re-encoded twice
    assert original.stat().st_size == after


def test_a_failed_verification_keeps_the_original(
    original: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Distrustful(ReencodeProcessor):
        def verify(self, original: Mapping[str, Any], original_size: int, candidate: Path) -> str | None:
            assert candidate.is_file() and candidate.name.startswith(".tobs-tmp-")
            return "forced failure"

    digest = hashlib.sha256(original.read_bytes()).hexdigest()
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)
    processor = Distrustful(render_devices=str(tmp_path / "no-dri" / "renderD*"))
    assert processor.reencode(original) is None
    assert processor.process(original, VIDEO) == {}
    assert hashlib.sha256(original.read_bytes()).hexdigest() == digest
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4"]
    assert any("forced failure" in r.getMessage() for r in records(caplog))


def test_a_failing_vaapi_encode_falls_back_to_the_cpu(
    original: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenGpu(ReencodeProcessor):
        def detect(self) -> EncoderPlan:
            return EncoderPlan(vaapi_device=str(tmp_path / "renderD128"), cpu_encoder="libx264")

    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)
    result = BrokenGpu().reencode(original)
    assert result is not None and result.encoder == "libx264" and result.path == original.absolute()
    assert result.new_size == original.stat().st_size < result.original_size
    assert any("h264_vaapi failed" in r.getMessage() for r in records(caplog, logging.WARNING))


def test_reencode_leaves_files_it_cannot_rename_safely_alone(clips: dict[str, Path], tmp_path: Path) -> None:
    mkv = tmp_path / "clip.mkv"
    shutil.copyfile(clips["video.mp4"], mkv)
    assert cpu_only(tmp_path).reencode(mkv) is None
    assert mkv.read_bytes() == clips["video.mp4"].read_bytes()


def test_the_pool_probes_before_it_reencodes(original: Path, tmp_path: Path) -> None:
    size = original.stat().st_size

    async def scenario() -> dict[str, Any]:
        async with ProcessorPool([cpu_only(tmp_path), FfprobeProcessor()], max_workers=2) as pool:
            return await pool.run(original, VIDEO)

    properties = asyncio.run(scenario())
    assert properties["reencoded"] is True and properties["original_size"] == size
    assert properties["width"] == 320 and properties["duration"] == pytest.approx(2.0, abs=0.1)


# -- plugins ----------------------------------------------------------------------------------------

PLUGIN_MODULE = '''
from pathlib import Path


class Good:
    name = "good"
    kinds = frozenset({"photo"})

    def available(self):
        return True

    def process(self, path, media):
        return {"good": True}


class Misnamed(Good):
    name = "other"


class ListKinds(Good):
    name = "listkinds"
    kinds = ["photo"]


class NoProcess:
    name = "noprocess"
    kinds = frozenset({"photo"})

    def available(self):
        return True


def raising():
    raise RuntimeError("plugin factory exploded")


def exiting():
    raise SystemExit(3)
'''


def entry_point(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "tobs_test_plugins.py").write_text(PLUGIN_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tobs_test_plugins", raising=False)
    return "tobs_test_plugins"


def test_broken_plugins_are_skipped_with_one_error_each(plugin_module: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)
    broken = {
        "missing": "tobs_no_such_module:Thing", "noattr": f"{plugin_module}:DoesNotExist",
        "raising": f"{plugin_module}:raising", "exiting": f"{plugin_module}:exiting",
        "misnamed": f"{plugin_module}:Misnamed", "listkinds": f"{plugin_module}:ListKinds",
        "noprocess": f"{plugin_module}:NoProcess", "ffprobe": f"{plugin_module}:Good",  # a built-in's name
        "syntax": "not a valid value",
    }
    entry_points = [entry_point("good", f"{plugin_module}:Good")]
    entry_points += [entry_point(name, value) for name, value in broken.items()]
    processors = load_processors(entry_points=entry_points)
    assert [p.name for p in processors] == ["ffprobe", "audio", "image", "good"]
    assert isinstance(processors[0], FfprobeProcessor)  # the built-in, not the impostor
    errors = [r.getMessage() for r in records(caplog, logging.ERROR)]
    assert len(errors) == len(broken)
    for name in broken:
        assert sum(f"'{name}'" in message for message in errors) == 1, name


def test_enabled_names_select_processors_before_importing_plugins(
    plugin_module: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)
    entry_points = [entry_point("good", f"{plugin_module}:Good"), entry_point("raising", f"{plugin_module}:raising")]
    processors = load_processors(["good", "reencode", "typo"], entry_points=entry_points)
    assert [p.name for p in processors] == ["reencode", "good"]
    messages = [r.getMessage() for r in records(caplog, logging.WARNING)]
    assert len(messages) == 1 and "typo" in messages[0]  # the raising plugin was never imported


def test_builtins_load_the_same_from_entry_points_or_the_fallback_list() -> None:
    declared = [entry_point(name, value) for name, value in BUILTIN_ENTRY_POINTS.items()]
    from_metadata = load_processors(entry_points=declared * 2)  # installed twice: no conflict
    assert [p.name for p in from_metadata] == ["ffprobe", "audio", "image"]
    assert [type(p) for p in from_metadata] == [type(p) for p in load_processors(entry_points=[])]
    assert [p.name for p in builtin_processors()] == ["ffprobe", "audio", "image", "reencode"]
    assert all(isinstance(p, Processor) for p in builtin_processors())
    assert [p.name for p in load_processors()] == ["ffprobe", "audio", "image"]  # whatever is installed


def test_pyproject_declares_exactly_the_builtin_entry_points() -> None:
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = project.get("entry-points", {}).get(ENTRY_POINT_GROUP)
    if declared is None:
        pytest.skip(f"pyproject.toml declares no [project.entry-points.\"{ENTRY_POINT_GROUP}\"] yet")
    assert declared == BUILTIN_ENTRY_POINTS


def test_an_installed_distribution_declaring_a_processor_is_found(
    plugin_module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist_info = tmp_path / "tobs_fake_plugin-1.0.dist-info"
    dist_info.mkdir()
    metadata = "Metadata-Version: 2.1\nName: tobs-fake-plugin\nVersion: 1.0\n"
    (dist_info / "METADATA").write_text(metadata, encoding="utf-8")
    (dist_info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\ngood = {plugin_module}:Good\n", encoding="utf-8"
    )
    assert [p.name for p in load_processors()] == ["ffprobe", "audio", "image", "good"]
    assert [p.name for p in load_processors(["good"])] == ["good"]
