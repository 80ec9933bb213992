"""Duration of voice messages and audio files, read with ffprobe.

The same ffprobe call and parser as :mod:`tobs_sync.processors.ffprobe`; only ``duration`` is
kept (an embedded cover picture is not a property of a song). Without ffprobe the processor is
unavailable (one log line) and voice notes simply get no ``duration`` from the file; Telegram's own
value, when the source has one, is still in the model.

Limits: what ffprobe reports for the container; an Ogg/Opus file cut short reports the shorter time.
"""

from __future__ import annotations

from pathlib import Path

from tobs_sync.model import MediaKind, MediaRef
from tobs_sync.processors.base import Properties, ToolProcessor
from tobs_sync.processors.ffprobe import FFPROBE_TIMEOUT, parse_ffprobe, run_ffprobe


class AudioProcessor(ToolProcessor):
    """``duration`` of voice and audio files."""

    name = "audio"
    kinds = frozenset({MediaKind.VOICE.value, MediaKind.AUDIO.value})

    def __init__(self, ffprobe: str = "ffprobe", *, timeout: float = FFPROBE_TIMEOUT) -> None:
        super().__init__({"ffprobe": ffprobe})
        self.timeout = timeout

    def process(self, path: Path, media: MediaRef) -> Properties:
        if not self.available():
            return {}
        data = run_ffprobe(self.tools["ffprobe"], path, self.timeout)
        if data is None:
            return {}
        duration = parse_ffprobe(data, source=str(path)).get("duration")
        return {} if duration is None else {"duration": duration}
