"""The notes index: each note's path, kind, messages, hashes (committed, intended, conflicting), file stamp and base.

A note's row is created (its path reserved) when it is about to be written
(:meth:`NotesIndex.intend_notes`), and committed with its batch's media rows and the chat's cursor
in one transaction (:meth:`NotesIndex.commit_notes`): the only place a cursor moves. Its *base*,
what tobs-sync last generated for it, lets the user's edits be merged. Limits: paths are compared
by :func:`tobs_sync.names.path_key` (NFC, case-folded) because Obsidian resolves links that way.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence

import msgpack

from tobs_sync.names import path_key
from tobs_sync.store_connection import SQL_VARIABLES, StoreConnection, placeholders
from tobs_sync.store_media import write_media_rows
from tobs_sync.store_rows import CHAT_NOTE, MESSAGE_NOTE, MediaRows, NoteRow

_BASES_CHUNK = 500
"""Paths asked about per ``note_bases`` query."""


class NotesIndex(StoreConnection):
    """The notes index (part of :class:`tobs_sync.store.Store`)."""

    def note_at(self, path: str) -> NoteRow | None:
        row = self._db.execute(_NOTE_SELECT + " WHERE path_key=?", (path_key(path),)).fetchone()
        return None if row is None else _note_row(row)

    def note_of_message(self, chat_id: int, message_id: int) -> NoteRow | None:
        row = self._db.execute(
            _NOTE_SELECT + " WHERE path=(SELECT path FROM note_members WHERE chat_id=? AND message_id=?)",  # noqa: S608  # nosec B608
            (chat_id, message_id),
        ).fetchone()
        return None if row is None else _note_row(row)

    def note_paths_of_messages(self, chat_id: int, message_ids: Sequence[int]) -> dict[int, str]:
        """``message id -> note path`` for those of a chat's ``message_ids`` that a note holds (what
        :meth:`note_of_message` gives, for many messages in one query per 500 ids)."""
        ids = list(dict.fromkeys(message_ids))
        found: dict[int, str] = {}
        for start in range(0, len(ids), _BASES_CHUNK):
            rows = self._db.execute(
                "SELECT m.message_id, n.path FROM note_members m JOIN notes n ON n.path = m.path"
                " WHERE m.chat_id=? AND m.message_id IN (SELECT value FROM json_each(?))",
                (chat_id, json.dumps(ids[start:start + _BASES_CHUNK])),
            ).fetchall()
            found.update((int(message_id), str(path)) for message_id, path in rows)
        return found

    def notes_of_message_range(self, chat_id: int, first: int, end: int) -> dict[int, NoteRow]:
        """The notes of a chat's messages ``first <= id < end``, by message id, in one query."""
        members = self._db.execute(
            "SELECT message_id, path FROM note_members WHERE chat_id=? AND message_id>=? AND message_id<?",
            (chat_id, first, end),
        ).fetchall()
        paths = sorted({path for _, path in members})
        rows = {}
        for start in range(0, len(paths), SQL_VARIABLES):
            chunk = paths[start:start + SQL_VARIABLES]
            query = _NOTE_SELECT + f" WHERE path IN ({placeholders(len(chunk))})"
            rows.update((str(r[0]), _note_row(r)) for r in self._db.execute(query, chunk).fetchall())
        return {int(message_id): rows[path] for message_id, path in members if path in rows}

    def chat_note(self, chat_id: int) -> NoteRow | None:
        row = self._db.execute(_NOTE_SELECT + " WHERE chat_id=? AND kind=?", (chat_id, CHAT_NOTE)).fetchone()
        return None if row is None else _note_row(row)

    def path_taken(self, path: str) -> bool:
        """Whether a note or attachment tobs-sync owns sits at ``path`` (case-insensitively)."""
        key = path_key(path)
        return (
            self._db.execute("SELECT 1 FROM notes WHERE path_key=?", (key,)).fetchone() is not None
            or self._db.execute("SELECT 1 FROM media_files WHERE path_key=?", (key,)).fetchone() is not None
        )

    def notes(self, *, kind: str | None = None) -> Iterator[NoteRow]:
        query = _NOTE_SELECT + (" WHERE kind=?" if kind else "") + " ORDER BY chat_id, message_id"
        yield from (_note_row(r) for r in self._db.execute(query, (kind,) if kind else ()).fetchall())

    def recent_notes(self, chat_id: int, limit: int) -> list[NoteRow]:
        rows = self._db.execute(
            _NOTE_SELECT + " WHERE chat_id=? AND kind=? ORDER BY message_id DESC LIMIT ?",
            (chat_id, MESSAGE_NOTE, limit),
        ).fetchall()
        return [_note_row(r) for r in rows]

    def note_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM notes").fetchone()[0])

    def conflicts(self) -> list[NoteRow]:
        rows = self._db.execute(_NOTE_SELECT + " WHERE conflict_hash IS NOT NULL ORDER BY path").fetchall()
        return [_note_row(r) for r in rows]

    def intend_notes(self, rows: Sequence[NoteRow]) -> None:
        """Record, before writing them, the notes about to be written: ``row.intended_hash`` is the
        sha256 of the new bytes, ``row.content_hash`` what is known to be tobs-sync's own on disk now.

        A new note's row is created (its path is then reserved, and its messages point to it); an
        existing row keeps its conflict mark, size and time until :meth:`commit_notes`.
        """
        now = int(time.time())
        with self.transaction() as db:
            for row in rows:
                db.execute(
                    "INSERT INTO notes (path, path_key, kind, chat_id, message_id, message_ids, content_hash,"
                    " intended_hash, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (path) DO UPDATE SET message_ids=excluded.message_ids,"
                    " content_hash=excluded.content_hash, intended_hash=excluded.intended_hash,"
                    " updated_at=excluded.updated_at",
                    (
                        row.path, path_key(row.path), row.kind, row.chat_id, row.message_id,
                        msgpack.packb(list(row.message_ids)), row.content_hash, row.intended_hash, now,
                    ),
                )
                self._set_members(db, row)

    def commit_notes(
        self, rows: Sequence[NoteRow], *, cursor: tuple[int, int] | None = None, media: MediaRows | None = None
    ) -> None:
        """Record written notes, the media index rows of their batch and, in the same transaction,
        move a chat's cursor forward.

        ``cursor`` is ``(chat_id, message_id)``; a cursor never moves backwards.
        """
        now = int(time.time())
        with self.transaction() as db:
            if media:
                write_media_rows(db, media)
            for row in rows:
                db.execute(
                    "INSERT INTO notes (path, path_key, kind, chat_id, message_id, message_ids, content_hash,"
                    " conflict_hash, intended_hash, size, mtime_ns, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (path) DO UPDATE SET message_ids=excluded.message_ids,"
                    " content_hash=excluded.content_hash, conflict_hash=excluded.conflict_hash,"
                    " intended_hash=excluded.intended_hash, size=excluded.size, mtime_ns=excluded.mtime_ns,"
                    " updated_at=excluded.updated_at",
                    (
                        row.path, path_key(row.path), row.kind, row.chat_id, row.message_id,
                        msgpack.packb(list(row.message_ids)), row.content_hash, row.conflict_hash,
                        row.intended_hash, row.size, row.mtime_ns, now,
                    ),
                )
                self._set_members(db, row)
            if cursor is not None:
                chat_id, message_id = cursor
                db.execute(
                    "UPDATE chats SET cursor=MAX(cursor, ?) WHERE chat_id=?", (message_id, chat_id)
                )

    def note_bases(self, paths: Sequence[str]) -> dict[str, tuple[bytes | None, bytes | None]]:
        """``path -> (committed base, intended base)`` for those of ``paths`` that have one."""
        found: dict[str, tuple[bytes | None, bytes | None]] = {}
        for start in range(0, len(paths), _BASES_CHUNK):
            chunk = list(paths[start:start + _BASES_CHUNK])
            rows = self._db.execute(
                "SELECT path, base, intended_base FROM note_bases WHERE path IN (SELECT value FROM json_each(?))",
                (json.dumps(chunk),),
            ).fetchall()
            found.update({str(path): (base, intended) for path, base, intended in rows})
        return found

    def intend_bases(self, bases: Mapping[str, tuple[bytes | None, bytes | None]]) -> None:
        """Before writing: ``path -> (base of the bytes on disk now, base of the bytes about to be written)``."""
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO note_bases (path, base, intended_base) VALUES (?, ?, ?)"
                " ON CONFLICT (path) DO UPDATE SET base=excluded.base, intended_base=excluded.intended_base",
                [(path, current, intended) for path, (current, intended) in bases.items()],
            )

    def commit_bases(self, bases: Mapping[str, bytes | None]) -> None:
        """After writing: ``path -> base of the bytes now on disk`` (the intended one is cleared)."""
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO note_bases (path, base, intended_base) VALUES (?, ?, NULL)"
                " ON CONFLICT (path) DO UPDATE SET base=excluded.base, intended_base=NULL",
                list(bases.items()),
            )

    @staticmethod
    def _set_members(db: sqlite3.Connection, row: NoteRow) -> None:
        db.executemany(
            "INSERT OR REPLACE INTO note_members (chat_id, message_id, path) VALUES (?, ?, ?)",
            [(row.chat_id, mid, row.path) for mid in row.message_ids],
        )


_NOTE_SELECT = (
    "SELECT path, kind, chat_id, message_id, message_ids, content_hash, conflict_hash, intended_hash, size, mtime_ns"
    " FROM notes"
)


def _note_row(row: tuple[object, ...]) -> NoteRow:
    path, kind, chat_id, message_id, ids, content_hash, conflict_hash, intended_hash, size, mtime_ns = row
    return NoteRow(
        path=str(path),
        kind=str(kind),
        chat_id=int(chat_id),  # type: ignore[call-overload]
        message_id=int(message_id),  # type: ignore[call-overload]
        message_ids=tuple(msgpack.unpackb(ids)),  # type: ignore[arg-type]
        content_hash=str(content_hash),
        conflict_hash=None if conflict_hash is None else str(conflict_hash),
        intended_hash=None if intended_hash is None else str(intended_hash),
        size=None if size is None else int(size),  # type: ignore[call-overload]
        mtime_ns=None if mtime_ns is None else int(mtime_ns),  # type: ignore[call-overload]
    )
