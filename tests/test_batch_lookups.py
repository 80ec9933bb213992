"""Store questions asked per batch, not per message: existing notes by window, members at once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tobs_sync.config import load_settings
from tobs_sync.media import MediaWriter
from tobs_sync.model import Chat, ChatKind, Message
from tobs_sync.note_lookups import NoteLookups
from tobs_sync.render import Renderer
from tobs_sync.sources.memory import MemorySource
from tobs_sync.store import Store
from tobs_sync.store_rows import MESSAGE_NOTE, NoteRow
from tobs_sync.sync import Synchronizer
from tobs_sync.vault import Vault

CHAT = Chat(-100777, "Lookups", ChatKind.CHANNEL.value)
START = 1_700_000_000


class CountingStore(Store):
    """A real store that counts the per-message questions the engine asks it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.asked: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.asked[name] = self.asked.get(name, 0) + 1

    def note_of_message(self, chat_id: int, message_id: int) -> NoteRow | None:
        self._count("note_of_message")
        return super().note_of_message(chat_id, message_id)

    def notes_of_message_range(self, chat_id: int, first: int, end: int) -> dict[int, NoteRow]:
        self._count("notes_of_message_range")
        return super().notes_of_message_range(chat_id, first, end)

    def media_slots(self, chat_id: int, message_id: int) -> Any:
        self._count("media_slots")
        return super().media_slots(chat_id, message_id)


def message(message_id: int) -> Message:
    return Message(CHAT.id, message_id, START + message_id * 60, text=f"message {message_id}")


def sync_counting(vault: Path, source: MemorySource) -> dict[str, int]:
    settings = load_settings(vault)
    writer = Vault(settings.vault_root)
    store = CountingStore.open(settings.database_path)
    try:
        media = MediaWriter(writer, store, "_attachments", settings.timezone, settings=settings.media)
        synchronizer = Synchronizer(settings, store, writer, Renderer(None), media)

        async def run() -> None:
            async with source:
                await synchronizer.sync(source)

        asyncio.run(run())
        return store.asked
    finally:
        store.close()


def test_a_batch_asks_the_store_once_which_of_its_messages_have_notes(vault: Path) -> None:
    source = MemorySource([CHAT], batch_size=25)
    for message_id in range(1, 101):
        source.add_message(message(message_id))
    asked = sync_counting(vault, source)
    assert asked.get("note_of_message", 0) == 0
    assert asked["notes_of_message_range"] == 4  # 100 messages in batches of 25


def test_text_messages_cost_no_media_index_lookup(vault: Path) -> None:
    source = MemorySource([CHAT], batch_size=50)
    for message_id in range(1, 51):
        source.add_message(message(message_id))
    assert sync_counting(vault, source).get("media_slots", 0) == 0


def test_lookups_see_notes_committed_after_their_window_was_read(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state.db")
    try:
        lookups = NoteLookups(store)
        assert lookups.note_of_message(CHAT.id, 1) is None
        assert lookups.note_of_message(CHAT.id, 2) is None
        store.commit_notes([NoteRow("Lookups/2.md", MESSAGE_NOTE, CHAT.id, 2, (2, 3), "hash")])
        row = lookups.note_of_message(CHAT.id, 3)
        assert row is not None and row.path == "Lookups/2.md" and row.message_ids == (2, 3)
        assert lookups.note_of_message(CHAT.id, 9_999) is None  # outside the window: asked again
        assert lookups.queries == 3
    finally:
        store.close()


def test_batch_lookups_answer_across_the_bound_variable_limit(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state.db")
    try:
        store.put_messages([message(i) for i in range(1, 1201)])
        rows = [NoteRow(f"Lookups/{i}.md", MESSAGE_NOTE, CHAT.id, i, (i,), "hash") for i in range(1, 1201)]
        store.commit_notes(rows)
        found = store.messages_by_id(CHAT.id, list(range(1, 1301)))
        assert sorted(found) == list(range(1, 1201)) and found[700].text == "message 700"
        notes = store.notes_of_message_range(CHAT.id, 1, 1201)
        assert len(notes) == 1200 and notes[1200].path == "Lookups/1200.md"
    finally:
        store.close()
