"""Channel posts' comments in the state database: the comment cache and each post's comment cursor.

A **comment** is a message of a channel's discussion group that answers one of the channel's posts;
it is cached by ``(group id, comment id)`` with the channel and post it belongs to, so its note can
be rendered again without Telegram. A post's **comment cursor** is the highest comment id whose
note is durable; next to it the store keeps the newest comment id Telegram reported for the post, so
a post whose comments could not be read (or were not reached) stays due on later passes. The cursor
moves only forward, and only after the notes of the comments up to it are
committed (:mod:`tobs_sync.comments` keeps that order), so a pass interrupted anywhere repeats at
most the comments above it, which are cached again and rewritten with identical bytes.

Limits: only these rows; reading comments from Telegram and publishing their notes is
:mod:`tobs_sync.comments`' job. Comment notes are ordinary rows of the notes index (kind
:data:`COMMENT_NOTE`, chat id = the discussion group, message ids = the comment).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tobs_sync.model import Message
from tobs_sync.records import decode_message, encode_message
from tobs_sync.store import Store

COMMENT_NOTE = "comment"
"""The notes index kind of a comment's note."""


@dataclass(frozen=True, slots=True)
class StoredComment:
    """A cached comment and the post it answers."""

    chat_id: int
    """The channel (marked id)."""
    post_id: int
    message: Message
    """The comment itself, a message of the discussion group (``message.chat_id`` is the group)."""


def put_comments(store: Store, chat_id: int, post_id: int, comments: Sequence[Message]) -> None:
    """Cache comments of one post in one transaction (a comment read again replaces its older copy)."""
    with store.transaction() as db:
        db.executemany(
            "INSERT OR REPLACE INTO comments (group_id, comment_id, chat_id, post_id, record) VALUES (?, ?, ?, ?, ?)",
            [(c.chat_id, c.id, chat_id, post_id, encode_message(c)) for c in comments],
        )


def stored_comment(store: Store, group_id: int, comment_id: int) -> StoredComment | None:
    rows = store.query(
        "SELECT chat_id, post_id, record FROM comments WHERE group_id=? AND comment_id=?", (group_id, comment_id)
    )
    return StoredComment(rows[0][0], rows[0][1], decode_message(rows[0][2])) if rows else None


def comment_notes(store: Store, chat_id: int, post_id: int, *, limit: int) -> tuple[int, list[tuple[Message, str]]]:
    """How many comments of a post have a note, and ``(comment, note path)`` of the newest ``limit``
    of them, oldest first."""
    joined = (
        " FROM comments c JOIN note_members n ON n.chat_id = c.group_id AND n.message_id = c.comment_id"
        " WHERE c.chat_id=? AND c.post_id=?"
    )
    count = store.query("SELECT COUNT(*)" + joined, (chat_id, post_id))[0][0]
    rows = store.query(
        "SELECT c.record, n.path" + joined + " ORDER BY c.comment_id DESC LIMIT ?", (chat_id, post_id, limit)
    )
    return int(count), [(decode_message(record), str(path)) for record, path in reversed(rows)]


def comment_cursors(store: Store, chat_id: int, post_ids: Iterable[int]) -> dict[int, int]:
    """The comment cursors of those of ``post_ids`` that have one (some comment's note is durable)."""
    rows = store.query(
        "SELECT post_id, max_id FROM comment_cursors WHERE chat_id=? AND max_id > 0"
        " AND post_id IN (SELECT value FROM json_each(?))",
        (chat_id, json.dumps(sorted(set(post_ids)))),
    )
    return {int(post_id): int(max_id) for post_id, max_id in rows}


def note_newest_comments(store: Store, chat_id: int, newest: Mapping[int, int]) -> None:
    """Record, per post, the newest comment id Telegram reported (``post id -> id``), in one transaction:
    the post's comments stay due, pass after pass, until its cursor reaches it."""
    with store.transaction() as db:
        db.executemany(
            "INSERT INTO comment_cursors (chat_id, post_id, newest) VALUES (?, ?, ?)"
            " ON CONFLICT (chat_id, post_id) DO UPDATE SET newest=MAX(newest, excluded.newest)",
            [(chat_id, post_id, top) for post_id, top in newest.items()],
        )


def due_posts(store: Store, chat_id: int) -> list[tuple[int, int, int]]:
    """``(post id, cursor, newest comment id)`` of a channel's posts with comments not yet in notes, by post id."""
    rows = store.query(
        "SELECT post_id, max_id, newest FROM comment_cursors WHERE chat_id=? AND newest > max_id ORDER BY post_id",
        (chat_id,),
    )
    return [(int(post_id), int(max_id), int(newest)) for post_id, max_id, newest in rows]


def move_comment_cursor(store: Store, chat_id: int, post_id: int, max_id: int) -> None:
    """Move a post's comment cursor forward to ``max_id`` (never backwards)."""
    with store.transaction() as db:
        db.execute(
            "INSERT INTO comment_cursors (chat_id, post_id, max_id) VALUES (?, ?, ?)"
            " ON CONFLICT (chat_id, post_id) DO UPDATE SET max_id=MAX(max_id, excluded.max_id)",
            (chat_id, post_id, max_id),
        )


