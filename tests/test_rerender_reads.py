"""What a re-render reads: a batch of notes' messages in one query, and nothing of a note whose bytes did not change.

``render`` over a vault renders every note again; the store and the disk are asked per batch and per
folder, not per note, and the answers are the ones per-note reads gave (a deleted note is written
again, a note replaced by a symlink is still refused).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path, PurePath

import pytest

from tobs_sync.app import App
from tobs_sync.errors import VaultError
from tobs_sync.model import Chat, ChatKind, Message, Reply
from tobs_sync.sources.memory import MemorySource
from tobs_sync.store_rows import MESSAGE_NOTE

NEWS = Chat(-1001234, "News", ChatKind.CHANNEL.value)
COUNT = 24
START = 1_700_006_400


def synced_vault(vault: Path) -> Path:
    """``vault`` after a pass over NEWS with :data:`COUNT` text messages (every fifth replies to the one before)."""
    source = MemorySource([NEWS])
    for message_id in range(1, COUNT + 1):
        reply = Reply(message_id - 1) if message_id % 5 == 0 else None
        source.add_message(Message(NEWS.id, message_id, START + message_id * 60, text=f"News {message_id}",
                                   reply=reply))

    async def run() -> None:
        with App.open(vault) as app:
            async with source:
                await app.sync_source(source)

    asyncio.run(run())
    return vault


def change_template(vault: Path) -> None:
    templates = vault / "Telegram" / "_templates"
    templates.mkdir(parents=True, exist_ok=True)
    builtin = (Path(__file__).resolve().parents[1] / "templates" / "message.md").read_text(encoding="utf-8")
    (templates / "message.md").write_text(builtin + "\n(rendered again)\n", encoding="utf-8")


def message_note_paths(app: App) -> list[str]:
    return [row.path for row in app.store.notes(kind=MESSAGE_NOTE)]


def test_a_rerender_reads_a_batch_of_notes_messages_in_one_query(vault: Path) -> None:
    synced_vault(vault)
    change_template(vault)
    statements: list[str] = []
    with App.open(vault) as app:
        paths = message_note_paths(app)
        app.store.connection.set_trace_callback(statements.append)
        report = app.synchronizer.render_all(paths)
        app.store.connection.set_trace_callback(None)
    assert report.notes_written == COUNT
    message_reads = [s for s in statements if "FROM messages" in s]
    assert len(message_reads) == 1, message_reads  # was one per message
    assert not [s for s in statements if "FROM message_media" in s]  # text messages have no media to ask about
    link_reads = [s for s in statements if "FROM note_members" in s]
    assert len(link_reads) == 1, link_reads  # was one per reply
    text = (vault / paths[0]).read_text(encoding="utf-8")
    assert "News 1" in text and "(rendered again)" in text
    replied = paths[3].removesuffix(".md")
    assert f"In reply to [[{replied}|" in (vault / paths[4]).read_text(encoding="utf-8")  # message 5 links to 4


def test_a_rerender_of_unchanged_notes_resolves_their_folder_not_each_note(
    vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced_vault(vault)
    resolved: list[str] = []
    with App.open(vault) as app:
        paths = set(message_note_paths(app))
        resolve = app.vault.resolve

        def counting_resolve(relative: str | PurePath) -> Path:
            resolved.append(relative.as_posix() if isinstance(relative, PurePath) else relative)
            return resolve(relative)

        monkeypatch.setattr(app.vault, "resolve", counting_resolve)
        report = app.synchronizer.render_all()
    assert report.notes_written == 0
    assert report.notes_unchanged == COUNT + 1  # and the chat note
    assert not paths & set(resolved)  # was one resolve (two file-system calls) per note
    assert "Telegram/News" in resolved


def test_a_deleted_note_is_written_again_with_the_same_bytes(vault: Path) -> None:
    synced_vault(vault)
    with App.open(vault) as app:
        path = message_note_paths(app)[3]
    before = (vault / path).read_bytes()
    (vault / path).unlink()
    with App.open(vault) as app:
        report = app.synchronizer.render_all()
    assert report.notes_written == 1
    assert (vault / path).read_bytes() == before


@pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="symlinks")
def test_a_note_replaced_by_a_symlink_is_still_refused(vault: Path, tmp_path: Path) -> None:
    synced_vault(vault)
    with App.open(vault) as app:
        path = message_note_paths(app)[0]
    outside = tmp_path / "outside.md"
    outside.write_bytes((vault / path).read_bytes())
    (vault / path).unlink()
    (vault / path).symlink_to(outside)
    with App.open(vault) as app, pytest.raises(VaultError, match="symlink"):
        app.synchronizer.render_all()
    assert outside.read_bytes() == (vault / path).read_bytes()


def test_a_sync_batch_finds_the_notes_its_replies_and_pins_point_at_in_one_query(vault: Path) -> None:
    synced_vault(vault)
    source = MemorySource([NEWS])
    for message_id in range(1, COUNT + 1):  # the history already synced, then replies into it
        source.add_message(Message(NEWS.id, message_id, START + message_id * 60, text=f"News {message_id}"))
    for message_id in range(COUNT + 1, COUNT + 9):
        source.add_message(Message(NEWS.id, message_id, START + message_id * 60, text=f"Later {message_id}",
                                   reply=Reply(message_id - COUNT)))
    statements: list[str] = []

    async def run() -> None:
        with App.open(vault) as app:
            app.store.connection.set_trace_callback(statements.append)
            async with source:
                await app.sync_source(source)
            app.store.connection.set_trace_callback(None)

    asyncio.run(run())
    one_by_one = [s for s in statements if "(SELECT path FROM note_members WHERE chat_id=" in s]
    assert one_by_one == []  # was one query per reply into an earlier note
    assert len([s for s in statements if "FROM note_members m JOIN notes" in s]) == 1
    notes = [p.read_text(encoding="utf-8") for p in (vault / "Telegram" / "News").glob("*.md")]
    text = next(t for t in notes if "Later 25" in t)
    with App.open(vault) as app:
        first = app.store.note_of_message(NEWS.id, 1)
    assert first is not None and f"In reply to [[{first.path.removesuffix('.md')}|" in text
