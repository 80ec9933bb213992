"""The simulated discussion group: a channel's comments as Telegram serves them, through a real client."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

import pytest
from telethon import TelegramClient, errors
from telethon.tl import functions, types
from telethon.tl.custom.message import Message as TelethonMessage

from tobs_sync.errors import ConfigError
from tobs_sync.sim import SimulatedTelegram, parse_spec
from tobs_sync.sim.server import copy_tl

SPEC = "chats=2,messages=40,media=0,comments=5,seed=7"


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


def replies_request(peer: types.TypeInputPeer, msg_id: int, **fields: int) -> functions.messages.GetRepliesRequest:
    values = {"offset_id": 0, "offset_date": None, "add_offset": 0, "limit": 100, "max_id": 0, "min_id": 0}
    return functions.messages.GetRepliesRequest(peer, msg_id, hash=0, **(values | fields))  # type: ignore[arg-type]


def channel_of(sim: SimulatedTelegram) -> int:
    return next(chat for chat in sim.chat_ids if sim.kind(chat) == "channel")


def test_posts_carry_their_comments_thread_and_the_channel_names_its_discussion_group() -> None:
    sim = SimulatedTelegram(SPEC)
    channel = channel_of(sim)
    group = sim.discussion_group(channel)
    assert group is not None and group not in sim.chat_ids, "the group is no dialog of the account"
    posts = [m for m in sim.messages(channel) if isinstance(m, types.Message)]
    assert posts and all(m.replies is not None and m.replies.comments for m in posts)
    for post in posts:
        comments = sim.comments(channel, post.id)
        assert post.replies.replies == len(comments)
        assert post.replies.max_id == (comments[-1].id if comments else None)
        assert -(post.replies.channel_id + 10**12) == group
        for comment in comments:
            assert comment.peer_id == types.PeerChannel(post.replies.channel_id)
            assert comment.reply_to.reply_to_msg_id and isinstance(comment.from_id, types.PeerUser)
    services = [m for m in sim.messages(channel) if isinstance(m, types.MessageService)]
    assert services and all(getattr(m, "replies", None) is None for m in services)
    other = next(chat for chat in sim.chat_ids if chat != channel)
    assert sim.discussion_group(other) is None

    async def scenario() -> None:
        client = sim.client()
        full = await client(functions.channels.GetFullChannelRequest(sim.entity(channel)))
        assert -(full.full_chat.linked_chat_id + 10**12) == group
        assert any(getattr(chat, "megagroup", False) and chat.id == full.full_chat.linked_chat_id
                   for chat in full.chats)

    run(scenario)


def test_comments_leave_the_channels_own_history_as_it_is_without_them() -> None:
    plain = SimulatedTelegram(SPEC.replace("comments=5", "comments=0"))
    commented = SimulatedTelegram(SPEC)
    for chat in plain.chat_ids:
        before, after = plain.messages(chat), commented.messages(chat)
        assert [m.id for m in before] == [m.id for m in after]
        for old, new in zip(before, after, strict=True):
            assert getattr(old, "replies", None) is None
            without = copy_tl(new)
            without.replies = None
            assert bytes(old) == bytes(without)


def test_get_replies_pages_a_thread_as_get_history_pages_a_chat() -> None:
    sim = SimulatedTelegram(SPEC)
    channel = channel_of(sim)
    post = next(m.id for m in sim.messages(channel) if isinstance(m, types.Message))
    for n in range(130):
        sim.add_comment(channel, post, f"comment {n}")
    thread = [c.id for c in sim.comments(channel, post)]
    assert len(thread) >= 130 and sim.message(channel, post).replies.max_id == thread[-1]

    async def scenario() -> None:
        client = sim.client()
        peer = sim.input_peer(channel)
        newest = await client(replies_request(peer, post))
        assert [m.id for m in newest.messages] == thread[::-1][:100] and newest.count == len(thread)
        assert isinstance(newest, types.messages.ChannelMessages)
        above = await client(replies_request(peer, post, offset_id=thread[10] + 1, add_offset=-100, min_id=thread[10]))
        assert [m.id for m in above.messages] == thread[11:111][::-1]
        bounded = await client(replies_request(peer, post, offset_id=thread[10], min_id=thread[3], max_id=thread[9]))
        assert [m.id for m in bounded.messages] == thread[4:9][::-1]
        await client.get_dialogs()
        every = [m.id async for m in client.iter_messages(channel, reply_to=post, reverse=True, limit=1000)]
        assert every == thread
        named = await client.get_messages(channel, reply_to=post, limit=1)
        assert named[0].sender is not None and named[0].sender.first_name

    run(scenario)


def test_get_replies_refuses_as_telegram_does() -> None:
    sim = SimulatedTelegram(SPEC)
    channel = channel_of(sim)
    service = next(m.id for m in sim.messages(channel) if isinstance(m, types.MessageService))
    post = next(m.id for m in sim.messages(channel) if isinstance(m, types.Message))
    group = sim.discussion_group(channel)
    assert group is not None
    others = [chat for chat in sim.chat_ids if chat != channel]

    async def scenario() -> None:
        client: TelegramClient = sim.client()
        peer = sim.input_peer(channel)
        with pytest.raises(errors.MsgIdInvalidError):
            await client(replies_request(peer, service))
        with pytest.raises(errors.MsgIdInvalidError):
            await client(replies_request(peer, 10**6))
        with pytest.raises(errors.MsgIdInvalidError):
            await client(replies_request(sim.input_peer(others[0]), 1))
        sim.faults.private_channel(group)
        with pytest.raises(errors.ChannelPrivateError):
            await client(replies_request(peer, post))
        sim.faults.restore_channel(group)
        assert (await client(replies_request(peer, post))).count == len(sim.comments(channel, post))

    run(scenario)


def test_the_spec_key_comments_is_checked() -> None:
    assert parse_spec("comments=3").comments == 3
    with pytest.raises(ConfigError, match="'comments'"):
        parse_spec("comments=-1")
    with pytest.raises(ConfigError, match="'comments'"):
        parse_spec("comments=1.5")


def test_telethon_message_finish_init_is_what_the_comments_reader_calls() -> None:
    """The comments reader attaches senders with ``Message._finish_init``, as Telethon's iterator does."""
    assert list(inspect.signature(TelethonMessage._finish_init).parameters) == [
        "self", "client", "entities", "input_chat"
    ]
