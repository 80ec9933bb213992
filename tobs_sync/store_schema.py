"""The state database's schema: its tables, created and changed by numbered forward migrations.

``MIGRATIONS[n]`` takes a database from ``PRAGMA user_version`` ``n`` to ``n + 1``;
:data:`SCHEMA_VERSION` is the version this tobs-sync writes; :data:`NO_CURSOR` is the ``cursor``
column's value for a chat with nothing imported yet. Each migration runs inside the
transaction :class:`tobs_sync.store.Store` opens for it, so a database is at one version or the
next, never between. Limits: migrations only go forward (nothing here downgrades a database, and
the store refuses one from a newer tobs-sync); this module defines the tables and runs no queries
of its own beyond those migrations.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

NO_CURSOR = -(2**63)
"""The cursor of a chat with nothing imported yet: below every message id (the lowest SQLite
integer, so the ``cursor`` column keeps its type and ``MAX`` still moves it forward)."""


def _run_script(db: sqlite3.Connection, script: str) -> None:
    """Run ``;``-separated DDL inside the current transaction (``executescript`` would commit it)."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _schema_v1(db: sqlite3.Connection) -> None:
    _run_script(
        db,
        """
        CREATE TABLE chats (
            chat_id     INTEGER PRIMARY KEY,
            record      BLOB NOT NULL,
            folder      TEXT NOT NULL,
            folder_key  TEXT NOT NULL UNIQUE,
            cursor      INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE messages (
            chat_id     INTEGER NOT NULL,
            message_id  INTEGER NOT NULL,
            date        INTEGER NOT NULL,
            record      BLOB NOT NULL,
            PRIMARY KEY (chat_id, message_id)
        ) WITHOUT ROWID;
        CREATE TABLE notes (
            path          TEXT PRIMARY KEY,
            path_key      TEXT NOT NULL UNIQUE,
            kind          TEXT NOT NULL,
            chat_id       INTEGER NOT NULL,
            message_id    INTEGER NOT NULL,
            message_ids   BLOB NOT NULL,
            content_hash  TEXT NOT NULL,
            conflict_hash TEXT,
            updated_at    INTEGER NOT NULL
        );
        CREATE INDEX notes_by_chat ON notes (chat_id, kind, message_id);
        CREATE TABLE note_members (
            chat_id     INTEGER NOT NULL,
            message_id  INTEGER NOT NULL,
            path        TEXT NOT NULL REFERENCES notes (path),
            PRIMARY KEY (chat_id, message_id)
        ) WITHOUT ROWID;
        CREATE TABLE media_files (
            content_hash TEXT PRIMARY KEY,
            path         TEXT NOT NULL,
            path_key     TEXT NOT NULL UNIQUE,
            size         INTEGER NOT NULL,
            mime_type    TEXT
        );
        CREATE TABLE remote_files (
            file_key     TEXT PRIMARY KEY,
            content_hash TEXT NOT NULL REFERENCES media_files (content_hash)
        );
        CREATE TABLE message_media (
            chat_id      INTEGER NOT NULL,
            message_id   INTEGER NOT NULL,
            slot         INTEGER NOT NULL,
            content_hash TEXT,
            status       TEXT NOT NULL,
            reason       TEXT,
            PRIMARY KEY (chat_id, message_id, slot)
        ) WITHOUT ROWID;
        """
    )


def _schema_v2(db: sqlite3.Connection) -> None:
    """Media processors' properties (duration, size, fps ...) stored with each file."""
    db.execute("ALTER TABLE media_files ADD COLUMN properties BLOB")


def _schema_v3(db: sqlite3.Connection) -> None:
    """Telegram input peers (TL bytes) of chats, so a pass does not resolve usernames again."""
    _run_script(
        db,
        """
        CREATE TABLE peers (
            chat_id   INTEGER PRIMARY KEY,
            username  TEXT,
            record    BLOB NOT NULL,
            peer      BLOB NOT NULL
        );
        CREATE INDEX peers_by_username ON peers (username)
        """,
    )


def _schema_v4(db: sqlite3.Connection) -> None:
    """Intended hashes (the bytes about to be written, recorded before the write) and the size and
    modification time of the file as last written (so ``status`` finds edits without hashing)."""
    _run_script(
        db,
        """
        ALTER TABLE notes ADD COLUMN intended_hash TEXT;
        ALTER TABLE notes ADD COLUMN size INTEGER;
        ALTER TABLE notes ADD COLUMN mtime_ns INTEGER
        """,
    )


def _schema_v5(db: sqlite3.Connection) -> None:
    """Messages a pass left out, with why; chats with no message yet get :data:`NO_CURSOR`."""
    _run_script(
        db,
        """
        CREATE TABLE skipped_messages (
            chat_id     INTEGER NOT NULL,
            message_id  INTEGER NOT NULL,
            reason      TEXT NOT NULL,
            PRIMARY KEY (chat_id, message_id)
        ) WITHOUT ROWID
        """,
    )
    db.execute(
        "UPDATE chats SET cursor=? WHERE cursor=0"
        " AND NOT EXISTS (SELECT 1 FROM messages WHERE messages.chat_id=chats.chat_id)",
        (NO_CURSOR,),
    )


def _schema_v6(db: sqlite3.Connection) -> None:
    """What tobs-sync generated last for each note (its *base*, opaque bytes from
    :func:`tobs_sync.merge.generated_base`), committed and intended, so a re-render can merge."""
    _run_script(
        db,
        """
        CREATE TABLE note_bases (
            path           TEXT PRIMARY KEY,
            base           BLOB,
            intended_base  BLOB
        ) WITHOUT ROWID
        """,
    )


def _schema_v7(db: sqlite3.Connection) -> None:
    """Where a new media file is about to be renamed (recorded before the rename, cleared when its
    index row commits), so that after a crash the file is found again whichever chat needs it first."""
    _run_script(
        db,
        """
        CREATE TABLE media_intents (
            content_hash  TEXT PRIMARY KEY,
            path          TEXT NOT NULL
        ) WITHOUT ROWID
        """,
    )


def _schema_deletions(db: sqlite3.Connection) -> None:
    """Messages deleted in Telegram and what became of them (held, pending, applied, discarded);
    notes whose re-render is owed (a live edit or a deletion mark, recorded before the render); and
    notes about to be moved to the archive or removed (recorded before the file is touched)."""
    _run_script(
        db,
        """
        CREATE TABLE deletions (
            chat_id     INTEGER NOT NULL,
            message_id  INTEGER NOT NULL,
            state       TEXT NOT NULL,
            action      TEXT NOT NULL,
            found_at    INTEGER NOT NULL,
            PRIMARY KEY (chat_id, message_id)
        ) WITHOUT ROWID;
        CREATE INDEX deletions_by_state ON deletions (state, chat_id);
        CREATE TABLE stale_notes (
            path     TEXT PRIMARY KEY,
            chat_id  INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE note_moves (
            path     TEXT PRIMARY KEY,
            chat_id  INTEGER NOT NULL,
            target   TEXT
        ) WITHOUT ROWID
        """,
    )


def _schema_passes(db: sqlite3.Connection) -> None:
    """What each pass did (when, what started it, its counts and problems) and per chat within it
    (new, edited, deleted, errors, recent messages re-read), and when the agent next runs each chat:
    ``status`` shows them."""
    _run_script(
        db,
        """
        CREATE TABLE passes (
            pass_id   INTEGER PRIMARY KEY,
            trigger   TEXT NOT NULL,
            started   REAL NOT NULL,
            finished  REAL NOT NULL,
            summary   TEXT NOT NULL
        );
        CREATE TABLE pass_chats (
            pass_id   INTEGER NOT NULL REFERENCES passes (pass_id) ON DELETE CASCADE,
            chat_id   INTEGER NOT NULL,
            title     TEXT NOT NULL,
            new       INTEGER NOT NULL,
            edited    INTEGER NOT NULL,
            deleted   INTEGER NOT NULL,
            errors    TEXT NOT NULL,
            reconciled INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (chat_id, pass_id)
        ) WITHOUT ROWID;
        CREATE INDEX pass_chats_by_pass ON pass_chats (pass_id);
        CREATE TABLE next_runs (
            chat_id   INTEGER PRIMARY KEY,
            at        REAL NOT NULL
        )
        """,
    )


def _schema_chat_history(db: sqlite3.Connection) -> None:
    """How far back each chat's history was fetched (its *floor*), the bounds that set it, and a
    widening of those bounds in progress (where it started, how far it got)."""
    _run_script(
        db,
        """
        CREATE TABLE chat_history (
            chat_id        INTEGER PRIMARY KEY,
            floor          INTEGER NOT NULL,
            since_ts       INTEGER,
            last_n         INTEGER NOT NULL DEFAULT 0,
            widen_start    INTEGER,
            widen_after    INTEGER
        ) WITHOUT ROWID
        """,
    )


def _schema_comments(db: sqlite3.Connection) -> None:
    """Channel posts' comments (messages of the discussion group, by group and id, with the channel and
    post they answer) and, per post, the highest comment id whose note is durable (its comment cursor)
    and the newest comment id Telegram reported (comments are due while it is above the cursor)."""
    _run_script(
        db,
        """
        CREATE TABLE comments (
            group_id    INTEGER NOT NULL,
            comment_id  INTEGER NOT NULL,
            chat_id     INTEGER NOT NULL,
            post_id     INTEGER NOT NULL,
            record      BLOB NOT NULL,
            PRIMARY KEY (group_id, comment_id)
        ) WITHOUT ROWID;
        CREATE INDEX comments_by_post ON comments (chat_id, post_id, comment_id);
        CREATE TABLE comment_cursors (
            chat_id     INTEGER NOT NULL,
            post_id     INTEGER NOT NULL,
            max_id      INTEGER NOT NULL DEFAULT 0,
            newest      INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (chat_id, post_id)
        ) WITHOUT ROWID
        """,
    )


def _schema_pending_links(db: sqlite3.Connection) -> None:
    """Notes written with a reply into another chat whose note did not exist yet: rendered again once
    it does (see ``tobs_sync.store_links``)."""
    _run_script(
        db,
        """
        CREATE TABLE pending_links (
            target_chat     INTEGER NOT NULL,
            target_message  INTEGER NOT NULL,
            path            TEXT NOT NULL,
            PRIMARY KEY (target_chat, target_message, path)
        ) WITHOUT ROWID
        """,
    )


MIGRATIONS: Sequence[Callable[[sqlite3.Connection], None]] = (
    _schema_v1, _schema_v2, _schema_v3, _schema_v4, _schema_v5, _schema_v6, _schema_v7, _schema_deletions,
    _schema_passes, _schema_chat_history, _schema_comments, _schema_pending_links,
)
"""``MIGRATIONS[n]`` takes a database from schema version ``n`` to ``n + 1``."""

SCHEMA_VERSION = len(MIGRATIONS)
