"""Live edits, deletions (policies, the mass-deletion guard, crashes) and reconciliation, over the
in-memory source: what the engine promises whatever the source. The Telethon path (events from the
simulator, reconciliation of changes made while stopped) is in ``test_changes_telegram.py``.

Time is a fake clock (``Clock``): deletions are dated by it and the recent window is measured from it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tobs_sync.app import App
from tobs_sync.merge import BEGIN_MARKER, END_MARKER
from tobs_sync.model import Chat, ChatKind, Message
from tobs_sync.sources.base import (
    LiveSource,
    MessageEdited,
    MessagesArrived,
    MessagesDeleted,
    RecentWindow,
)
from tobs_sync.sources.memory import MemorySource
from tobs_sync.sync import SyncReport

T = TypeVar("T")
START = 1_700_000_000
NOW = START + 10_000
NEWS = Chat(-1001234, "News", ChatKind.CHANNEL.value)
FRIEND = Chat(4242, "Friend", ChatKind.USER.value)
GROUP = Chat(-777, "Group", ChatKind.GROUP.value)


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def configure(vault: Path, extra: str) -> None:
    config = vault / ".tobs" / "config.toml"
    config.write_text(config.read_text(encoding="utf-8") + extra, encoding="utf-8")


def message(chat: Chat, message_id: int, text: str | None = None, **fields: Any) -> Message:
    return Message(chat.id, message_id, START + message_id * 60, text=text or f"message {message_id}", **fields)


def source_with(*chats: Chat, count: int = 10) -> MemorySource:
    source = MemorySource(chats)
    for chat in chats:
        for message_id in range(1, count + 1):
            source.add_message(message(chat, message_id))
    return source


def run(vault: Path, body: Callable[[App, MemorySource], Awaitable[T]], source: MemorySource,
        clock: Clock | None = None) -> T:
    """``body(app, source)`` with the app open on ``vault`` and the source's session open."""

    async def scenario() -> T:
        with App.open(vault) as app:
            app.synchronizer.changes.clock = clock or Clock()
            async with source:
                return await body(app, source)

    return asyncio.run(scenario())


async def sync(app: App, source: MemorySource) -> SyncReport:
    return await app.synchronizer.sync(source)


def note_path(vault: Path, chat: Chat, message_id: int) -> Path:
    with App.open(vault, read_only=True) as app:
        row = app.store.note_of_message(chat.id, message_id)
    assert row is not None, f"no note for message {message_id}"
    return vault / row.path


def properties(note: Path) -> dict[str, Any]:
    text = note.read_text(encoding="utf-8")
    return yaml.safe_load(text.split("---\n")[1])


def region(note: Path) -> str:
    text = note.read_text(encoding="utf-8")
    return text.split(BEGIN_MARKER)[1].split(END_MARKER)[0]


# region sources


def test_memory_source_is_a_live_source_and_a_recent_window() -> None:
    source = source_with(NEWS, count=5)
    assert isinstance(source, LiveSource) and isinstance(source, RecentWindow)
    edited = dataclasses.replace(source.messages(NEWS.id)[1], text="new", edited=START + 999)
    source.push(MessagesArrived(NEWS.id))  # before the session: kept for it
    source.push(MessageEdited(edited))

    async def scenario() -> tuple[list[Any], list[int], list[int]]:
        async with source:
            seen = []
            changes = source.live_changes()
            seen.append(await anext(changes))
            seen.append(await anext(changes))
            source.push(MessagesDeleted(None, (3,)))
            seen.append(await anext(changes))
            newest = [m.id for m in await source.recent_messages(NEWS, count=3, since=None)]
            import datetime as dt
            since = dt.datetime.fromtimestamp(START + 4 * 60, dt.UTC)
            dated = [m.id for m in await source.recent_messages(NEWS, count=10, since=since)]
        rest = [change async for change in changes]  # the session ended: the iterator ends
        return seen + rest, newest, dated

    seen, newest, dated = asyncio.run(scenario())
    assert seen == [MessagesArrived(NEWS.id), MessageEdited(edited), MessagesDeleted(None, (3,))]
    assert newest == [3, 4, 5] and dated == [4, 5]


# endregion

# region edits


def test_a_live_edit_rerenders_the_note_and_keeps_the_users_text(vault: Path) -> None:
    source = source_with(NEWS)
    run(vault, sync, source)
    note = note_path(vault, NEWS, 4)
    text = note.read_text(encoding="utf-8")
    front, rest = text.split("---\n", 2)[1:]
    note.write_text(f"---\n{front}my_tag: mine\n---\nabove, mine\n{rest}below, mine\n", encoding="utf-8")
    edited = dataclasses.replace(source.messages(NEWS.id)[3], text="corrected text", edited=START + 5000)
    source.change_message(edited)

    report = run(vault, lambda app, src: app.synchronizer.apply_edits(src, [edited]), source)

    assert report.chat(NEWS).edited == 1 and report.notes_written == 1
    after = note.read_text(encoding="utf-8")
    assert "corrected text" in region(note) and "message 4" not in region(note)
    assert "above, mine\n" in after and after.endswith("below, mine\n")
    assert properties(note)["my_tag"] == "mine" and properties(note)["edited"]
    with App.open(vault, read_only=True) as app:
        assert app.store.message(NEWS.id, 4) == edited


def test_an_unchanged_or_unknown_edit_writes_nothing_and_one_above_the_cursor_waits_for_the_pass(
        vault: Path) -> None:
    source = source_with(NEWS)
    run(vault, sync, source)
    same = source.messages(NEWS.id)[2]
    later = source.add_message(message(NEWS, 11, "not read yet"))
    edited_later = dataclasses.replace(later, text="edited before any pass", edited=START + 9000)
    source.change_message(edited_later)
    stranger = message(Chat(99, "Not synced"), 1, "x")

    report = run(vault, lambda app, src: app.synchronizer.apply_edits(src, [same, edited_later, stranger]), source)

    assert (report.chat(NEWS).edited, report.notes_written) == (0, 0)
    with App.open(vault, read_only=True) as app:
        assert app.store.message(NEWS.id, 11) is None
    report = run(vault, sync, source)  # the pass reads it, as it is now
    assert report.chat(NEWS).new == 1 and "edited before any pass" in region(note_path(vault, NEWS, 11))


def test_an_album_members_edit_rerenders_the_album_note(vault: Path) -> None:
    source = MemorySource([NEWS])
    for message_id in range(1, 4):
        source.add_message(message(NEWS, message_id, f"part {message_id}", grouped_id=55))
    run(vault, sync, source)
    note = note_path(vault, NEWS, 2)
    assert note == note_path(vault, NEWS, 1)
    edited = dataclasses.replace(source.messages(NEWS.id)[1], text="part two, corrected", edited=START + 777)

    report = run(vault, lambda app, src: app.synchronizer.apply_edits(src, [edited]), source)

    assert report.chat(NEWS).edited == 1
    body = region(note)
    assert "part 1" in body and "part two, corrected" in body and "part 3" in body
    assert properties(note)["tg_message_id"] == [1, 2, 3]


def test_a_pass_and_live_changes_never_interleave_within_a_chat(vault: Path) -> None:
    source = MemorySource([NEWS], batch_size=2)
    for message_id in range(1, 5):
        source.add_message(message(NEWS, message_id))
    run(vault, sync, source)
    for message_id in range(5, 11):
        source.add_message(message(NEWS, message_id))
    edited = dataclasses.replace(source.messages(NEWS.id)[0], text="edited meanwhile", edited=START + 1)
    order: list[str] = []
    reading = asyncio.Event()

    class Gated(MemorySource):
        async def batches(self, chat: Chat, after: int) -> Any:  # type: ignore[override]
            async for batch in super().batches(chat, after):
                order.append(f"batch {batch[0].id}")
                reading.set()
                for _ in range(5):
                    await asyncio.sleep(0)  # the edit task gets every chance to run in the middle of the pass
                yield batch

    gated = Gated([NEWS], batch_size=2)
    for m in source.messages(NEWS.id):
        gated.add_message(m)

    async def scenario(app: App, src: MemorySource) -> None:
        async def edit() -> None:
            await reading.wait()
            report = await app.synchronizer.apply_edits(src, [edited])
            order.append(f"edit {report.chat(NEWS).edited}")

        await asyncio.gather(app.synchronizer.sync(src), edit())

    run(vault, scenario, gated)
    assert order == ["batch 5", "batch 7", "batch 9", "edit 1"]
    assert "edited meanwhile" in region(note_path(vault, NEWS, 1))


# endregion
