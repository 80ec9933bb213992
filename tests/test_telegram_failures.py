"""Telegram's awkward answers, end to end: the simulator produces each one by itself (a real Telethon
error class or TL object from the simulated server), the production source meets it unchanged, and a
full sync pass must finish with every other chat and file complete and the failure reported with a reason.

Flood waits met by the source are waited out through its ``sleep`` (a fake clock here); only the
download scheduler's pause after a download flood wait runs on the real clock (one second).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from telethon import functions, types
from telethon.errors import rpc_message_to_error
from vaultcheck import check_vault, vault_differences
from virtualtime import run_virtual

from tobs_sync.app import App
from tobs_sync.config import TelegramSettings, load_settings
from tobs_sync.errors import FloodWait, MediaChanged, SourceError
from tobs_sync.media import MediaCounts
from tobs_sync.model import MediaRef
from tobs_sync.sim import SimulatedTelegram, parse_spec
from tobs_sync.sources.telegram import TelegramSource
from tobs_sync.sources.telegram_convert import media_locator
from tobs_sync.sources.telegram_errors import needs_fresh_reference
from tobs_sync.sync import SyncReport

SPEC = "chats=2,messages=50,media=0.4,seed=3"


class FakeClock:
    """Stands in for ``asyncio.sleep``: records each wait and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


def sync_pass(
    vault: Path, sim: SimulatedTelegram, *, clock: FakeClock | None = None, session_file: Path | None = None,
    virtual_time: bool = False, **telegram: Any,
) -> tuple[SyncReport, MediaCounts]:
    """One pass of the real sync path over ``sim`` (``telegram`` overrides settings); ``virtual_time``:
    on a loop whose clock jumps (the download scheduler's pauses then take no real time)."""
    clock = clock or FakeClock()

    async def run() -> tuple[SyncReport, MediaCounts]:
        settings = dataclasses.replace(load_settings(vault).telegram, **telegram)
        client = sim.client(session_file=session_file, raise_last_call_error=True, request_retries=1)
        with App.open(vault) as app:
            async with TelegramSource(client, settings, retry_delay=0.01, peers=app.store, sleep=clock.sleep) as source:
                return await app.sync_source(source), app.media.counts

    return run_virtual(run()) if virtual_time else asyncio.run(run())


def reference_vault(tmp_path: Path, vault: Path, spec: str = SPEC) -> Path:
    """The vault an uninterrupted, fault-free pass produces."""
    reference = tmp_path / "reference"
    shutil.copytree(vault, reference)
    sync_pass(reference, SimulatedTelegram(parse_spec(spec)))
    return reference


def message_chats(vault: Path) -> set[int]:
    return {meta["tg_chat_id"] for meta in check_vault(vault).metadata.values() if "tg_message_id" in meta}


def attachments(vault: Path) -> list[bytes]:
    folder = vault / "Telegram" / "_attachments"
    return [p.read_bytes() for p in folder.iterdir()] if folder.is_dir() else []


def media_keys(sim: SimulatedTelegram, chat_id: int | None = None) -> list[str]:
    return [sim.file_key(m) for c, m in sim.media_messages() if chat_id is None or c == chat_id]


def video_ref(sim: SimulatedTelegram, chat_id: int, message: Any) -> MediaRef:
    """The media reference the source made for ``message``'s video when it synced it."""
    document = message.media.document
    return MediaRef("video", media_locator(chat_id, message.id, 0), size=document.size,
                    file_key=f"document:{document.id}", dc_id=document.dc_id)


def stored_session_takeout(session_file: Path) -> Any:
    with contextlib.closing(sqlite3.connect(session_file)) as db:
        return db.execute("SELECT takeout_id FROM sessions").fetchone()[0]


# region 1. FLOOD_PREMIUM_WAIT_X on upload.getFile


def test_premium_download_wait_is_a_flood_wait_of_that_dc_and_the_file_resumes() -> None:
    """The speed limit of non-Premium accounts must pause the DC's downloads and be repeated, never
    mark the file unavailable, and must not leave Telethon's flood note that would throttle other DCs."""
    sim = SimulatedTelegram(parse_spec("chats=1,messages=2,media=0,seed=13"))
    chat_id = sim.chat_ids[0]
    big = sim.add_big_file(chat_id, 1_500_000)
    key = sim.file_key(big)
    sim.faults.flood("GetFile", seconds=7, premium=True, after=1)  # the second part is refused
    ref = video_ref(sim, chat_id, big)

    async def scenario() -> bytes:
        client = sim.client(raise_last_call_error=True)
        received = b""
        async with TelegramSource(client, TelegramSettings(), sleep=FakeClock().sleep) as source:
            async for _ in source.chats():
                pass
            with pytest.raises(FloodWait) as caught:
                async for chunk in source.media_chunks(ref, 0):
                    received += chunk
            assert caught.value.seconds == 7
            assert functions.upload.GetFileRequest.CONSTRUCTOR_ID not in client._flood_waited_requests
            async for chunk in source.media_chunks(ref, len(received)):
                received += chunk
        return received

    assert asyncio.run(scenario()) == sim.file_bytes(key)
    assert sim.stats.errors[("GetFile", "FLOOD_PREMIUM_WAIT_7")] == 1
    assert sim.stats.file_bytes[key] == 1_500_000, "no part was fetched twice"


def test_premium_download_waits_during_a_pass_leave_every_file_stored(vault: Path, tmp_path: Path) -> None:
    reference = reference_vault(tmp_path, vault)
    sim = SimulatedTelegram(parse_spec(SPEC))
    for dc in sim.dcs:
        sim.faults.flood("GetFile", seconds=1, dc=dc, premium=True, after=1)
    report, counts = sync_pass(vault, sim, virtual_time=True)
    assert sim.faults.fired["flood"] == len(sim.dcs)
    assert (report.failed, report.deferred) == ([], [])
    assert (counts.failed, counts.unavailable) == (0, 0)
    assert not (difference := vault_differences(vault, reference)), difference


# endregion

# region 2. upload.fileCdnRedirect


def test_cdn_redirect_fails_only_that_file_with_a_reason_and_the_next_pass_fetches_it(
    vault: Path, tmp_path: Path
) -> None:
    reference = reference_vault(tmp_path, vault)
    sim = SimulatedTelegram(parse_spec(SPEC))
    redirected = media_keys(sim)[0]
    sim.faults.cdn_redirect(redirected)
    report, counts = sync_pass(vault, sim)
    assert sim.stats.errors[("GetFile", "fileCdnRedirect")] == 1
    assert report.messages == sum(len(sim.messages(c)) for c in sim.chat_ids)
    assert (report.failed, report.deferred) == ([], [])
    assert counts.failed == 1 and counts.stored > 0
    notes = "\n".join(p.read_text(encoding="utf-8") for p in vault.rglob("*.md"))
    assert "from its CDN" in notes and "will retry" in notes
    _, counts = sync_pass(vault, sim)
    assert counts.failed == 0
    assert not (difference := vault_differences(vault, reference)), difference


# endregion

# region 3. an RPC error while re-fetching a message for its media


def test_channel_turned_private_between_passes_fails_alone_when_its_media_is_retried(vault: Path) -> None:
    sim = SimulatedTelegram(parse_spec("chats=4,messages=30,media=0.4,seed=8"))
    channel = next(c for c in sim.chat_ids if sim.kind(c) == "channel" and media_keys(sim, c))
    for dc in sim.dcs:  # every download of the first pass is put off: all media is left to retry
        sim.faults.flood("GetFile", seconds=3600, dc=dc, times=None)
    _, counts = sync_pass(vault, sim, flood_max_wait_s=60)
    assert counts.stored == 0 and counts.failed > 0
    sim.faults.clear()
    sim.faults.private_channel(channel)  # between the passes the channel turned private
    report, counts = sync_pass(vault, sim)
    assert len(report.failed) == 1
    assert sim.title(channel) in report.failed[0] and "private" in report.failed[0]
    assert counts.stored > 0 and counts.failed > 0
    waiting = {meta.get("tg_chat_id") for path, meta in check_vault(vault).metadata.items()
               if "will retry" in (vault / path).read_text(encoding="utf-8")}
    assert waiting == {channel}, "only the private channel's media is still missing"
    assert message_chats(vault) == set(sim.chat_ids)
    assert check_vault(vault).broken == []


def test_channel_listed_as_forbidden_fails_with_a_reason_and_the_others_sync(vault: Path) -> None:
    sim = SimulatedTelegram(parse_spec("chats=4,messages=30,media=0,seed=8"))
    channel = next(c for c in sim.chat_ids if sim.kind(c) == "channel")
    sim.faults.private_channel(channel)
    report, _ = sync_pass(vault, sim)
    assert report.chats == 4
    assert len(report.failed) == 1 and sim.title(channel) in report.failed[0] and "private" in report.failed[0]
    assert message_chats(vault) == set(sim.chat_ids) - {channel}


# endregion

# region 4. takeout sessions


async def _killed_backfill(sim: SimulatedTelegram, session_file: Path) -> None:
    """A run that opened a takeout and died before finishing it (Telethon had saved the session)."""
    client = sim.client(session_file=session_file)
    await client.get_dialogs()
    await client.takeout(users=True, chats=True, megagroups=True, channels=True).__aenter__()
    client.session.save()
    client.session.close()


def test_takeout_left_open_by_a_killed_run_is_finished_and_the_backfill_uses_a_new_one(
    vault: Path, tmp_path: Path
) -> None:
    session_file = tmp_path / "account.session"
    sim = SimulatedTelegram(parse_spec("chats=2,messages=120,media=0,seed=6"))
    asyncio.run(_killed_backfill(sim, session_file))
    assert sim.open_takeouts() == 1 and stored_session_takeout(session_file) is not None
    report, _ = sync_pass(vault, sim, session_file=session_file, takeout=True)
    assert (report.failed, report.deferred) == ([], [])
    assert report.messages == sum(len(sim.messages(c)) for c in sim.chat_ids)
    assert sum(n for (name, _dc), n in sim.stats.takeout_requests.items() if name == "GetHistory") > 0
    assert sim.stats.count("FinishTakeoutSession") == 2, "the stale takeout and the pass's own"
    assert sim.open_takeouts() == 0
    assert stored_session_takeout(session_file) is None


def test_takeout_ended_by_another_export_falls_back_to_normal_reading_and_is_not_inherited(
    vault: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    session_file = tmp_path / "account.session"
    sim = SimulatedTelegram(parse_spec("chats=2,messages=120,media=0,seed=6"))
    sim.faults.end_takeouts("GetHistory")  # the user starts an export in Telegram Desktop mid-backfill
    with caplog.at_level(logging.WARNING):
        report, _ = sync_pass(vault, sim, session_file=session_file, takeout=True)
    assert (report.failed, report.deferred) == ([], [])
    assert report.messages == sum(len(sim.messages(c)) for c in sim.chat_ids)
    assert sim.stats.errors[("GetHistory", "TAKEOUT_INVALID")] == 1
    assert "another data export" in caplog.text
    assert stored_session_takeout(session_file) is None
    new_chat_backfill = SimulatedTelegram(parse_spec("chats=3,messages=20,media=0,seed=6"))
    report, _ = sync_pass(vault, new_chat_backfill, session_file=session_file, takeout=True)
    assert report.failed == []


def test_takeout_init_delay_reads_history_normally_with_a_clear_warning(
    vault: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sim = SimulatedTelegram(parse_spec("chats=2,messages=40,media=0,seed=6"))
    sim.faults.rpc_error("InitTakeoutSession", 420, "TAKEOUT_INIT_DELAY_86400")
    with caplog.at_level(logging.WARNING):
        report, _ = sync_pass(vault, sim, takeout=True)
    assert report.failed == [] and report.messages == sum(len(sim.messages(c)) for c in sim.chat_ids)
    assert "confirmed in another Telegram app" in caplog.text and "86400" in caplog.text
    assert not sim.stats.takeout_requests


# endregion

# region 5. FILE_REFERENCE_* errors


def test_file_reference_invalid_is_refreshed_like_an_expired_one(vault: Path, tmp_path: Path) -> None:
    reference = reference_vault(tmp_path, vault)
    sim = SimulatedTelegram(parse_spec(SPEC))
    sim.faults.expire_file_reference(times=3, error="FILE_REFERENCE_INVALID")
    _, counts = sync_pass(vault, sim)
    assert sim.stats.errors[("GetFile", "FILE_REFERENCE_INVALID")] == 3
    assert (counts.failed, counts.unavailable) == (0, 0)
    assert not (difference := vault_differences(vault, reference)), difference


@pytest.mark.parametrize("message", ["FILE_REFERENCE_EXPIRED", "FILE_REFERENCE_INVALID", "FILE_REFERENCE_EMPTY",
                                     "FILEREF_UPGRADE_NEEDED", "FILE_REFERENCE_2_EXPIRED"])
def test_every_file_reference_error_asks_for_a_fresh_reference(message: str) -> None:
    request = functions.upload.GetFileRequest(location=None, offset=0, limit=4096)
    error = rpc_message_to_error(types.RpcError(error_code=400, error_message=message), request)
    assert needs_fresh_reference(error)
    other = rpc_message_to_error(types.RpcError(error_code=400, error_message="LOCATION_INVALID"), request)
    assert not needs_fresh_reference(other)


def test_file_replaced_mid_download_starts_over_instead_of_being_spliced(vault: Path) -> None:
    sim = SimulatedTelegram(parse_spec("chats=1,messages=2,media=0,seed=13"))
    chat_id = sim.chat_ids[0]
    big = sim.add_big_file(chat_id, 3_000_000, text="video")
    old_key = sim.file_key(big)
    old_bytes = sim.file_bytes(old_key)
    sim.faults.replace_media(old_key, after_parts=2)  # the message's video is swapped mid-download
    _, counts = sync_pass(vault, sim)
    new_bytes = sim.file_bytes(sim.file_key(sim.message(chat_id, big.id)))
    assert new_bytes != old_bytes
    complete = {hashlib.sha256(old_bytes).digest(), hashlib.sha256(new_bytes).digest()}
    assert all(hashlib.sha256(data).digest() in complete for data in attachments(vault)), "two files were spliced"
    assert counts.failed == 1
    assert any("starts over" in p.read_text(encoding="utf-8") for p in vault.rglob("*.md"))
    _, counts = sync_pass(vault, sim)  # the retry downloads the message's file now, from its first byte
    assert counts.failed == 0
    assert attachments(vault) == [new_bytes]


def test_resuming_a_download_checks_the_message_still_carries_the_same_file() -> None:
    sim = SimulatedTelegram(parse_spec("chats=1,messages=2,media=0,seed=13"))
    chat_id = sim.chat_ids[0]
    big = sim.add_big_file(chat_id, 1_500_000)
    ref = video_ref(sim, chat_id, big)
    sim.faults.replace_media(sim.file_key(big), after_parts=0, error="FILE_REFERENCE_INVALID")

    async def scenario() -> None:
        async with TelegramSource(sim.client(raise_last_call_error=True), TelegramSettings()) as source:
            async for _ in source.chats():
                pass
            with pytest.raises(MediaChanged, match="starts over"):
                async for _ in source.media_chunks(ref, 512 * 1024):  # resuming after a flood wait
                    pass

    asyncio.run(scenario())
    assert sim.stats.errors[("GetFile", "FILE_REFERENCE_INVALID")] == 1


# endregion

# region 6. flood waits while listing dialogs


def test_flood_wait_while_listing_dialogs_resumes_at_the_refused_page(vault: Path) -> None:
    sim = SimulatedTelegram(parse_spec("chats=230,messages=1,media=0,seed=2"))
    sim.faults.flood("GetDialogs", seconds=5, after=1)  # the second page is refused once
    clock = FakeClock()

    async def scenario() -> list[int]:
        client = sim.client(raise_last_call_error=True)
        async with TelegramSource(client, TelegramSettings(), sleep=clock.sleep) as source:
            return [chat.id async for chat in source.chats()]

    listed = asyncio.run(scenario())
    assert listed == sim.chat_ids
    assert clock.waits == [5]
    assert sim.stats.count("GetDialogs") == 4, "three pages and the refused one again, not a restart"
    assert sim.stats.errors[("GetDialogs", "FLOOD_WAIT_5")] == 1


def test_dialog_flood_wait_over_the_limit_fails_the_listing_naming_the_wait(vault: Path) -> None:
    sim = SimulatedTelegram(parse_spec("chats=120,messages=1,media=0,seed=2"))
    sim.faults.flood("GetDialogs", seconds=7200, after=1)

    async def scenario() -> None:
        async with TelegramSource(sim.client(raise_last_call_error=True), TelegramSettings()) as source:
            async for _ in source.chats():
                pass

    with pytest.raises(SourceError, match="listing chats: Telegram asks to wait 7200 s"):
        asyncio.run(scenario())


def test_a_stalled_dialog_page_times_out_alone_and_the_listing_resumes_there(vault: Path) -> None:
    """The deadline is per request: the page that hangs is abandoned and asked again; the pages before
    it are not fetched twice."""
    sim = SimulatedTelegram(parse_spec("chats=230,messages=1,media=0,seed=2"))
    sim.faults.stall("GetDialogs", after=2)  # the third page never answers

    async def scenario() -> list[int]:
        settings = TelegramSettings(request_timeout_s=0.05)
        async with TelegramSource(sim.client(raise_last_call_error=True), settings, retry_delay=0.0,
                                  sleep=FakeClock().sleep) as source:
            return [chat.id async for chat in source.chats()]

    assert asyncio.run(scenario()) == sim.chat_ids
    assert sim.stats.count("GetDialogs") == 4


# endregion
