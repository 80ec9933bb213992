"""Video properties from ffprobe: duration, size, frame rate, codec, display aspect, rotation.

:func:`run_ffprobe` runs ``ffprobe -v error -print_format json -show_streams -show_format`` on one
file, never through a shell, with a timeout, on an absolute ``file:`` URL (so a name starting with
``-`` cannot become an option and a name like ``http:...`` or ``concat:...`` cannot select another
protocol). :func:`parse_ffprobe` turns its JSON into properties; it is pure and is what the tests
feed real and hostile ffprobe outputs to.

Rules of the parser:

- the video stream is the first ``codec_type == "video"`` stream that is not cover art
  (``disposition.attached_pic``), so an MP3/FLAC picture is never taken as a video size;
- ``duration`` is ``format.duration``, else that video stream's, else the first audio stream's,
  else any stream's; in seconds, rounded to 3 decimals;
- ``fps`` is ``avg_frame_rate``, falling back to ``r_frame_rate``, parsed by
  :func:`parse_frame_rate` (a strict pattern, then :class:`fractions.Fraction`; never ``eval``);
  rounded to 3 decimals. ``0/0``, ``N/A`` and ``""`` are ffprobe's "unknown" and fall back
  silently; anything else unusable costs one warning per file;
- with a non-square ``sample_aspect_ratio`` the result also has ``display_aspect`` (``"16:9"``)
  and ``display_width``; a ±90° display rotation swaps ``width``/``height`` (the displayed size,
  as Telegram reports it) and adds ``rotation``;
- ``codec`` is the video stream's codec, else the first audio stream's.

Limits: only values ffprobe itself reports; Matroska ``tags.DURATION`` strings are not read; no
decoding, so a file whose header lies is believed.
"""

from __future__ import annotations

import json
import re
import subprocess  # nosec B404  # justified: fixed argument lists, never a shell
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

from tobs_sync.model import MediaKind, MediaRef
from tobs_sync.processors.base import LOGGER, Properties, PropertyValue, ToolProcessor

FFPROBE_TIMEOUT = 30.0
MAX_FPS = 1000
"""Frame rates at or above this are time-base artefacts (``90000/1``), not frame rates."""
MAX_DURATION = 1e7
"""About 115 days; longer durations are garbage."""
MAX_DIMENSION = 1 << 16
_MAX_RATE_TEXT = 40
_RATE = re.compile(r"[0-9]{1,12}(?:/[0-9]{1,12})?|[0-9]{1,9}\.[0-9]{1,9}", re.ASCII)
_RATIO = re.compile(r"([0-9]{1,9}):([0-9]{1,9})", re.ASCII)
_DECIMAL = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,12})?", re.ASCII)
_UNKNOWN_RATES = frozenset({"", "0/0", "N/A"})


def parse_frame_rate(text: object) -> float | None:
    """``"24000/1001"`` -> ``23.976``; ``None`` for anything that is not a plausible frame rate.

    Accepts ``N``, ``N/D`` and ``N.M`` (ASCII digits, surrounding whitespace ignored) whose value
    is above 0 and below :data:`MAX_FPS` after rounding to 3 decimals. Never raises, never
    evaluates anything: the text must match a strict pattern before ``Fraction`` sees it.
    """
    if not isinstance(text, str) or len(text) > _MAX_RATE_TEXT:
        return None
    text = text.strip()
    if _RATE.fullmatch(text) is None:
        return None
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None
    if not 0 < value < MAX_FPS:
        return None
    fps = round(float(value), 3)
    return fps if fps > 0 else None


def parse_duration(value: object) -> float | None:
    """A duration in seconds (``"12.500000"`` or a number) rounded to 3 decimals, or ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 30 or _DECIMAL.fullmatch(text) is None:
            return None
        number = float(text)
    elif isinstance(value, int | float):
        number = float(value)
    else:
        return None
    if not 0 < number <= MAX_DURATION:  # also rejects nan
        return None
    seconds = round(number, 3)
    return seconds if seconds > 0 else None


def parse_ffprobe(data: object, source: str = "ffprobe output") -> dict[str, PropertyValue]:
    """Properties from ffprobe's ``-show_streams -show_format`` JSON (already decoded).

    Never raises: missing, mistyped or hostile fields are skipped; at most one frame-rate warning
    (naming ``source``) is logged per call.
    """
    if not isinstance(data, Mapping):
        LOGGER.warning("%s: ffprobe output is not a JSON object; ignored", source)
        return {}
    raw_streams = data.get("streams")
    streams = [s for s in raw_streams if isinstance(s, Mapping)] if isinstance(raw_streams, list) else []
    fmt = data.get("format")
    fmt = fmt if isinstance(fmt, Mapping) else {}
    video = next((s for s in streams if s.get("codec_type") == "video" and not _is_cover_art(s)), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)

    properties: dict[str, PropertyValue] = {}
    candidates = [fmt, video, audio, *streams]
    duration = next((d for s in candidates if s is not None and (d := parse_duration(s.get("duration")))), None)
    if duration is not None:
        properties["duration"] = duration
    if video is not None:
        properties.update(_video_properties(video, source))
    codec = _codec(video) or _codec(audio)
    if codec:
        properties["codec"] = codec
    return properties


def _is_cover_art(stream: Mapping[str, Any]) -> bool:
    disposition = stream.get("disposition")
    return isinstance(disposition, Mapping) and disposition.get("attached_pic") in (1, True, "1")


def _codec(stream: Mapping[str, Any] | None) -> str | None:
    if stream is None:
        return None
    codec = stream.get("codec_name")
    if isinstance(codec, str) and 0 < len(codec) <= 64 and codec.isprintable():
        return codec
    return None


def _dimension(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_DIMENSION:
        return value
    return None


def _video_properties(video: Mapping[str, Any], source: str) -> dict[str, PropertyValue]:
    properties: dict[str, PropertyValue] = {}
    width, height = _dimension(video.get("width")), _dimension(video.get("height"))
    if width and height:
        rotation = _rotation(video)
        aspect = _display_aspect(video.get("sample_aspect_ratio"), width, height)
        if aspect is not None:
            properties["display_aspect"] = f"{aspect.numerator}:{aspect.denominator}"
            properties["display_width"] = round(height * aspect)
        if rotation is not None:
            properties["rotation"] = rotation
            if rotation % 180:
                width, height = height, width
        properties["width"], properties["height"] = width, height
    fps = _frame_rate(video, source)
    if fps is not None:
        properties["fps"] = fps
    return properties


def _frame_rate(video: Mapping[str, Any], source: str) -> float | None:
    texts = {key: video.get(key) for key in ("avg_frame_rate", "r_frame_rate")}
    rates = {key: parse_frame_rate(text) for key, text in texts.items()}
    fps = rates["avg_frame_rate"] or rates["r_frame_rate"]
    unusable = [
        f"{key}={_show(text)}"
        for key, text in texts.items()
        if rates[key] is None and not (text is None or (isinstance(text, str) and text.strip() in _UNKNOWN_RATES))
    ]
    if fps is None:
        LOGGER.warning("%s: no usable frame rate (%s)", source, ", ".join(f"{k}={_show(t)}" for k, t in texts.items()))
    elif unusable:
        LOGGER.warning("%s: ignored unusable %s", source, ", ".join(unusable))
    return fps


def _show(value: object) -> str:
    """A value for a log line: repr (control characters escaped), cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _display_aspect(sar_text: object, width: int, height: int) -> Fraction | None:
    if not isinstance(sar_text, str):
        return None
    match = _RATIO.fullmatch(sar_text.strip())
    if match is None or int(match[1]) == 0 or int(match[2]) == 0:
        return None  # "0:1" and "N/A" mean unknown
    sar = Fraction(int(match[1]), int(match[2]))
    if sar == 1 or not Fraction(1, 100) < sar < 100:
        return None
    return Fraction(width, height) * sar


def _rotation(video: Mapping[str, Any]) -> int | None:
    """The display rotation in degrees when it is a non-zero multiple of 90 (side data or old tag)."""
    values: list[object] = []
    side_data = video.get("side_data_list")
    if isinstance(side_data, list):
        values += [item.get("rotation") for item in side_data if isinstance(item, Mapping)]
    tags = video.get("tags")
    if isinstance(tags, Mapping):
        values.append(tags.get("rotate"))
    for value in values:
        if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,4}", value.strip(), re.ASCII):
            value = int(value)
        if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) <= 3600:
            degrees = int(value)
            if degrees == value and degrees % 90 == 0 and degrees % 360:
                return degrees
    return None


def file_url(path: Path) -> str:
    """``path`` as an ffmpeg ``file:`` URL of its absolute path (no option or protocol injection)."""
    return "file:" + str(path.absolute())


def run_ffprobe(ffprobe: str, path: Path, timeout: float = FFPROBE_TIMEOUT) -> dict[str, Any] | None:
    """ffprobe's JSON for ``path``, or ``None`` after one warning naming the file.

    ``ffprobe`` is the program (an absolute path from :meth:`ToolProcessor.available`).
    """
    command = [ffprobe, "-v", "error", "-print_format", "json", "-show_streams", "-show_format", file_url(path)]
    try:
        # A fixed argument list, no shell; the file is a file: URL of an absolute path.
        result = subprocess.run(  # noqa: S603  # nosec B603
            command, shell=False, timeout=timeout, capture_output=True, stdin=subprocess.DEVNULL, check=False
        )
    except subprocess.TimeoutExpired:
        LOGGER.warning("ffprobe gave up on %s after %.0f s", path, timeout)
        return None
    except OSError as exc:
        LOGGER.warning("cannot run ffprobe on %s: %s", path, exc)
        return None
    if result.returncode != 0:
        LOGGER.info("ffprobe cannot read %s: %s", path, _last_line(result.stderr) or f"exit {result.returncode}")
        return None
    try:
        data = json.loads(result.stdout.decode("utf-8", errors="replace"))
    except ValueError as exc:
        LOGGER.warning("ffprobe printed unreadable JSON for %s: %s", path, exc)
        return None
    if not isinstance(data, dict):
        LOGGER.warning("ffprobe printed no JSON object for %s", path)
        return None
    return data


def _last_line(output: bytes) -> str:
    lines = [line.strip() for line in output.decode("utf-8", errors="replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


class FfprobeProcessor(ToolProcessor):
    """Duration, size, frame rate and codec of videos, animations and video notes."""

    name = "ffprobe"
    kinds = frozenset({MediaKind.VIDEO.value, MediaKind.ANIMATION.value, MediaKind.VIDEO_NOTE.value})

    def __init__(self, ffprobe: str = "ffprobe", *, timeout: float = FFPROBE_TIMEOUT) -> None:
        super().__init__({"ffprobe": ffprobe})
        self.timeout = timeout

    def probe(self, path: Path) -> dict[str, Any] | None:
        """ffprobe's raw JSON for ``path`` (``None`` when unavailable or unreadable, warned)."""
        if not self.available():
            return None
        return run_ffprobe(self.tools["ffprobe"], path, self.timeout)

    def process(self, path: Path, media: MediaRef) -> Properties:
        data = self.probe(path)
        return {} if data is None else parse_ffprobe(data, source=str(path))
