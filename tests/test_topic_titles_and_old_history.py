"""The Telethon source's helpers for forum topic titles and a migrated group's old history."""

from __future__ import annotations

import asyncio
from typing import Any

from telethon import errors, functions
from telethon.tl import types

from tobs_sync.model import MIGRATED_ID_SHIFT, Chat, Message, Reply, ServiceAction
from tobs_sync.sources.tdesktop_topics import ExportTopics
from tobs_sync.sources.telegram_migrated import as_supergroup_message, old_group
from tobs_sync.sources.telegram_topics import TopicTitles

FORUM = Chat(-1001500000001, "Club", "supergroup", forum=True)
PEER = types.InputPeerChannel(1500000001, 77)


class FakeTopics:
    """``call(request, what)`` answering getForumTopicsByID from a fixed topic list, counting requests."""

    def __init__(self, titles: dict[int, str], refuse: bool = False) -> None:
        self.titles = titles
        self.refuse = refuse
        self.asked: list[list[int]] = []

    async def __call__(self, request: Any, what: str) -> Any:
        assert isinstance(request, functions.messages.GetForumTopicsByIDRequest) and "Club" in what
        self.asked.append(list(request.topics))
        if self.refuse:
            raise errors.ChannelForumMissingError(request)
        topics = [self._topic(i) if i in self.titles else types.ForumTopicDeleted(id=i) for i in request.topics]
        return types.messages.ForumTopics(count=len(topics), topics=topics, messages=[], chats=[], users=[], pts=1)

    def _topic(self, topic_id: int) -> types.ForumTopic:
        return types.ForumTopic(
            id=topic_id, date=None, peer=types.PeerChannel(1500000001), title=self.titles[topic_id], icon_color=0,
            top_message=topic_id, read_inbox_max_id=0, read_outbox_max_id=0, unread_count=0,
            unread_mentions_count=0, unread_reactions_count=0, unread_poll_votes_count=0,
            from_id=types.PeerUser(1), notify_settings=types.PeerNotifySettings(),
        )


def msg(ident: int, topic: int | None, action: ServiceAction | None = None) -> Message:
    return Message(FORUM.id, ident, 1_700_000_000 + ident, "service" if action else "message", action=action,
                   topic_id=topic)


def titles_of(batch: list[Message]) -> list[str | None]:
    return [m.topic_title for m in batch]


def test_titles_seen_in_the_history_need_no_request_and_renames_apply_from_there_on() -> None:
    call = FakeTopics({})
    cache = TopicTitles()
    batch = [
        msg(5, 5, ServiceAction("topic_created", "Plans")),
        msg(6, 5),
        msg(7, 5, ServiceAction("topic_edit", details={"new_title": "Plans 2025"})),
        msg(8, 5),
    ]
    titled = asyncio.run(cache.titled(FORUM, PEER, batch, call))
    assert titles_of(titled) == ["Plans", "Plans", "Plans 2025", "Plans 2025"]
    assert call.asked == []


def test_unknown_topics_are_asked_for_once_per_session_in_one_request() -> None:
    call = FakeTopics({1: "General", 40: "Trips"})
    cache = TopicTitles()
    first = asyncio.run(cache.titled(FORUM, PEER, [msg(50, 40), msg(51, 1), msg(52, 404), msg(53, None)], call))
    assert titles_of(first) == ["Trips", "General", None, None]
    assert call.asked == [[1, 40, 404]]
    again = asyncio.run(cache.titled(FORUM, PEER, [msg(60, 40), msg(61, 404)], call))
    assert titles_of(again) == ["Trips", None]
    assert call.asked == [[1, 40, 404]], "neither a known nor a deleted topic is asked for again"


def test_a_refused_lookup_keeps_the_topic_ids_and_is_not_repeated() -> None:
    call = FakeTopics({}, refuse=True)
    cache = TopicTitles()
    batch = asyncio.run(cache.titled(FORUM, PEER, [msg(50, 40)], call))
    assert [(m.topic_id, m.topic_title) for m in batch] == [(40, None)]
    asyncio.run(cache.titled(FORUM, PEER, [msg(51, 40)], call))
    assert len(call.asked) == 1


def test_a_batch_without_topics_asks_nothing() -> None:
    call = FakeTopics({})
    batch = [Message(-1001, 1, 0)]
    assert asyncio.run(TopicTitles().titled(Chat(-1001, "News", "channel"), PEER, batch, call)) == batch
    assert call.asked == []


def test_old_history_takes_the_supergroups_chat_and_ids_shifted_as_desktop_exports_them() -> None:
    old_chat = -4242
    reply = Message(old_chat, 30, 1, reply=Reply(29, quote_text="q"))
    pin = Message(old_chat, 31, 2, "service", action=ServiceAction("pin_message", message_id=12))
    elsewhere = Message(old_chat, 32, 3, reply=Reply(7, chat_id=-1009))
    moved = [as_supergroup_message(m, FORUM.id) for m in (reply, pin, elsewhere)]
    assert [(m.chat_id, m.id) for m in moved] == [(FORUM.id, i - MIGRATED_ID_SHIFT) for i in (30, 31, 32)]
    assert moved[0].reply == Reply(29 - MIGRATED_ID_SHIFT, quote_text="q")
    assert moved[1].action is not None and moved[1].action.message_id == 12 - MIGRATED_ID_SHIFT
    assert moved[2].reply == Reply(7, chat_id=-1009), "a reply into another chat keeps its target"


def test_the_old_group_is_named_by_the_full_channel_info() -> None:
    def full(**fields: Any) -> types.messages.ChatFull:
        info = types.ChannelFull(
            id=1500000001, about="", read_inbox_max_id=0, read_outbox_max_id=0, unread_count=0,
            chat_photo=types.PhotoEmpty(id=0), notify_settings=types.PeerNotifySettings(), bot_info=[], pts=1,
            **fields,
        )
        return types.messages.ChatFull(full_chat=info, chats=[], users=[])

    assert old_group(full(migrated_from_chat_id=4242, migrated_from_max_id=99)) == (-4242, types.InputPeerChat(4242))
    assert old_group(full()) is None


def test_an_export_places_messages_in_topics_by_their_replies() -> None:
    topics = ExportTopics()
    created = topics.place(msg(5, None, ServiceAction("topic_created", "Plans")))
    in_topic = topics.place(Message(FORUM.id, 6, 0, reply=Reply(5)))
    answer = topics.place(Message(FORUM.id, 7, 0, reply=Reply(6)))
    renamed = topics.place(Message(FORUM.id, 8, 0, "service", reply=Reply(5),
                                   action=ServiceAction("topic_edit", details={"new_title": "Plans 2"})))
    outside = topics.place(Message(FORUM.id, 9, 0, reply=Reply(3)))
    assert [(m.topic_id, m.topic_title, m.reply) for m in (created, in_topic, answer, renamed, outside)] == [
        (5, "Plans", None), (5, "Plans", None), (5, "Plans", Reply(6)), (5, "Plans 2", None), (None, None, Reply(3)),
    ]


def test_an_export_read_from_a_cursor_still_knows_the_topics_created_below_it() -> None:
    topics = ExportTopics()
    topics.skip(5, {"id": 5, "type": "service", "action": "topic_created", "title": "Plans"})
    topics.skip(6, {"id": 6, "type": "message", "reply_to_message_id": 5})
    answer = topics.place(Message(FORUM.id, 7, 0, reply=Reply(6)))
    assert (answer.topic_id, answer.topic_title, answer.reply) == (5, "Plans", Reply(6))


def test_a_chat_without_topics_keeps_its_replies() -> None:
    topics = ExportTopics()
    for ident in range(1, 100):
        topics.skip(ident, {"id": ident, "reply_to_message_id": ident - 1})
        placed = topics.place(Message(-1001, ident + 100, 0, reply=Reply(ident)))
        assert (placed.topic_id, placed.reply) == (None, Reply(ident))
