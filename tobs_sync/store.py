"""The state database: ``.tobs/state.db`` (SQLite in WAL mode) inside the vault.

It holds, per chat, the cursor (highest message id whose notes are durable;
:data:`tobs_sync.store_schema.NO_CURSOR` until the first message is, since a migrated group's old
history has ids below zero) and a stable folder name; the messages a pass left out, with the
reason; the message cache (msgpack records, so every note can be re-rendered without the source);
the notes index (vault path -> sha256 of the bytes last written and committed, the sha256 of bytes
about to be written (recorded before the write, cleared by the commit), the size and modification
time of the file as written, and which messages a note holds, and, compactly, what it generated
last so that the user's edits can be merged); the media index (content hash -> vault path, Telegram
file identity -> content hash, and what became of each message's media).

Everything after the store can be replayed from it. Cursors move only in
:meth:`Store.commit_notes`, in the same transaction as the notes index rows and the media index
rows of their batch (:class:`tobs_sync.store_rows.MediaRows`). The schema has a version
(``PRAGMA user_version``) and forward migrations (:mod:`tobs_sync.store_schema`), run on open; a database
from a newer tobs-sync is refused rather than damaged. The rows handed out and taken in are in
:mod:`tobs_sync.store_rows`. Limits: one writer at a time (SQLite); paths are compared by
:func:`tobs_sync.names.path_key` (NFC, case-folded) because Obsidian resolves links that way.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgpack

from tobs_sync.errors import StoreError
from tobs_sync.model import Chat, Message
from tobs_sync.names import NAME_MAX_BYTES, path_key, sanitize_component
from tobs_sync.records import decode_chat, decode_message, encode_chat, encode_message
from tobs_sync.store_rows import CHAT_NOTE, MESSAGE_NOTE, ChatState, MediaRows, MediaSlot, NoteRow
from tobs_sync.store_schema import MIGRATIONS, NO_CURSOR, SCHEMA_VERSION

BELOW_CURSOR = "at or below the chat's cursor but never imported (an earlier import left it out)"
"""The skip reason the store checks: recorded only for messages it does not hold."""
_SKIP_CHECK_CHUNK = 500


class Store:
    """The state database of one vault. Use as a context manager or call :meth:`close`."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path
        self.transactions = 0
        """Transactions committed through :meth:`transaction` (the benchmark prints it)."""

    @classmethod
    def open(cls, path: Path, *, read_only: bool = False) -> Store:
        """The database at ``path``, created and migrated as needed; ``read_only``: see :meth:`open_read_only`."""
        if read_only:
            return cls.open_read_only(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, isolation_level=None)
        store = cls(db, path)
        try:
            store._check_version()
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            store._migrate()
        except sqlite3.DatabaseError as exc:
            db.close()
            raise StoreError(f"{path}: not a usable tobs-sync database: {exc}") from exc
        except BaseException:
            db.close()
            raise
        return store

    @classmethod
    def open_read_only(cls, path: Path) -> Store:
        """An existing database for reading only: nothing is created, migrated or written.

        While the WAL files exist (a writer is running, or one crashed) the database is read
        through them, seeing every committed transaction, with the shared-memory index opened
        read-only (``readonly_shm``), so not even SQLite's read marks are written. Otherwise the
        database is fully checkpointed and is opened ``immutable``, so SQLite creates no ``-wal``
        and ``-shm`` files. Limit: a writer that starts and checkpoints (more than ~4 MB of writes,
        or a whole short command) during such an immutable read can make it fail or see a mix of states.
        """
        if not path.is_file():
            raise StoreError(f"{path}: no such database")
        wal, shm = (path.with_name(path.name + suffix) for suffix in ("-wal", "-shm"))
        live = wal.is_file() and shm.is_file()
        uri = path.absolute().as_uri() + ("?mode=ro&readonly_shm=1" if live else "?mode=ro&immutable=1")
        store = None
        try:
            db = sqlite3.connect(uri, uri=True, isolation_level=None)
            store = cls(db, path)
            db.execute("PRAGMA query_only=ON")
            store._check_version()
            version = db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            if store is not None:
                store.close()
            raise StoreError(f"{path}: not a usable tobs-sync database: {exc}") from exc
        except BaseException:
            if store is not None:
                store.close()
            raise
        if version < SCHEMA_VERSION:
            store.close()
            raise StoreError(
                f"{path}: written by an older tobs-sync (schema {version}, this one uses {SCHEMA_VERSION}); "
                "run a writing command (sync, import or render) once to upgrade it"
            )
        return store

    def _check_version(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: written by a newer tobs-sync (schema {version}, this one knows "
                f"{SCHEMA_VERSION}); upgrade tobs-sync"
            )

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        for target in range(version, SCHEMA_VERSION):
            with self.transaction():
                MIGRATIONS[target](self._db)
                self._db.execute(f"PRAGMA user_version={target + 1}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit of writes (nested calls join the outer transaction)."""
        if self._db.in_transaction:
            yield self._db
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._commit()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one read-only query (for the ``store_<feature>`` modules; writes go through
        :meth:`transaction`)."""
        return self._db.execute(sql, params).fetchall()

    def _commit(self) -> None:
        """End the current transaction (a seam: tests record or interrupt commits here)."""
        self._db.execute("COMMIT")
        self.transactions += 1

    # -- chats ---------------------------------------------------------------------------

    def upsert_chat(self, chat: Chat, folder_for: Callable[[Chat], str]) -> ChatState:
        """Record ``chat`` (title changes included); its folder is chosen once and kept."""
        with self.transaction() as db:
            row = db.execute("SELECT folder, cursor FROM chats WHERE chat_id=?", (chat.id,)).fetchone()
            if row is not None:
                db.execute("UPDATE chats SET record=? WHERE chat_id=?", (encode_chat(chat), chat.id))
                return ChatState(chat, row[0], row[1])
            folder = self._free_folder(folder_for(chat), chat.id)
            db.execute(
                "INSERT INTO chats (chat_id, record, folder, folder_key, cursor) VALUES (?, ?, ?, ?, ?)",
                (chat.id, encode_chat(chat), folder, path_key(folder), NO_CURSOR),
            )
            return ChatState(chat, folder, NO_CURSOR)

    def _free_folder(self, wanted: str, chat_id: int) -> str:
        """``wanted``, or else ``wanted (id)``, ``wanted (id) 2`` ...: the first no chat has taken.
        A suffix shortens the name before it instead of being cut off, so it always tells chats apart."""
        suffixes = ["", f" ({abs(chat_id)})"] + [f" ({abs(chat_id)}) {n}" for n in range(2, 100)]
        for suffix in suffixes:
            budget = NAME_MAX_BYTES - len(suffix.encode("utf-8"))
            folder = sanitize_component(wanted, max_bytes=budget) + suffix if suffix else wanted
            taken = self._db.execute("SELECT 1 FROM chats WHERE folder_key=?", (path_key(folder),)).fetchone()
            if taken is None:
                return folder
        raise StoreError(f"no free folder name for chat {chat_id}")  # pragma: no cover

    def chat_state(self, chat_id: int) -> ChatState | None:
        row = self._db.execute(
            "SELECT record, folder, cursor FROM chats WHERE chat_id=?", (chat_id,)
        ).fetchone()
        return None if row is None else ChatState(decode_chat(row[0]), row[1], row[2])

    def chat_states(self) -> list[ChatState]:
        rows = self._db.execute("SELECT record, folder, cursor FROM chats ORDER BY chat_id").fetchall()
        return [ChatState(decode_chat(r[0]), r[1], r[2]) for r in rows]

    # -- Telegram peers -------------------------------------------------------------------

    def remember_peer(self, chat: Chat, peer: bytes) -> None:
        """Keep a chat's Telegram input peer (its TL bytes) for later passes."""
        username = chat.username.casefold() if chat.username else None
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO peers (chat_id, username, record, peer) VALUES (?, ?, ?, ?)",
                (chat.id, username, encode_chat(chat), peer),
            )

    def known_peer(self, rule: int | str) -> tuple[Chat, bytes] | None:
        """The chat and input peer remembered for a chat id or an ``@username``."""
        if isinstance(rule, int):
            row = self._db.execute("SELECT record, peer FROM peers WHERE chat_id=?", (rule,)).fetchone()
        else:
            row = self._db.execute(
                "SELECT record, peer FROM peers WHERE username=?", (rule.removeprefix("@").casefold(),)
            ).fetchone()
        return None if row is None else (decode_chat(row[0]), bytes(row[1]))

    # -- message cache ---------------------------------------------------------------------

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

    # -- notes index -----------------------------------------------------------------------

    def note_at(self, path: str) -> NoteRow | None:
        row = self._db.execute(_NOTE_SELECT + " WHERE path_key=?", (path_key(path),)).fetchone()
        return None if row is None else _note_row(row)

    def note_of_message(self, chat_id: int, message_id: int) -> NoteRow | None:
        row = self._db.execute(
            _NOTE_SELECT + " WHERE path=(SELECT path FROM note_members WHERE chat_id=? AND message_id=?)",  # noqa: S608  # nosec B608
            (chat_id, message_id),
        ).fetchone()
        return None if row is None else _note_row(row)

    def notes_of_message_range(self, chat_id: int, first: int, end: int) -> dict[int, NoteRow]:
        """The notes of a chat's messages ``first <= id < end``, by message id, in one query."""
        members = self._db.execute(
            "SELECT message_id, path FROM note_members WHERE chat_id=? AND message_id>=? AND message_id<?",
            (chat_id, first, end),
        ).fetchall()
        paths = sorted({path for _, path in members})
        rows = {}
        for start in range(0, len(paths), _SQL_VARIABLES):
            chunk = paths[start:start + _SQL_VARIABLES]
            query = _NOTE_SELECT + f" WHERE path IN ({_placeholders(len(chunk))})"
            rows.update((str(r[0]), _note_row(r)) for r in self._db.execute(query, chunk).fetchall())
        return {int(message_id): rows[path] for message_id, path in members if path in rows}

    def messages_by_id(self, chat_id: int, message_ids: Sequence[int]) -> dict[int, Message]:
        """The cached messages of a chat among ``message_ids``, by id, in one query per 500 ids."""
        found: dict[int, Message] = {}
        ids = list(dict.fromkeys(message_ids))
        for start in range(0, len(ids), _SQL_VARIABLES):
            chunk = ids[start:start + _SQL_VARIABLES]
            where = f"chat_id=? AND message_id IN ({_placeholders(len(chunk))})"
            query = "SELECT message_id, record FROM messages WHERE " + where  # noqa: S608  # nosec B608
            found.update((int(r[0]), decode_message(r[1])) for r in self._db.execute(query, (chat_id, *chunk)))
        return found

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
                self._write_media_rows(db, media)
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
        for start in range(0, len(paths), _SKIP_CHECK_CHUNK):
            chunk = list(paths[start:start + _SKIP_CHECK_CHUNK])
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

    @staticmethod
    def _write_media_rows(db: sqlite3.Connection, media: MediaRows) -> None:
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

    # -- media index -----------------------------------------------------------------------

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
            self._write_media_rows(db, media)

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


_SQL_VARIABLES = 500
"""Ids bound per ``IN (...)`` query, well below SQLite's smallest variable limit (999)."""



def _placeholders(count: int) -> str:
    """``?,?,?`` for ``count`` bound values (only placeholders are ever put into query text)."""
    return ",".join("?" * count)


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
