"""A supergroup's history from before its upgrade from a basic group, for the Telethon source.

When a basic group becomes a supergroup, its messages stay in the old group (a deactivated chat
with ids of its own) and the supergroup starts again at id 1; the supergroup's full info names the
old group (``migrated_from_chat_id``). Telegram Desktop exports both histories as one chat, the old
messages first with ids shifted by :data:`~tobs_sync.model.MIGRATED_ID_SHIFT` (``id - 1 000 000 000``,
so below every id of the supergroup) and their references to one another shifted with them. The
Telethon source does the same, so an exported group and a live sync of it meet in one chat folder
without duplicates, and the ids of a chat's batches keep increasing (old history, then the new).

Limits: only the old group's own history is read (a group upgraded twice is not followed further);
a supergroup whose cursor is already past zero (synced before this was known, or imported from an
export) is not looked at again.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from telethon import types, utils

from tobs_sync.model import MIGRATED_ID_SHIFT, Message


def old_group(full: Any) -> tuple[int, types.InputPeerChat] | None:
    """``(marked id, input peer)`` of the basic group a ``messages.chatFull`` says the chat was
    upgraded from, or None."""
    chat_id = getattr(getattr(full, "full_chat", None), "migrated_from_chat_id", None)
    if not chat_id:
        return None
    peer = types.InputPeerChat(chat_id)
    return utils.get_peer_id(peer), peer


def as_supergroup_message(message: Message, supergroup_id: int) -> Message:
    """An old group's message as the supergroup holds it: in the supergroup's chat, its id and its
    references to messages of the old group (replies, pins) shifted as Telegram Desktop exports them."""
    reply = message.reply
    if reply is not None and reply.chat_id is None:
        reply = replace(reply, message_id=reply.message_id - MIGRATED_ID_SHIFT)
    action = message.action
    if action is not None and action.message_id is not None:
        action = replace(action, message_id=action.message_id - MIGRATED_ID_SHIFT)
    return replace(message, chat_id=supergroup_id, id=message.id - MIGRATED_ID_SHIFT, reply=reply, action=action)
