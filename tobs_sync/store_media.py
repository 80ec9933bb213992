"""The media index: stored files by content hash, Telegram file identities, what became of each message's media.

Limits: a file's row is written once (``INSERT OR IGNORE``: the first path wins) and its intent
(:meth:`MediaIndex.intend_media`, before the rename) is cleared by the commit of its rows; a sync
pass commits them with its notes (:func:`write_media_rows` inside
:meth:`tobs_sync.store_notes.NotesIndex.commit_notes`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

import msgpack

from tobs_sync.names import path_key
from tobs_sync.store_connection import StoreConnection
from tobs_sync.store_rows import MediaRows, MediaSlot


class MediaIndex(StoreConnection):
    """The media index (part of :class:`tobs_sync.store.Store`)."""

    def media_path(self, content_hash: str) -> str | None:
        row = self._db.execute("SELECT path FROM media_files WHERE content_hash=?", (content_hash,)).fetchone()
        return None if row is None else str(row[0])

    def intend_media(self, content_hash: str, path: str) -> None:
        """Record, before the rename, where a new file with these bytes is about to be placed."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO media_intents (content_hash, path) VALUES (?, ?)", (content_hash, path))

    def intended_media_path(self, content_hash: str) -> str | None:
        """Where a file with these bytes was about to be placed by a batch whose rows never committed."""
        row = self._db.execute("SELECT path FROM media_intents WHERE content_hash=?", (content_hash,)).fetchone()
        return None if row is None else str(row[0])

    def media_properties(self, content_hash: str) -> dict[str, Any] | None:
        """What processors found about a stored file; None if they have not run on it yet."""
        row = self._db.execute("SELECT properties FROM media_files WHERE content_hash=?", (content_hash,)).fetchone()
        return msgpack.unpackb(row[0]) if row and row[0] is not None else None

    def hash_of_remote(self, file_key: str) -> str | None:
        row = self._db.execute("SELECT content_hash FROM remote_files WHERE file_key=?", (file_key,)).fetchone()
        return None if row is None else str(row[0])

    def media_count(self) -> tuple[int, int]:
        """(number of stored files, their total size in bytes)."""
        count, total = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM media_files").fetchone()
        return count, total

    def add_media_file(self, content_hash: str, path: str, size: int, mime_type: str | None) -> None:
        self.commit_media(MediaRows(files={content_hash: (path, size, mime_type)}))

    def record_media(
        self,
        chat_id: int,
        message_id: int,
        slot: int,
        *,
        status: str,
        content_hash: str | None = None,
        reason: str | None = None,
        file_key: str | None = None,
    ) -> None:
        rows = MediaRows()
        rows.record_media(chat_id, message_id, slot, status=status, content_hash=content_hash, reason=reason,
                          file_key=file_key)
        self.commit_media(rows)

    def commit_media(self, media: MediaRows) -> None:
        """Media index rows on their own, in one transaction (a sync pass commits them with its notes)."""
        with self.transaction() as db:
            write_media_rows(db, media)

    def media_slots(self, chat_id: int, message_id: int) -> dict[int, MediaSlot]:
        rows = self._db.execute(
            "SELECT m.slot, m.status, m.content_hash, f.path, m.reason, f.properties FROM message_media m"
            " LEFT JOIN media_files f ON f.content_hash = m.content_hash"
            " WHERE m.chat_id=? AND m.message_id=?",
            (chat_id, message_id),
        ).fetchall()
        return {r[0]: MediaSlot(*r[:5], properties=msgpack.unpackb(r[5]) if r[5] is not None else None) for r in rows}

    def set_media_properties(self, content_hash: str, properties: Mapping[str, Any], *, size: int | None) -> None:
        """Record what media processors found about a stored file (and its new size if re-encoded)."""
        self.commit_media(MediaRows(properties={content_hash: (properties, size)}))

    def messages_with_failed_media(self, chat_id: int) -> list[int]:
        """Ids of a chat's messages whose media fetch failed (to retry on this pass)."""
        rows = self._db.execute(
            "SELECT DISTINCT message_id FROM message_media WHERE chat_id=? AND status='failed' ORDER BY message_id",
            (chat_id,),
        ).fetchall()
        return [r[0] for r in rows]

    def media_status_counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT status, COUNT(*) FROM message_media GROUP BY status").fetchall()
        return {status: count for status, count in rows}


def write_media_rows(db: sqlite3.Connection, media: MediaRows) -> None:
    """Write a batch's media index rows inside the open transaction ``db`` (a file's intent is cleared)."""
    db.executemany(
        "INSERT OR IGNORE INTO media_files (content_hash, path, path_key, size, mime_type) VALUES (?, ?, ?, ?, ?)",
        [(h, path, path_key(path), size, mime) for h, (path, size, mime) in media.files.items()],
    )
    db.executemany("DELETE FROM media_intents WHERE content_hash=?", [(h,) for h in media.files])
    db.executemany(
        "INSERT OR REPLACE INTO message_media (chat_id, message_id, slot, content_hash, status, reason)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [(c, m, s, h, status, reason) for (c, m, s), (h, status, reason) in media.slots.items()],
    )
    db.executemany(
        "INSERT OR IGNORE INTO remote_files (file_key, content_hash) VALUES (?, ?)", list(media.remote.items())
    )
    db.executemany(
        "UPDATE media_files SET properties=?, size=COALESCE(?, size) WHERE content_hash=?",
        [(msgpack.packb(dict(p)), size, h) for h, (p, size) in media.properties.items()],
    )
