"""How far back each chat's history has been fetched (its *floor*), and widening it: the store's side.

A chat's **floor** is the ``after`` cursor its first backfill started from: every message with an
id above the floor (up to the chat's cursor) has been read, none at or below it was asked for;
:data:`~tobs_sync.store_schema.NO_CURSOR` means the whole history. A chat without a row here
(synced before bounds existed, or first read from a Desktop export, which is never bounded) counts
as read from its start. Next to the floor the store keeps the **bounds** that set it
(:class:`HistoryBounds`), so that a pass asks the source for a new start only when the configured
bounds reach further back than those, and a **widening** in progress: the new floor it works
towards (``widen_start``) and the highest id of the older messages whose notes are durable
(``widen_after``). The floor moves down only when the widening has reached it.

Limits: only these rows; reading the older messages and publishing them is :mod:`tobs_sync.widening`'s
job, deciding bounds :mod:`tobs_sync.backfill`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tobs_sync.records import decode_message
from tobs_sync.store import Store

_SCAN_CHUNK = 500


@dataclass(frozen=True, slots=True)
class HistoryBounds:
    """How far back a chat's history is wanted: both bounds apply, so the tighter one wins."""

    since_ts: int | None = None
    """The earliest message time included (unix seconds); None: no date bound."""
    last: int = 0
    """At most this many of the newest messages; 0: no count bound."""

    @property
    def unbounded(self) -> bool:
        return self.since_ts is None and self.last == 0

    def reaches_before(self, other: HistoryBounds) -> bool:
        """Whether these bounds may take messages ``other`` left out (wider by date or by count)."""
        by_date = other.since_ts is not None and (self.since_ts is None or self.since_ts < other.since_ts)
        by_count = other.last != 0 and (self.last == 0 or self.last > other.last)
        return by_date or by_count


@dataclass(frozen=True, slots=True)
class ChatHistory:
    """One chat's row: its floor, the bounds that set it, and a widening in progress (or None)."""

    chat_id: int
    floor: int
    bounds: HistoryBounds
    widen_start: int | None = None
    """The floor a widening in progress works towards (None: no widening)."""
    widen_after: int | None = None
    """The highest id of the older messages whose notes are durable (the widening's own cursor)."""


_SELECT = "SELECT chat_id, floor, since_ts, last_n, widen_start, widen_after FROM chat_history"


def _row(row: tuple[object, ...]) -> ChatHistory:
    chat_id, floor, since_ts, last, widen_start, widen_after = row
    return ChatHistory(
        int(chat_id),  # type: ignore[call-overload]
        int(floor),  # type: ignore[call-overload]
        HistoryBounds(None if since_ts is None else int(since_ts), int(last)),  # type: ignore[call-overload]
        None if widen_start is None else int(widen_start),  # type: ignore[call-overload]
        None if widen_after is None else int(widen_after),  # type: ignore[call-overload]
    )


def chat_history(store: Store, chat_id: int) -> ChatHistory | None:
    """The chat's floor and bounds; None when its history was never bounded (read from its start)."""
    rows = store.query(_SELECT + " WHERE chat_id=?", (chat_id,))
    return _row(rows[0]) if rows else None


def chat_histories(store: Store) -> dict[int, ChatHistory]:
    """Every chat's row, by chat id (for listing chats)."""
    return {history.chat_id: history for history in map(_row, store.query(_SELECT))}


def start_history(store: Store, chat_id: int, floor: int, bounds: HistoryBounds) -> None:
    """Record where a chat's first backfill starts, before its first batch (a second call keeps the first)."""
    with store.transaction() as db:
        db.execute(
            "INSERT OR IGNORE INTO chat_history (chat_id, floor, since_ts, last_n) VALUES (?, ?, ?, ?)",
            (chat_id, floor, bounds.since_ts, bounds.last),
        )


def record_bounds(store: Store, chat_id: int, bounds: HistoryBounds) -> None:
    """The bounds now configured were checked and reach nothing below the floor: remember them."""
    with store.transaction() as db:
        db.execute(
            "UPDATE chat_history SET since_ts=?, last_n=? WHERE chat_id=?", (bounds.since_ts, bounds.last, chat_id)
        )


def begin_widening(store: Store, history: ChatHistory, start: int, bounds: HistoryBounds) -> ChatHistory:
    """Record, before reading them, that the messages above ``start`` and at or below the floor are to
    be fetched (for ``bounds``); the row as it is now."""
    with store.transaction() as db:
        db.execute(
            "UPDATE chat_history SET widen_start=?, widen_after=?, since_ts=?, last_n=? WHERE chat_id=?",
            (start, start, bounds.since_ts, bounds.last, history.chat_id),
        )
    return replace(history, bounds=bounds, widen_start=start, widen_after=start)


def widened_to(store: Store, chat_id: int, message_id: int) -> None:
    """The notes of the older messages up to ``message_id`` are durable (never moves back)."""
    with store.transaction() as db:
        db.execute(
            "UPDATE chat_history SET widen_after=MAX(widen_after, ?) WHERE chat_id=? AND widen_start IS NOT NULL",
            (message_id, chat_id),
        )


def finish_widening(store: Store, chat_id: int) -> None:
    """Every older message is durable: the floor moves down to where the widening started."""
    with store.transaction() as db:
        db.execute(
            "UPDATE chat_history SET floor=MIN(floor, widen_start), widen_start=NULL, widen_after=NULL"
            " WHERE chat_id=? AND widen_start IS NOT NULL",
            (chat_id,),
        )


def replies_into(store: Store, chat_id: int, floor: int, start: int) -> list[int]:
    """Ids of the chat's stored messages above ``floor`` that reply to, or pinned, a message of the
    same chat with an id in ``(start, floor]`` (their notes link to it once it is fetched). Reads the
    messages above the floor once, :data:`_SCAN_CHUNK` at a time."""
    found: list[int] = []
    last = floor
    while True:
        rows = store.query(
            "SELECT message_id, record FROM messages WHERE chat_id=? AND message_id>? ORDER BY message_id LIMIT ?",
            (chat_id, last, _SCAN_CHUNK),
        )
        if not rows:
            return found
        for message_id, record in rows:
            message = decode_message(record)
            reply, action = message.reply, message.action
            replies = reply is not None and reply.chat_id in (None, chat_id) and start < reply.message_id <= floor
            pinned = (action is not None and action.kind == "pin_message" and action.message_id is not None
                      and start < action.message_id <= floor)
            if replies or pinned:
                found.append(int(message_id))
        last = rows[-1][0]
