"""Live edits, deletions (policies, the mass-deletion guard, crashes) and reconciliation, over the
in-memory source: what the engine promises whatever the source. The Telethon path (events from the
simulator, reconciliation of changes made while stopped) is in ``test_changes_telegram.py``.

Time is a fake clock (``Clock``): deletions are dated by it and the recent window is measured from it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from vaultcheck import check_vault, vault_files

from tobs_sync.app import App
from tobs_sync.cli import collect_status
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
from tobs_sync.store_deletions import held
from tobs_sync.sync import SyncReport

T = TypeVar("T")
START = 1_700_000_000
NOW = START + 10_000
NEWS = Chat(-1_000_000_001_234, "News", ChatKind.CHANNEL.value)
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

# region deletions by policy


def deleted(source: MemorySource, chat: Chat, *ids: int) -> Callable[[App, MemorySource], Awaitable[SyncReport]]:
    """Delete ``ids`` in the source and report it live, naming the chat (a channel's deletions do)."""
    source.delete_messages(chat.id, ids)
    return lambda app, _src: app.synchronizer.apply_deletions(chat.id, ids)


def test_a_deleted_message_is_marked_with_a_property_and_a_line_keeping_the_users_text(vault: Path) -> None:
    source = source_with(NEWS)
    run(vault, sync, source)
    note = note_path(vault, NEWS, 3)
    note.write_text(note.read_text(encoding="utf-8") + "my own words\n", encoding="utf-8")

    report = run(vault, deleted(source, NEWS, 3), source, Clock(NOW))

    assert report.chat(NEWS).deleted == 1 and report.chat(NEWS).held == 0
    assert str(properties(note)["deleted"]).startswith("2023-11-15 01:00")  # NOW, in UTC
    assert "Deleted in Telegram" in region(note) and "message 3" in region(note)
    assert note.read_text(encoding="utf-8").endswith("my own words\n")
    assert "deleted" not in properties(note_path(vault, NEWS, 4))
    # a re-render (a template change) keeps the mark
    with App.open(vault) as app:
        assert app.synchronizer.render_all().notes_written == 0
    assert "Deleted in Telegram" in region(note)


def test_keep_policy_records_the_deletion_and_leaves_the_note_as_it_was(vault: Path) -> None:
    configure(vault, '[deletions]\npolicy = "keep"\n')
    source = source_with(NEWS)
    run(vault, sync, source)
    note = note_path(vault, NEWS, 3)
    before = note.read_bytes()

    report = run(vault, deleted(source, NEWS, 3), source)

    assert report.chat(NEWS).deleted == 1 and note.read_bytes() == before
    with App.open(vault, read_only=True) as app:
        assert app.store.connection.execute(
            "SELECT state, action FROM deletions WHERE chat_id=? AND message_id=3", (NEWS.id,)
        ).fetchone() == ("applied", "keep")


def test_archive_policy_moves_the_marked_note_into_the_archive_folder_and_the_store_follows(vault: Path) -> None:
    configure(vault, '[deletions]\npolicy = "archive"\narchive_folder = "Archive/Telegram"\n')
    source = source_with(NEWS)
    run(vault, sync, source)
    old = note_path(vault, NEWS, 3)

    report = run(vault, deleted(source, NEWS, 3), source)

    assert report.chat(NEWS).deleted == 1 and not old.exists()
    moved = note_path(vault, NEWS, 3)
    assert moved.relative_to(vault).as_posix() == f"Archive/Telegram/News/{old.name}"
    assert "Deleted in Telegram" in region(moved) and properties(moved)["deleted"]
    with App.open(vault) as app:  # the moved note is still tobs-sync's: a re-render finds it unchanged
        assert app.synchronizer.render_all().notes_written == 0
        assert app.store.note_at(old.relative_to(vault).as_posix()) is None


def test_remove_policy_deletes_an_untouched_note_and_marks_one_the_user_edited(vault: Path) -> None:
    configure(vault, '[deletions]\npolicy = "remove"\n')
    source = source_with(NEWS)
    run(vault, sync, source)
    untouched, edited = note_path(vault, NEWS, 3), note_path(vault, NEWS, 4)
    edited.write_text(edited.read_text(encoding="utf-8") + "keep my words\n", encoding="utf-8")

    report = run(vault, deleted(source, NEWS, 3, 4), source)

    assert report.chat(NEWS).deleted == 2
    assert not untouched.exists()
    assert edited.read_text(encoding="utf-8").endswith("keep my words\n") and "Deleted in Telegram" in region(edited)
    with App.open(vault, read_only=True) as app:
        assert app.store.note_of_message(NEWS.id, 3) is None
        assert app.store.message(NEWS.id, 3) is not None  # the record stays (the history is kept)


def test_remove_policy_keeps_a_note_whose_user_text_was_merged_by_an_earlier_update(vault: Path) -> None:
    configure(vault, '[deletions]\npolicy = "remove"\n')
    source = source_with(NEWS)
    run(vault, sync, source)
    note = note_path(vault, NEWS, 5)
    note.write_text(note.read_text(encoding="utf-8") + "my notes on it\n", encoding="utf-8")
    edited = source.edit_message(NEWS.id, 5, text="changed", edited=START + 3000)
    run(vault, lambda app, src: app.synchronizer.apply_edits(src, [edited]), source)  # merged: now "ours" by hash

    run(vault, deleted(source, NEWS, 5), source)

    assert note.read_text(encoding="utf-8").endswith("my notes on it\n") and "Deleted in Telegram" in region(note)


def test_an_album_losing_some_members_says_how_many_and_is_marked_deleted_when_all_are_gone(vault: Path) -> None:
    source = MemorySource([NEWS])
    for message_id in range(1, 4):
        source.add_message(message(NEWS, message_id, f"part {message_id}", grouped_id=9))
    run(vault, sync, source)
    note = note_path(vault, NEWS, 1)

    run(vault, deleted(source, NEWS, 2), source)
    assert "1 of these 3 items were deleted" in region(note) and "deleted" not in properties(note)
    run(vault, deleted(source, NEWS, 1, 3), source)
    assert "Deleted in Telegram" in region(note) and properties(note)["deleted"]


def test_deletions_naming_no_chat_are_mapped_to_private_chats_and_groups_through_the_store(vault: Path) -> None:
    source = MemorySource([NEWS, FRIEND, GROUP])
    for chat, ids in ((FRIEND, (1, 3, 5)), (GROUP, (2, 4, 6)), (NEWS, (1, 2, 3, 4, 5, 6))):
        for message_id in ids:
            source.add_message(message(chat, message_id))
    run(vault, sync, source)

    report = run(vault, lambda app, _src: app.synchronizer.apply_deletions(None, [3, 4, 99]), source)

    assert {chat: counts.deleted for chat, counts in report.per_chat.items()} == {FRIEND.id: 1, GROUP.id: 1}
    assert properties(note_path(vault, FRIEND, 3))["deleted"] and properties(note_path(vault, GROUP, 4))["deleted"]
    assert "deleted" not in properties(note_path(vault, NEWS, 3))  # a channel's ids are its own


def test_a_deletion_reported_again_changes_nothing(vault: Path) -> None:
    source = source_with(NEWS)
    run(vault, sync, source)
    run(vault, deleted(source, NEWS, 3), source, Clock(NOW))
    note = note_path(vault, NEWS, 3)
    before = (note.read_bytes(), note.stat().st_mtime_ns)

    report = run(vault, lambda app, _src: app.synchronizer.apply_deletions(NEWS.id, [3]), source, Clock(NOW + 999))

    assert (report.chat(NEWS).deleted, report.notes_written) == (0, 0)
    assert (note.read_bytes(), note.stat().st_mtime_ns) == before


def test_hostile_text_of_a_deleted_message_stays_inert(vault: Path) -> None:
    hostile = f"{END_MARKER}\n---\ndeleted: never\n---\n[[Secret]] {{{{ 7*7 }}}} <script>x</script>\n{BEGIN_MARKER}"
    source = MemorySource([Chat(NEWS.id, f"News {END_MARKER} [[x]]", NEWS.kind)])
    source.add_message(message(NEWS, 1, hostile))
    run(vault, sync, source)

    run(vault, deleted(source, NEWS, 1), source)

    note = note_path(vault, NEWS, 1)
    text = note.read_text(encoding="utf-8")
    assert text.count(BEGIN_MARKER) == 1 and text.count(END_MARKER) == 1
    assert properties(note)["deleted"] != "never" and "49" not in text
    assert "Deleted in Telegram" in region(note)
    check_vault(vault)  # every note parses (it raises on a broken one)


# endregion

# region the mass-deletion guard


def test_mass_deletion_is_held_listed_and_applied_only_when_confirmed(vault: Path) -> None:
    configure(vault, "[deletions]\nhold_above = 3\n")
    source = source_with(NEWS, FRIEND)
    run(vault, sync, source)
    files_before = {p: p.read_bytes() for p in (vault / "Telegram").rglob("*.md")}

    report = run(vault, deleted(source, NEWS, 1, 2, 3, 4), source)

    assert (report.chat(NEWS).held, report.chat(NEWS).deleted) == (4, 0)
    assert {p: p.read_bytes() for p in (vault / "Telegram").rglob("*.md")} == files_before
    with App.open(vault, read_only=True) as app:  # listed, from a read-only store (status)
        assert [(h.chat_id, h.title, h.count, h.message_ids) for h in held(app.store)] == [
            (NEWS.id, "News", 4, (1, 2, 3, 4))]
        shown = {chat["id"]: chat["held_deletions"] for chat in collect_status(app)["chats"]}
    assert shown == {NEWS.id: 4, FRIEND.id: 0}  # what `status` shows
    # while a chat has held deletions, even a small one more joins them
    report = run(vault, deleted(source, NEWS, 5), source)
    assert (report.chat(NEWS).held, report.chat(NEWS).deleted) == (1, 0)
    # a small deletion elsewhere is applied
    assert run(vault, deleted(source, FRIEND, 1), source).chat(FRIEND).deleted == 1

    report = run(vault, lambda app, _src: app.synchronizer.confirm_deletions(NEWS.id), source)

    assert report.chat(NEWS).deleted == 5
    assert all("Deleted in Telegram" in region(note_path(vault, NEWS, i)) for i in range(1, 6))
    with App.open(vault, read_only=True) as app:
        assert held(app.store) == []


def test_discarded_held_deletions_leave_the_notes_and_are_not_raised_again(vault: Path) -> None:
    configure(vault, "[deletions]\nhold_above = 2\n")
    source = source_with(NEWS)
    run(vault, sync, source)
    run(vault, deleted(source, NEWS, 1, 2, 3), source)

    with App.open(vault) as app:
        assert app.synchronizer.changes.discard(NEWS.id) == 3
        assert held(app.store) == []
    report = run(vault, lambda app, _src: app.synchronizer.apply_deletions(NEWS.id, [1, 2, 3]), source)
    assert (report.chat(NEWS).held, report.chat(NEWS).deleted) == (0, 0)
    assert "deleted" not in properties(note_path(vault, NEWS, 1))


@pytest.mark.parametrize("how", ["private chat cleared", "channel cleared"])
def test_a_cleared_chat_is_held(vault: Path, how: str) -> None:
    chat = FRIEND if how.startswith("private") else NEWS
    source = source_with(chat, count=60)  # more than the default hold_above = 50
    run(vault, sync, source)
    ids = [m.id for m in source.messages(chat.id)]
    source.delete_messages(chat.id, ids)

    async def clear(app: App, _src: MemorySource) -> SyncReport:
        if chat is FRIEND:  # Telegram names no chat and lists every id
            return await app.synchronizer.apply_deletions(None, ids)
        return await app.synchronizer.apply_deletions(chat.id, [], up_to=max(ids))  # available_min_id

    report = run(vault, clear, source)

    assert (report.chat(chat).held, report.chat(chat).deleted) == (60, 0)
    assert "deleted" not in properties(note_path(vault, chat, 1))


# endregion

# region crashes


def crash_at_commit(app: App, commits: int) -> None:
    """The store dies (``SystemExit``, its transaction never committed) instead of its next
    ``commits + 1``-th commit: the state a power cut leaves after ``commits`` durable steps."""
    store = app.store
    commit = store._commit
    left = [commits]

    def dying() -> None:
        if left[0] == 0:
            raise SystemExit("simulated crash")
        left[0] -= 1
        commit()

    store._commit = dying  # type: ignore[method-assign]


def source_without_2_and_3() -> MemorySource:
    source = source_with(NEWS, count=6)
    source.delete_messages(NEWS.id, [2, 3])
    return source


async def delete_2_and_3(app: App, _src: MemorySource) -> None:
    await app.synchronizer.apply_deletions(NEWS.id, [2, 3])


@pytest.mark.parametrize("policy", ["archive", "remove"])  # archive marks the note, then moves it
def test_a_crash_anywhere_while_applying_deletions_is_repaired_by_the_next_pass(
        vault: Path, tmp_path: Path, policy: str) -> None:
    """Applying a live deletion dies before each of its commits in turn; the next pass (what was
    recorded is resumed, or its reconciliation finds the deletion again) leaves the vault as an
    uninterrupted run does."""
    configure(vault, f'[deletions]\npolicy = "{policy}"\n')
    run(vault, sync, source_with(NEWS, count=6))
    reference_root = tmp_path / "reference"
    shutil.copytree(vault, reference_root)
    run(reference_root, delete_2_and_3, source_without_2_and_3())
    run(reference_root, sync, source_without_2_and_3())
    reference = vault_files(reference_root)
    assert reference != vault_files(vault)

    crashes = 0
    for crash_after in range(40):
        root = tmp_path / f"crash-{crash_after}"
        shutil.copytree(vault, root)

        async def dying(app: App, src: MemorySource, commits: int = crash_after) -> None:
            crash_at_commit(app, commits)
            await delete_2_and_3(app, src)

        try:
            run(root, dying, source_without_2_and_3())
        except SystemExit:
            crashes += 1
            run(root, sync, source_without_2_and_3())  # the next pass after the restart
            assert vault_files(root) == reference, f"after a crash at commit {crash_after}"
            continue
        break
    assert crashes >= 8, crashes



def test_a_crash_anywhere_while_applying_an_edit_is_repaired_by_the_next_pass(vault: Path, tmp_path: Path) -> None:
    run(vault, sync, source_with(NEWS, count=6))

    def edited_source() -> MemorySource:
        source = source_with(NEWS, count=6)
        source.edit_message(NEWS.id, 4, text="the corrected text", edited=START + 4000)
        return source

    async def edit(app: App, src: MemorySource) -> None:
        await app.synchronizer.apply_edits(src, [src.messages(NEWS.id)[3]])

    reference_root = tmp_path / "reference"
    shutil.copytree(vault, reference_root)
    run(reference_root, edit, edited_source())
    reference = vault_files(reference_root)
    assert any("the corrected text" in data.decode() for data in reference.values())

    crashes = 0
    for crash_after in range(20):
        root = tmp_path / f"crash-{crash_after}"
        shutil.copytree(vault, root)

        async def dying(app: App, src: MemorySource, commits: int = crash_after) -> None:
            crash_at_commit(app, commits)
            await edit(app, src)

        try:
            run(root, dying, edited_source())
        except SystemExit:
            crashes += 1
            report = run(root, sync, edited_source())  # the next pass: owed re-render, or reconciliation
            assert vault_files(root) == reference, f"after a crash at commit {crash_after}"
            assert report.chat(NEWS).edited <= 1
            continue
        break
    assert crashes >= 2, crashes

# endregion

# region reconciliation


def test_reconciliation_finds_changes_and_deletions_nobody_reported_and_counts_its_cost(vault: Path) -> None:
    source = source_with(NEWS, count=10)
    run(vault, sync, source)
    reacted = dataclasses.replace(source.messages(NEWS.id)[4], extra={"reactions": [{"type": "emoji", "count": 3}]})
    source.change_message(reacted)  # a reaction: no edit time
    source.edit_message(NEWS.id, 6, text="edited while stopped", edited=START + 5000)
    source.delete_messages(NEWS.id, [8])
    source.add_message(message(NEWS, 11, "new"))

    report = run(vault, sync, source)

    counts = report.chat(NEWS)
    assert (counts.new, counts.edited, counts.deleted, counts.held) == (1, 2, 1, 0)
    assert counts.reconciled == 10 and source.recent_reads == 1  # the 10 messages left, in one read
    assert "edited while stopped" in region(note_path(vault, NEWS, 6))
    assert "reactions" in note_path(vault, NEWS, 5).read_text(encoding="utf-8")
    assert properties(note_path(vault, NEWS, 8))["deleted"]
    with App.open(vault) as app:  # the cost is reported with the pass: `status` and the status note
        when = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
        app.record_pass(report, when, when, "schedule")
        last = {chat["id"]: chat["last_pass"] for chat in collect_status(app)["chats"]}
    assert last[NEWS.id]["reconciled"] == 10
    status_note = (vault / "Telegram" / "tobs-sync status.md").read_text(encoding="utf-8")
    assert "News: 1 new, 2 edited, 1 deleted (10 recent messages read again)" in status_note
    again = run(vault, sync, source)
    assert (again.chat(NEWS).edited, again.chat(NEWS).deleted, again.notes_written) == (0, 0, 0)


def test_reconciliation_sees_only_its_window_by_count_and_by_age(vault: Path) -> None:
    configure(vault, "[sync]\nrecent_messages = 4\nrecent_days = 1\n")
    source = source_with(NEWS, count=10)
    run(vault, sync, source)
    source.delete_messages(NEWS.id, [2, 9])  # 2 lies below the 4 newest
    clock = Clock(START + 10 * 60 + 86_400)  # a day after message 10: only messages 10.. are within a day

    report = run(vault, sync, source, clock)
    assert report.chat(NEWS).deleted == 0  # 9 is older than a day: outside the window
    report = run(vault, sync, source, Clock(START))
    assert report.chat(NEWS).deleted == 1 and report.chat(NEWS).reconciled == 4
    assert "deleted" not in properties(note_path(vault, NEWS, 2))


def test_reconciliation_is_off_with_recent_messages_zero_and_skipped_on_a_chats_first_read(vault: Path) -> None:
    configure(vault, "[sync]\nrecent_messages = 0\n")
    source = source_with(NEWS, count=5)
    report = run(vault, sync, source)
    assert (report.chat(NEWS).reconciled, source.recent_reads) == (0, 0)
    source.delete_messages(NEWS.id, [3])
    report = run(vault, sync, source)
    assert (report.chat(NEWS).deleted, source.recent_reads) == (0, 0)


def test_a_chat_cleared_while_stopped_is_held_by_reconciliation(vault: Path) -> None:
    source = source_with(NEWS, count=60)
    run(vault, sync, source)
    source.delete_messages(NEWS.id, range(1, 61))

    report = run(vault, sync, source)

    assert (report.chat(NEWS).held, report.chat(NEWS).deleted) == (60, 0)


# endregion

# region the deletions command


def test_deletions_command_lists_confirms_and_discards_held_deletions(vault: Path, capsys: Any) -> None:
    import json

    from tobs_sync.cli import main
    configure(vault, "[deletions]\nhold_above = 1\n")
    source = source_with(NEWS, FRIEND)
    run(vault, sync, source)
    run(vault, deleted(source, NEWS, 1, 2), source, Clock(NOW))
    run(vault, deleted(source, FRIEND, 3, 4, 5), source, Clock(NOW))
    capsys.readouterr()

    assert main(["deletions", "--vault", str(vault), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(h["chat_id"], h["title"], h["count"], h["message_ids"]) for h in listed] == [
        (NEWS.id, "News", 2, [1, 2]), (FRIEND.id, "Friend", 3, [3, 4, 5])]
    assert listed[0]["first_found"].startswith("2023-11-15T01:00")
    assert main(["deletions", "--vault", str(vault)]) == 0
    assert "News" in capsys.readouterr().out

    assert main(["deletions", "--vault", str(vault), "--confirm", str(NEWS.id)]) == 0
    assert "applied 2 deletion(s) in 'News'" in capsys.readouterr().out
    assert main(["deletions", "--vault", str(vault), "--discard", str(FRIEND.id)]) == 0
    assert "dropped 3 held deletion(s) in 'Friend'" in capsys.readouterr().out
    assert properties(note_path(vault, NEWS, 1))["deleted"] and "deleted" not in properties(note_path(vault, FRIEND, 3))

    assert main(["deletions", "--vault", str(vault), "--confirm", "12345"]) == 1
    assert "chat 12345 has no held deletions" in capsys.readouterr().err
    assert main(["deletions", "--vault", str(vault)]) == 0
    assert "no held deletions" in capsys.readouterr().out


# endregion
