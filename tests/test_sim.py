"""The simulated Telegram, exercised through the real Telethon client API only.

Server-side helpers of ``SimulatedTelegram`` (``messages``, ``file_bytes``, ``stats``) are used for
assertions; every action goes through ``telethon.TelegramClient`` so Telethon's own paging, retry,
DC-borrowing, takeout and update code is what runs.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import telethon
from telethon import TelegramClient, errors, events, helpers, utils
from telethon.network import MTProtoSender
from telethon.sessions import MemorySession
from telethon.tl import functions, types
from virtualtime import run_virtual

from tobs_sync.errors import ConfigError
from tobs_sync.sim import SimSpec, SimulatedTelegram, parse_spec
from tobs_sync.sim.client import PRIVATE_ATTRIBUTES, SENDER_INTERFACE
from tobs_sync.sim.rpc import UnsupportedRequest
from tobs_sync.sim.sender import SimSender

T = TypeVar("T")
UPGRADE = (
    "telethon upgrade changed TelegramClient._sender/_create_exported_sender/_get_dc/_updates_queue "
    "or what it uses of MTProtoSender, see tobs_sync/sim/client.py"
)


def run(make: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(make())  # type: ignore[arg-type]


def small(**overrides: Any) -> SimulatedTelegram:
    values = {"chats": 4, "messages": 60, "seed": 7} | overrides
    return SimulatedTelegram(SimSpec(**values))


def media_on(sim: SimulatedTelegram, *, photo: bool, away: bool) -> tuple[int, types.Message]:
    """A (chat id, message) whose photo/document lives away from (or on) the home DC."""
    for chat_id, message in sim.media_messages():
        is_photo = isinstance(message.media, types.MessageMediaPhoto)
        if is_photo == photo and (sim.file_dc(sim.file_key(message)) != sim.home_dc) == away:
            return chat_id, message
    raise AssertionError("no such media in the simulated account")


def history_request(peer: types.TypeInputPeer, **fields: Any) -> functions.messages.GetHistoryRequest:
    values = {"offset_id": 0, "offset_date": None, "add_offset": 0, "limit": 100, "max_id": 0, "min_id": 0}
    return functions.messages.GetHistoryRequest(peer, hash=0, **(values | fields))


async def fetch(client: TelegramClient, chat_id: int, msg_id: int) -> types.Message:
    await client.get_dialogs()
    message = await client.get_messages(chat_id, ids=msg_id)
    assert message is not None
    return message


# region contract with Telethon's internals


def test_telethon_private_attributes_still_exist() -> None:
    major_minor = tuple(int(part) for part in telethon.__version__.split(".")[:2])
    assert (1, 45) <= major_minor < (1, 46), f"telethon {telethon.__version__} is outside >=1.45,<1.46: {UPGRADE}"

    client = TelegramClient(MemorySession(), 1, "x")
    for name in PRIVATE_ATTRIBUTES:
        assert hasattr(client, name), f"TelegramClient.{name} is gone: {UPGRADE}"
    assert isinstance(client._sender, MTProtoSender), UPGRADE
    assert isinstance(client._updates_queue, asyncio.Queue), UPGRADE
    for name, params in (("_create_exported_sender", ["self", "dc_id"]), ("_get_dc", ["self", "dc_id", "cdn"])):
        method = getattr(TelegramClient, name)
        assert inspect.iscoroutinefunction(method), f"TelegramClient.{name} is no coroutine: {UPGRADE}"
        assert list(inspect.signature(method).parameters) == params, f"TelegramClient.{name} signature: {UPGRADE}"
    borrow = inspect.getsource(TelegramClient._borrow_exported_sender)
    assert "self._create_exported_sender(dc_id)" in borrow, UPGRADE
    assert "self._get_dc(dc_id)" in borrow, UPGRADE

    # Everything Telethon's client code uses of a sender must exist on MTProtoSender and on SimSender.
    client_dir = Path(inspect.getfile(TelegramClient)).parent
    used = set()
    for source in client_dir.glob("*.py"):
        used.update(re.findall(r"\b_?sender\.([A-Za-z_]+)", source.read_text(encoding="utf-8")))
    optional = {"dc_id", "_connection"}  # set by Telethon / read with getattr(..., None)
    assert used - optional <= set(SENDER_INTERFACE), f"new sender members {used - optional - set(SENDER_INTERFACE)}"
    sim_sender = SimSender(small()._server, 2, home=True)

    def has(obj: object, name: str) -> bool:  # without running properties
        return hasattr(type(obj), name) or name in vars(obj)

    for name in SENDER_INTERFACE:
        assert has(client._sender, name), f"MTProtoSender.{name} is gone: {UPGRADE}"
        assert has(sim_sender, name), f"SimSender lacks {name}"


def test_client_is_a_plain_telegram_client_with_patched_instance_attributes() -> None:
    sim = small()
    client = sim.client()
    assert type(client) is TelegramClient
    assert isinstance(client.session, MemorySession)
    assert client.session.dc_id == sim.home_dc
    # Plain functions, not bound methods: the takeout proxy would look bound methods up on the class.
    assert not inspect.ismethod(client._create_exported_sender)
    assert not inspect.ismethod(client._get_dc)
    assert client.is_connected()


# endregion

# region spec


def test_parse_spec_reads_every_key_and_round_trips() -> None:
    spec = parse_spec(
        " chats=4, messages=5000,media=0.25,latency_ms=100,seed=9,dcs=5,live_every_s=1.5,bandwidth_kbps=800 "
    )
    assert spec == SimSpec(4, 5000, 0.25, 100.0, 9, 5, 1.5, 800.0)
    assert parse_spec(spec.to_text()) == spec
    assert parse_spec("") == SimSpec()
    assert SimSpec(dcs=1).home_dc == 1
    assert SimSpec(dcs=3).home_dc == 2


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("chat=3", "unknown key 'chat' (did you mean 'chats'?)"),
        ("flavour=3", "unknown key 'flavour'"),
        ("messages=many", "key 'messages' needs a whole number"),
        ("media=1.5", "key 'media' must be between"),
        ("dcs=6", "key 'dcs' must be between"),
        ("seed=1,seed=2", "key 'seed' given twice"),
        ("latency_ms", "key 'latency_ms' needs a value"),
        ("chats=2.5", "key 'chats' needs a whole number"),
        ("live_every_s=nan", "key 'live_every_s' needs a finite number"),
    ],
)
def test_parse_spec_errors_name_the_key(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_spec(text)
    assert needle in str(caught.value)
    assert str(caught.value).startswith("--simulate: ")


# endregion

# region account content


def test_same_spec_gives_byte_identical_accounts() -> None:
    first, second = small(messages=80), small(messages=80)
    assert first.chat_ids == second.chat_ids
    for chat_id in first.chat_ids:
        assert [bytes(m) for m in first.messages(chat_id)] == [bytes(m) for m in second.messages(chat_id)]
    _, message = media_on(first, photo=True, away=True)
    key = first.file_key(message)
    assert first.file_bytes(key) == second.file_bytes(key)
    other = small(seed=8)
    assert other.chat_ids != first.chat_ids
    first_history = [bytes(m) for m in first.messages(first.chat_ids[0])]
    assert [bytes(m) for m in other.messages(other.chat_ids[0])] != first_history


def test_more_messages_extend_the_account_without_changing_the_prefix() -> None:
    shorter, longer = small(messages=50), small(messages=60)
    assert sorted(shorter.chat_ids) == sorted(longer.chat_ids)
    for chat_id in shorter.chat_ids:
        short_history = [bytes(m) for m in shorter.messages(chat_id)]
        long_history = [bytes(m) for m in longer.messages(chat_id)]
        assert len(short_history) == 50 and len(long_history) == 60
        assert long_history[:50] == short_history


def test_account_has_the_variety_a_vault_must_render() -> None:
    sim = SimulatedTelegram(SimSpec(chats=6, messages=300, media=0.3, seed=1))
    kinds = {sim.kind(c) for c in sim.chat_ids}
    assert kinds == {"channel", "megagroup", "forum", "group", "private", "saved"}
    assert all(c < -1_000_000_000_000 for c in sim.chat_ids if sim.kind(c) in ("channel", "megagroup", "forum"))
    assert all(-1_000_000_000_000 < c < 0 for c in sim.chat_ids if sim.kind(c) == "group")
    titles = [sim.title(c) for c in sim.chat_ids]
    assert any(not t.isascii() for t in titles) and any("/" in t or ":" in t for t in titles)
    assert all(sim.entity(c).username for c in sim.chat_ids if sim.kind(c) == "channel")

    messages = [m for c in sim.chat_ids for m in sim.messages(c)]
    entity_types = {type(e) for m in messages for e in (getattr(m, "entities", None) or ())}
    for wanted in (
        types.MessageEntityBold, types.MessageEntityItalic, types.MessageEntityCode, types.MessageEntityPre,
        types.MessageEntityTextUrl, types.MessageEntityMentionName, types.MessageEntityHashtag,
    ):
        assert wanted in entity_types, wanted
    assert any(e.language for m in messages for e in (getattr(m, "entities", None) or ())
               if isinstance(e, types.MessageEntityPre))
    assert any(len(m.message) != len(m.message.encode("utf-16-le")) // 2 for m in messages if getattr(m, "message", ""))
    # Entity offsets are UTF-16 and stay inside the text.
    for m in messages:
        for e in getattr(m, "entities", None) or ():
            assert e.offset >= 0 and e.offset + e.length <= len(helpers.add_surrogate(m.message))
    assert any(isinstance(getattr(m, "fwd_from", None) and m.fwd_from.from_id, types.PeerChannel) for m in messages)
    assert any(getattr(m, "reply_to", None) and m.reply_to.reply_to_msg_id for m in messages)
    actions = {type(m.action) for m in messages if isinstance(m, types.MessageService)}
    assert {types.MessageActionChatCreate, types.MessageActionChannelCreate, types.MessageActionChatEditTitle,
            types.MessageActionPinMessage} <= actions

    media = [m.media for m in messages if isinstance(m, types.Message) and m.media]
    photos = [x.photo for x in media if isinstance(x, types.MessageMediaPhoto)]
    documents = [x.document for x in media if isinstance(x, types.MessageMediaDocument)]
    assert {p.dc_id for p in photos} == {1, 2, 3}
    assert all(isinstance(p.sizes[-1], types.PhotoSizeProgressive) for p in photos)
    attributes = [a for d in documents for a in d.attributes]
    assert any(isinstance(a, types.DocumentAttributeVideo) and not a.round_message for a in attributes)
    assert any(isinstance(a, types.DocumentAttributeVideo) and a.round_message for a in attributes)
    assert any(isinstance(a, types.DocumentAttributeAudio) and a.voice for a in attributes)
    names = [a.file_name for a in attributes if isinstance(a, types.DocumentAttributeFilename)]
    assert any(n.endswith(".pdf") for n in names) and any(n.endswith(".zip") for n in names)

    albums: dict[int, list[int]] = {}
    for m in messages:
        if getattr(m, "grouped_id", None):
            albums.setdefault(m.grouped_id, []).append(m.id)
    assert albums and all(2 <= len(ids) <= 4 for ids in albums.values())

    chats_by_photo: dict[int, set[int]] = {}
    for c in sim.chat_ids:
        for m in sim.messages(c):
            if isinstance(getattr(m, "media", None), types.MessageMediaPhoto):
                chats_by_photo.setdefault(m.media.photo.id, set()).add(c)
    assert any(len(chats) > 1 for chats in chats_by_photo.values()), "no photo re-posted across chats"
    by_content: dict[bytes, set[int]] = {}
    for d in documents:
        if d.size < 600_000:
            by_content.setdefault(sim.file_bytes(sim.file_key(d)), set()).add(d.id)
    assert any(len(ids) > 1 for ids in by_content.values()), "no identical bytes under different document ids"

    dates = [m.date for m in sim.messages(sim.chat_ids[0])]
    assert dates == sorted(dates) and dates[0].year == 2024


# endregion

# region history, messages, dialogs


def test_iter_messages_min_id_reverse_yields_exactly_newer_ids_in_pages() -> None:
    sim = SimulatedTelegram(SimSpec(chats=4, messages=320, seed=5))

    async def scenario() -> None:
        client = sim.client()
        await client.get_dialogs()
        for chat_id in sim.chat_ids:
            server_ids = [m.id for m in sim.messages(chat_id)]
            floor = server_ids[len(server_ids) // 5]
            before = sim.stats.count("GetHistory")
            got = [m async for m in client.iter_messages(chat_id, min_id=floor, reverse=True, wait_time=0)]
            expected = [i for i in server_ids if i > floor]
            assert [m.id for m in got] == expected
            requests = sim.stats.count("GetHistory") - before
            assert requests == -(-len(expected) // 100) + 1  # full pages of 100, then one empty page
            assert all(m.chat_id == chat_id for m in got)
            # Newest-first without reverse gives the same set.
            newest = [m.id async for m in client.iter_messages(chat_id, min_id=floor, wait_time=0)]
            assert newest == expected[::-1]

    run(scenario)


def test_history_offsets_and_bounds_follow_telegram() -> None:
    sim = small()

    async def scenario() -> None:
        client = sim.client()
        await client.get_dialogs()
        for chat_id in sim.chat_ids:
            history = sim.messages(chat_id)
            pivot = history[30]
            got = [m.id async for m in client.iter_messages(chat_id, offset_date=pivot.date, limit=5)]
            assert got == [m.id for m in history if m.date < pivot.date][::-1][:5]

            peer = sim.input_peer(chat_id)
            bounded = await client(history_request(peer, max_id=history[20].id, min_id=history[10].id))
            assert [m.id for m in bounded.messages] == [m.id for m in history[11:20]][::-1]
            assert bounded.count == len(history)
            expected_type = types.messages.ChannelMessages if chat_id < -10**12 else types.messages.MessagesSlice
            assert type(bounded) is expected_type
            shifted = await client(history_request(peer, offset_id=history[40].id, add_offset=-3, limit=5))
            assert [m.id for m in shifted.messages] == [history[i].id for i in (42, 41, 40, 39, 38)]

    run(scenario)


def test_messages_resolve_senders_and_chats() -> None:
    sim = small()

    async def scenario() -> None:
        client = sim.client()
        await client.get_dialogs()
        megagroup = next(c for c in sim.chat_ids if sim.kind(c) == "megagroup")
        got = [m async for m in client.iter_messages(megagroup, limit=30)]
        with_sender = [m for m in got if m.from_id]
        assert with_sender and all(m.sender is not None and m.sender.first_name for m in with_sender)
        assert all(m.chat.title == sim.title(megagroup) for m in got)
        private = next(c for c in sim.chat_ids if sim.kind(c) == "private")
        incoming = [m async for m in client.iter_messages(private, limit=30) if not m.out]
        assert incoming and all(m.sender_id == private for m in incoming)
        assert all(m.message == s.message for m, s in zip(got, reversed(sim.messages(megagroup)[-30:]), strict=True)
                   if isinstance(s, types.Message))

    run(scenario)


def test_get_messages_by_ids_in_channels_and_groups() -> None:
    sim = small()

    async def scenario() -> None:
        client = sim.client()
        await client.get_dialogs()
        for chat_id in sim.chat_ids:
            history = sim.messages(chat_id)
            wanted = [history[3].id, history[-1].id, 999_999]
            got = await client.get_messages(chat_id, ids=wanted)
            assert [m.id if m else None for m in got] == [history[3].id, history[-1].id, None]
            assert bytes(got[1]) == bytes(history[-1])

    run(scenario)


def test_iter_dialogs_lists_every_chat_with_marked_ids_across_pages() -> None:
    sim = SimulatedTelegram(SimSpec(chats=130, messages=2, seed=2))

    async def scenario() -> None:
        client = sim.client()
        dialogs = [d async for d in client.iter_dialogs()]
        assert [d.id for d in dialogs] == sim.chat_ids
        assert [d.name for d in dialogs] == [sim.title(c) for c in sim.chat_ids]
        assert sim.stats.count("GetDialogs") == 2
        first_channel = next(d for d in dialogs if d.is_channel)
        assert utils.get_peer_id(first_channel.input_entity) == first_channel.id

    run(scenario)


def test_entities_resolve_by_username_and_stored_input_peer() -> None:
    sim = small()

    async def scenario() -> None:
        client = sim.client()
        channel = next(c for c in sim.chat_ids if sim.kind(c) == "channel")
        entity = await client.get_entity(sim.entity(channel).username)
        assert utils.get_peer_id(entity) == channel
        group = next(c for c in sim.chat_ids if sim.kind(c) == "group")
        got = await client.get_messages(sim.input_peer(group), limit=1)
        assert got[0].id == sim.messages(group)[-1].id
        me = await client.get_me()
        assert me.id == sim.me.id and me.is_self
        with pytest.raises(ValueError, match="Could not find the input entity"):
            await SimulatedTelegram(SimSpec(chats=1, messages=1, seed=99)).client().get_entity(channel)

    run(scenario)


def test_private_channel_raises_channel_private() -> None:
    sim = small()
    channel = next(c for c in sim.chat_ids if sim.kind(c) == "channel")
    sim.faults.private_channel(channel)

    async def scenario() -> None:
        client = sim.client()
        with pytest.raises(errors.ChannelPrivateError):
            await client.get_messages(sim.input_peer(channel), limit=5)

    run(scenario)


# endregion

# region downloads


def test_iter_download_on_other_dc_borrows_that_dc_and_yields_exact_bytes() -> None:
    sim = small()
    chat_id, stored = media_on(sim, photo=True, away=True)
    key = sim.file_key(stored)
    dc = sim.file_dc(key)

    async def scenario() -> bytes:
        client = sim.client()
        message = await fetch(client, chat_id, stored.id)
        return b"".join([bytes(chunk) async for chunk in client.iter_download(message.media, request_size=64 * 1024)])

    assert run(scenario) == sim.file_bytes(key)
    assert sim.stats.count("GetFile", sim.home_dc) == 0
    assert sim.stats.count("GetFile", dc) == sim.stats.file_requests[key] >= 1
    assert sim.stats.connections_opened[dc] == 1
    assert sim.stats.count("ExportAuthorization", sim.home_dc) == 1
    assert sim.stats.count("ImportAuthorization", dc) == 1
    assert sim.stats.file_downloads[key] == 1


def test_download_media_pays_one_file_migrate_round_trip() -> None:
    sim = small()
    chat_id, stored = media_on(sim, photo=False, away=True)
    key = sim.file_key(stored)
    dc = sim.file_dc(key)

    async def scenario() -> bytes:
        client = sim.client()
        message = await fetch(client, chat_id, stored.id)
        return await client.download_media(message, bytes)

    assert run(scenario) == sim.file_bytes(key)
    assert sim.stats.errors[("GetFile", f"FILE_MIGRATE_{dc}")] == 1
    assert sim.stats.count("GetFile", sim.home_dc) == 1
    assert sim.stats.count("GetFile", dc) >= 1


def test_getfile_enforces_telegram_offset_and_limit_rules() -> None:
    sim = small()
    _, stored = media_on(sim, photo=False, away=False)
    location = utils._get_file_info(stored).location

    async def scenario() -> None:
        client = sim.client()
        with pytest.raises(errors.OffsetInvalidError):
            await client(functions.upload.GetFileRequest(location, offset=100, limit=4096))
        with pytest.raises(errors.LimitInvalidError):
            await client(functions.upload.GetFileRequest(location, offset=0, limit=3 * 4096))
        with pytest.raises(errors.LimitInvalidError):
            await client(functions.upload.GetFileRequest(location, offset=1024 * 1024 - 4096, limit=8192))
        part = await client(functions.upload.GetFileRequest(location, offset=4096, limit=4096))
        assert part.bytes == sim.file_range(sim.file_key(stored), 4096, 4096)

    run(scenario)


def test_big_file_streams_in_flat_memory() -> None:
    sim = small(messages=5)
    size = 500 * 1024 * 1024
    stored = sim.add_big_file(sim.chat_ids[0], size)
    key = sim.file_key(stored)
    assert sim.file_size(key) == size
    chunk = 512 * 1024
    tail_offset = size - 4 * chunk

    async def scenario() -> tuple[bytes, bytes]:
        client = sim.client()
        message = await fetch(client, sim.chat_ids[0], stored.id)
        head = b"".join([bytes(c) async for c in client.iter_download(message.media, limit=4)])
        tail = b"".join([bytes(c) async for c in client.iter_download(message.media, offset=tail_offset)])
        return head, tail

    tracemalloc.start()
    try:
        head, tail = run(scenario)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert head == sim.file_range(key, 0, 4 * chunk)
    assert tail == sim.file_range(key, tail_offset, 4 * chunk)
    assert len(tail) == 4 * chunk
    assert peak < 40 * 1024 * 1024, f"peak {peak} bytes while streaming 4 MiB of a 500 MiB file"


def test_expired_file_reference_fails_until_the_message_is_fetched_again() -> None:
    sim = small()
    chat_id, stored = media_on(sim, photo=True, away=False)
    key = sim.file_key(stored)
    sim.faults.expire_file_reference(key)

    async def scenario() -> bytes:
        client = sim.client()
        message = await fetch(client, chat_id, stored.id)
        with pytest.raises(errors.FileReferenceExpiredError):
            await client.download_media(message, bytes)
        with pytest.raises(errors.FileReferenceExpiredError):  # the old reference stays invalid
            await client.download_media(message, bytes)
        fresh = await client.get_messages(chat_id, ids=stored.id)
        assert fresh.media.photo.file_reference != message.media.photo.file_reference
        return await client.download_media(fresh, bytes)

    assert run(scenario) == sim.file_bytes(key)
    assert sim.faults.fired["expire"] == 1


def test_download_media_of_a_document_refetches_an_expired_reference_itself() -> None:
    sim = small()
    chat_id, stored = media_on(sim, photo=False, away=False)
    sim.faults.expire_file_reference(sim.file_key(stored))

    async def scenario() -> bytes:
        client = sim.client()
        message = await fetch(client, chat_id, stored.id)
        before = sim.stats.count("GetMessages") + sim.stats.count("GetHistory")
        data = await client.download_media(message, bytes)
        assert sim.stats.count("GetMessages") + sim.stats.count("GetHistory") == before + 1
        return data

    assert run(scenario) == sim.file_bytes(sim.file_key(stored))


# endregion

# region faults


def test_flood_wait_under_threshold_is_slept_through_and_retried() -> None:
    sim = small()
    sim.faults.flood("GetHistory", seconds=1)

    async def scenario() -> list[int]:
        client = sim.client(flood_sleep_threshold=5)
        await client.get_dialogs()
        started = time.monotonic()
        got = [m.id async for m in client.iter_messages(sim.chat_ids[0], limit=10)]
        assert time.monotonic() - started >= 1.0
        return got

    assert run(scenario) == [m.id for m in sim.messages(sim.chat_ids[0])][::-1][:10]
    assert sim.stats.errors[("GetHistory", "FLOOD_WAIT_1")] == 1
    assert sim.stats.count("GetHistory") == 2


def test_flood_wait_over_threshold_raises_with_seconds() -> None:
    sim = small()
    sim.faults.flood("upload.GetFile", seconds=30, times=None)
    chat_id, stored = media_on(sim, photo=True, away=True)

    async def scenario() -> None:
        client = sim.client(flood_sleep_threshold=10)
        message = await fetch(client, chat_id, stored.id)
        with pytest.raises(errors.FloodWaitError) as caught:
            await client.download_media(message, bytes)
        assert caught.value.seconds == 30

    run(scenario)


def test_flood_downloads_policy_hits_every_nth_getfile_on_that_dc() -> None:
    sim = small()
    chat_id, stored = media_on(sim, photo=False, away=False)
    sim.faults.flood_downloads(sim.home_dc, every_n=2, seconds=0)

    async def scenario() -> bytes:
        client = sim.client(flood_sleep_threshold=5)
        message = await fetch(client, chat_id, stored.id)
        return b"".join([bytes(c) async for c in client.iter_download(message.media, request_size=4096, limit=2)])

    data = run(scenario)
    assert data == sim.file_range(sim.file_key(stored), 0, 2 * 4096)
    assert sim.faults.fired["flood_every"] >= 1


def test_stalled_getfile_times_out_under_wait_for_and_resumes() -> None:
    sim = small()
    chat_id, stored = media_on(sim, photo=True, away=True)
    sim.faults.stall("GetFile")

    async def scenario() -> bytes:
        client = sim.client()
        message = await fetch(client, chat_id, stored.id)
        stream = client.iter_download(message.media)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(stream.__anext__(), 0.5)
        await stream.close()
        return b"".join([bytes(c) async for c in client.iter_download(message.media)])

    assert run(scenario) == sim.file_bytes(sim.file_key(stored))
    assert sim.faults.fired["stall"] == 1


def test_timeout_is_retried_by_telethon() -> None:
    sim = small()
    sim.faults.timeout("GetDialogs")

    async def scenario() -> int:
        client = sim.client()
        return len(await client.get_dialogs())

    assert run(scenario) == 4
    assert sim.stats.errors[("GetDialogs", "Timeout")] == 1
    assert sim.stats.count("GetDialogs") == 2


def test_dropped_connection_is_survived_with_reconnect_and_fails_without() -> None:
    sim = small()
    sim.faults.drop_connection(sim.home_dc, request="GetDialogs")
    sim.faults.drop_connection(sim.home_dc, request="GetHistory", reconnect=False)

    async def scenario() -> None:
        client = sim.client()
        assert len(await client.get_dialogs()) == 4
        assert sim.stats.connections_opened[sim.home_dc] == 2
        with pytest.raises(ConnectionError):
            await client.get_messages(sim.chat_ids[0], limit=1)
        assert not client.is_connected()
        with pytest.raises(ConnectionError):
            await client.get_messages(sim.chat_ids[0], limit=1)
        await client.connect()
        assert (await client.get_messages(sim.chat_ids[0], limit=1))[0].id == sim.messages(sim.chat_ids[0])[-1].id
        await client.disconnect()

    run(scenario)


def test_outage_holds_requests_to_that_dc() -> None:
    sim = small()

    async def scenario() -> float:
        client = sim.client()
        sim.faults.outage(sim.home_dc, 0.3)
        started = time.monotonic()
        await client.get_dialogs()
        return time.monotonic() - started

    assert run(scenario) >= 0.3


def test_latency_and_bandwidth_slow_requests_down() -> None:
    sim = SimulatedTelegram(SimSpec(chats=4, messages=60, seed=7, latency_ms=50, bandwidth_kbps=8000))
    chat_id, stored = media_on(sim, photo=False, away=False)

    async def scenario() -> tuple[float, float]:
        client = sim.client()
        started = time.monotonic()
        message = await fetch(client, chat_id, stored.id)
        metadata = time.monotonic() - started
        started = time.monotonic()
        await client.download_file(message.media, bytes, part_size_kb=64, file_size=256 * 1024)
        return metadata, time.monotonic() - started

    metadata, transfer = run(scenario)
    assert metadata >= 0.1  # two round trips of 50 ms
    size = min(sim.file_size(sim.file_key(stored)), 256 * 1024)
    assert transfer >= size / 1_000_000 * 0.9  # 8000 kbit/s = 1 MB/s per connection


def test_unknown_request_fails_loudly_naming_it() -> None:
    sim = small()

    async def scenario() -> None:
        client = sim.client()
        with pytest.raises(UnsupportedRequest, match="SendMessageRequest"):
            await client(functions.messages.SendMessageRequest(types.InputPeerSelf(), "hi"))

    run(scenario)


def test_fault_names_are_checked() -> None:
    with pytest.raises(ValueError, match="GetHistroy"):
        small(messages=1).faults.flood("GetHistroy", 1)


# endregion

# region takeout, connection, live


def test_takeout_wraps_history_but_not_downloads() -> None:
    sim = small()
    chat_id, stored = media_on(sim, photo=True, away=True)

    async def scenario() -> bytes:
        client = sim.client()
        await client.get_dialogs()
        async with client.takeout(
            channels=True, megagroups=True, chats=True, users=True, files=True, max_file_size=2**31 - 1
        ) as takeout:
            ids = [m.id async for m in takeout.iter_messages(chat_id, min_id=0, reverse=True, wait_time=0)]
            assert ids == [m.id for m in sim.messages(chat_id)]
            message = await takeout.get_messages(chat_id, ids=stored.id)
            return b"".join([bytes(c) async for c in takeout.iter_download(message.media)])

    assert run(scenario) == sim.file_bytes(sim.file_key(stored))
    wrapped = {name for name, _ in sim.stats.takeout_requests}
    assert "GetHistory" in wrapped and "FinishTakeoutSession" in wrapped
    assert "GetFile" not in wrapped
    assert sim.stats.count("InitTakeoutSession") == 1


def test_connect_and_disconnect_need_no_network() -> None:
    sim = small()

    async def scenario() -> None:
        client = sim.client()
        assert client.is_connected()
        assert len(await client.get_dialogs()) == 4  # usable before connect()
        await client.connect()
        assert client.is_connected()
        await client.disconnect()
        assert not client.is_connected()
        with pytest.raises(ConnectionError):
            await client.get_dialogs()
        async with client:
            assert (await client.get_me()).id == sim.me.id
        assert not client.is_connected()

    run(scenario)


def test_live_changes_reach_event_handlers() -> None:
    sim = small()
    channel = next(c for c in sim.chat_ids if sim.kind(c) == "channel")
    group = next(c for c in sim.chat_ids if sim.kind(c) == "group")
    seen: list[tuple[str, Any]] = []

    async def scenario() -> None:
        client = sim.client()

        @client.on(events.NewMessage)
        async def on_new(event: events.NewMessage.Event) -> None:
            seen.append(("new", (event.chat_id, event.message.id, event.raw_text)))

        @client.on(events.MessageEdited)
        async def on_edit(event: events.MessageEdited.Event) -> None:
            seen.append(("edit", (event.chat_id, event.message.id, event.raw_text)))

        @client.on(events.MessageDeleted)
        async def on_delete(event: events.MessageDeleted.Event) -> None:
            seen.append(("delete", tuple(event.deleted_ids)))

        await client.connect()
        await client.get_dialogs()
        first = sim.add_message(channel, text="hello 🌱")
        second = sim.add_message(group, media_kind="photo")
        sim.edit_message(channel, first.id, "hello again")
        sim.delete_messages(group, [second.id])
        for _ in range(50):  # loop time: the virtual clock jumps, nothing really sleeps
            if len(seen) == 4:
                break
            await asyncio.sleep(0.02)
        await client.disconnect()
        assert seen == [
            ("new", (channel, first.id, "hello 🌱")),
            ("new", (group, second.id, second.message)),
            ("edit", (channel, first.id, "hello again")),
            ("delete", (second.id,)),
        ]

    run_virtual(scenario())


def test_start_live_makes_deterministic_changes() -> None:
    def changes(seed: int) -> list[tuple[str, int, int]]:
        sim = SimulatedTelegram(SimSpec(chats=3, messages=10, seed=seed, live_every_s=0.01))

        async def scenario() -> None:
            client = sim.client()
            live = sim.start_live()
            async with asyncio.timeout(10):
                while len(sim.live_events) < 8 and not live.done():
                    await asyncio.sleep(0.01)
            assert client.is_connected()  # start_live connected it, so its event handlers would fire
            await sim.stop_live()  # re-raises what ended the live task early, if anything did
            assert not client.is_connected()

        run(scenario)
        return list(sim.live_events)[:8]

    assert changes(4) == changes(4)
    assert {kind for kind, _, _ in changes(4)} <= {"new", "edit", "delete"}


# endregion


# region faults of issue-grade Telegram behaviour


def test_premium_flood_wait_is_telethons_sibling_class_with_seconds() -> None:
    sim = small()
    chat_id, stored = media_on(sim, photo=True, away=True)
    sim.faults.flood("GetFile", seconds=42, premium=True)

    async def scenario() -> None:
        client = sim.client(flood_sleep_threshold=0)
        message = await fetch(client, chat_id, stored.id)
        with pytest.raises(errors.FloodPremiumWaitError) as caught:
            await client.download_media(message, bytes)
        assert caught.value.seconds == 42
        assert not isinstance(caught.value, errors.FloodWaitError)

    run(scenario)
    assert sim.stats.errors[("GetFile", "FLOOD_PREMIUM_WAIT_42")] == 1


def test_flood_after_lets_the_first_requests_through() -> None:
    sim = small(chats=3, messages=2)
    sim.faults.flood("GetDialogs", seconds=2, after=1)  # Telethon forgets waits of <= 3 s

    async def scenario() -> None:
        client = sim.client(flood_sleep_threshold=0)
        await client.get_dialogs()
        with pytest.raises(errors.FloodWaitError):
            await client.get_dialogs()
        await client.get_dialogs()

    run(scenario)
    assert sim.stats.count("GetDialogs") == 3
    assert sim.faults.fired["flood"] == 1


def test_cdn_redirect_is_a_real_tl_answer_that_iter_download_cannot_follow() -> None:
    from telethon.client.downloads import _CdnRedirect

    sim = small()
    chat_id, stored = media_on(sim, photo=False, away=False)
    key = sim.file_key(stored)
    sim.faults.cdn_redirect(key)

    async def scenario() -> bytes:
        client = sim.client()
        message = await fetch(client, chat_id, stored.id)
        with pytest.raises(_CdnRedirect) as caught:
            async for _ in client.iter_download(message.media):
                pass
        redirect = caught.value.cdn_redirect
        assert isinstance(redirect, types.upload.FileCdnRedirect)
        assert redirect.dc_id > 200 and len(redirect.encryption_key) == 32 and len(redirect.encryption_iv) == 16
        return b"".join([bytes(c) async for c in client.iter_download(message.media)])  # the rule fired once

    assert run(scenario) == sim.file_bytes(key)


def test_file_reference_invalid_is_answered_until_the_message_is_fetched_again() -> None:
    sim = small()
    chat_id, stored = media_on(sim, photo=True, away=False)
    key = sim.file_key(stored)
    sim.faults.expire_file_reference(key, error="FILE_REFERENCE_INVALID")
    with pytest.raises(ValueError, match="not a file reference error"):
        sim.faults.expire_file_reference(key, error="FLOOD_WAIT_3")

    async def scenario() -> bytes:
        client = sim.client()
        message = await fetch(client, chat_id, stored.id)
        with pytest.raises(errors.FileReferenceInvalidError):
            await client.download_media(message, bytes)
        with pytest.raises(errors.FileReferenceExpiredError):  # the old reference stays refused
            await client.download_media(message, bytes)
        fresh = await client.get_messages(chat_id, ids=stored.id)
        return await client.download_media(fresh, bytes)

    assert run(scenario) == sim.file_bytes(key)


def test_replaced_media_shows_another_file_after_a_refetch() -> None:
    sim = small(chats=1, messages=2, media=0)
    chat_id = sim.chat_ids[0]
    big = sim.add_big_file(chat_id, 2 * 1024 * 1024)
    key = sim.file_key(big)
    sim.faults.replace_media(key, after_parts=1)

    async def scenario() -> tuple[types.Document, types.Document]:
        client = sim.client()
        message = await fetch(client, chat_id, big.id)
        iterator = client.iter_download(message.media, request_size=512 * 1024)
        first = await iterator.__anext__()
        assert bytes(first) == sim.file_range(key, 0, 512 * 1024)
        with pytest.raises(errors.FileReferenceExpiredError):
            await iterator.__anext__()
        await iterator.close()
        fresh = await client.get_messages(chat_id, ids=big.id)
        return message.media.document, fresh.media.document

    old, new = run(scenario)
    assert new.id != old.id and new.size != old.size
    assert sim.message(chat_id, big.id).edit_date is not None
    assert sim.faults.fired["replace"] == 1


def test_private_channel_is_listed_as_channel_forbidden() -> None:
    sim = small()
    channel = next(c for c in sim.chat_ids if sim.kind(c) == "channel")
    sim.faults.private_channel(channel)

    async def scenario() -> dict[int, Any]:
        client = sim.client()
        return {d.id: d.entity for d in await client.get_dialogs()}

    entities = run(scenario)
    assert isinstance(entities[channel], types.ChannelForbidden)
    assert entities[channel].title == sim.title(channel)
    assert not any(isinstance(e, types.ChannelForbidden) for chat_id, e in entities.items() if chat_id != channel)


def test_ended_takeout_answers_takeout_invalid() -> None:
    sim = small()
    sim.faults.end_takeouts("GetHistory")

    async def scenario() -> None:
        client = sim.client()
        await client.get_dialogs()
        async with client.takeout(False, channels=True, megagroups=True, chats=True, users=True) as takeout:
            assert sim.open_takeouts() == 1
            with pytest.raises(errors.TakeoutInvalidError):
                await takeout.get_messages(sim.chat_ids[0], limit=5)
        with pytest.raises(errors.TakeoutInvalidError):  # it cannot be finished any more
            await client.end_takeout(success=False)

    run(scenario)
    assert sim.open_takeouts() == 0


def test_sqlite_session_keeps_an_unfinished_takeout_and_telethon_then_refuses_a_new_one(tmp_path: Path) -> None:
    """A run killed mid-backfill leaves the takeout id in the session; Telethon refuses the next takeout."""
    sim = small()
    session = tmp_path / "account.session"

    async def killed_run() -> None:
        client = sim.client(session_file=session)
        await client.get_dialogs()
        await client.takeout(channels=True, users=True).__aenter__()  # never finished: the process died
        client.session.save()

    async def next_run() -> None:
        client = sim.client(session_file=session)
        assert client.session.takeout_id is not None
        with pytest.raises(ValueError, match="another takeout"):
            async with client.takeout(channels=True, users=True):
                pass
        client.session.close()

    run(killed_run)
    run(next_run)
    assert sim.open_takeouts() == 1


# endregion
