"""Media properties in notes: what the processors measure, and Telegram's own attributes without them.

End to end against the simulated Telegram, whose files are valid media: with ffmpeg the processors
fill duration, size and codec; with ``media.processors = []`` the note still shows what Telegram
declares (duration, width, height, performer, title).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from telethon.tl import types
from vaultcheck import check_vault

from tobs_sync.app import App
from tobs_sync.cli import main
from tobs_sync.config import load_settings
from tobs_sync.model import MediaRef, Message
from tobs_sync.sim import SimulatedTelegram, parse_spec
from tobs_sync.sources.telegram import TelegramSource
from tobs_sync.views import StoredMedia, message_view

SPEC = "chats=2,messages=60,media=0.5,seed=3"
HAVE_FFMPEG = shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None


@pytest.fixture
def tools() -> None:
    if not HAVE_FFMPEG:
        if os.environ.get("CI"):
            pytest.fail("ffmpeg/ffprobe are required in CI: apt-get install -y ffmpeg")
        pytest.skip("ffmpeg/ffprobe not installed (apt-get install ffmpeg)")


def notes_by_attachment(vault: Path) -> dict[str, list[dict[str, Any]]]:
    """Message notes' properties, grouped by the extension of their first attachment."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for meta in check_vault(vault).metadata.values():
        attachments = meta.get("attachments") or []
        if attachments:
            extension = str(attachments[0]).rstrip("]").rsplit(".", 1)[-1]
            grouped.setdefault(extension, []).append(meta)
    return grouped


def test_sync_simulate_shows_duration_size_and_codec_in_notes(tools: None, vault: Path) -> None:
    assert main(["sync", "--vault", str(vault), "--simulate", SPEC]) == 0
    notes = notes_by_attachment(vault)
    assert {"jpg", "mp4", "ogg"} <= set(notes)
    videos = notes["mp4"]
    assert all(n["codec"] == "h264" and n["duration"] > 0 and n["width"] and n["height"] and n["fps"]
               for n in videos)
    assert {(n["width"], n["height"]) for n in videos} >= {(1280, 720), (720, 1280)}
    # ffprobe's Ogg duration (2.0065 s and more), not Telegram's whole seconds: the processor ran.
    assert all(n["duration"] % 1 for n in notes["ogg"])
    assert all(n["width"] in (1280, 960, 1080) and n["height"] in (1280, 960, 720, 1080) for n in notes["jpg"])


def sync_pass(vault: Path, sim: SimulatedTelegram) -> None:
    async def run() -> None:
        settings = load_settings(vault).telegram
        client = sim.client(raise_last_call_error=True, request_retries=1)
        with App.open(vault) as app:
            async with TelegramSource(client, settings, retry_delay=0.01, peers=app.store) as source:
                await app.sync_source(source)

    asyncio.run(run())


def test_telegram_attributes_reach_note_properties_with_processors_off(vault: Path) -> None:
    config = vault / ".tobs" / "config.toml"
    config.write_text(config.read_text(encoding="utf-8") + "\n[media]\nprocessors = []\n", encoding="utf-8")
    sim = SimulatedTelegram(parse_spec(SPEC))
    chat = sim.chat_ids[0]
    added = {kind: sim.add_message(chat, f"a {kind}", media_kind=kind)
             for kind in ("audio", "video", "voice", "sticker", "round")}
    sync_pass(vault, sim)
    by_id = {(m["tg_chat_id"], m["tg_message_id"]): m for m in check_vault(vault).metadata.values()
             if isinstance(m.get("tg_message_id"), int)}
    assert not any("codec" in m or "fps" in m for m in by_id.values()), "a processor ran"
    for kind, message in added.items():
        properties = by_id[(chat, message.id)]
        attributes = {type(a): a for a in message.media.document.attributes}
        video = attributes.get(types.DocumentAttributeVideo)
        audio = attributes.get(types.DocumentAttributeAudio)
        size = video or attributes.get(types.DocumentAttributeImageSize)
        if size is not None:
            assert (properties["width"], properties["height"]) == (size.w, size.h), kind
        if video is not None or audio is not None:
            assert properties["duration"] == (video or audio).duration, kind
        if kind == "audio":
            assert (properties["performer"], properties["title"]) == (audio.performer, audio.title)
            assert audio.performer and audio.title


def test_processor_values_win_and_telegram_attributes_fill_the_rest() -> None:
    voice = MediaRef("voice", "x", duration=2.0, performer="Ada")
    skipped = MediaRef("video", "y", duration=30.0, width=1280, height=720, title="Not stored")
    message = Message(chat_id=-100, id=7, date=0, media=(voice, skipped))
    stored = [
        StoredMedia(voice, "a/voice.ogg", "stored", properties={"duration": 2.0065, "codec": "opus"}),
        StoredMedia(skipped, None, "skipped", "too large"),
    ]
    view = message_view([message], stored, tz=dt.UTC, reply_path=None, note_path="Telegram/C/7.md")
    assert view["media_properties"] == {
        "duration": 2.0065, "codec": "opus", "performer": "Ada", "width": 1280, "height": 720, "title": "Not stored",
    }
    unprocessed = [dataclasses.replace(stored[0], properties={}), stored[1]]
    view = message_view([message], unprocessed, tz=dt.UTC, reply_path=None, note_path="Telegram/C/7.md")
    assert view["media_properties"]["duration"] == 2.0
