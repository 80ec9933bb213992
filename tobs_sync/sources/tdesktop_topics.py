"""Forum topics in a Telegram Desktop export, recovered from its replies.

The exporter writes no topic field: a message in a topic carries ``reply_to_message_id`` pointing at
the topic (the id of its ``topic_created`` service message), or at the message it answers inside the
topic. Reading a chat in id order, :class:`ExportTopics` knows the topics created so far and the topic
of every message placed in one, so it gives a message the topic Telegram gives it live
(:attr:`~tobs_sync.model.Message.topic_id`, :attr:`~tobs_sync.model.Message.topic_title`, renames by
``topic_edit`` included) and drops the reply that only named the topic, as the Telethon source does.

Limits: the General topic cannot be told apart from a chat without topics (its messages carry no
reply), so they keep no topic where a live sync records topic 1; a reply to the very message that
created a topic reads as a message in the topic, which is also how Telegram itself encodes it.
Memory: one entry per message in a topic, only in chats that have topics.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tobs_sync.model import Message


class ExportTopics:
    """The topics of one chat as its export is read in id order."""

    def __init__(self) -> None:
        self._titles: dict[int, str | None] = {}
        self._message_topic: dict[int, int] = {}

    def place(self, message: Message) -> Message:
        """``message`` with its topic (and without a reply that only names the topic)."""
        action = message.action
        if action is not None and action.kind == "topic_created":
            self._titles[message.id] = action.title
            self._message_topic[message.id] = message.id
            return replace(message, topic_id=message.id, topic_title=action.title)
        reply = message.reply
        if not self._titles or reply is None or reply.chat_id is not None:
            return message
        if reply.message_id in self._titles:
            topic, reply = reply.message_id, None
        elif (found := self._message_topic.get(reply.message_id)) is not None:
            topic = found
        else:
            return message
        self._message_topic[message.id] = topic
        new_title = action.details.get("new_title") if action is not None and action.kind == "topic_edit" else None
        if isinstance(new_title, str) and new_title:
            self._titles[topic] = new_title
        return replace(message, topic_id=topic, topic_title=self._titles.get(topic), reply=reply)

    def skip(self, ident: int, raw: Any) -> None:
        """Learn from a message the read leaves out (at or below the cursor) without converting it."""
        if raw.get("action") == "topic_created":
            title = raw.get("title")
            self._titles[ident] = title if isinstance(title, str) else None
            self._message_topic[ident] = ident
            return
        target = raw.get("reply_to_message_id") if self._titles else None
        if type(target) is int and "reply_to_peer_id" not in raw:
            topic = target if target in self._titles else self._message_topic.get(target)
            if topic is not None:
                self._message_topic[ident] = topic
                new_title = raw.get("new_title") if raw.get("action") == "topic_edit" else None
                if isinstance(new_title, str) and new_title:
                    self._titles[topic] = new_title
