"""The account's chats and what tobs-sync would do with each: the rows of ``tobs-sync chats``.

For every dialog of the account: its marked id, kind, title, @username and an approximate message
count; whether ``telegram.chats`` / ``telegram.exclude`` select it, and by which selector; for a
selected chat, the ``since`` / ``backfill`` that bound its first backfill (and where each comes
from: ``telegram.since`` or a ``[[chat]]`` table) and, from the vault's store, whether that first
backfill happened and where its history starts.

The count is an estimate from the dialog's newest message id (Telegram's dialog list gives no
count): channels and supergroups number their messages on their own, so it is *about* their count
(deleted messages still counted); private chats, bots, basic groups and Saved Messages share one
counter per account, so it is only an upper bound (*at most*). Limits: only chats in the dialog
list are shown (a chat named by id or @username that is not in it is not looked up); nothing here
writes to the vault or the store.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from tobs_sync.backfill import chat_bounds
from tobs_sync.chat_rules import first_match, rule_for
from tobs_sync.config import Settings
from tobs_sync.model import Chat, ChatKind
from tobs_sync.store_history import ChatHistory
from tobs_sync.store_rows import ChatState
from tobs_sync.store_schema import NO_CURSOR

OWN_ID_KINDS = frozenset({ChatKind.CHANNEL, ChatKind.SUPERGROUP})
"""Chats whose message ids are their own (so the newest id is about the number of messages)."""

_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]+")


def printable(text: str) -> str:
    """``text`` for one line of a terminal: control characters and direction overrides (which could
    reorder or hide the rest of the line) become one space each run."""
    return _UNPRINTABLE.sub(" ", text).strip()


@dataclass(frozen=True, slots=True)
class ChatListing:
    """One row of ``tobs-sync chats`` (``--json`` prints these fields)."""

    id: int
    kind: str
    title: str
    username: str | None
    top_message_id: int | None
    messages: int | None
    """The estimated number of messages (see :attr:`estimate`); None when the chat has none."""
    estimate: str
    """``"about"`` (channels, supergroups) or ``"at most"`` (chats numbered by an account-wide counter)."""
    selected: bool
    selected_by: str | None
    """The first selector of ``telegram.chats`` naming the chat (None: none does)."""
    excluded_by: str | None
    """The first selector of ``telegram.exclude`` naming the chat."""
    since: str | None = None
    """The ``since`` bound of its first backfill (None: the whole history); selected chats only."""
    since_from: str | None = None
    """Where it is set: ``"telegram.since"`` or ``"chat[N]"``."""
    backfill: int | None = None
    """The ``backfill`` bound (0: no limit); selected chats only."""
    backfill_from: str | None = None
    backfilled: bool = False
    """Whether its first backfill happened (started) in this vault."""
    history_from: int | None = None
    """The id its stored history starts after (None: its first message, or not synced yet)."""
    widening: bool = False
    """Whether a widening of its bounds is still fetching older messages."""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def list_chats(
    settings: Settings,
    dialogs: Iterable[tuple[Chat, int | None]],
    states: Mapping[int, ChatState],
    histories: Mapping[int, ChatHistory],
) -> list[ChatListing]:
    """The rows for ``dialogs`` (each chat with its newest message id), in the dialogs' order;
    ``states`` and ``histories`` are what the vault's store knows (empty for a new vault)."""
    rows = []
    include, exclude = settings.telegram.chats, settings.telegram.exclude
    for chat, top in dialogs:
        selected_by, excluded_by = first_match(chat, include), first_match(chat, exclude)
        selected = selected_by is not None and excluded_by is None
        row: dict[str, Any] = {
            "id": chat.id, "kind": str(chat.kind), "title": chat.title, "username": chat.username,
            "top_message_id": top, "messages": top or None,
            "estimate": "about" if chat.kind in OWN_ID_KINDS else "at most",
            "selected": selected,
            "selected_by": None if selected_by is None else str(selected_by),
            "excluded_by": None if excluded_by is None else str(excluded_by),
        }
        if selected:
            since, last = chat_bounds(settings, chat)
            history, state = histories.get(chat.id), states.get(chat.id)
            row.update(
                since=None if since is None else str(since),
                since_from=_set_by(settings, chat, "since"),
                backfill=last,
                backfill_from=_set_by(settings, chat, "backfill"),
                backfilled=history is not None or (state is not None and state.cursor != NO_CURSOR),
                history_from=None if history is None or history.floor == NO_CURSOR else history.floor,
                widening=history is not None and history.widen_start is not None,
            )
        rows.append(ChatListing(**row))
    return rows


def _set_by(settings: Settings, chat: Chat, setting: str) -> str:
    rule = rule_for(chat, settings.chat_rules, setting)
    if rule is None:
        return f"telegram.{setting}"
    return f"chat[{settings.chat_rules.index(rule) + 1}]"
