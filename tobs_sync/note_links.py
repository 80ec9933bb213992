"""The notes a message points at: the message it answers (in this chat or another), the one it pinned.

:func:`linked_notes` asks the store (and the notes assigned earlier in the batch being written) for
the note paths and chat titles a message note links to, so :func:`tobs_sync.views.message_view`
can label and link them without I/O. Limits: a target that is not in the store yet (another chat
not synced, a message older than the history kept) gives no path; its label falls back to ids, and
:mod:`tobs_sync.store_links` has the note rendered again once the target's note exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tobs_sync.model import Message, ServiceAction
from tobs_sync.store import Store

MIGRATION_PEERS = {"migrate_to_supergroup": "channel_id", "migrate_from_group": "chat_id"}
"""Service actions naming another chat, and the ``details`` key that holds its marked id."""


@dataclass(frozen=True, slots=True)
class NoteLinks:
    """What a message note links to, found in the store; None where nothing is known."""

    reply_path: str | None = None
    """The note of the replied-to message (in this chat or, for a reply into another chat, that one)."""
    reply_chat_title: str | None = None
    """The title of the other chat a reply points into."""
    pinned_path: str | None = None
    """The note of the message a ``pin_message`` service message pinned."""


NO_LINKS = NoteLinks()


def action_chat_id(action: ServiceAction | None) -> int | None:
    """The marked id of the other chat a migration service action names, if it names one."""
    key = MIGRATION_PEERS.get(action.kind) if action is not None else None
    value = action.details.get(key) if action is not None and key else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def unlinked_reply(message: Message, links: NoteLinks) -> tuple[int, int] | None:
    """``(chat, message)`` a reply into another chat points at when its note was not found, else None."""
    reply = message.reply
    if reply is None or reply.chat_id is None or links.reply_path is not None:
        return None
    return reply.chat_id, reply.message_id


def linked_notes(store: Store, chat_id: int, message: Message, assigned: Mapping[int, str]) -> NoteLinks:
    """The :class:`NoteLinks` of ``message`` (in chat ``chat_id``); ``assigned`` maps ids of this
    chat's messages to the notes the batch being written gives them (not in the store yet)."""
    reply_path = reply_title = pinned_path = None
    if (reply := message.reply) is not None:
        target_chat = reply.chat_id if reply.chat_id is not None else chat_id
        if target_chat == chat_id:
            reply_path = assigned.get(reply.message_id)
        if reply_path is None and (row := store.note_of_message(target_chat, reply.message_id)):
            reply_path = row.path
        if target_chat != chat_id and (state := store.chat_state(target_chat)) is not None:
            reply_title = state.chat.title
    action = message.action
    if action is not None and action.kind == "pin_message" and action.message_id is not None:
        pinned_path = assigned.get(action.message_id)
        if pinned_path is None and (row := store.note_of_message(chat_id, action.message_id)):
            pinned_path = row.path
    return NoteLinks(reply_path, reply_title, pinned_path)


def link_targets(store: Store, chat_id: int, messages: Iterable[Message]) -> dict[int, str]:
    """``message id -> note path`` of the messages of chat ``chat_id`` that ``messages`` (the first
    messages of notes of that chat) reply to or pinned, in one query: given to :func:`linked_notes`
    as ``assigned``, it spares a query per note. A target with no note is left out (and then asked
    of the store on its own)."""
    wanted: set[int] = set()
    for message in messages:
        if (reply := message.reply) is not None and reply.chat_id in (None, chat_id):
            wanted.add(reply.message_id)
        action = message.action
        if action is not None and action.kind == "pin_message" and action.message_id is not None:
            wanted.add(action.message_id)
    return store.note_paths_of_messages(chat_id, sorted(wanted)) if wanted else {}
