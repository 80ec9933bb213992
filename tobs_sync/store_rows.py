"""The rows the state database hands out and takes in: chats, notes and media.

:class:`ChatState` (a chat, its folder and cursor), :class:`NoteRow` (one note tobs-sync owns,
and the note kinds :data:`CHAT_NOTE` and :data:`MESSAGE_NOTE`), :class:`MediaSlot` (what became
of one media item of a message) and :class:`MediaRows` (the media index rows of one batch,
collected before they are committed). Limits: plain values only; reading and writing them is
:class:`tobs_sync.store.Store`'s job, and nothing here touches the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tobs_sync.model import Chat

CHAT_NOTE = "chat"
MESSAGE_NOTE = "message"


@dataclass(frozen=True, slots=True)
class ChatState:
    chat: Chat
    folder: str
    cursor: int
    """Highest message id whose notes are durable; :data:`tobs_sync.store_schema.NO_CURSOR` before the first."""


@dataclass(frozen=True, slots=True)
class NoteRow:
    """One note tobs-sync owns: where it is and what it last wrote there."""

    path: str
    kind: str
    chat_id: int
    message_id: int
    message_ids: tuple[int, ...]
    content_hash: str
    """sha256 of the bytes last written and committed ("" while the note was only reserved)."""
    conflict_hash: str | None = None
    """sha256 of someone else's bytes found there (a user edit), or None."""
    intended_hash: str | None = None
    """sha256 of bytes tobs-sync was about to write when it last stopped (None once committed)."""
    size: int | None = None
    """Size of the file as last written (with ``mtime_ns``: a fast "unchanged since" check)."""
    mtime_ns: int | None = None

    def is_ours(self, disk_hash: str | None) -> bool:
        """Whether bytes with ``disk_hash`` are tobs-sync's own: what it last committed or intended."""
        return disk_hash is not None and disk_hash in (self.content_hash, self.intended_hash)


@dataclass(slots=True)
class MediaRows:
    """The media index rows of one batch, committed in the batch's notes transaction.

    Filled by the media writer as files are placed; :meth:`tobs_sync.store.Store.commit_notes` writes them.
    ``placed`` (content hash -> vault path) also answers "is this file already stored?" for the rest
    of the batch before the rows are committed.
    """

    files: dict[str, tuple[str, int, str | None]] = field(default_factory=dict)
    """content hash -> (vault path, size, MIME type) of files placed in the vault."""
    slots: dict[tuple[int, int, int], tuple[str | None, str, str | None]] = field(default_factory=dict)
    """(chat id, message id, slot) -> (content hash, status, reason)."""
    remote: dict[str, str] = field(default_factory=dict)
    """Telegram file identity -> content hash."""
    properties: dict[str, tuple[Mapping[str, Any], int | None]] = field(default_factory=dict)
    """content hash -> (what processors found, new size if re-encoded)."""

    def __bool__(self) -> bool:
        return bool(self.files or self.slots or self.remote or self.properties)

    def record_media(
        self, chat_id: int, message_id: int, slot: int, *, status: str, content_hash: str | None = None,
        reason: str | None = None, file_key: str | None = None,
    ) -> None:
        self.slots[(chat_id, message_id, slot)] = (content_hash, status, reason)
        if file_key and content_hash:
            self.remote.setdefault(file_key, content_hash)


@dataclass(frozen=True, slots=True)
class MediaSlot:
    """What became of one media item of a message: stored, unavailable, skipped or failed."""

    slot: int
    status: str
    content_hash: str | None
    path: str | None
    reason: str | None
    properties: Mapping[str, Any] | None = None
    """What processors found about the file; None if they have not run on it yet."""

