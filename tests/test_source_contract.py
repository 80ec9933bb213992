"""The Source contract of ``tobs_sync/sources/base.py``, checked on every source, built from one account.

The account is the simulator's seeded one (two chats: a private chat and a channel, 30 messages each,
with an album, replies, service messages, photos, voice notes, documents, videos, one photo posted in
both chats), plus an edit made after the history was generated and a 1.3 MB file sent last (several
chunks in every source). The simulator serves it to the Telethon source through a real TelegramClient.
From the simulator's server-side history, read here directly and not through any source, the test
writes the same account as a Telegram Desktop export (``result.json`` and media files) and stages it
in a :class:`MemorySource`. Every contract test runs over the three; where they legitimately differ
(an export records neither albums nor Telegram's file identity, and is a snapshot), the test says so.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from telethon.tl import types

from tobs_sync.config import TelegramSettings
from tobs_sync.errors import MediaUnavailable, SourceError
from tobs_sync.model import CHANNEL_ID_OFFSET, Chat, ChatKind, MediaRef, Message, Reply, ServiceAction
from tobs_sync.sim import SimulatedTelegram
from tobs_sync.sources.base import BoundsHistory, Source
from tobs_sync.sources.memory import MemorySource
from tobs_sync.sources.tdesktop import DesktopExport
from tobs_sync.sources.telegram import TelegramSource
from tobs_sync.store_schema import NO_CURSOR

SPEC = "chats=2,messages=30,media=0.3,seed=1"
BATCH_SIZE = 7
BIG_FILE_BYTES = 1_300_000
EDITED_TEXT = "Corrected: the meeting is at noon, not at ten"
SOURCES = ("export", "telegram", "memory")


# -- the account, from the simulator's server-side history -------------------------------------------


@dataclass(frozen=True)
class MediaTruth:
    kind: str
    file_name: str | None
    mime_type: str | None
    data: bytes
    key: str
    """The simulator's key of the file: equal keys, equal bytes."""


@dataclass(frozen=True)
class MessageTruth:
    chat_id: int
    id: int
    date: int
    kind: str
    text: str = ""
    reply_to: int | None = None
    edited: int | None = None
    grouped_id: int | None = None
    action: str | None = None
    action_title: str | None = None
    pinned: int | None = None
    media: tuple[MediaTruth, ...] = ()


@dataclass
class Account:
    sim: SimulatedTelegram
    chats: list[Chat]
    messages: dict[int, list[MessageTruth]]
    edited: tuple[int, int]
    """(chat id, message id) of the message edited after the history was generated."""

    def message(self, chat_id: int, message_id: int) -> MessageTruth:
        return next(m for m in self.messages[chat_id] if m.id == message_id)


_ACTIONS = {
    types.MessageActionChannelCreate: "create_channel",
    types.MessageActionChatCreate: "create_group",
    types.MessageActionChatEditTitle: "edit_group_title",
    types.MessageActionPinMessage: "pin_message",
}


def _epoch(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


def _media_truth(sim: SimulatedTelegram, tl: types.Message) -> MediaTruth:
    key = sim.file_key(tl)
    data = sim.file_bytes(key)
    if isinstance(tl.media, types.MessageMediaPhoto):
        return MediaTruth("photo", None, "image/jpeg", data, key)
    document = tl.media.document
    attributes = {type(a): a for a in document.attributes}
    video, audio = attributes.get(types.DocumentAttributeVideo), attributes.get(types.DocumentAttributeAudio)
    if video is not None:
        kind = "video_note" if video.round_message else "video"
    elif audio is not None:
        kind = "voice" if audio.voice else "audio"
    else:
        kind = "document"
    named = attributes.get(types.DocumentAttributeFilename)
    return MediaTruth(kind, named.file_name if named else None, document.mime_type, data, key)


def _message_truth(sim: SimulatedTelegram, chat_id: int, tl: Any) -> MessageTruth:
    if isinstance(tl, types.MessageService):
        action = _ACTIONS[type(tl.action)]
        pinned = tl.reply_to.reply_to_msg_id if action == "pin_message" else None
        return MessageTruth(chat_id, tl.id, _epoch(tl.date) or 0, "service", action=action,
                            action_title=getattr(tl.action, "title", None), pinned=pinned)
    return MessageTruth(
        chat_id, tl.id, _epoch(tl.date) or 0, "message", text=tl.message,
        reply_to=tl.reply_to.reply_to_msg_id if tl.reply_to else None, edited=_epoch(tl.edit_date),
        grouped_id=tl.grouped_id, media=(_media_truth(sim, tl),) if tl.media else (),
    )


def build_account() -> Account:
    sim = SimulatedTelegram(SPEC)
    private, channel = sim.chat_ids
    assert (sim.kind(private), sim.kind(channel)) == ("private", "channel")
    sim.edit_message(private, 2, EDITED_TEXT)
    sim.add_big_file(channel, BIG_FILE_BYTES, text="the recording")
    kinds = {"private": ChatKind.USER.value, "channel": ChatKind.CHANNEL.value}
    chats = [Chat(c, sim.title(c), kinds[sim.kind(c)]) for c in sim.chat_ids]
    messages = {c: [_message_truth(sim, c, tl) for tl in sim.messages(c)] for c in sim.chat_ids}
    return Account(sim, chats, messages, (private, 2))


# -- the account as a Desktop export and as a MemorySource -------------------------------------------

_EXPORT_FOLDERS = {"photo": "photos", "video": "video_files", "voice": "voice_messages",
                   "video_note": "round_video_messages", "audio": "files", "document": "files"}
_EXPORT_MEDIA_TYPES = {"video": "video_file", "voice": "voice_message", "video_note": "video_message",
                       "audio": "audio_file"}


def _export_date(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None).isoformat()


def _export_message(truth: MessageTruth, chat: Chat, folder: Path) -> dict[str, Any]:
    record: dict[str, Any] = {"id": truth.id, "type": truth.kind, "date": _export_date(truth.date),
                              "date_unixtime": str(truth.date)}
    if truth.kind == "service":
        record.update(actor=chat.title, actor_id=f"channel{-chat.id - CHANNEL_ID_OFFSET}", action=truth.action)
        if truth.action_title is not None:
            record["title"] = truth.action_title
        if truth.pinned is not None:
            record["message_id"] = truth.pinned
        record["text"] = ""
        return record
    if truth.edited is not None:
        record.update(edited=_export_date(truth.edited), edited_unixtime=str(truth.edited))
    if truth.reply_to is not None:
        record["reply_to_message_id"] = truth.reply_to
    for media in truth.media:
        name = media.file_name or f"{media.kind}_{abs(chat.id)}_{truth.id}{'.jpg' if media.kind == 'photo' else ''}"
        relative = f"{_EXPORT_FOLDERS[media.kind]}/{abs(chat.id)}_{truth.id}_{name}"
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(media.data)
        if media.kind == "photo":
            record.update(photo=relative, photo_file_size=len(media.data))
        else:
            record.update(file=relative, file_size=len(media.data), mime_type=media.mime_type)
            if media.file_name:
                record["file_name"] = media.file_name
            if media.kind in _EXPORT_MEDIA_TYPES:
                record["media_type"] = _EXPORT_MEDIA_TYPES[media.kind]
    record["text"] = truth.text
    return record


def write_export(account: Account, folder: Path) -> Path:
    """The account as a full-account Telegram Desktop export in ``folder``; returns ``result.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    chats = []
    for chat in account.chats:
        user = chat.kind == ChatKind.USER
        chats.append({
            "name": chat.title, "type": "personal_chat" if user else "public_channel",
            "id": chat.id if user else -chat.id - CHANNEL_ID_OFFSET,
            "messages": [_export_message(m, chat, folder) for m in account.messages[chat.id]],
        })
    path = folder / "result.json"
    path.write_text(json.dumps({"chats": {"about": "", "list": chats}}, ensure_ascii=False), encoding="utf-8")
    return path


def memory_source(account: Account) -> MemorySource:
    source = MemorySource(account.chats, batch_size=BATCH_SIZE, chunk_size=256 * 1024)
    refs: dict[str, MediaRef] = {}
    for chat in account.chats:
        for truth in account.messages[chat.id]:
            media = []
            for item in truth.media:
                if item.key not in refs:
                    refs[item.key] = source.add_file(item.data, kind=item.kind, file_name=item.file_name,
                                                     mime_type=item.mime_type, file_key=item.key)
                media.append(refs[item.key])
            action = ServiceAction(truth.action, truth.action_title, message_id=truth.pinned) if truth.action else None
            source.add_message(Message(
                chat.id, truth.id, truth.date, truth.kind, text=truth.text, edited=truth.edited,
                reply=Reply(truth.reply_to) if truth.reply_to else None, grouped_id=truth.grouped_id,
                action=action, media=tuple(media),
            ))
    return source


# -- one harness per source ---------------------------------------------------------------------------


class Harness:
    """One source over the account: fresh sources for each session, and the source's own levers."""

    name: str
    lacks: frozenset[str] = frozenset()
    """Model fields this source cannot fill (documented in the contract)."""

    def __init__(self, account: Account) -> None:
        self.account = account

    def source(self) -> Source:
        raise NotImplementedError

    def released(self, source: Source) -> bool:
        """Whether a source that was left holds nothing any more."""
        raise NotImplementedError

    def make_unavailable(self, chat_id: int, message_id: int, media: MediaRef) -> None:
        raise NotImplementedError

    def send(self, chat_id: int, text: str) -> int:
        """A new message in the account; its id."""
        raise NotImplementedError


class ExportHarness(Harness):
    name = "export"
    lacks = frozenset({"grouped_id", "file_key", "bounds"})

    def __init__(self, account: Account, folder: Path) -> None:
        super().__init__(account)
        self.path = write_export(account, folder)

    def source(self) -> Source:
        return DesktopExport(self.path.parent, local_timezone=UTC, batch_size=BATCH_SIZE)

    def released(self, source: Source) -> bool:
        if not Path("/proc/self/fd").is_dir():
            pytest.skip("open files are listed through /proc/self/fd (Linux)")
        target = str(self.path.resolve())
        for fd in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{fd}") == target:
                    return False
            except OSError:
                continue
        return True

    def make_unavailable(self, chat_id: int, message_id: int, media: MediaRef) -> None:
        assert media.locator is not None
        (self.path.parent / media.locator).unlink()


class TelegramHarness(Harness):
    name = "telegram"

    def __init__(self, account: Account) -> None:
        super().__init__(account)
        self.clients: list[Any] = []

    def source(self) -> Source:
        client = self.account.sim.client(raise_last_call_error=True, request_retries=1)
        self.clients.append(client)
        return TelegramSource(client, TelegramSettings(), batch_size=BATCH_SIZE, retry_delay=0.01)

    def released(self, source: Source) -> bool:
        return not self.clients[-1].is_connected()

    def make_unavailable(self, chat_id: int, message_id: int, media: MediaRef) -> None:
        assert self.account.sim.delete_messages(chat_id, [message_id]) == [message_id]

    def send(self, chat_id: int, text: str) -> int:
        return int(self.account.sim.add_message(chat_id, text).id)


class MemoryHarness(Harness):
    name = "memory"

    def __init__(self, account: Account) -> None:
        super().__init__(account)
        self.memory = memory_source(account)

    def source(self) -> Source:
        return self.memory

    def released(self, source: Source) -> bool:
        try:
            asyncio.run(anext(source.chats()))
        except SourceError:
            return True
        return False

    def make_unavailable(self, chat_id: int, message_id: int, media: MediaRef) -> None:
        self.memory.make_unavailable(media)

    def send(self, chat_id: int, text: str) -> int:
        last = self.memory.messages(chat_id)[-1]
        return self.memory.add_message(Message(chat_id, last.id + 1, last.date + 60, text=text)).id


def make_harness(name: str, folder: Path) -> Harness:
    account = build_account()
    if name == "export":
        return ExportHarness(account, folder)
    return TelegramHarness(account) if name == "telegram" else MemoryHarness(account)


@pytest.fixture(scope="module", params=SOURCES)
def harness(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Harness:
    """A harness for read-only tests, shared by the module (nothing may change its account)."""
    return make_harness(request.param, tmp_path_factory.mktemp(request.param))


@pytest.fixture(params=SOURCES)
def fresh_harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    """A harness of its own, for tests that change the account."""
    return make_harness(request.param, tmp_path / "export")


# -- reading ------------------------------------------------------------------------------------------

Batches = dict[int, list[list[Message]]]


async def read_batches(source: Source, after: Mapping[int, int] | None = None, *, reverse: bool = False) -> Batches:
    """Every chat's batches above ``after`` (0 by default). As the engine does, each chat's history is
    read while ``chats()`` is suspended on it; ``reverse`` lists the chats first and reads them backwards."""
    after = after or {}
    found: Batches = {}
    if reverse:
        chats = [chat async for chat in source.chats()]
        for chat in reversed(chats):
            found[chat.id] = [list(b) async for b in source.batches(chat, after.get(chat.id, 0))]
        return found
    async for chat in source.chats():
        found[chat.id] = [list(b) async for b in source.batches(chat, after.get(chat.id, 0))]
    return found


def read_session(harness: Harness, after: Mapping[int, int] | None = None, *, reverse: bool = False) -> Batches:
    async def run() -> Batches:
        async with harness.source() as source:
            return await read_batches(source, after, reverse=reverse)

    return asyncio.run(run())


def flat(batches: list[list[Message]]) -> list[Message]:
    return [m for batch in batches for m in batch]


async def collect(chunks: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in chunks]


def fetch_in_session(harness: Harness, refs: list[MediaRef], offsets: Mapping[int, list[int]] | None = None
                     ) -> list[list[list[bytes]]]:
    """For each ref, the chunks of ``media_chunks(ref, offset)`` for each offset (default: [0]), in one session
    (after listing the chats, as the contract asks)."""

    async def run() -> list[list[list[bytes]]]:
        async with harness.source() as source:
            _ = [chat async for chat in source.chats()]
            return [
                [await collect(source.media_chunks(ref, offset)) for offset in (offsets or {}).get(i, [0])]
                for i, ref in enumerate(refs)
            ]

    return asyncio.run(run())


def media_of(batches: Batches) -> Iterator[tuple[Message, int, MediaRef]]:
    for chat_batches in batches.values():
        for message in flat(chat_batches):
            for slot, media in enumerate(message.media):
                yield message, slot, media


def projection(message: Message) -> tuple[Any, ...]:
    """What every source must agree on about a message (sender names, entities and counters aside)."""
    action = message.action
    return (
        message.chat_id, message.id, message.date, message.kind, message.text,
        message.reply.message_id if message.reply else None, message.edited, message.grouped_id,
        action.kind if action else None, action.title if action else None, action.message_id if action else None,
        tuple((m.kind, m.file_name, m.mime_type) for m in message.media),
    )


def expected_projection(truth: MessageTruth, lacks: frozenset[str]) -> tuple[Any, ...]:
    return (
        truth.chat_id, truth.id, truth.date, truth.kind, truth.text, truth.reply_to, truth.edited,
        None if "grouped_id" in lacks else truth.grouped_id, truth.action, truth.action_title, truth.pinned,
        tuple((m.kind, m.file_name, m.mime_type) for m in truth.media),
    )


# -- 1. lifecycle -------------------------------------------------------------------------------------


def test_a_source_is_an_async_context_manager_that_releases_what_it_holds(harness: Harness) -> None:
    source = harness.source()

    async def run() -> None:
        async with source as entered:
            assert entered is source
            assert [c.id async for c in source.chats()]

    asyncio.run(run())
    assert harness.released(source)


# -- 2. chats -----------------------------------------------------------------------------------------


def test_chats_are_listed_once_each_with_the_accounts_ids_and_titles(harness: Harness) -> None:
    async def run() -> list[Chat]:
        async with harness.source() as source:
            return [chat async for chat in source.chats()]

    chats = asyncio.run(run())
    assert len({c.id for c in chats}) == len(chats)
    assert sorted((c.id, c.title, c.kind) for c in chats) == sorted((c.id, c.title, c.kind)
                                                                    for c in harness.account.chats)


# -- 3. batches ---------------------------------------------------------------------------------------


def test_batches_are_non_empty_bounded_of_their_chat_and_ascending_across_batches(harness: Harness) -> None:
    for chat_id, batches in read_session(harness).items():
        assert batches, "every chat of the account has messages"
        for batch in batches:
            assert 1 <= len(batch) <= BATCH_SIZE
            assert {m.chat_id for m in batch} == {chat_id}
        ids = [m.id for m in flat(batches)]
        assert all(a < b for a, b in itertools.pairwise(ids)), "ids strictly increase, so none comes twice"


def test_a_full_read_is_the_whole_account_with_nothing_missing_or_twice(harness: Harness) -> None:
    """Each source's messages agree with the account (an export has no ``grouped_id``)."""
    read = read_session(harness)
    assert set(read) == set(harness.account.messages)
    for chat_id, batches in read.items():
        expected = [expected_projection(t, harness.lacks) for t in harness.account.messages[chat_id]]
        assert [projection(m) for m in flat(batches)] == expected


def test_an_edited_message_carries_its_latest_text_and_edit_time(harness: Harness) -> None:
    chat_id, message_id = harness.account.edited
    message = next(m for m in flat(read_session(harness)[chat_id]) if m.id == message_id)
    assert message.text == EDITED_TEXT
    edited = harness.account.message(chat_id, message_id).edited
    assert edited is not None and message.edited == edited


def test_album_members_are_consecutive_in_the_history(harness: Harness) -> None:
    """An album may straddle batches but nothing comes between its members; exports record no albums."""
    albums = 0
    for batches in read_session(harness).values():
        messages = flat(batches)
        for grouped_id in {m.grouped_id for m in messages if m.grouped_id}:
            positions = [i for i, m in enumerate(messages) if m.grouped_id == grouped_id]
            assert positions == list(range(positions[0], positions[-1] + 1))
            albums += 1
    assert albums == (0 if "grouped_id" in harness.lacks else 1)


def test_reading_chats_in_any_order_gives_the_same_batches(harness: Harness) -> None:
    assert read_session(harness, reverse=True) == read_session(harness)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_resuming_from_any_cursor_gives_exactly_the_tail_of_a_full_read(harness: Harness, data: st.DataObject) -> None:
    full = {chat_id: flat(batches) for chat_id, batches in read_session(harness).items()}
    top = max(m.id for messages in full.values() for m in messages)
    cursors = data.draw(st.fixed_dictionaries({chat_id: st.integers(-2, top + 3) for chat_id in full}))
    resumed = read_session(harness, cursors)
    for chat_id, messages in full.items():
        assert flat(resumed[chat_id]) == [m for m in messages if m.id > cursors[chat_id]]
        assert all(batch for batch in resumed[chat_id])


# -- 5. media -----------------------------------------------------------------------------------------


def test_media_chunks_reproduce_the_files_bytes_and_size(harness: Harness) -> None:
    items = list(media_of(read_session(harness)))
    fetched = fetch_in_session(harness, [ref for _, _, ref in items])
    for (message, slot, ref), [chunks] in zip(items, fetched, strict=True):
        truth = harness.account.message(message.chat_id, message.id).media[slot]
        assert all(chunks), "no empty chunk"
        assert b"".join(chunks) == truth.data, f"message {message.id}"
        assert ref.size is None or ref.size == len(truth.data), f"message {message.id}: size {ref.size}"
    assert len(items) == sum(len(m.media) for ms in harness.account.messages.values() for m in ms)


def test_a_download_resumed_at_any_chunk_boundary_gives_the_rest_of_the_file(harness: Harness) -> None:
    items = [(message, ref) for message, _, ref in media_of(read_session(harness)) if (ref.size or 0) > 400_000]
    offsets = {}
    for i, [chunks] in enumerate(fetch_in_session(harness, [ref for _, ref in items])):
        sizes = [len(c) for c in chunks]
        offsets[i] = [sum(sizes[:k]) for k in range(1, len(sizes) + 1)]
    assert any(len(o) > 2 for o in offsets.values()), "the big file comes in several chunks"
    resumed = fetch_in_session(harness, [ref for _, ref in items], offsets)
    for i, (message, _ref) in enumerate(items):
        data = harness.account.message(message.chat_id, message.id).media[0].data
        for offset, chunks in zip(offsets[i], resumed[i], strict=True):
            assert b"".join(chunks) == data[offset:], f"message {message.id} from byte {offset}"


def test_media_with_the_same_file_key_have_the_same_bytes(harness: Harness) -> None:
    """The engine fetches a file key once; exports have no file keys (files are deduplicated by content)."""
    keys = {}
    for message, slot, ref in media_of(read_session(harness)):
        if ref.file_key:
            keys[(message.chat_id, message.id, slot)] = (ref.file_key, harness.account.message(
                message.chat_id, message.id).media[slot].key)
    # equal file keys exactly where the account's files are the same
    source_keys, account_keys = {k for k, _ in keys.values()}, {k for _, k in keys.values()}
    assert len(source_keys) == len(account_keys) == len(set(keys.values()))
    shared = len(keys) - len(source_keys)
    assert shared == (0 if "file_key" in harness.lacks else 1), "one photo is posted in both chats"


def test_media_the_source_cannot_give_raise_media_unavailable(fresh_harness: Harness) -> None:
    harness = fresh_harness
    read = read_session(harness)
    message, _, ref = next(item for item in media_of(read) if item[2].kind == "photo" and item[0].id != 5)
    harness.make_unavailable(message.chat_id, message.id, ref)
    not_exported = MediaRef("photo", None, unavailable="File not included. Change data exporting settings to download.")
    for media in (ref, not_exported):
        with pytest.raises(MediaUnavailable):
            fetch_in_session(harness, [media])


# -- live sources -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fresh_harness", ["telegram", "memory"], indirect=True)
def test_a_message_sent_after_a_read_is_the_next_read_above_the_cursor(fresh_harness: Harness) -> None:
    """An export is a snapshot (nothing can be sent to it); the live sources show what was sent since."""
    harness = fresh_harness
    first = read_session(harness)
    cursors = {chat_id: flat(batches)[-1].id for chat_id, batches in first.items()}
    chat_id = harness.account.chats[0].id
    new_id = harness.send(chat_id, "sent after the first read")
    second = read_session(harness, cursors)
    assert [[(m.id, m.text) for m in batch] for batch in second[chat_id]] == [[(new_id, "sent after the first read")]]
    assert all(batches == [] for other, batches in second.items() if other != chat_id)


def last_n(full: list[Message], n: int) -> list[int]:
    """The ids of the last ``n`` messages, extended back to the start of an album they would cut."""
    first = max(len(full) - n, 0)
    while 0 < first < len(full) and full[first].grouped_id and full[first - 1].grouped_id == full[first].grouped_id:
        first -= 1
    return [m.id for m in full[first:]]


def test_a_bounded_history_starts_before_the_last_n_messages_or_at_a_time(harness: Harness) -> None:
    """Rule 8: ``history_start`` gives the cursor above which a read yields the last N messages (an album
    the count would cut taken whole), or those sent since a time; both: the later start. An export
    bounds nothing (it is what the user chose to export)."""

    async def run() -> list[tuple[str, int, list[int], list[int]]]:
        checks = []
        async with harness.source() as source:
            if not isinstance(source, BoundsHistory):
                return []
            async for chat in source.chats():
                full = flat([list(b) async for b in source.batches(chat, NO_CURSOR)])
                ids = [m.id for m in full]
                cutting = [len(full) - i for i in range(1, len(full))  # counts that start inside an album
                           if full[i].grouped_id and full[i].grouped_id == full[i - 1].grouped_id]
                for n in (1, 4, 9, len(full) - 1, len(full), len(full) + 5, *cutting):
                    start = await source.history_start(chat, since=None, last=n)
                    checks.append((f"last {n}", chat.id, [i for i in ids if i > start], last_n(full, n)))
                for k in (0, 3, len(full) // 2, len(full) - 1):
                    since = datetime.fromtimestamp(full[k].date, UTC)
                    start = await source.history_start(chat, since=since, last=None)
                    newer = [m.id for m in full if m.date >= full[k].date]
                    checks.append((f"since {since}", chat.id, [i for i in ids if i > start], newer))
                    both = await source.history_start(chat, since=since, last=3)
                    tighter = min(newer, last_n(full, 3), key=len)
                    checks.append((f"since {since}, last 3", chat.id, [i for i in ids if i > both], tighter))
        return checks

    checks = asyncio.run(run())
    assert bool(checks) == ("bounds" not in harness.lacks)
    for what, chat_id, got, expected in checks:
        assert got == expected, (what, chat_id)
