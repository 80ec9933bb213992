"""The chats table (cursor, folder, last known record of each chat) and the Telegram peers remembered for them.

Limits: a chat's folder is chosen once, on its first record, and never changes; its cursor moves
only with its notes (:meth:`tobs_sync.store_notes.NotesIndex.commit_notes`).
"""

from __future__ import annotations

from collections.abc import Callable

from tobs_sync.errors import StoreError
from tobs_sync.model import Chat
from tobs_sync.names import NAME_MAX_BYTES, path_key, sanitize_component
from tobs_sync.records import decode_chat, encode_chat
from tobs_sync.store_connection import StoreConnection
from tobs_sync.store_rows import ChatState
from tobs_sync.store_schema import NO_CURSOR


class ChatsTable(StoreConnection):
    """Chats and their Telegram peers (part of :class:`tobs_sync.store.Store`)."""

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
