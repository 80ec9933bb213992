"""What publishing a batch asks of the file system and the store, note by note: a new note's path
is not read again after it was found free, a written note is not stat'ed after its rename, a batch
asks the store once which of its wanted paths are taken, and a vault path is inspected once per
question. Each saving keeps the answers the per-note questions gave."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path, PurePath

import pytest

from tobs_sync.config import load_settings
from tobs_sync.media import MediaWriter
from tobs_sync.model import Chat, ChatKind, Message
from tobs_sync.publish import Draft, Publisher
from tobs_sync.render import Renderer
from tobs_sync.sources.memory import MemorySource
from tobs_sync.store import Store
from tobs_sync.store_rows import MESSAGE_NOTE, NoteRow
from tobs_sync.sync import Synchronizer
from tobs_sync.vault import Vault

CHAT = Chat(-1007770, "Costs", ChatKind.CHANNEL.value)
START = 1_700_000_000


class CountingVault(Vault):
    """Counts the notes read and stat'ed after their write."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads: list[str] = []
        self.stamps: list[str] = []

    def read_bytes(self, relative: str | PurePath) -> bytes | None:
        self.reads.append(str(relative))
        return super().read_bytes(relative)

    def file_stamp(self, relative: str | PurePath) -> tuple[int, int] | None:
        self.stamps.append(str(relative))
        return super().file_stamp(relative)


def history(count: int) -> MemorySource:
    source = MemorySource([CHAT], batch_size=10)
    for message_id in range(1, count + 1):
        source.add_message(Message(CHAT.id, message_id, START + message_id * 60, text=f"message {message_id}"))
    return source


def sync_pass(vault: Path, source: MemorySource, statements: list[str] | None = None) -> tuple[CountingVault, Store]:
    settings = load_settings(vault)
    writer = CountingVault(settings.vault_root)
    store = Store.open(settings.database_path)

    async def run() -> None:
        media = MediaWriter(writer, store, "Telegram/_attachments", settings.timezone, settings=settings.media)
        synchronizer = Synchronizer(settings, store, writer, Renderer(None), media)
        if statements is not None:
            store.connection.set_trace_callback(statements.append)
        async with source:
            await synchronizer.sync(source)
        store.connection.set_trace_callback(None)

    asyncio.run(run())
    return writer, store


@pytest.fixture
def opened_store(vault: Path) -> Iterator[Store]:
    with Store.open(load_settings(vault).database_path) as store:
        yield store


def test_a_new_notes_path_is_not_read_again_before_it_is_written(vault: Path) -> None:
    writer, store = sync_pass(vault, history(30))
    store.close()
    message_notes = [p for p in writer.reads if " " in p.rsplit("/", 1)[-1]]
    assert message_notes == [], "the paths of new notes were found free while grouping: no second read"
    assert len(list((vault / "Telegram" / "Costs").glob("* *.md"))) == 30


def test_a_written_notes_size_and_time_come_from_its_temp_file_not_a_stat_after_the_rename(
    vault: Path, opened_store: Store
) -> None:
    opened_store.upsert_chat(CHAT, lambda chat: chat.title)
    writer = CountingVault(vault)
    drafts = [Draft(f"Notes/{n}.md", f"note {n}\n".encode() * n, CHAT.id, (n,)) for n in range(1, 6)]
    Publisher(writer, opened_store).publish(drafts)
    assert writer.stamps == []
    for draft in drafts:
        row = opened_store.note_at(draft.path)
        info = os.stat(vault / draft.path)
        assert row is not None and (row.size, row.mtime_ns) == (info.st_size, info.st_mtime_ns)


def test_a_batch_asks_the_store_once_which_of_its_wanted_paths_are_taken(vault: Path) -> None:
    statements: list[str] = []
    _, store = sync_pass(vault, history(30), statements)
    store.close()
    per_note = [s for s in statements if "WHERE path_key=" in s and "costs/costs.md" not in s]  # not the chat note
    per_batch = [s for s in statements if "path_key IN" in s]
    assert per_note == [] and len(per_batch) == 3  # three batches of ten


def test_a_wanted_path_the_store_holds_in_another_case_is_still_numbered(vault: Path, opened_store: Store) -> None:
    state = opened_store.upsert_chat(CHAT, lambda chat: chat.title)
    taken = f"telegram/{state.folder.lower()}/2023-11-14 5.MD"
    opened_store.commit_notes([NoteRow(taken, MESSAGE_NOTE, 1, 1, (1,), "")])
    _, store = sync_pass(vault, history(10))
    store.close()
    names = sorted(p.name for p in (vault / "Telegram" / "Costs").glob("2023-11-14 5*.md"))
    assert names == ["2023-11-14 5 2.md"]


def test_a_vault_path_is_inspected_once_to_read_it_or_to_find_it_free(
    vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = Vault(vault)
    writer.write_atomic("Notes/a.md", b"a")
    writer.resolve("Notes/b.md")  # the folder is verified for the pass
    seen: list[str] = []
    real_lstat = os.lstat

    def lstat(path: object, *args: object, **kwargs: object) -> os.stat_result:
        seen.append(os.fspath(path))  # type: ignore[arg-type]
        return real_lstat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "lstat", lstat)
    assert writer.read_bytes("Notes/a.md") == b"a"
    assert writer.read_bytes("Notes/missing.md") is None
    assert writer.unique_path("Notes/b.md", lambda _path: False) == "Notes/b.md"
    assert seen == [str(vault / "Notes" / name) for name in ("a.md", "missing.md", "b.md")]
