"""The state database opened read-only (``status``): nothing created, migrated or written."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tobs_sync.errors import StoreError
from tobs_sync.model import Chat
from tobs_sync.store import Store
from tobs_sync.store_schema import SCHEMA_VERSION


def files(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def database_at(path: Path, version: int) -> Path:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA user_version={version}")
    db.close()
    return path


def test_missing_database_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such database"):
        Store.open(tmp_path / ".tobs" / "state.db", read_only=True)
    assert list(tmp_path.iterdir()) == []


def test_read_only_store_reads_and_refuses_to_write(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with Store.open(path) as writer:
        writer.upsert_chat(Chat(5, "Alice"), lambda chat: chat.title)
    before = files(tmp_path)
    with Store.open(path, read_only=True) as reader:
        assert [state.chat.title for state in reader.chat_states()] == ["Alice"]
        with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only"):
            reader.upsert_chat(Chat(6, "Bob"), lambda chat: chat.title)
    assert files(tmp_path) == before


def test_database_of_an_older_schema_is_not_migrated_by_a_reader(tmp_path: Path) -> None:
    path = database_at(tmp_path / "state.db", SCHEMA_VERSION - 1)
    before = files(tmp_path)
    with pytest.raises(StoreError, match=r"older tobs-sync .* run a writing command \(sync, import or render\)"):
        Store.open(path, read_only=True)
    assert files(tmp_path) == before


def test_database_of_a_newer_schema_is_refused_by_a_reader(tmp_path: Path) -> None:
    path = database_at(tmp_path / "state.db", SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match="newer tobs-sync"):
        Store.open(path, read_only=True)


def test_a_file_that_is_not_a_database_is_refused_by_a_reader(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not a usable tobs-sync database"):
        Store.open(path, read_only=True)


def test_reader_sees_what_an_open_writer_committed(tmp_path: Path) -> None:
    path = tmp_path / "folder with ? and # and %20" / "state.db"
    with Store.open(path) as writer:
        writer.upsert_chat(Chat(5, "Alice"), lambda chat: chat.title)
        assert (path.parent / "state.db-wal").is_file()
        before = files(path.parent)
        with Store.open(path, read_only=True) as reader:
            assert [state.chat.id for state in reader.chat_states()] == [5]
        assert files(path.parent) == before
