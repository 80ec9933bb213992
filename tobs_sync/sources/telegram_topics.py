"""Titles of forum topics for the Telethon source: learnt from the history, asked for at most once.

A message in a forum names only its topic's id (:attr:`~tobs_sync.model.Message.topic_id`). The
title comes, cheapest first, from

1. the messages of the same read: the topic's creation message (``messageActionTopicCreate``, whose
   id is the topic's) and renames (``messageActionTopicEdit`` with a title), in history order, so a
   message gets the title its topic had when the read passed it;
2. one ``messages.getForumTopicsByID`` request per batch for the topics still unknown (a topic
   created before the cursor: at most once per topic and session, none for a chat read from its
   start). The General topic (id 1) is asked for like any other.

Titles are kept per chat for the session (one pass). A topic Telegram reports deleted, or a lookup
Telegram refuses, leaves the title empty (the message still records its topic id) and is not asked
for again in the session.

Limits: a topic renamed after its messages were synced keeps the old title in their notes until
they are re-rendered from a new read; a chat's titles are not kept between passes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from telethon import errors, functions, types

from tobs_sync.model import Chat, Message

log = logging.getLogger(__name__)

MAX_TOPICS_PER_REQUEST = 100

Call = Callable[[Any, str], Awaitable[Any]]
"""How a request is sent: ``call(request, what)`` (with the source's deadlines and retries)."""


def _title_change(message: Message) -> tuple[int, str] | None:
    """``(topic id, new title)`` if ``message`` creates or renames a topic."""
    action = message.action
    if action is None or message.topic_id is None:
        return None
    if action.kind == "topic_created" and action.title:
        return message.topic_id, action.title
    new_title = action.details.get("new_title") if action.kind == "topic_edit" else None
    return (message.topic_id, new_title) if isinstance(new_title, str) and new_title else None


class TopicTitles:
    """The topic titles of the chats read in one session."""

    def __init__(self) -> None:
        self._titles: dict[int, dict[int, str | None]] = {}

    async def titled(self, chat: Chat, peer: Any, batch: Sequence[Message], call: Call) -> list[Message]:
        """``batch`` with every topic message's :attr:`~tobs_sync.model.Message.topic_title` set
        (when it can be known); asks Telegram only for topics neither seen nor asked for before."""
        if all(message.topic_id is None for message in batch):
            return list(batch)
        known = self._titles.setdefault(chat.id, {})
        created_here = {change[0] for m in batch if (change := _title_change(m)) is not None}
        unknown = sorted({
            m.topic_id for m in batch if m.topic_id is not None and m.topic_id not in known
        } - created_here)
        if unknown:
            known.update(await self._ask(chat, peer, unknown, call))
        titled = []
        for message in batch:
            if (change := _title_change(message)) is not None:
                known[change[0]] = change[1]
            if message.topic_id is not None:
                message = replace(message, topic_title=known.get(message.topic_id) or message.topic_title)
            titled.append(message)
        return titled

    async def _ask(self, chat: Chat, peer: Any, topic_ids: list[int], call: Call) -> Mapping[int, str | None]:
        found: dict[int, str | None] = dict.fromkeys(topic_ids)
        for start in range(0, len(topic_ids), MAX_TOPICS_PER_REQUEST):
            chunk = topic_ids[start : start + MAX_TOPICS_PER_REQUEST]
            request = functions.messages.GetForumTopicsByIDRequest(peer=peer, topics=chunk)
            try:
                result = await call(request, f"reading the topic titles of {chat.title!r}")
            except errors.RPCError as error:
                log.warning("chat %r: Telegram refused the topic titles (%s); notes keep only topic ids",
                            chat.title, error)
                return found
            for topic in getattr(result, "topics", None) or ():
                if isinstance(topic, types.ForumTopic) and topic.id in found:
                    found[topic.id] = topic.title or None
        return found
