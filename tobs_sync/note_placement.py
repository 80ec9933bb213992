"""Where notes go: a new chat's folder, a message's note path, a batch grouped into notes, the chat note.

:class:`NotePlacement` decides, for the pass, which note each message of a batch lands in (one per
message, one per album, also when an album straddles two batches or a note already holds some of its
messages) and at which vault path a new note or a chat's index note is placed. Limits: a note's path
is chosen once, when it is first written (later changes of the path templates or of a chat's title
apply to new notes only); it renders and writes nothing, and reserves only the chat note's row.
"""

from __future__ import annotations

import datetime as dt
import functools
import posixpath
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tobs_sync.config import Settings
from tobs_sync.model import Chat, Message
from tobs_sync.names import NAME_MAX_BYTES, inert_text, path_key, sanitize_component
from tobs_sync.note_lookups import NoteLookups
from tobs_sync.publish import Draft
from tobs_sync.store import Store
from tobs_sync.store_paths import taken_path_keys
from tobs_sync.store_rows import CHAT_NOTE, ChatState, NoteRow
from tobs_sync.vault import Vault
from tobs_sync.views import topic_path_value


@dataclass(slots=True)
class PlannedNote:
    """One note to write: its messages (several for an album) and where it goes."""

    messages: list[Message]
    path: str
    previous: NoteRow | None

    def add(self, message: Message) -> None:
        """Add an album member; one already in the note (stored by a run that crashed) is replaced."""
        self.messages = sorted([m for m in self.messages if m.id != message.id] + [message], key=lambda m: m.id)

    def draft(self, data: bytes, chat_id: int) -> Draft:
        return Draft(self.path, data, chat_id, tuple(m.id for m in self.messages), previous=self.previous,
                     fresh=self.previous is None)  # a new note's path was just found free


class NotePlacement:
    """Chat folders, note paths and the grouping of a batch into notes, for one vault."""

    def __init__(self, settings: Settings, store: Store, vault: Vault, attachment_rule: str) -> None:
        self._settings = settings
        self._store = store
        self._vault = vault
        self._tz = settings.timezone
        self._chat_note_paths: dict[int, str] = {}
        """Chat note paths, once reserved (they never change afterwards); spares a query per note."""
        self._reserved_names = _reserved_folder_names(settings.templates, attachment_rule)
        self._note_lookups = NoteLookups(store)
        """Notes of consecutive messages, a window per query: one query serves a whole batch."""
        self._note_path_fields = frozenset(name for _, name in _parsed(settings.note_path) if name)
        """The fields ``vault.note_path`` uses: only those are computed for each message."""

    def chat_folder(self, chat: Chat) -> str:
        """A new chat's folder name: its title, made inert and safe; with its id when the title is the
        name of the templates or attachments folder, so that its notes never land among those files.
        The title is shortened to keep the id within the name's byte limit."""
        fallback = f"chat {abs(chat.id)}"
        name = sanitize_component(inert_text(chat.title), fallback=fallback, max_bytes=NAME_MAX_BYTES)
        if path_key(name) not in self._reserved_names:
            return name
        suffix = f" ({abs(chat.id)})"
        budget = NAME_MAX_BYTES - len(suffix.encode("utf-8"))
        return sanitize_component(name, fallback=fallback, max_bytes=budget) + suffix

    def group_notes(self, state: ChatState, batch: Sequence[Message]) -> list[PlannedNote]:
        """Split a batch into notes: one per message, one per album (the store is only read)."""
        notes: list[PlannedNote] = []
        paths = _BatchPaths(self, self._store, state, batch)
        for message in batch:
            current = notes[-1] if notes else None
            if current and message.grouped_id and message.grouped_id == current.messages[-1].grouped_id:
                current.add(message)
                continue
            notes.append(self._note_for(state, message, paths))
        return notes

    def _note_for(self, state: ChatState, message: Message, paths: _BatchPaths) -> PlannedNote:
        existing = self._note_lookups.note_of_message(state.chat.id, message.id)
        if existing is None and message.grouped_id:
            existing = self._album_note(state.chat.id, message)
        if existing is not None:
            stored = self._store.messages_by_id(state.chat.id, [i for i in existing.message_ids if i != message.id])
            members = [stored[mid] for mid in existing.message_ids if mid in stored]
            return PlannedNote(sorted([*members, message], key=lambda m: m.id), existing.path, existing)
        path = self._vault.unique_path(paths.wanted(message), paths.taken)
        return PlannedNote([message], path, None)

    def _album_note(self, chat_id: int, message: Message) -> NoteRow | None:
        """The note of an album this message continues (its predecessor in the same album).

        Asked of the store directly: the predecessor lies before the batch's lookup window."""
        for previous in self._store.messages_before(chat_id, message.id, limit=1):
            if previous.grouped_id == message.grouped_id:
                return self._store.note_of_message(chat_id, previous.id)
        return None

    def note_path(self, state: ChatState, message: Message) -> str:
        """The path ``vault.note_path`` gives a message's new note (before making it unique)."""
        when = dt.datetime.fromtimestamp(message.date, self._tz)
        fields = {name: _NOTE_FIELDS[name](state, message, when) for name in self._note_path_fields}
        return _fill_path(self._settings.note_path, fields)

    def reserve_chat_note(self, state: ChatState) -> None:
        """Give the chat's index note its path (once: the row is committed before it is written)."""
        if self._store.chat_note(state.chat.id) is not None:
            return
        wanted = _fill_path(self._settings.chat_note_path, {"chat": state.folder, "chat_id": str(state.chat.id)})
        path = self._vault.unique_path(wanted, self._store.path_taken)
        self._store.commit_notes([NoteRow(path, CHAT_NOTE, state.chat.id, 0, (), "")])

    def chat_note_path(self, state: ChatState) -> str:
        """The path of the chat's index note (reserved if it was not yet)."""
        if (known := self._chat_note_paths.get(state.chat.id)) is not None:
            return known
        row = self._store.chat_note(state.chat.id)
        if row is None:
            self.reserve_chat_note(state)
            row = self._store.chat_note(state.chat.id)
        if row is None:  # pragma: no cover - reserved just above
            return ""
        self._chat_note_paths[state.chat.id] = row.path
        return row.path


def _reserved_folder_names(templates: str, attachment_rule: str) -> frozenset[str]:
    """Folder names a chat may not take: the last part of the templates folder and of a named
    attachment folder (``/``, ``./`` and ``./sub`` name no folder of their own)."""
    folders = [templates] + ([attachment_rule] if not attachment_rule.startswith(("/", "./")) else [])
    return frozenset(path_key(posixpath.basename(folder.strip("/"))) for folder in folders if folder.strip("/"))


class _BatchPaths:
    """The wanted paths of a batch's new notes, and which of them the store holds, each found once
    (at the batch's first new note) for the whole batch rather than with two queries per note."""

    def __init__(self, placement: NotePlacement, store: Store, state: ChatState, batch: Sequence[Message]) -> None:
        self._placement, self._store, self._state, self._batch = placement, store, state, batch
        self._wanted: dict[int, str] | None = None
        self._wanted_paths: set[str] = set()
        self._taken: set[str] = set()

    def wanted(self, message: Message) -> str:
        """The path ``vault.note_path`` gives ``message``'s note (before making it unique)."""
        if self._wanted is None:
            self._wanted = {m.id: self._placement.note_path(self._state, m) for m in self._batch}
            self._wanted_paths = set(self._wanted.values())
            self._taken = taken_path_keys(self._store, self._wanted_paths)
        return self._wanted.get(message.id) or self._placement.note_path(self._state, message)

    def taken(self, candidate: str) -> bool:
        """``Store.path_taken``, answered from the batch's one query for its wanted paths."""
        if candidate in self._wanted_paths:
            return path_key(candidate) in self._taken
        return self._store.path_taken(candidate)


_NOTE_FIELDS: dict[str, Callable[[ChatState, Message, dt.datetime], str]] = {
    "chat": lambda state, _message, _when: state.folder,
    "chat_id": lambda state, _message, _when: str(state.chat.id),
    "topic": lambda _state, message, _when: topic_path_value(message),
    "date": lambda _state, _message, when: when.strftime("%Y-%m-%d"),
    "year": lambda _state, _message, when: when.strftime("%Y"),
    "month": lambda _state, _message, when: when.strftime("%m"),
    "day": lambda _state, _message, when: when.strftime("%d"),
    "time": lambda _state, _message, when: when.strftime("%H%M%S"),
    "id": lambda _state, message, _when: str(message.id),
}
"""The fields of ``vault.note_path``, each computed from the chat, the message and its local time."""


@functools.lru_cache(maxsize=16)
def _parsed(template: str) -> tuple[tuple[str, str | None], ...]:
    """A path template's literal texts and field names, parsed once."""
    return tuple((literal, name) for literal, name, _spec, _conv in string.Formatter().parse(template))


def _fill_path(template: str, fields: dict[str, str]) -> str:
    """Fill a validated path template; every value is sanitised into one path component."""
    parts = []
    for literal, name in _parsed(template):
        parts.append(literal)
        if name is not None:
            parts.append(sanitize_component(fields[name]) if name != "chat" else fields[name])
    path = "".join(parts)
    folders, _, filename = path.rpartition("/")
    components = [sanitize_component(c) for c in folders.split("/") if c] if folders else []
    stem = filename[:-3]
    return "/".join([*components, sanitize_component(stem) + ".md"])
