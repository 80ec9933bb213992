"""The sync engine (``tobs_sync.sync``) over an in-memory source: passes, cursors, albums, media retries.

No Desktop export and no Telethon: the engine is assembled here from the store, vault, renderer and
media writer (as ``App.open`` does, without the Telegram client it also imports), and a
:class:`MemorySource` stages each scenario. What the engine does with Telegram's or an export's own
quirks is tested with those sources; what it promises whatever the source, is tested here.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from vaultcheck import check_vault, vault_differences, vault_files

from tobs_sync.config import load_settings
from tobs_sync.errors import ChatDeferred
from tobs_sync.media import MediaCounts, MediaWriter
from tobs_sync.model import Chat, ChatKind, MediaKind, MediaRef, Message
from tobs_sync.render import Renderer
from tobs_sync.sources.memory import MemorySource
from tobs_sync.store import Store
from tobs_sync.store_rows import MediaRows
from tobs_sync.store_schema import NO_CURSOR
from tobs_sync.sync import Synchronizer, SyncReport
from tobs_sync.vault import Vault

ATTACHMENTS = "Telegram/_attachments"
NEWS = Chat(-1001234, "News", ChatKind.CHANNEL.value)
FRIEND = Chat(4242, "Friend", ChatKind.USER.value)
START = 1_700_000_000


@dataclass
class Engine:
    store: Store
    media: MediaWriter
    synchronizer: Synchronizer


@contextlib.contextmanager
def open_engine(vault: Path) -> Iterator[Engine]:
    settings = load_settings(vault)
    vault_writer = Vault(settings.vault_root)
    store = Store.open(settings.database_path)
    try:
        renderer = Renderer(vault_writer.resolve(settings.templates) if settings.templates else None)
        media = MediaWriter(vault_writer, store, ATTACHMENTS, settings.timezone, settings=settings.media)
        yield Engine(store, media, Synchronizer(settings, store, vault_writer, renderer, media))
    finally:
        store.close()


def sync_pass(vault: Path, source: MemorySource) -> tuple[SyncReport, MediaCounts]:
    async def run() -> tuple[SyncReport, MediaCounts]:
        with open_engine(vault) as engine:
            async with source:
                return await engine.synchronizer.sync(source), engine.media.counts

    return asyncio.run(run())


def cursors(vault: Path) -> dict[int, int]:
    with open_engine(vault) as engine:
        return {state.chat.id: state.cursor for state in engine.store.chat_states()}


def note_ids(vault: Path) -> Counter[tuple[int, tuple[int, ...]]]:
    """(chat id, message ids) of every message note; a message in two notes would show twice."""
    notes: Counter[tuple[int, tuple[int, ...]]] = Counter()
    for meta in check_vault(vault).metadata.values():
        if "tg_message_id" in meta:
            ids = meta["tg_message_id"]
            notes[(int(str(meta["tg_chat_id"])), tuple(ids) if isinstance(ids, list) else (int(str(ids)),))] += 1
    return notes


def text_message(chat: Chat, message_id: int, text: str | None = None, **fields: object) -> Message:
    return Message(chat.id, message_id, START + message_id * 60, text=text or f"message {message_id}",
                   **fields)  # type: ignore[arg-type]


def photo_bytes(seed: int) -> bytes:
    return bytes([seed]) * 3000 + seed.to_bytes(4, "big")


def photo(source: MemorySource, seed: int) -> MediaRef:
    return source.add_file(photo_bytes(seed), kind=MediaKind.PHOTO.value, mime_type="image/jpeg",
                           file_key=f"photo:{seed}")


def two_chats(batch_size: int = 100, count: int = 10) -> MemorySource:
    source = MemorySource([NEWS, FRIEND], batch_size=batch_size)
    for chat in (NEWS, FRIEND):
        for message_id in range(1, count + 1):
            source.add_message(text_message(chat, message_id))
    return source


def test_the_engine_and_the_memory_source_need_no_telethon() -> None:
    code = ("import sys, tobs_sync.sync, tobs_sync.sources.memory, tobs_sync.media, tobs_sync.store; "
            "sys.exit('telethon' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_incremental_passes_write_only_new_messages_and_move_only_their_cursors(vault: Path) -> None:
    source = two_chats()
    report, _ = sync_pass(vault, source)
    assert (report.chats, report.messages) == (2, 20)
    assert set(note_ids(vault)) == {(chat.id, (i,)) for chat in (NEWS, FRIEND) for i in range(1, 11)}
    assert cursors(vault) == {NEWS.id: 10, FRIEND.id: 10}
    before = vault_files(vault)

    source.add_message(text_message(NEWS, 11, "fresh news"))
    source.add_message(text_message(NEWS, 14, "after a gap"))
    report, _ = sync_pass(vault, source)
    assert report.messages == 2
    after = vault_files(vault)
    added = sorted(set(after) - set(before))
    assert len(added) == 2 and any("fresh news" in after[p].decode() for p in added)
    changed = [p for p in before if before[p] != after[p]]
    assert len(changed) == 1 and "tg_message_id" not in after[changed[0]].decode(), "only the chat note changes"
    assert cursors(vault) == {NEWS.id: 14, FRIEND.id: 10}
    assert max(note_ids(vault).values()) == 1

    report, _ = sync_pass(vault, source)
    assert (report.messages, report.notes_written) == (0, 0)
    assert vault_files(vault) == after


def album_chat(source: MemorySource, ids: range, album: range) -> None:
    for message_id in ids:
        if message_id in album:
            source.add_message(text_message(NEWS, message_id, "", grouped_id=77, media=(photo(source, message_id),)))
        else:
            source.add_message(text_message(NEWS, message_id))


@pytest.mark.parametrize("batch_size", [1, 2, 3, 5])
def test_an_album_straddling_batches_is_one_note_as_with_a_single_batch(
    vault: Path, tmp_path: Path, batch_size: int
) -> None:
    reference = tmp_path / "reference"
    shutil.copytree(vault, reference)
    whole = MemorySource([NEWS])
    album_chat(whole, range(1, 10), album=range(4, 8))
    sync_pass(reference, whole)
    assert (NEWS.id, (4, 5, 6, 7)) in note_ids(reference)

    split = MemorySource([NEWS], batch_size=batch_size)
    album_chat(split, range(1, 10), album=range(4, 8))
    report, _ = sync_pass(vault, split)
    assert report.messages == 9
    assert not (difference := vault_differences(vault, reference)), difference
    assert set(note_ids(vault)) == {(NEWS.id, (i,)) for i in (1, 2, 3, 8, 9)} | {(NEWS.id, (4, 5, 6, 7))}


def test_an_album_completed_on_a_later_pass_joins_its_note(vault: Path, tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    shutil.copytree(vault, reference)
    whole = MemorySource([NEWS])
    album_chat(whole, range(1, 8), album=range(4, 8))
    sync_pass(reference, whole)

    growing = MemorySource([NEWS])
    album_chat(growing, range(1, 6), album=range(4, 8))
    sync_pass(vault, growing)
    assert (NEWS.id, (4, 5)) in note_ids(vault)
    for message_id in (6, 7):
        growing.add_message(text_message(NEWS, message_id, "", grouped_id=77, media=(photo(growing, message_id),)))
    sync_pass(vault, growing)
    assert set(note_ids(vault)) == {(NEWS.id, (1,)), (NEWS.id, (2,)), (NEWS.id, (3,)), (NEWS.id, (4, 5, 6, 7))}
    assert not (difference := vault_differences(vault, reference)), difference


def test_failed_media_is_recorded_then_fetched_on_the_next_pass_and_its_note_updated(
    vault: Path, tmp_path: Path
) -> None:
    reference = tmp_path / "reference"
    shutil.copytree(vault, reference)
    clean = two_chats(count=3)
    clean.add_message(text_message(NEWS, 4, "a photo", media=(photo(clean, 9),)))
    sync_pass(reference, clean)

    source = two_chats(count=3)
    picture = photo(source, 9)
    source.add_message(text_message(NEWS, 4, "a photo", media=(picture,)))
    source.fail_fetches(picture, times=1)
    report, counts = sync_pass(vault, source)
    assert (counts.failed, counts.stored) == (1, 0)
    assert report.messages == 7, "notes never wait on media"
    assert any("will retry" in p.read_text(encoding="utf-8") for p in vault.rglob("*.md"))
    assert check_vault(vault).broken == []

    report, counts = sync_pass(vault, source)
    assert (counts.failed, counts.stored, report.messages) == (0, 1, 0)
    assert source.fetch_calls[str(picture.locator)] == 2
    assert not (difference := vault_differences(vault, reference)), difference


def test_unavailable_media_is_recorded_once_and_never_fetched_again(vault: Path) -> None:
    source = two_chats(count=2)
    picture = photo(source, 5)
    source.add_message(text_message(FRIEND, 3, "gone", media=(picture,)))
    source.make_unavailable(picture, "the message was deleted")
    _, counts = sync_pass(vault, source)
    assert (counts.unavailable, counts.failed, counts.stored) == (1, 0, 0)
    source.add_message(text_message(FRIEND, 4))
    _, counts = sync_pass(vault, source)
    assert (counts.unavailable, counts.failed) == (0, 0)
    assert source.fetch_calls[str(picture.locator)] == 1


def test_a_file_posted_in_two_chats_is_fetched_and_stored_once(vault: Path) -> None:
    source = two_chats(count=1)
    shared = photo(source, 3)
    source.add_message(text_message(NEWS, 2, "here", media=(shared,)))
    source.add_message(text_message(FRIEND, 2, "and here", media=(shared,)))
    _, counts = sync_pass(vault, source)
    assert counts.stored == 1 and source.fetch_calls[str(shared.locator)] == 1
    assert len(list((vault / ATTACHMENTS).iterdir())) == 1
    assert check_vault(vault).broken == []


def test_a_deferred_chat_keeps_its_cursor_and_the_next_pass_completes_it(vault: Path, tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    shutil.copytree(vault, reference)
    sync_pass(reference, two_chats(batch_size=3))

    source = two_chats(batch_size=3)
    source.fail_history(FRIEND.id, ChatDeferred("chat 'Friend': Telegram asks to wait 3600 s; deferred"))
    report, _ = sync_pass(vault, source)
    assert report.deferred == ["chat 'Friend': Telegram asks to wait 3600 s; deferred"]
    assert cursors(vault) == {NEWS.id: 10, FRIEND.id: NO_CURSOR}
    assert {chat for chat, _ in note_ids(vault)} == {NEWS.id}
    report, _ = sync_pass(vault, source)
    assert report.deferred == [] and report.messages == 10
    assert not (difference := vault_differences(vault, reference)), difference


def test_a_file_placed_just_before_a_crash_is_found_again_by_another_chat_first(vault: Path) -> None:
    """A batch renamed a new file into place and died before its rows committed; the next pass
    reaches the file through another chat first (chats are read concurrently, so any order can
    come): it must find that file, not store the same bytes a second time under its own name."""
    news_first = MemorySource([NEWS, FRIEND])
    shared = photo(news_first, 3)
    in_news = news_first.add_message(text_message(NEWS, 2, "here", media=(shared,)))

    async def crash_after_the_rename() -> None:
        with open_engine(vault) as engine:
            async with news_first:
                await engine.media.store_media([(in_news, "Telegram/News/n.md")], "News", news_first.media_chunks,
                                               MediaRows())  # rows never committed: the crash

    asyncio.run(crash_after_the_rename())
    assert len(list((vault / ATTACHMENTS).iterdir())) == 1

    friend_first = MemorySource([FRIEND, NEWS])
    friend_first.add_file(photo_bytes(3), kind=MediaKind.PHOTO.value, mime_type="image/jpeg", file_key="photo:3")
    friend_first.add_message(text_message(FRIEND, 2, "and here", media=(shared,)))
    friend_first.add_message(text_message(NEWS, 2, "here", media=(shared,)))
    sync_pass(vault, friend_first)
    assert len(list((vault / ATTACHMENTS).iterdir())) == 1, "the same bytes were stored twice"
    assert check_vault(vault).broken == []



def test_a_pass_counts_new_messages_and_errors_per_chat(vault: Path) -> None:
    source = two_chats(count=5)
    source.fail_history(FRIEND.id, ChatDeferred("chat 'Friend': Telegram asks to wait 3600 s; deferred"))
    report, _ = sync_pass(vault, source)
    assert report.per_chat[NEWS.id].new == 5 and report.per_chat[NEWS.id].errors == []
    assert report.per_chat[FRIEND.id].new == 0
    assert report.per_chat[FRIEND.id].errors == ["chat 'Friend': Telegram asks to wait 3600 s; deferred"]
    assert report.per_chat[NEWS.id].title == NEWS.title
