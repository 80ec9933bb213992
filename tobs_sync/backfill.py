"""How far back a chat's history is read: the bounds of its first backfill, and widening them later.

``telegram.since`` (a date, or a span such as ``"30d"``) and ``telegram.backfill`` (the last N
messages), each overridable per chat by ``[[chat]]`` tables, bound a chat's **first backfill**;
when both are set the tighter one wins (the later start). The first time a chat is read from a
source that can start a history at a bound (:class:`~tobs_sync.sources.base.BoundsHistory`),
:meth:`Backfill.plan` asks the source where that is, records it as the chat's *floor*
(:mod:`tobs_sync.store_history`) and the pass reads forward from there.

Later passes compare the configured bounds with the ones recorded: only when they reach further
back (since earlier, backfill larger, or removed) is the source asked again, and if the new start
is below the floor a **widening** is recorded: the older messages, from the new start up to the
floor, are read once, in ascending order and published batch by batch like any other (notes
durable before the widening's own cursor moves), and the floor moves down when they are all in.
A crash repeats at most one batch of them, and no note is written twice; a widening once begun is
finished by the next passes even if the bounds are narrowed again meanwhile. Narrowing the bounds
deletes nothing and reads nothing.

A Desktop export import is never bounded (the user chose what to export): its chats are read
whole, also below the floor of a chat whose first backfill was bounded (every import of it reads
that part again; the floor stays, since an export may not reach a chat's first message), and a
chat first read from an export, or synced before bounds existed, counts as read from its start.

Limits: a span (``"30d"``) counts back from the time of the pass. A count never cuts an
album (the source moves the start below it); a date could, were an album's members sent in
different seconds around it: its older members, fetched by a widening, would get a note of their
own. Telegram's takeout session (``telegram.takeout``) serves only a backfill from a chat's first
message, so a bounded first backfill reads history normally.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import replace

from tobs_sync.chat_rules import Since, setting_for
from tobs_sync.config import Settings
from tobs_sync.model import Chat
from tobs_sync.sources.base import BoundsHistory, Source
from tobs_sync.store import Store
from tobs_sync.store_history import (
    ChatHistory,
    HistoryBounds,
    begin_widening,
    chat_history,
    record_bounds,
    start_history,
)
from tobs_sync.store_rows import ChatState
from tobs_sync.store_schema import NO_CURSOR


def chat_bounds(settings: Settings, chat: Chat) -> tuple[Since | None, int]:
    """The ``since`` and ``backfill`` that apply to ``chat``: its first ``[[chat]]`` setting each, else
    ``telegram.since`` / ``telegram.backfill``."""
    since = setting_for(chat, settings.chat_rules, "since", settings.telegram.since)
    last = setting_for(chat, settings.chat_rules, "backfill", settings.telegram.backfill)
    return since, last


class Backfill:
    """Decides where each chat's read starts, and which older messages a pass must fetch first."""

    def __init__(self, settings: Settings, store: Store, *, now: Callable[[], dt.datetime] | None = None) -> None:
        self._settings = settings
        self._store = store
        self.now = now or (lambda: dt.datetime.now(settings.timezone))
        """The current time, aware (spans such as ``"30d"`` count back from it); a fake clock in tests."""

    def bounds(self, chat: Chat) -> HistoryBounds:
        """The bounds configured for ``chat`` now, with a span turned into a time."""
        since, last = chat_bounds(self._settings, chat)
        since_ts = None if since is None else int(since.start(self.now()).timestamp())
        return HistoryBounds(since_ts, last)

    async def plan(self, source: Source, state: ChatState) -> tuple[int, ChatHistory | None]:
        """``(after, widening)``: where the forward read of the chat starts, and the widening to run
        first (None: nothing older to fetch). Asks ``source`` only for a chat's first backfill under
        bounds, and when the bounds became wider than those recorded."""
        chat = state.chat
        history = chat_history(self._store, chat.id)
        if not isinstance(source, BoundsHistory):
            if history is not None and state.cursor > history.floor > NO_CURSOR:
                # not bounded (an export): what it holds below the floor is read too, every time; the
                # floor stays (the export may not reach the first message) and no widening is recorded
                return state.cursor, replace(history, widen_start=None, widen_after=NO_CURSOR)
            return state.cursor, None
        if history is None:
            if state.cursor != NO_CURSOR:
                return state.cursor, None  # read before bounds existed, or from an export: from its start
            bounds = self.bounds(chat)
            floor = await self._start(source, chat, bounds)
            start_history(self._store, chat.id, floor, bounds)
            history = chat_history(self._store, chat.id)
            return (floor if history is None else history.floor), None
        if history.widen_start is None and history.floor != NO_CURSOR:
            bounds = self.bounds(chat)
            if bounds.reaches_before(history.bounds):
                start = await self._start(source, chat, bounds)
                if start < history.floor:
                    history = begin_widening(self._store, history, start, bounds)
                else:
                    record_bounds(self._store, chat.id, bounds)
        widening = history if history.widen_start is not None else None
        return max(state.cursor, history.floor), widening

    async def _start(self, source: BoundsHistory, chat: Chat, bounds: HistoryBounds) -> int:
        if bounds.unbounded:
            return NO_CURSOR
        since = None if bounds.since_ts is None else dt.datetime.fromtimestamp(bounds.since_ts, dt.UTC)
        return await source.history_start(chat, since=since, last=bounds.last or None)
