"""Media in the vault: attachment folder modes, dedup across chats, filters and limits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import subprocess
from collections.abc import Hashable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import SAMPLE_EXPORT
from telethon.tl import types
from vaultcheck import check_vault

from tobs_sync.app import App, import_export
from tobs_sync.config import load_settings
from tobs_sync.media import attachment_folder, extension_for, inert_name
from tobs_sync.model import MediaRef
from tobs_sync.sim import SimulatedTelegram, parse_spec
from tobs_sync.sources.telegram import TelegramSource
from tobs_sync.workers import Job


def attachments_in(vault: Path) -> list[str]:
    return sorted(
        p.relative_to(vault).as_posix() for p in vault.rglob("*")
        if p.is_file() and p.suffix in (".png", ".txt") and ".tobs" not in p.parts
    )


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("/", ["Field Notes-2024-03-01-3.png", "Field Notes-2024-03-01-4.png", "reading-list.md.txt"]),
        ("Media/Telegram", ["Media/Telegram/Field Notes-2024-03-01-3.png",
                            "Media/Telegram/Field Notes-2024-03-01-4.png", "Media/Telegram/reading-list.md.txt"]),
        ("./", ["Telegram/Field Notes/Field Notes-2024-03-01-3.png",
                "Telegram/Field Notes/Field Notes-2024-03-01-4.png", "Telegram/Field Notes/reading-list.md.txt"]),
        ("./assets", ["Telegram/Field Notes/assets/Field Notes-2024-03-01-3.png",
                      "Telegram/Field Notes/assets/Field Notes-2024-03-01-4.png",
                      "Telegram/Field Notes/assets/reading-list.md.txt"]),
    ],
)
def test_obsidian_attachment_folder_modes_give_resolving_embeds(vault: Path, setting: str, expected: list[str]) -> None:
    (vault / ".obsidian").mkdir()
    (vault / ".obsidian" / "app.json").write_text(json.dumps({"attachmentFolderPath": setting}), encoding="utf-8")
    asyncio.run(import_export(vault, SAMPLE_EXPORT))
    checked = check_vault(vault)
    assert checked.broken == []
    embeds = sum(p.read_text(encoding="utf-8").count("![[") for p in vault.rglob("*.md"))
    assert embeds >= 3
    assert attachments_in(vault) == expected


def test_app_json_without_the_key_means_the_vault_root(vault: Path) -> None:
    (vault / ".obsidian").mkdir()
    (vault / ".obsidian" / "app.json").write_text("{}", encoding="utf-8")
    asyncio.run(import_export(vault, SAMPLE_EXPORT))
    assert "reading-list.md.txt" in attachments_in(vault)


def test_config_overrides_obsidian(vault: Path) -> None:
    (vault / ".obsidian").mkdir()
    (vault / ".obsidian" / "app.json").write_text(json.dumps({"attachmentFolderPath": "/"}), encoding="utf-8")
    config = vault / ".tobs" / "config.toml"
    config.write_text(config.read_text(encoding="utf-8").replace("[vault]", '[vault]\nattachments = "Files"'))
    asyncio.run(import_export(vault, SAMPLE_EXPORT))
    assert all(p.startswith("Files/") for p in attachments_in(vault))
    assert check_vault(vault).broken == []


def test_kinds_and_size_limits_skip_files_and_say_so(vault: Path) -> None:
    config = vault / ".tobs" / "config.toml"
    config.write_text(config.read_text(encoding="utf-8") + '[media]\nkinds = ["photo"]\nmax_mb = { photo = 0.0001 }\n')
    _report, counts = asyncio.run(import_export(vault, SAMPLE_EXPORT))
    assert counts.stored == 0
    assert counts.skipped == 5
    note = (vault / "Telegram/Field Notes/2024-03-01 3.md").read_text(encoding="utf-8")
    assert "not stored: larger than 0.0001 MB (media.max\\_mb.photo)" in note
    document = (vault / "Telegram/Field Notes/2024-03-02 7.md").read_text(encoding="utf-8")
    assert "document files are not stored (media.kinds)" in document
    assert check_vault(vault).broken == []


def test_same_file_posted_in_three_chats_and_forwarded_twice_is_downloaded_once(vault: Path) -> None:
    sim = SimulatedTelegram(parse_spec("chats=3,messages=5,media=0,seed=30"))
    chats = sim.chat_ids
    original = sim.add_message(chats[0], "the picture", media_kind="photo")
    photo = original.media
    reposts = [sim.add_message(chat, "again", media_kind="photo") for chat in chats[1:]]
    forwards = [sim.add_message(chat, f"fwd {n}", media_kind="photo") for n, chat in enumerate(chats[1:])]
    for message in [*reposts, *forwards]:
        message.media = photo  # the same Telegram photo (same id) posted again and forwarded

    async def run() -> tuple[int, int]:
        async with TelegramSource(sim.client(raise_last_call_error=True), load_settings(vault).telegram) as source:
            with App.open(vault) as app:
                await app.sync_source(source)
                return app.media.counts.stored, app.media.counts.deduplicated

    stored, deduplicated = asyncio.run(run())
    assert sim.stats.file_downloads[sim.file_key(photo)] == 1
    assert sum(sim.stats.file_downloads.values()) == 1
    assert stored == 1 and deduplicated == 4
    embeds = {line for p in vault.rglob("*.md") for line in p.read_text(encoding="utf-8").splitlines()
              if line.startswith("![[")}
    assert len(embeds) == 1
    assert check_vault(vault).broken == []


@pytest.mark.parametrize(
    ("rule", "note", "folder"),
    [("", "A/n.md", ""), ("/", "A/n.md", ""), ("./", "A/B/n.md", "A/B"), ("./sub/", "A/n.md", "A/sub"),
     ("Media", "A/n.md", "Media"), ("/Media/x/", "n.md", "Media/x"), (".", "n.md", "")],
)
def test_attachment_folder_rules(rule: str, note: str, folder: str) -> None:
    assert attachment_folder(rule, note) == folder


def test_names_for_files_without_a_name() -> None:
    assert extension_for(MediaRef("photo", "x")) == ".jpg"
    assert extension_for(MediaRef("voice", "x", mime_type="audio/ogg")) == ".ogg"
    assert extension_for(MediaRef("document", "x", mime_type="application/pdf")) == ".pdf"
    assert extension_for(MediaRef("hologram", "x")) == ".bin"
    assert inert_name("notes.MD") == "notes.MD.txt"
    assert inert_name("script.js") == "script.js.txt"
    assert inert_name("photo.jpg") == "photo.jpg"


def test_reencoded_video_replaces_the_stored_file_and_the_index_size(vault: Path, tmp_path: Path) -> None:
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        if os.environ.get("CI"):
            pytest.fail("ffmpeg/ffprobe are required in CI: apt-get install -y ffmpeg")
        pytest.skip("ffmpeg/ffprobe not installed")
    export = tmp_path / "export"
    (export / "video_files").mkdir(parents=True)
    clip = export / "video_files" / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=duration=2:size=320x240:rate=25",
         "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv444p", str(clip)],
        check=True,
    )
    original_size = clip.stat().st_size
    (export / "result.json").write_text(json.dumps({"name": "Clips", "type": "personal_chat", "id": 42, "messages": [
        {"id": 1, "type": "message", "date_unixtime": "1709284500", "text": "a clip", "file": "video_files/clip.mp4",
         "file_name": "clip.mp4", "media_type": "video_file", "mime_type": "video/mp4"}]}), encoding="utf-8")
    config = vault / ".tobs" / "config.toml"
    config.write_text(config.read_text(encoding="utf-8") + '[media]\nprocessors = ["ffprobe", "reencode"]\n')
    asyncio.run(import_export(vault, export))
    stored = vault / "Telegram" / "_attachments" / "clip.mp4"
    assert stored.stat().st_size < original_size
    note = (vault / "Telegram/Clips/2024-03-01 1.md").read_text(encoding="utf-8")
    assert "reencoded: true" in note and f"original_size: {original_size}" in note
    assert "width: 320" in note
    with App.open(vault) as app:
        assert app.store.media_count() == (1, stored.stat().st_size)
    assert check_vault(vault).broken == []


class ReversedOrder:
    """A download scheduler that runs a batch's jobs one by one, last submitted first."""

    async def run_all(self, jobs: Sequence[Job[Any]]) -> dict[Hashable, Any]:
        results: dict[Hashable, Any] = {}
        for job in reversed(jobs):
            try:
                results[job.key] = await job.run()
            except Exception as exc:
                results[job.key] = exc
        return results


def test_identical_files_in_one_batch_are_named_after_the_first_message_whatever_finishes_first(
    vault: Path,
) -> None:
    """Two Telegram documents with identical bytes in one batch: the file is stored once, under the
    name of the first message's document, even when the second download finishes first (a storm of
    SIGKILLs once gave a vault different from an uninterrupted run because of this)."""
    sim = SimulatedTelegram(parse_spec("chats=1,messages=3,media=0,seed=31"))
    chat = sim.chat_ids[0]
    date = datetime(2024, 3, 1, tzinfo=UTC)
    twins = [sim._account.store.twin_document(9_000_000 + n, random.Random(5), date) for n in (101, 202)]
    for n, twin in enumerate(twins):
        sim.add_message(chat, f"twin {n}").media = types.MessageMediaDocument(document=twin)

    async def run() -> None:
        async with TelegramSource(sim.client(raise_last_call_error=True), load_settings(vault).telegram) as source:
            with App.open(vault, scheduler=ReversedOrder()) as app:  # type: ignore[arg-type]
                await app.sync_source(source)

    asyncio.run(run())
    stored = [p.name for p in (vault / "Telegram" / "_attachments").iterdir()]
    assert stored == [twins[0].attributes[0].file_name]
    assert check_vault(vault).broken == []


def open_files_below(folder: Path) -> list[str]:
    links = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
    return [link for link in links if link.startswith(str(folder))]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_downloads_of_a_data_centre_given_up_leave_no_temp_file_and_no_open_descriptor(vault: Path) -> None:
    sim = SimulatedTelegram(parse_spec("chats=2,messages=40,media=0.4,seed=3"))
    dc = max(sim.file_dc(sim.file_key(message)) for _chat, message in sim.media_messages())
    sim.faults.flood_downloads(dc, every_n=1, seconds=3600)  # more than flood_max_wait_s: the DC is given up

    async def run() -> tuple[int, list[Path], list[str]]:
        async with TelegramSource(sim.client(raise_last_call_error=True), load_settings(vault).telegram) as source:
            with App.open(vault) as app:
                await app.sync_source(source)
                return app.media.counts.failed, list(vault.rglob(".tobs-tmp-*")), open_files_below(vault)

    failed, temp_files, open_files = asyncio.run(run())
    assert failed > 0, "some downloads were given up"
    assert temp_files == []
    assert [f for f in open_files if ".tobs-tmp-" in f] == []
