"""The state database: schema versions, cursors, the notes and media indexes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tobs_sync.errors import StoreError
from tobs_sync.model import Chat, Message
from tobs_sync.store import Store
from tobs_sync.store_rows import CHAT_NOTE, MESSAGE_NOTE, NoteRow
from tobs_sync.store_schema import NO_CURSOR, SCHEMA_VERSION


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store.open(tmp_path / ".tobs" / "state.db") as opened:
        yield opened


def folder(chat: Chat) -> str:
    return chat.title


def test_new_database_is_at_the_current_schema_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    Store.open(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_database_from_a_newer_version_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="newer tobs-sync"):
        Store.open(path)
    assert path.read_bytes() == before


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not a usable tobs-sync database"):
        Store.open(path)


def test_chat_folder_is_chosen_once_and_kept_across_title_changes(store: Store) -> None:
    state = store.upsert_chat(Chat(5, "Alice"), folder)
    renamed = store.upsert_chat(Chat(5, "Alice (work)"), folder)
    assert state.folder == renamed.folder == "Alice"
    assert store.chat_state(5).chat.title == "Alice (work)"


def test_two_chats_with_the_same_title_get_distinct_folders_case_insensitively(store: Store) -> None:
    first = store.upsert_chat(Chat(1, "News"), folder)
    second = store.upsert_chat(Chat(-1002, "news"), folder)
    assert first.folder == "News"
    assert second.folder == "news (1002)"


def test_cursor_moves_with_notes_and_never_backwards(store: Store) -> None:
    store.upsert_chat(Chat(7, "C"), folder)
    row = NoteRow("C/a.md", MESSAGE_NOTE, 7, 10, (10,), "h1")
    store.commit_notes([row], cursor=(7, 10))
    store.commit_notes([], cursor=(7, 3))
    assert store.chat_state(7).cursor == 10
    assert store.note_of_message(7, 10) == row


def test_failed_transaction_moves_nothing(store: Store) -> None:
    store.upsert_chat(Chat(7, "C"), folder)
    with pytest.raises(RuntimeError), store.transaction():
        store.commit_notes([NoteRow("C/a.md", MESSAGE_NOTE, 7, 10, (10,), "h")], cursor=(7, 10))
        raise RuntimeError("crash")
    assert store.chat_state(7).cursor == NO_CURSOR
    assert store.note_at("C/a.md") is None


def test_message_cache_replaces_edited_messages_and_streams_in_order(store: Store) -> None:
    store.put_messages([Message(1, i, 100 + i, text=f"m{i}") for i in (3, 1, 2)])
    store.put_messages([Message(1, 2, 102, text="edited", edited=200)])
    assert [m.text for m in store.messages(1, batch=1)] == ["m1", "edited", "m3"]
    assert store.message_stats(1) == (3, 101, 103)
    assert [m.id for m in store.messages_before(1, 3, limit=5)] == [2, 1]


def test_paths_are_taken_case_insensitively(store: Store) -> None:
    store.commit_notes([NoteRow("Chat/Note.md", CHAT_NOTE, 1, 0, (), "h")])
    assert store.path_taken("chat/NOTE.md")
    store.add_media_file("abc", "Media/Photo.JPG", 10, "image/jpeg")
    assert store.path_taken("media/photo.jpg")
    assert not store.path_taken("Media/other.jpg")


def test_media_index_maps_file_identity_to_content(store: Store) -> None:
    store.add_media_file("abc", "Media/a.jpg", 10, "image/jpeg")
    store.record_media(1, 5, 0, status="stored", content_hash="abc", file_key="photo:77")
    store.record_media(1, 6, 0, status="unavailable", reason="not exported")
    assert store.hash_of_remote("photo:77") == "abc"
    slots = store.media_slots(1, 5)
    assert slots[0].path == "Media/a.jpg" and slots[0].status == "stored"
    assert store.media_slots(1, 6)[0].reason == "not exported"
    assert store.media_count() == (1, 10)
    assert store.media_status_counts() == {"stored": 1, "unavailable": 1}


def test_conflicts_are_listed(store: Store) -> None:
    store.commit_notes([NoteRow("a.md", MESSAGE_NOTE, 1, 1, (1,), "h", conflict_hash="x")])
    assert [c.path for c in store.conflicts()] == ["a.md"]


def test_peers_are_remembered_by_id_and_username(store: Store) -> None:
    chat = Chat(-1001, "News", "channel", "DailyNews")
    store.remember_peer(chat, b"peer-bytes")
    assert store.known_peer(-1001) == (chat, b"peer-bytes")
    assert store.known_peer("@dailynews") == (chat, b"peer-bytes")
    assert store.known_peer("@other") is None


def test_an_older_database_is_migrated_forward_keeping_its_data(tmp_path: Path) -> None:
    from tobs_sync.store_schema import MIGRATIONS

    path = tmp_path / "state.db"
    db = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS[0](db)
    db.execute("PRAGMA user_version=1")
    db.execute("INSERT INTO media_files (content_hash, path, path_key, size) VALUES ('h', 'a.jpg', 'a.jpg', 3)")
    db.close()
    with Store.open(path) as store:
        assert store.media_count() == (1, 3)
        assert store.media_properties("h") is None
        store.set_media_properties("h", {"width": 2}, size=None)
        assert store.media_properties("h") == {"width": 2}
        store.remember_peer(Chat(1, "A"), b"p")
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
