"""Simulated requests about a chat rather than its messages: full channel info and forum topics.

* ``channels.getFullChannel`` answers ``messages.chatFull`` with a ``channelFull`` carrying, for a
  supergroup upgraded from a basic group, ``migrated_from_chat_id`` and ``migrated_from_max_id`` (the
  old group's last message id), and for a channel with a discussion group ``linked_chat_id``.
* ``messages.getForumTopicsByID`` answers ``messages.forumTopics``: each asked topic as a
  ``forumTopic`` (the General topic, id 1, included) or ``forumTopicDeleted`` for an unknown id, with
  the topics' top messages. A chat without topics answers ``CHANNEL_FORUM_MISSING``.

Both are as strict as the TL schema: ``getFullChannel`` takes an ``InputChannel`` and
``getForumTopicsByID`` an ``InputPeer``; the other constructor is refused with
``INPUT_CONSTRUCTOR_INVALID``, as Telegram refuses a request that does not follow the schema.

Limits: unread counters are zero, notification settings empty, topic icons plain colours.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from telethon.tl import functions, types

from tobs_sync.sim.account import GENERAL_TOPIC_ID, Account, SimChat
from tobs_sync.sim.content import GENERAL_TOPIC_TITLE
from tobs_sync.sim.rpc import bad_request


def chat_info_handlers(account: Account) -> Mapping[type, Callable[[Any, Any], Any]]:
    """Handlers for the server's dispatch table, by request type."""

    def get_full_channel(req: functions.channels.GetFullChannelRequest, ctx: Any) -> types.messages.ChatFull:
        if not isinstance(req.channel, types.InputChannel):
            raise bad_request("INPUT_CONSTRUCTOR_INVALID")
        chat = account.chat_for_peer(req.channel)
        if chat is None:
            raise bad_request("CHANNEL_INVALID")
        return full_channel(account, chat)

    def get_topics_by_id(req: functions.messages.GetForumTopicsByIDRequest, ctx: Any) -> types.messages.ForumTopics:
        if not isinstance(req.peer, types.InputPeerChannel):
            raise bad_request("INPUT_CONSTRUCTOR_INVALID" if isinstance(req.peer, types.InputChannel)
                              else "CHANNEL_INVALID")
        chat = account.chat_for_peer(req.peer)
        if chat is None or chat.kind != "forum":
            raise bad_request("CHANNEL_FORUM_MISSING")
        return forum_topics(account, chat, req.topics)

    return {
        functions.channels.GetFullChannelRequest: get_full_channel,
        functions.messages.GetForumTopicsByIDRequest: get_topics_by_id,
    }


def full_channel(account: Account, chat: SimChat) -> types.messages.ChatFull:
    old = chat.migrated_from
    discussion = account.discussions.by_channel.get(chat.raw_id)
    top = chat.last_id
    full = types.ChannelFull(
        id=chat.raw_id, about="", read_inbox_max_id=top, read_outbox_max_id=top, unread_count=0,
        chat_photo=types.PhotoEmpty(id=0), notify_settings=types.PeerNotifySettings(), bot_info=[],
        pts=chat.log.pts, participants_count=chat.participants,
        migrated_from_chat_id=old.raw_id if old is not None else None,
        migrated_from_max_id=old.last_id if old is not None else None,
        linked_chat_id=discussion.group.raw_id if discussion is not None else None,
    )
    peers = [chat.peer] + ([old.peer] if old is not None else []) + ([discussion.group.peer] if discussion else [])
    users, chats = account.entities_for([], peers)
    return types.messages.ChatFull(full_chat=full, chats=chats, users=users)


def forum_topics(account: Account, chat: SimChat, ids: list[int]) -> types.messages.ForumTopics:
    topics: list[types.TypeForumTopic] = []
    tops: list[types.TypeMessage] = []
    for topic_id in ids:
        title = GENERAL_TOPIC_TITLE if topic_id == GENERAL_TOPIC_ID else chat.topics.get(topic_id)
        if title is None:
            topics.append(types.ForumTopicDeleted(id=topic_id))
            continue
        top_id = next(
            (i for i in reversed(chat.messages.ids) if chat.message_topics.get(i, GENERAL_TOPIC_ID) == topic_id), None
        )
        top = chat.by_id[top_id] if top_id is not None else None
        if top is not None:
            tops.append(top)
        created = chat.by_id.get(topic_id)
        topics.append(types.ForumTopic(
            id=topic_id, date=getattr(created, "date", None) or chat.created, peer=chat.peer, title=title,
            icon_color=0x6FB9F0, top_message=top.id if top is not None else topic_id,
            read_inbox_max_id=chat.last_id, read_outbox_max_id=chat.last_id, unread_count=0,
            unread_mentions_count=0, unread_reactions_count=0, unread_poll_votes_count=0,
            from_id=getattr(created, "from_id", None) or types.PeerUser(chat.member_ids[0]),
            notify_settings=types.PeerNotifySettings(),
        ))
    users, chats = account.entities_for(tops, [chat.peer])
    return types.messages.ForumTopics(
        count=len(chat.topics) + 1, topics=topics, messages=tops, chats=chats, users=users, pts=chat.log.pts
    )
