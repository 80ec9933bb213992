"""Chat folders: chats whose long titles are equal still get folders of their own."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import frontmatter

from tobs_sync.app import import_export
from tobs_sync.model import Chat
from tobs_sync.names import NAME_MAX_BYTES, sanitize_component
from tobs_sync.store import Store

LONG_TITLES = {
    "ascii": "Allotment crew weekly planning " * 8,  # 248 bytes
    "cyrillic": "Огородная команда, еженедельное планирование " * 4,  # two bytes a letter
}


def export_of_two_chats(folder: Path, title: str, ids: tuple[int, int]) -> Path:
    folder.mkdir(parents=True)
    chats = [
        {
            "name": title,
            "type": "private_supergroup",
            "id": chat_id,
            "messages": [
                {
                    "id": message_id,
                    "type": "message",
                    "date": "2024-05-01T10:00:00",
                    "date_unixtime": str(1714557600 + message_id),
                    "from": "Robin",
                    "from_id": "user5550001",
                    "text": f"chat {chat_id}, message {message_id}",
                    "text_entities": [],
                }
                for message_id in (1, 2)
            ],
        }
        for chat_id in ids
    ]
    data: dict[str, Any] = {"about": "", "chats": {"about": "", "list": chats}}
    (folder / "result.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return folder


def test_two_chats_with_the_same_long_title_get_distinct_folders(vault: Path, tmp_path: Path) -> None:
    for n, title in enumerate(LONG_TITLES.values()):
        assert len(title.encode("utf-8")) > NAME_MAX_BYTES
        ids = (1777000100 + 2 * n, 1777000101 + 2 * n)
        asyncio.run(import_export(vault, export_of_two_chats(tmp_path / f"export{n}", title, ids)))
    folders: dict[int, set[Path]] = {}
    for note in vault.rglob("*.md"):
        chat_id = frontmatter.load(note).metadata["tg_chat_id"]
        folders.setdefault(chat_id, set()).add(note.parent)
    assert len(folders) == 4
    for chat_id, chat_folders in folders.items():
        assert len(chat_folders) == 1, f"chat {chat_id}'s notes are spread over {chat_folders}"
        (folder,) = chat_folders
        assert len(folder.name.encode("utf-8")) <= NAME_MAX_BYTES
        assert len(list(folder.glob("*.md"))) == 3  # two messages and the chat's index note
    assert len({folder for chat_folders in folders.values() for folder in chat_folders}) == 4
    second = next(iter(folders[-1001777000101]))
    assert second.name.endswith(" (1001777000101)")
    assert second.name.startswith("Allotment crew weekly planning")


def test_every_suffix_fits_by_shortening_the_title(tmp_path: Path) -> None:
    wanted = sanitize_component("Огородная команда " * 20)
    assert len(wanted.encode("utf-8")) == NAME_MAX_BYTES - 1  # cut at a character boundary
    with Store.open(tmp_path / "state.db") as store:
        first = store.upsert_chat(Chat(-1, "a"), lambda chat: wanted).folder
        # A chat whose own title is what the third chat's " (3)" name would be.
        taken = sanitize_component(wanted, max_bytes=NAME_MAX_BYTES - 4) + " (3)"
        second = store.upsert_chat(Chat(-2, "b"), lambda chat: taken).folder
        third = store.upsert_chat(Chat(-3, "c"), lambda chat: wanted).folder
    assert (first, second) == (wanted, taken)
    assert third.endswith(" (3) 2")
    assert third.removesuffix(" (3) 2") in wanted
    assert len({first, second, third}) == 3
    assert all(len(folder.encode("utf-8")) <= NAME_MAX_BYTES for folder in (first, second, third))
