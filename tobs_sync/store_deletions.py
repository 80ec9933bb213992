"""The store's record of deleted messages, owed re-renders and note moves (queries on a Store).

Tables (see :mod:`tobs_sync.store_schema`):

* ``deletions``: one row per message found deleted in Telegram, with its ``state`` (:data:`HELD`
  waiting for the user, :data:`PENDING` being applied, :data:`APPLIED`, :data:`DISCARDED` by the
  user), the ``action`` taken on its note (a policy of ``[deletions]``) and when it was found. A
  message is recorded once: later reports of the same deletion change nothing.
* ``stale_notes``: notes whose re-render is owed, recorded in the same transaction as the change
  that makes them stale (an edited message stored, a deletion to mark), cleared once published.
* ``note_moves``: a note about to be moved into the archive (``target``) or removed (no target),
  recorded before the file is touched and cleared with the store's update.

Limits: plain queries, no policy (that is :mod:`tobs_sync.changes`); write functions join the
caller's transaction when there is one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tobs_sync.model import CHANNEL_ID_OFFSET
from tobs_sync.names import path_key
from tobs_sync.store import Store

HELD = "held"
PENDING = "pending"
APPLIED = "applied"
DISCARDED = "discarded"
MARKED_ACTIONS = ("mark", "archive")
"""Actions whose note shows the deletion (a ``deleted`` property and a line)."""


@dataclass(frozen=True, slots=True)
class HeldDeletions:
    """Deletions of one chat held by the mass-deletion guard, waiting for the user."""

    chat_id: int
    title: str
    count: int
    first_found: int
    """When the first of them was found (UTC epoch seconds)."""
    message_ids: tuple[int, ...]


def _ids(values: Iterable[int]) -> str:
    return json.dumps(sorted(set(values)))


# -- deletions ---------------------------------------------------------------------------------


def recorded(store: Store, chat_id: int, message_ids: Iterable[int]) -> set[int]:
    """Those of ``message_ids`` already recorded as deleted (in any state)."""
    rows = store.connection.execute(
        "SELECT message_id FROM deletions WHERE chat_id=? AND message_id IN (SELECT value FROM json_each(?))",
        (chat_id, _ids(message_ids)),
    )
    return {int(r[0]) for r in rows}


def record(store: Store, chat_id: int, actions: dict[int, str], *, state: str, found_at: int) -> None:
    """Record deletions (``message id -> action``) in ``state``; a row already there takes the new
    state and action but keeps when it was found."""
    with store.transaction() as db:
        db.executemany(
            "INSERT INTO deletions (chat_id, message_id, state, action, found_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (chat_id, message_id) DO UPDATE SET state=excluded.state, action=excluded.action",
            [(chat_id, message_id, state, action, found_at) for message_id, action in actions.items()],
        )


def set_state(store: Store, chat_id: int, message_ids: Iterable[int], state: str) -> None:
    with store.transaction() as db:
        db.execute(
            "UPDATE deletions SET state=? WHERE chat_id=? AND message_id IN (SELECT value FROM json_each(?))",
            (state, chat_id, _ids(message_ids)),
        )


def in_state(store: Store, state: str, chat_id: int | None = None) -> dict[int, dict[int, str]]:
    """``chat id -> {message id: action}`` of the deletions in ``state`` (of one chat, or all)."""
    query = "SELECT chat_id, message_id, action FROM deletions WHERE state=?"
    args: tuple[object, ...] = (state,)
    if chat_id is not None:
        query, args = query + " AND chat_id=?", (state, chat_id)
    found: dict[int, dict[int, str]] = {}
    for chat, message_id, action in store.connection.execute(query + " ORDER BY chat_id, message_id", args):
        found.setdefault(int(chat), {})[int(message_id)] = str(action)
    return found


def shown(store: Store, chat_id: int, message_ids: Sequence[int]) -> dict[int, int]:
    """``message id -> when found`` of those of ``message_ids`` whose note shows them deleted."""
    rows = store.connection.execute(
        "SELECT message_id, found_at FROM deletions WHERE chat_id=? AND message_id IN (SELECT value FROM json_each(?))"
        " AND state IN (?, ?) AND action IN (?, ?)",
        (chat_id, _ids(message_ids), PENDING, APPLIED, *MARKED_ACTIONS),
    )
    return {int(m): int(t) for m, t in rows}


def held(store: Store) -> list[HeldDeletions]:
    """Held deletions, one entry per chat (for ``status`` and ``tobs-sync deletions``)."""
    result = []
    rows = store.connection.execute(
        "SELECT chat_id, message_id, found_at FROM deletions WHERE state=? ORDER BY chat_id, message_id", (HELD,)
    ).fetchall()
    by_chat: dict[int, list[tuple[int, int]]] = {}
    for chat_id, message_id, found_at in rows:
        by_chat.setdefault(int(chat_id), []).append((int(message_id), int(found_at)))
    for chat_id, items in by_chat.items():
        state = store.chat_state(chat_id)
        title = state.chat.title if state else f"chat {chat_id}"
        ids = tuple(i for i, _ in items)
        result.append(HeldDeletions(chat_id, title, len(ids), min(t for _, t in items), ids))
    return result


# -- which stored messages ---------------------------------------------------------------------


def stored_ids(store: Store, chat_id: int, message_ids: Iterable[int]) -> list[int]:
    """Those of ``message_ids`` the store holds for ``chat_id``, ascending."""
    rows = store.connection.execute(
        "SELECT message_id FROM messages WHERE chat_id=? AND message_id IN (SELECT value FROM json_each(?))"
        " ORDER BY message_id",
        (chat_id, _ids(message_ids)),
    )
    return [int(r[0]) for r in rows]


def chats_of_unnamed(store: Store, message_ids: Iterable[int]) -> dict[int, list[int]]:
    """``chat id -> ids``: where stored messages of private chats and basic groups with these ids are
    (their ids come from one account-wide counter, so an id names one message of the account)."""
    found: dict[int, list[int]] = {}
    rows = store.connection.execute(
        "SELECT chat_id, message_id FROM messages WHERE message_id IN (SELECT value FROM json_each(?))"
        " AND chat_id > ? ORDER BY chat_id, message_id",
        (_ids(message_ids), -CHANNEL_ID_OFFSET),
    )
    for chat_id, message_id in rows:
        found.setdefault(int(chat_id), []).append(int(message_id))
    return found


def stored_ids_between(store: Store, chat_id: int, low: int, high: int, *, since: int | None = None) -> list[int]:
    """Stored ids of ``chat_id`` with ``low <= id <= high`` (and dated ``since`` or later), ascending."""
    query = "SELECT message_id FROM messages WHERE chat_id=? AND message_id BETWEEN ? AND ?"
    args: tuple[object, ...] = (chat_id, low, high)
    if since is not None:
        query, args = query + " AND date >= ?", (*args, since)
    return [int(r[0]) for r in store.connection.execute(query + " ORDER BY message_id", args)]


# -- owed re-renders ---------------------------------------------------------------------------


def mark_stale(store: Store, chat_id: int, paths: Iterable[str]) -> None:
    with store.transaction() as db:
        db.executemany("INSERT OR IGNORE INTO stale_notes (path, chat_id) VALUES (?, ?)",
                       [(path, chat_id) for path in paths])


def stale(store: Store, chat_id: int) -> list[str]:
    rows = store.connection.execute("SELECT path FROM stale_notes WHERE chat_id=? ORDER BY path", (chat_id,))
    return [str(r[0]) for r in rows]


def clear_stale(store: Store, paths: Iterable[str]) -> None:
    with store.transaction() as db:
        db.executemany("DELETE FROM stale_notes WHERE path=?", [(path,) for path in paths])


# -- note moves --------------------------------------------------------------------------------


def intend_move(store: Store, chat_id: int, path: str, target: str | None) -> None:
    """Record that the note at ``path`` is about to move to ``target`` (None: be removed)."""
    with store.transaction() as db:
        db.execute("INSERT OR REPLACE INTO note_moves (path, chat_id, target) VALUES (?, ?, ?)",
                   (path, chat_id, target))


def moves(store: Store, chat_id: int) -> list[tuple[str, str | None]]:
    rows = store.connection.execute(
        "SELECT path, target FROM note_moves WHERE chat_id=? ORDER BY path", (chat_id,)
    ).fetchall()
    return [(str(p), None if t is None else str(t)) for p, t in rows]


def finish_move(store: Store, path: str, target: str | None) -> None:
    """The store's side of a move: the note's rows follow it to ``target``, or are dropped (None)."""
    with store.transaction() as db:
        if target is None:
            db.execute("DELETE FROM note_members WHERE path=?", (path,))
            db.execute("DELETE FROM note_bases WHERE path=?", (path,))
            db.execute("DELETE FROM notes WHERE path=?", (path,))
        else:
            db.execute("PRAGMA defer_foreign_keys=ON")  # note_members follows in this transaction
            db.execute("UPDATE notes SET path=?, path_key=? WHERE path=?", (target, path_key(target), path))
            db.execute("UPDATE note_members SET path=? WHERE path=?", (target, path))
            db.execute("UPDATE note_bases SET path=? WHERE path=?", (target, path))
        db.execute("DELETE FROM note_moves WHERE path=?", (path,))


def cancel_move(store: Store, path: str) -> None:
    with store.transaction() as db:
        db.execute("DELETE FROM note_moves WHERE path=?", (path,))
