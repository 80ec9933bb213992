"""Which note holds a message, answered for a whole batch by one store query.

Splitting a batch into notes asks, for every message, whether a note already holds it (a batch
repeated after a crash, an album continued). :class:`NoteLookups` answers those questions from
one query over a window of message ids and keeps the answers only while the store has committed
nothing since (``Store.transactions``): a batch is grouped before any of it is written, so the
answers are exactly what one query per message would have returned, and the next batch, written
after a commit, queries again. Limits: one chat and one window at a time; a question outside the
window (an older message) replaces it, so callers ask such questions of the store directly.
"""

from __future__ import annotations

from tobs_sync.store import Store
from tobs_sync.store_rows import NoteRow

WINDOW = 1024
"""Message ids fetched per query, from the id asked about upwards (a batch's ids ascend)."""


class NoteLookups:
    """``note_of_message`` for consecutive messages of a chat, a window per query."""

    def __init__(self, store: Store, window: int = WINDOW) -> None:
        self._store = store
        self._window = window
        self._key: tuple[int, int, int] | None = None
        """(store transactions, chat id, first id) the cached window was fetched at."""
        self._notes: dict[int, NoteRow] = {}
        self.queries = 0
        """Window queries run (tests and the benchmark read it)."""

    def note_of_message(self, chat_id: int, message_id: int) -> NoteRow | None:
        """The note holding message ``message_id`` of chat ``chat_id``, or None."""
        key = self._key
        if (
            key is None
            or key[0] != self._store.transactions
            or key[1] != chat_id
            or not key[2] <= message_id < key[2] + self._window
        ):
            self._notes = self._store.notes_of_message_range(chat_id, message_id, message_id + self._window)
            self._key = (self._store.transactions, chat_id, message_id)
            self.queries += 1
        return self._notes.get(message_id)
