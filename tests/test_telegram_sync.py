"""The Telethon source end to end, against the simulated Telegram (a real TelegramClient).

Everything here runs the production code path: TelegramSource drives Telethon's own paging,
flood handling, DC borrowing and downloads; only the network senders are the simulator's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import shutil
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from crashing import CrashingStore, CrashingVault, install
from vaultcheck import check_vault, note_ids, vault_differences, vault_files

from tobs_sync.app import App, import_export, sync_telegram
from tobs_sync.chat_rules import chat_selected
from tobs_sync.config import TelegramSettings, load_settings
from tobs_sync.errors import SourceError
from tobs_sync.media import MediaCounts
from tobs_sync.model import Chat, MediaRef, Message
from tobs_sync.sim import SimulatedTelegram, parse_spec
from tobs_sync.sources.telegram import TelegramSource
from tobs_sync.sources.telegram_downloads import part_size
from tobs_sync.sync import SyncReport

SPEC = "chats=3,messages=150,media=0.3,seed=3"
FAULT_SPEC = "chats=2,messages=50,media=0.4,seed=3"
CRASH_SPEC = "chats=2,messages=60,media=0.4,seed=3"


def sync_pass(vault: Path, sim: SimulatedTelegram, **telegram: Any) -> tuple[SyncReport, MediaCounts]:
    """One pass of the real sync path over ``sim`` (fast retries; ``telegram`` overrides settings)."""

    async def run() -> tuple[SyncReport, MediaCounts]:
        settings = dataclasses.replace(load_settings(vault).telegram, **telegram)
        client = sim.client(raise_last_call_error=True, request_retries=1)
        with App.open(vault) as app:
            async with TelegramSource(client, settings, retry_delay=0.01, peers=app.store) as source:
                return await app.sync_source(source), app.media.counts

    return asyncio.run(run())


def configure(vault: Path, extra: str) -> None:
    config = vault / ".tobs" / "config.toml"
    config.write_text(config.read_text(encoding="utf-8") + extra, encoding="utf-8")


def reference_vault(tmp_path: Path, vault: Path, spec: str = SPEC) -> Path:
    """The vault an uninterrupted, fault-free pass produces."""
    reference = tmp_path / "reference"
    shutil.copytree(vault, reference)
    sync_pass(reference, SimulatedTelegram(parse_spec(spec)))
    return reference


def test_simulated_account_syncs_into_a_valid_vault(vault: Path) -> None:
    sim = SimulatedTelegram(parse_spec(SPEC))
    report, counts = sync_pass(vault, sim)
    all_ids = {(chat_id, m.id) for chat_id in sim.chat_ids for m in sim.messages(chat_id)}
    assert report.chats == 3
    assert report.messages == len(all_ids)
    assert report.deferred == [] and report.failed == []
    checked = check_vault(vault)
    assert checked.broken == []
    assert set(note_ids(vault)) == all_ids
    assert max(note_ids(vault).values()) == 1
    metadata = list(checked.metadata.values())
    assert any(isinstance(m.get("tg_message_id"), list) for m in metadata), "an album became one note"
    assert any("forwarded_from" in m for m in metadata)
    assert any("reply_to" in m for m in metadata)
    assert counts.failed == 0
    # every distinct file was downloaded exactly once, whatever number of chats posted it
    assert sim.stats.file_downloads and set(sim.stats.file_downloads.values()) == {1}
    attachments = [p for p in (vault / "Telegram" / "_attachments").iterdir()]
    assert len(attachments) == counts.stored


def test_second_pass_writes_nothing(vault: Path) -> None:
    sim = SimulatedTelegram(parse_spec(SPEC))
    sync_pass(vault, sim)
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in vault.rglob("*.md")}
    downloads = sum(sim.stats.file_requests.values())
    report, _ = sync_pass(vault, sim)
    assert (report.messages, report.notes_written) == (0, 0)
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in vault.rglob("*.md")} == before
    assert sum(sim.stats.file_requests.values()) == downloads
    assert sim.stats.count("GetFile") == downloads


def test_a_batch_read_again_after_a_crash_before_its_commit_changes_nothing(vault: Path, tmp_path: Path) -> None:
    """The state a crash between a batch's renames and its commit leaves: notes on disk, their rows
    holding only the intended hashes, the cursor where it was. The next pass reads that batch again:
    the notes already written must stay as they are (not rewritten, no conflict), and an album must
    not gain its members twice."""
    reference = reference_vault(tmp_path, vault, CRASH_SPEC)
    sync_pass_dying_at_commit(vault, SimulatedTelegram(parse_spec(CRASH_SPEC)), commits_before_crash=1)
    written = message_note_stamps(vault)
    with App.open(vault) as app:
        assert [r for r in app.store.notes() if r.intended_hash is not None], "the crash left intents behind"
    sync_pass(vault, SimulatedTelegram(parse_spec(CRASH_SPEC)))
    assert written, "the crash came after some notes were renamed into place"
    assert {p: stamp for p, stamp in message_note_stamps(vault).items() if p in written} == written, "not rewritten"
    assert not (difference := vault_differences(vault, reference)), difference
    assert max(note_ids(vault).values()) == 1
    with App.open(vault) as app:
        assert app.store.conflicts() == []


def message_note_stamps(vault: Path) -> dict[Path, tuple[int, int]]:
    """Inode and mtime of every message note (a chat's own note is named after its folder)."""
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in vault.rglob("*.md") if p.stem != p.parent.name}


def sync_pass_dying_at_commit(vault: Path, sim: SimulatedTelegram, commits_before_crash: int) -> None:
    async def run() -> None:
        client = sim.client(raise_last_call_error=True, request_retries=1)
        with App.open(vault) as app:
            install(app, app.vault, CrashingStore(app.store, commits_before_crash))
            async with TelegramSource(client, load_settings(vault).telegram, peers=app.store) as source:
                await app.sync_source(source)

    with contextlib.suppress(SystemExit):
        asyncio.run(run())


def crashing_pass(vault: Path, sim: SimulatedTelegram, renames_before_crash: int) -> CrashingVault:
    """A pass whose process "dies" just before its rename number ``renames_before_crash + 1``."""
    crashing = CrashingVault(vault, renames_before_crash)

    async def run() -> None:
        client = sim.client(raise_last_call_error=True, request_retries=1)
        with App.open(vault) as app:
            install(app, crashing)
            async with TelegramSource(client, load_settings(vault).telegram, peers=app.store) as source:
                await app.sync_source(source)

    with contextlib.suppress(SystemExit):
        asyncio.run(run())
    return crashing


@pytest.mark.slow
def test_crash_before_any_rename_twice_then_a_pass_gives_the_uninterrupted_vault(vault: Path, tmp_path: Path) -> None:
    """Deterministic crash points spread over a whole pass (notes, albums, attachments, chat notes):
    die before rename k + 1, again k renames into the next run (if that many remain), then finish;
    compare with a clean run."""
    reference = tmp_path / "reference"
    shutil.copytree(vault, reference)
    total = crashing_pass(reference, SimulatedTelegram(parse_spec(CRASH_SPEC)), 10**9).renames_done
    assert any(isinstance(m.get("tg_message_id"), list) for m in check_vault(reference).metadata.values())
    for k in sorted({0, 1, total - 1, *range(total // 9, total, total // 9)}):
        attempt = tmp_path / f"crash-{k}"
        shutil.copytree(vault, attempt)
        crashed = crashing_pass(attempt, SimulatedTelegram(parse_spec(CRASH_SPEC)), k)
        assert crashed.renames_left == 0, f"the pass finished before rename {k + 1}"
        crashing_pass(attempt, SimulatedTelegram(parse_spec(CRASH_SPEC)), k)  # dies again if k renames remain
        crashing_pass(attempt, SimulatedTelegram(parse_spec(CRASH_SPEC)), 10**9)
        assert not (difference := vault_differences(attempt, reference)), f"crash before rename {k + 1}:\n{difference}"
        assert max(note_ids(attempt).values()) == 1
        assert not list(attempt.rglob(".tobs-tmp-*"))


def test_a_long_lived_app_sees_files_added_between_its_passes(vault: Path) -> None:
    """The agent keeps one app open across passes: a file the user adds in a chat folder, named like
    the next note but for letter case (one note to Obsidian), must push that note to a new name."""
    sim = SimulatedTelegram(parse_spec("chats=1,messages=5,media=0,seed=4"))
    chat_id = sim.chat_ids[0]

    async def run() -> None:
        with App.open(vault) as app:
            async with TelegramSource(sim.client(raise_last_call_error=True), TelegramSettings()) as source:
                await app.sync_source(source)
            state = app.store.chat_state(chat_id)
            assert state is not None
            new = sim.add_message(chat_id, "after the user's file")
            users = vault / "Telegram" / state.folder / f"{new.date:%Y-%m-%d} {new.id}.MD"
            users.write_text("the user's own note", encoding="utf-8")
            async with TelegramSource(sim.client(raise_last_call_error=True), TelegramSettings()) as source:
                await app.sync_source(source)
            row = app.store.note_of_message(chat_id, new.id)
            assert row is not None and row.path.endswith(f"{new.date:%Y-%m-%d} {new.id} 2.md")
            assert users.read_text(encoding="utf-8") == "the user's own note"

    asyncio.run(run())


def test_new_messages_appear_on_the_next_pass_and_only_they_are_written(vault: Path) -> None:
    sim = SimulatedTelegram(parse_spec(SPEC))
    sync_pass(vault, sim)
    before = vault_files(vault)
    first, second = sim.chat_ids[0], sim.chat_ids[1]
    new = [sim.add_message(first, "fresh news"), sim.add_message(second, "with a photo", media_kind="photo")]
    report, counts = sync_pass(vault, sim)
    assert report.messages == 2
    assert counts.stored == 1
    after = vault_files(vault)
    added = set(after) - set(before)
    assert len([p for p in added if "_attachments" not in p]) == 2
    changed = {p for p in before if before[p] != after[p]}
    assert all(p.endswith(f"/{p.split('/')[1]}.md") for p in changed), changed  # only chat index notes
    assert {(first, new[0].id), (second, new[1].id)} <= set(note_ids(vault))


def test_a_larger_simulation_is_an_incremental_sync(vault: Path, capsys: Any) -> None:
    from tobs_sync.cli import main

    assert main(["sync", "--vault", str(vault), "--simulate", "chats=2,messages=40,media=0.2,seed=5"]) == 0
    before = vault_files(vault)
    capsys.readouterr()
    assert main(["sync", "--vault", str(vault), "--simulate", "chats=2,messages=50,media=0.2,seed=5"]) == 0
    assert "2 chats, 20 new messages" in capsys.readouterr().out
    after = vault_files(vault)
    assert all(after[p] == before[p] or p.count("/") == 2 for p in before)


def test_short_flood_wait_on_history_is_slept_through(vault: Path) -> None:
    sim = SimulatedTelegram(parse_spec("chats=2,messages=120,media=0,seed=2"))
    sim.faults.flood("GetHistory", seconds=1, times=1)
    start = time.monotonic()
    report, _ = sync_pass(vault, sim)
    assert time.monotonic() - start >= 1
    assert report.deferred == []
    assert report.messages == sum(len(sim.messages(c)) for c in sim.chat_ids)


def test_long_flood_wait_defers_the_chat_and_the_next_pass_completes(vault: Path, tmp_path: Path) -> None:
    spec = "chats=2,messages=120,media=0.2,seed=2"
    reference = reference_vault(tmp_path, vault, spec)
    sim = SimulatedTelegram(parse_spec(spec))
    sim.faults.flood("GetHistory", seconds=3600, times=1)
    start = time.monotonic()
    report, _ = sync_pass(vault, sim, flood_max_wait_s=60)
    assert time.monotonic() - start < 30, "never sleeps an hour, never busy-loops"
    # Telethon remembers a flood wait per request type, so every chat's history waits: all deferred.
    assert report.deferred and all("3600" in line for line in report.deferred)
    assert check_vault(vault).broken == []
    report, _ = sync_pass(vault, sim)
    assert report.deferred == []
    assert not (difference := vault_differences(vault, reference)), difference


def test_stalled_download_is_abandoned_after_its_deadline_and_retried(vault: Path, tmp_path: Path) -> None:
    reference = reference_vault(tmp_path, vault, FAULT_SPEC)
    sim = SimulatedTelegram(parse_spec(FAULT_SPEC))
    sim.faults.stall("GetFile", times=2)
    start = time.monotonic()
    _, counts = sync_pass(vault, sim, stall_timeout_s=1)
    assert time.monotonic() - start < 20
    assert counts.failed == 0
    assert not (difference := vault_differences(vault, reference)), difference


def test_dropped_connections_are_survived(vault: Path, tmp_path: Path) -> None:
    reference = reference_vault(tmp_path, vault, FAULT_SPEC)
    sim = SimulatedTelegram(parse_spec(FAULT_SPEC))
    for dc in sim.dcs:
        sim.faults.drop_connection(dc, times=2)
    report, counts = sync_pass(vault, sim, stall_timeout_s=2)
    assert (report.failed, report.deferred, counts.failed) == ([], [], 0)
    assert not (difference := vault_differences(vault, reference)), difference


def test_expired_file_reference_is_refreshed_and_the_download_resumes(vault: Path, tmp_path: Path) -> None:
    reference = reference_vault(tmp_path, vault, FAULT_SPEC)
    sim = SimulatedTelegram(parse_spec(FAULT_SPEC))
    sim.faults.expire_file_reference(times=3)
    _, counts = sync_pass(vault, sim)
    assert counts.failed == 0
    assert sim.stats.count("GetMessages") >= 1
    assert not (difference := vault_differences(vault, reference)), difference


def test_failed_downloads_are_recorded_and_retried_on_the_next_pass(vault: Path, tmp_path: Path) -> None:
    spec = "chats=2,messages=40,media=0.3,seed=4"
    reference = reference_vault(tmp_path, vault, spec)
    sim = SimulatedTelegram(parse_spec(spec))
    sim.faults.stall("GetFile", times=None)  # every download hangs this pass
    report, counts = sync_pass(vault, sim, stall_timeout_s=0.2)
    assert counts.failed > 0 and counts.stored == 0
    assert report.messages == sum(len(sim.messages(c)) for c in sim.chat_ids)  # notes never wait on media
    assert check_vault(vault).broken == []
    assert any("will retry" in p.read_text(encoding="utf-8") for p in vault.rglob("*.md"))
    sim.faults.clear()
    _, counts = sync_pass(vault, sim)
    assert counts.failed == 0 and counts.stored > 0
    assert not (difference := vault_differences(vault, reference)), difference


def test_takeout_wraps_the_first_backfill_only(vault: Path) -> None:
    sim = SimulatedTelegram(parse_spec("chats=2,messages=120,media=0.2,seed=6"))
    sync_pass(vault, sim, takeout=True)
    assert sum(n for (name, _dc), n in sim.stats.takeout_requests.items() if name == "GetHistory") > 0
    assert sum(n for (name, _dc), n in sim.stats.takeout_requests.items() if name == "GetFile") == 0
    sim.stats.reset()
    sim.add_message(sim.chat_ids[0], "later")
    sync_pass(vault, sim, takeout=True)
    assert not sim.stats.takeout_requests


def test_private_channel_fails_alone_and_is_reported(vault: Path, capsys: Any) -> None:
    sim = SimulatedTelegram(parse_spec("chats=4,messages=30,media=0,seed=8"))
    channel = next(c for c in sim.chat_ids if sim.kind(c) == "channel")
    sim.faults.private_channel(channel)
    report, _ = sync_pass(vault, sim)
    assert len(report.failed) == 1 and sim.title(channel) in report.failed[0]
    synced = {chat for chat, _ in note_ids(vault)}
    assert synced == set(sim.chat_ids) - {channel}


def test_chat_selection_by_kind_username_title_and_exclusion(vault: Path) -> None:
    sim = SimulatedTelegram(parse_spec("chats=5,messages=10,media=0,seed=9"))
    channels = {c for c in sim.chat_ids if sim.kind(c) == "channel"}
    assert channels
    sync_pass(vault, sim, chats=("channels",))
    assert {chat for chat, _ in note_ids(vault)} == channels
    first = sorted(channels)[0]
    report, _ = sync_pass(vault, sim, chats=("all",), exclude=(first,))
    assert first not in {chat for chat, _ in note_ids(vault)} - channels
    assert report.chats == len(sim.chat_ids) - 1


def test_chat_from_a_desktop_export_continues_live_without_duplicates(vault: Path, tmp_path: Path) -> None:
    sim = SimulatedTelegram(parse_spec("chats=3,messages=40,media=0,seed=11"))
    channel = next(c for c in sim.chat_ids if sim.kind(c) == "channel")
    exported = sim.messages(channel)[:15]  # an export holds every message up to the moment it was made
    export = {
        "name": sim.title(channel), "type": "public_channel", "id": -channel - 1_000_000_000_000,
        "messages": [
            {"id": m.id, "type": "message", "date_unixtime": str(int(m.date.timestamp())),
             "text": getattr(m, "message", "") or ""}
            if not hasattr(m, "action") else
            {"id": m.id, "type": "service", "date_unixtime": str(int(m.date.timestamp())), "action": "create_channel",
             "text": ""}
            for m in exported
        ],
    }
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export), encoding="utf-8")
    asyncio.run(import_export(vault, path))
    imported = {p: p.read_bytes() for p in vault.rglob("*.md") if "tg_message_id" in p.read_text(encoding="utf-8")}
    sync_pass(vault, sim)
    ids = note_ids(vault)
    assert max(ids.values()) == 1, "no message has two notes"
    assert {(channel, m.id) for m in sim.messages(channel)} <= set(ids)
    for path_, data in imported.items():
        assert path_.read_bytes() == data, "imported notes are not rewritten by the live sync"


def test_part_size_follows_the_file_size() -> None:
    assert part_size(None) == 512 * 1024
    assert part_size(1) == 4096
    assert part_size(5000) == 8192
    assert part_size(200_000) == 256 * 1024
    assert part_size(300_000) == 512 * 1024
    assert part_size(100 * 1024 * 1024) == 512 * 1024
    for size in (1, 4096, 4097, 70_000, 600_000):
        assert (1024 * 1024) % part_size(size) == 0


def test_chat_rules() -> None:
    from tobs_sync.model import Chat

    news = Chat(-1001, "Daily News", "channel", "dailynews")
    assert chat_selected(news, ["all"], [])
    assert chat_selected(news, ["@DailyNews"], [])
    assert chat_selected(news, ["title:daily*"], [])
    assert not chat_selected(news, ["groups", "users"], [])
    assert not chat_selected(news, ["all"], ["channels"])
    assert chat_selected(news, [-1001], [])


def test_sync_command_reports_failures_with_exit_status(vault: Path, capsys: Any) -> None:
    from tobs_sync.cli import main

    assert main(["sync", "--vault", str(vault), "--simulate", "chats=2,messages=5,sedd=1"]) == 1
    assert "unknown key 'sedd'" in capsys.readouterr().err
    report, _ = asyncio.run(sync_telegram(vault, simulate="chats=2,messages=5,media=0,seed=1"))
    assert report.chats == 2


class CutOffWatch:
    """A Source around a TelegramSource that notes, as each chat's history read begins, which message
    ids the simulated server holds in that chat: the pass's cut-off for the chat."""

    name = "telegram"

    def __init__(self, source: TelegramSource, sim: SimulatedTelegram) -> None:
        self._source = source
        self._sim = sim
        self.held_at_start: dict[int, set[int]] = {}

    async def __aenter__(self) -> CutOffWatch:
        await self._source.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._source.__aexit__(*exc)

    def chats(self) -> AsyncIterator[Chat]:
        return self._source.chats()

    async def batches(self, chat: Chat, after: int) -> AsyncIterator[Sequence[Message]]:
        self.held_at_start[chat.id] = {m.id for m in self._sim.messages(chat.id)}
        async for batch in self._source.batches(chat, after):
            yield batch

    def media_chunks(self, media: MediaRef, offset: int = 0) -> AsyncIterator[bytes]:
        return self._source.media_chunks(media, offset)


def test_passes_with_live_changes_arriving_end_with_every_message_sent_before_them_noted_once(vault: Path) -> None:
    """``live_every_s``: new, edited and deleted messages arrive while each pass runs (and reach the
    client's update loop). Every pass must end and leave no task running; afterwards every message the
    server held when the pass began reading its chat (and still holds) has a note, no message has two,
    no note is for a message never sent, and each chat's cursor is its highest noted id with every
    message up to it noted."""
    sim = SimulatedTelegram(parse_spec("chats=2,messages=60,media=0,latency_ms=2,seed=1,live_every_s=0.005"))
    sent = {(chat_id, m.id) for chat_id in sim.chat_ids for m in sim.messages(chat_id)}

    async def one_pass() -> tuple[SyncReport, dict[int, set[int]], dict[int, int], list[asyncio.Task[Any]]]:
        client = sim.client(raise_last_call_error=True, request_retries=3)
        sim.start_live()
        try:
            with App.open(vault) as app:
                source = CutOffWatch(TelegramSource(client, load_settings(vault).telegram, peers=app.store), sim)
                async with source:
                    report = await app.sync_source(source)
                cursors = {state.chat.id: state.cursor for state in app.store.chat_states()}
        finally:
            await sim.stop_live()
        running = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        return report, source.held_at_start, cursors, running

    for _ in range(5):
        report, held_at_start, cursors, running = asyncio.run(one_pass())
        assert report.chats == 2 and report.failed == [] and report.deferred == []
        assert running == [], "a pass leaves no task behind"
        sent |= {(chat_id, message_id) for kind, chat_id, message_id in sim.live_events if kind == "new"}
        on_server = {(chat_id, m.id) for chat_id in sim.chat_ids for m in sim.messages(chat_id)}
        noted = note_ids(vault)
        assert max(noted.values()) == 1, "no message has two notes"
        assert set(noted) <= sent, "no note for a message never sent"
        before_cut_off = {(chat_id, i) for chat_id, ids in held_at_start.items() for i in ids}
        missing = (before_cut_off & on_server) - set(noted)
        assert not missing, f"sent before the cut-off, without a note: {sorted(missing)}"
        for chat_id in sim.chat_ids:
            assert cursors[chat_id] == max(i for c, i in noted if c == chat_id)
            assert {(c, i) for c, i in on_server if c == chat_id and i <= cursors[chat_id]} <= set(noted)
    live_noted = {(c, i) for kind, c, i in sim.live_events if kind == "new"} & set(note_ids(vault))
    assert live_noted, "messages sent while passes ran were synced by later passes"
    assert check_vault(vault).broken == []


CAPTIVE_PORTAL = b"HTTP/1.1 302 Found\r\nLocation: http://login.example/\r\nContent-Length: 0\r\n\r\n"


@pytest.mark.parametrize(("answer", "message"), [
    (b"", r"connecting to Telegram: .*Connect call failed.* \(is the network up\?\)"),
    (CAPTIVE_PORTAL, r"connecting to Telegram: something other than Telegram answered .*captive portal"),
])
def test_a_failed_connection_is_a_clear_error_and_the_next_pass_works(vault: Path, answer: bytes, message: str) -> None:
    sim = SimulatedTelegram(parse_spec(FAULT_SPEC))
    sim.faults.refuse_connections(sim.home_dc, answer=answer)

    async def run() -> None:
        client = sim.client()
        await client.disconnect()  # a real client starts disconnected, so the source connects it
        with App.open(vault) as app:
            async with TelegramSource(client, load_settings(vault).telegram, peers=app.store) as source:
                await app.sync_source(source)

    with pytest.raises(SourceError, match=message):
        asyncio.run(run())
    assert not list(vault.rglob("*.md"))
    report, _ = sync_pass(vault, sim)
    assert report.chats == 2 and report.failed == []


def test_a_logged_out_session_names_the_login_command_and_leaves_no_connection_open() -> None:
    sim = SimulatedTelegram(parse_spec(FAULT_SPEC), logged_in=False)
    client = sim.client()

    async def run() -> None:
        async with TelegramSource(client, TelegramSettings()):
            raise AssertionError("a logged-out session must not get this far")

    with pytest.raises(SourceError, match="not logged in to Telegram; run 'tobs-sync login --vault VAULT' first"):
        asyncio.run(run())
    assert not client.is_connected()


def test_download_resumes_after_a_flood_wait_instead_of_starting_over(vault: Path) -> None:
    sim = SimulatedTelegram(parse_spec("chats=1,messages=2,media=0,seed=13"))
    big = sim.add_big_file(sim.chat_ids[0], 3_000_000, text="video")
    key = sim.file_key(big.media)
    sim.faults.flood_downloads(sim.file_dc(key), every_n=2, seconds=1)  # every other part is refused once
    _, counts = sync_pass(vault, sim)
    assert counts.stored == 1
    assert sim.stats.file_bytes[key] == 3_000_000, "no part was downloaded twice"
    assert sim.stats.file_downloads[key] == 1


def test_telethon_still_keeps_flood_memory_where_the_source_clears_it() -> None:
    """TelegramSource clears TelegramClient._flood_waited_requests for GetFile (a private attribute):
    fail loudly if a Telethon upgrade renames it or changes what it holds."""
    from telethon import functions

    client = SimulatedTelegram(parse_spec("chats=1,messages=1,media=0")).client()
    waited = getattr(client, "_flood_waited_requests", None)
    assert isinstance(waited, dict), (
        "telethon changed TelegramClient._flood_waited_requests; see sources/telegram_requests.py"
    )
    source = TelegramSource(client, TelegramSettings())
    waited[functions.upload.GetFileRequest.CONSTRUCTOR_ID] = time.time() + 60
    source._downloads.forget_flood()
    assert functions.upload.GetFileRequest.CONSTRUCTOR_ID not in waited


def test_chats_named_by_username_are_resolved_once_and_remembered(vault: Path) -> None:
    sim = SimulatedTelegram(parse_spec("chats=4,messages=20,media=0,seed=14"))
    channel = next(c for c in sim.chat_ids if sim.kind(c) == "channel" and sim.entity(c).username)
    rule = f"@{sim.entity(channel).username.upper()}"
    report, _ = sync_pass(vault, sim, chats=(rule,))
    assert report.chats == 1
    assert (sim.stats.count("ResolveUsername"), sim.stats.count("GetDialogs")) == (1, 0)
    sim.stats.reset()
    sim.add_message(channel, "more news")
    report, _ = sync_pass(vault, sim, chats=(rule,))  # a new client: only the store remembers the peer
    assert report.messages == 1
    assert (sim.stats.count("ResolveUsername"), sim.stats.count("GetDialogs")) == (0, 0)
    assert {chat for chat, _ in note_ids(vault)} == {channel}


def test_telethon_still_raises_its_private_cdn_redirect_where_the_source_catches_it() -> None:
    """TelegramSource catches ``telethon.client.downloads._CdnRedirect`` (private): fail loudly if a
    Telethon upgrade renames it or stops carrying Telegram's ``upload.fileCdnRedirect`` in it."""
    import inspect

    from telethon.client import downloads

    from tobs_sync.sources.telegram_errors import CdnRedirect

    assert CdnRedirect is downloads._CdnRedirect
    assert "raise _CdnRedirect(result)" in inspect.getsource(downloads._DirectDownloadIter._request)
    assert CdnRedirect("redirect").cdn_redirect == "redirect"
