"""The message cache (every message read, as msgpack records) and the messages a pass left out, with the reason.

The cache is what lets every note be rendered again without the source. Limits: a message keeps
its latest copy and a skipped message its latest reason; nothing is ever dropped from the cache here.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence

from tobs_sync.model import Message
from tobs_sync.records import decode_message, encode_message
from tobs_sync.store_connection import SQL_VARIABLES, StoreConnection, placeholders
from tobs_sync.store_schema import NO_CURSOR

BELOW_CURSOR = "at or below the chat's cursor but never imported (an earlier import left it out)"
"""The skip reason the store checks: recorded only for messages it does not hold."""
_SKIP_CHECK_CHUNK = 500


class MessageCache(StoreConnection):
    """Cached messages and skipped messages (part of :class:`tobs_sync.store.Store`)."""

    def put_messages(self, batch: Sequence[Message]) -> None:
        """Cache a batch in one transaction (an edited message replaces its older copy)."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO messages (chat_id, message_id, date, record) VALUES (?, ?, ?, ?)",
                [(m.chat_id, m.id, m.date, encode_message(m)) for m in batch],
            )

    def message(self, chat_id: int, message_id: int) -> Message | None:
        row = self._db.execute(
            "SELECT record FROM messages WHERE chat_id=? AND message_id=?", (chat_id, message_id)
        ).fetchone()
        return None if row is None else decode_message(row[0])

    def messages(self, chat_id: int, *, up_to: int | None = None, batch: int = 500) -> Iterator[Message]:
        """Cached messages of a chat in id order (streamed, not loaded at once)."""
        last = NO_CURSOR
        limit = up_to if up_to is not None else 2**63 - 1
        while True:
            rows = self._db.execute(
                "SELECT message_id, record FROM messages WHERE chat_id=? AND message_id>? AND message_id<=? "
                "ORDER BY message_id LIMIT ?",
                (chat_id, last, limit, batch),
            ).fetchall()
            if not rows:
                return
            for _id, record in rows:
                yield decode_message(record)
            last = rows[-1][0]

    def messages_before(self, chat_id: int, message_id: int, *, limit: int) -> list[Message]:
        """The cached messages just before ``message_id``, newest first."""
        rows = self._db.execute(
            "SELECT record FROM messages WHERE chat_id=? AND message_id<? ORDER BY message_id DESC LIMIT ?",
            (chat_id, message_id, limit),
        ).fetchall()
        return [decode_message(r[0]) for r in rows]

    def message_stats(self, chat_id: int) -> tuple[int, int | None, int | None]:
        """(count, first date, last date) of a chat's cached messages."""
        count, first, last = self._db.execute(
            "SELECT COUNT(*), MIN(date), MAX(date) FROM messages WHERE chat_id=?", (chat_id,)
        ).fetchone()
        return count, first, last

    def message_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])

    def messages_by_id(self, chat_id: int, message_ids: Sequence[int]) -> dict[int, Message]:
        """The cached messages of a chat among ``message_ids``, by id, in one query per 500 ids."""
        found: dict[int, Message] = {}
        ids = list(dict.fromkeys(message_ids))
        for start in range(0, len(ids), SQL_VARIABLES):
            chunk = ids[start:start + SQL_VARIABLES]
            where = f"chat_id=? AND message_id IN ({placeholders(len(chunk))})"
            query = "SELECT message_id, record FROM messages WHERE " + where  # noqa: S608  # nosec B608
            found.update((int(r[0]), decode_message(r[1])) for r in self._db.execute(query, (chat_id, *chunk)))
        return found
    # -- skipped messages ------------------------------------------------------------------

    def record_skipped(self, chat_id: int, skipped: Iterable[tuple[int, str]]) -> dict[str, int]:
        """Record ``(message_id, reason)`` pairs a pass left out; how many, by reason.

        Pairs with reason :data:`BELOW_CURSOR` are checked against the message cache in chunks
        (memory stays bounded): those whose message the store holds (imported before) are
        dropped. A message keeps its latest reason.
        """
        counts: dict[str, int] = {}
        below: list[int] = []
        with self.transaction() as db:
            for message_id, reason in skipped:
                if reason == BELOW_CURSOR:
                    below.append(message_id)
                    if len(below) >= _SKIP_CHECK_CHUNK:
                        self._record_unheld(db, chat_id, below, counts)
                        below = []
                    continue
                db.execute(
                    "INSERT OR REPLACE INTO skipped_messages (chat_id, message_id, reason) VALUES (?, ?, ?)",
                    (chat_id, message_id, reason),
                )
                counts[reason] = counts.get(reason, 0) + 1
            if below:
                self._record_unheld(db, chat_id, below, counts)
        return counts

    @staticmethod
    def _record_unheld(db: sqlite3.Connection, chat_id: int, ids: list[int], counts: dict[str, int]) -> None:
        held = {
            row[0]
            for row in db.execute(
                "SELECT message_id FROM messages WHERE chat_id=? AND message_id IN (SELECT value FROM json_each(?))",
                (chat_id, json.dumps(ids)),
            )
        }
        unheld = [(chat_id, message_id, BELOW_CURSOR) for message_id in ids if message_id not in held]
        db.executemany(
            "INSERT OR REPLACE INTO skipped_messages (chat_id, message_id, reason) VALUES (?, ?, ?)", unheld
        )
        if unheld:
            counts[BELOW_CURSOR] = counts.get(BELOW_CURSOR, 0) + len(unheld)

    def skipped_counts(self) -> dict[int, dict[str, int]]:
        """Messages left out so far: chat id -> reason -> how many."""
        result: dict[int, dict[str, int]] = {}
        rows = self._db.execute(
            "SELECT chat_id, reason, COUNT(*) FROM skipped_messages GROUP BY chat_id, reason ORDER BY chat_id, reason"
        )
        for chat_id, reason, count in rows:
            result.setdefault(chat_id, {})[reason] = count
        return result
