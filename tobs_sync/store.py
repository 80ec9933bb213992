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

from tobs_sync.store_chats import ChatsTable
from tobs_sync.store_media import MediaIndex
from tobs_sync.store_messages import BELOW_CURSOR, MessageCache
from tobs_sync.store_notes import NotesIndex

__all__ = ["BELOW_CURSOR", "Store"]


class Store(ChatsTable, MessageCache, NotesIndex, MediaIndex):
    """The state database of one vault. Use as a context manager or call :meth:`close`.

    Each part of its API has a module of its own, all on the one connection of
    :class:`~tobs_sync.store_connection.StoreConnection` (opening, migrations, transactions):
    :mod:`tobs_sync.store_chats` (chats, peers), :mod:`tobs_sync.store_messages` (the message cache,
    skipped messages), :mod:`tobs_sync.store_notes` (the notes index) and :mod:`tobs_sync.store_media`
    (the media index). Feature tables keep their queries in further ``store_*`` modules that work on
    a Store.
    """
