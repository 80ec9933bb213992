"""Live changes from Telethon's update loop, and re-reading a chat's newest messages.

:class:`LiveUpdates` registers handlers for ``events.NewMessage``, ``events.MessageEdited``,
``events.MessageDeleted`` and the raw ``UpdateChannelAvailableMessages`` (a cleared channel history,
for which Telethon raises no ``MessageDeleted``) on a client while a
:class:`~tobs_sync.sources.telegram.TelegramSource` session is open. The handlers only queue what
arrived; :meth:`LiveUpdates.changes` converts it (with the same conversion as a history read, so an
edit compares equal to a re-read of the same message) into
:data:`~tobs_sync.sources.base.LiveChange` values. Events in chats the session has not listed as
selected are ignored; deletions that name no chat (private chats and basic groups: Telegram does
not say which) pass through, for the engine maps their ids through what it stored.

:func:`recent_window` re-reads the newest messages of a chat (one ``messages.getHistory`` request
per 100), newest first from Telegram, returned ascending.

Limits: updates are hints. Telethon 1.45 drops edits and deletions that come inside a difference
(after a gap, a sleep, a restart): reconciliation (the engine re-reading a recent window) finds
those. A chat the session has not listed yet (a new dialog) is ignored until a pass lists it. The
queue of received events is unbounded while nobody reads :meth:`LiveUpdates.changes`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from telethon import TelegramClient, events, utils
from telethon.tl import types

from tobs_sync.model import Chat, Message
from tobs_sync.sources.base import LiveChange, MessageEdited, MessagesArrived, MessagesDeleted

log = logging.getLogger(__name__)

Convert = Callable[[Chat, list[Any]], Awaitable[list[Message]]]
"""Turns TL messages of a chat into messages as a history read gives them (topic titles included)."""

_END = object()


class LiveUpdates:
    """The live events of one client, for the chats of one session."""

    def __init__(self, client: TelegramClient, convert: Convert) -> None:
        self._client = client
        self._convert = convert
        self._selected: dict[int, Chat] = {}
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._handlers: list[tuple[Callable[[Any], Awaitable[None]], Any]] = [
            (self._on_new, events.NewMessage()),
            (self._on_edit, events.MessageEdited()),
            (self._on_delete, events.MessageDeleted()),
            (self._on_available, events.Raw(types.UpdateChannelAvailableMessages)),
        ]
        self._registered = False

    def select(self, chat: Chat) -> None:
        """Follow ``chat`` (the session listed it as selected)."""
        self._selected[chat.id] = chat

    def start(self) -> None:
        """Register the handlers on the client (once per session)."""
        if not self._registered:
            self._queue = asyncio.Queue()
            for callback, event in self._handlers:
                self._client.add_event_handler(callback, event)
            self._registered = True

    def stop(self) -> None:
        """Remove the handlers; a running :meth:`changes` ends."""
        if self._registered:
            for callback, _event in self._handlers:
                self._client.remove_event_handler(callback)
            self._registered = False
        self._queue.put_nowait(_END)

    async def changes(self) -> AsyncIterator[LiveChange]:
        """The changes received, converted, in order, until :meth:`stop`."""
        queue = self._queue
        while (item := await queue.get()) is not _END:
            if isinstance(item, tuple):
                chat, tl_message = item
                converted = await self._convert(chat, [tl_message])
                if converted:
                    yield MessageEdited(converted[0])
            else:
                yield item

    # -- handlers: queue only (they run on Telethon's update loop) ---------------------------

    async def _on_new(self, event: events.NewMessage.Event) -> None:
        if event.chat_id in self._selected:
            self._queue.put_nowait(MessagesArrived(event.chat_id))

    async def _on_edit(self, event: events.MessageEdited.Event) -> None:
        chat = self._selected.get(event.chat_id)
        if chat is not None:
            self._queue.put_nowait((chat, event.message))

    async def _on_delete(self, event: events.MessageDeleted.Event) -> None:
        chat_id = event.chat_id
        if chat_id is None or chat_id in self._selected:
            self._queue.put_nowait(MessagesDeleted(chat_id, tuple(event.deleted_ids)))

    async def _on_available(self, update: types.UpdateChannelAvailableMessages) -> None:
        chat_id = utils.get_peer_id(types.PeerChannel(update.channel_id))
        if chat_id in self._selected:
            self._queue.put_nowait(MessagesDeleted(chat_id, (), up_to=update.available_min_id))


async def recent_window(
    client: TelegramClient, peer: Any, chat: Chat, *, count: int, since: datetime | None,
    call: Callable[[Callable[[], Awaitable[Any]], str], Awaitable[Any]],
) -> list[Any]:
    """The newest ``count`` TL messages of ``chat`` dated ``since`` or later, ascending ids.

    ``call(request, what)`` runs the request with the source's deadlines and retries.
    """
    if count < 1:
        return []
    found: Sequence[Any] = await call(
        lambda: client.get_messages(peer, limit=count), f"re-reading the newest messages of {chat.title!r}"
    )
    kept = [m for m in found if isinstance(m, types.Message | types.MessageService)
            and (since is None or (m.date is not None and m.date >= since))]
    return sorted(kept, key=lambda m: m.id)
