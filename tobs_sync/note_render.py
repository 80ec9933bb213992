"""A message's note and a chat's index note rendered from messages and the store; the chat note published.

:class:`NoteRendering` builds each template's context (the message view with its media, reply and
forward links, deletions shown and channel comments; the chat view with its stats and recent notes)
and renders it with the current :class:`~tobs_sync.render.Renderer`. Limits: it renders bytes and
writes nothing but the chat note (:meth:`NoteRendering.write_chat_note`, through the publisher);
where a note goes is :mod:`tobs_sync.note_placement`'s, rendering stored notes again is
:mod:`tobs_sync.rerender`'s.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Sequence
from typing import Any

from tobs_sync.config import Settings
from tobs_sync.media import MediaWriter
from tobs_sync.model import Message
from tobs_sync.note_links import linked_notes, unlinked_reply
from tobs_sync.note_placement import NotePlacement, PlannedNote
from tobs_sync.publish import Draft, Publisher
from tobs_sync.render import CHAT_TEMPLATE, MESSAGE_TEMPLATE, Renderer, wikilink
from tobs_sync.store import Store
from tobs_sync.store_links import remember_unlinked
from tobs_sync.store_rows import CHAT_NOTE, ChatState
from tobs_sync.sync_report import SyncReport
from tobs_sync.views import StoredMedia, chat_view, local_datetime, message_view

RECENT_IN_CHAT_NOTE = 50
"""Newest message notes listed in a chat's index note."""

ShownDeletions = Callable[[int, Sequence[int]], dict[int, int] | None]
"""``(chat id, message ids) -> message id -> when found`` of the messages a note shows deleted."""
PostComments = Callable[[int, Message], dict[str, Any] | None]
"""``(chat id, post) ->`` the post's comments that have notes (None: none)."""


class NoteRendering:
    """Renders message notes and chat notes for one vault."""

    def __init__(
        self, settings: Settings, store: Store, media: MediaWriter, placement: NotePlacement,
        publisher: Publisher, renderer: Renderer, *, shown_deletions: ShownDeletions, post_comments: PostComments,
    ) -> None:
        self.renderer = renderer
        """The renderer in force (the agent swaps in templates it has checked)."""
        self._store = store
        self._media = media
        self._placement = placement
        self._publisher = publisher
        self._tz = settings.timezone
        self._shown_deletions = shown_deletions
        self._post_comments = post_comments

    def message_note(
        self,
        state: ChatState,
        note: PlannedNote,
        media: dict[int, list[StoredMedia]],
        assigned: dict[int, str],
    ) -> bytes:
        """The bytes of ``note`` (``media``: its messages' stored media where known; ``assigned``: the
        note paths of the messages of the same batch, not yet in the store)."""
        first = note.messages[0]
        stored = [  # a message without media has no index rows to ask about
            item
            for m in note.messages
            for item in (media[m.id] if m.id in media else self._media.stored_media(m) if m.media else [])
        ]
        links = linked_notes(self._store, state.chat.id, first, assigned)
        if (target := unlinked_reply(first, links)) is not None:
            remember_unlinked(self._store, [(*target, note.path)])  # before it is published
        # a note written before may show deleted messages (a new one never does: spares the query)
        deleted = self._shown_deletions(state.chat.id, [m.id for m in note.messages]) if note.previous else None
        context = {
            "message": message_view(note.messages, stored, tz=self._tz, links=links, note_path=note.path,
                                    deleted=deleted, comments=self._post_comments(state.chat.id, first)),
            "chat": chat_view(state.chat, self._placement.chat_note_path(state)),
        }
        ids = [m.id for m in note.messages]
        identity = {"tg_chat_id": state.chat.id, "tg_message_id": ids[0] if len(ids) == 1 else ids}
        return self.renderer.render(MESSAGE_TEMPLATE, context, identity)

    def chat_note(self, state: ChatState, path: str) -> bytes:
        """The bytes of the chat's index note at ``path``."""
        count, first, last = self._store.message_stats(state.chat.id)
        recent = []
        for row in self._store.recent_notes(state.chat.id, RECENT_IN_CHAT_NOTE):
            message = self._store.message(state.chat.id, row.message_id)
            when = local_datetime(message.date, self._tz) if message else None
            label = f"{when:%Y-%m-%d %H:%M}" if when else posixpath.basename(row.path)
            recent.append({"path": row.path, "link": wikilink(row.path, label), "date": when})
        context = {
            "chat": chat_view(state.chat, path),
            "stats": {"count": count, "first": local_datetime(first, self._tz), "last": local_datetime(last, self._tz)},
            "recent": recent,
        }
        return self.renderer.render(CHAT_TEMPLATE, context, {"tg_chat_id": state.chat.id})

    def write_chat_note(self, state: ChatState, report: SyncReport) -> None:
        """Render and publish the chat's index note."""
        path = self._placement.chat_note_path(state)
        data = self.chat_note(state, path)
        previous = self._store.chat_note(state.chat.id)
        report.count(self._publisher.publish([Draft(path, data, state.chat.id, kind=CHAT_NOTE, previous=previous)]))
