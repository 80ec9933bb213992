"""An in-memory :class:`~tobs_sync.sources.base.Source`: chats, messages and file bytes held in dicts.

For the sync engine's tests, demos and benchmarks that need neither a Desktop export nor Telethon.
It keeps the same contract as the other sources (the shared contract tests run over it) and adds
what a test needs to stage passes:

* :meth:`MemorySource.add_message` and :meth:`MemorySource.edit_message` change the history between
  passes, or during one: a ``batches`` generator that is running sees a message added above the
  last id it yielded, as a history read from Telegram would.
* :meth:`MemorySource.add_file` stores bytes and returns the :class:`~tobs_sync.model.MediaRef` to
  put in a message; :meth:`MemorySource.fail_fetches` makes the next fetches of a file fail with a
  transient :class:`~tobs_sync.errors.SourceError` (the engine retries it on a later pass) and
  :meth:`MemorySource.make_unavailable` makes it :class:`~tobs_sync.errors.MediaUnavailable` for good.
* :meth:`MemorySource.fail_history` makes the next read of a chat's history raise a given error
  (a :class:`~tobs_sync.errors.ChatDeferred`, say); ``fetch_calls`` counts the fetches of each file.
* Live changes: :meth:`MemorySource.change_message` replaces a message (new reactions, say, with no
  edit time), :meth:`MemorySource.delete_messages` removes messages from a history, and
  :meth:`MemorySource.push` hands a :data:`~tobs_sync.sources.base.LiveChange` to whoever iterates
  :meth:`MemorySource.live_changes` (nothing is pushed by itself: a test decides what Telegram
  reports and what it leaves for reconciliation to find). :meth:`MemorySource.recent_messages`
  re-reads a chat's newest messages; ``recent_reads`` counts those reads.

Limits: everything lives in memory, file bytes included, so it suits small accounts. Message ids must
increase within a chat, as Telegram's do. Files have no data centre unless a ``dc_id`` is given,
and there are no flood waits.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from tobs_sync.errors import MediaUnavailable, SourceError
from tobs_sync.model import Chat, MediaKind, MediaRef, Message
from tobs_sync.sources.base import DEFAULT_BATCH_SIZE, LiveChange

LOCATOR_SCHEME = "memory"
DEFAULT_CHUNK_SIZE = 64 * 1024


@dataclass(slots=True)
class _File:
    data: bytes
    unavailable: str | None = None
    failures_left: int = 0
    failure: str = ""


@dataclass(slots=True)
class _History:
    chat: Chat
    ids: list[int] = dataclasses.field(default_factory=list)
    """Message ids in ascending order."""
    messages: dict[int, Message] = dataclasses.field(default_factory=dict)
    failure: SourceError | None = None
    """Raised by the next read of this history."""


class MemorySource:
    """A Source over chats, messages and files kept in memory (see the module docstring)."""

    def __init__(
        self,
        chats: Iterable[Chat] = (),
        *,
        name: str = "memory",
        batch_size: int = DEFAULT_BATCH_SIZE,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        if batch_size < 1 or chunk_size < 1:
            raise ValueError("batch_size and chunk_size must be at least 1")
        self.name = name
        self._batch_size = batch_size
        self._chunk_size = chunk_size
        self._histories: dict[int, _History] = {}
        self._files: dict[str, _File] = {}
        self._open = False
        self.fetch_calls: Counter[str] = Counter()
        """Calls of :meth:`media_chunks` by locator, whatever their outcome."""
        self.recent_reads = 0
        """Calls of :meth:`recent_messages`."""
        self._live: asyncio.Queue[LiveChange | None] | None = None
        self._pending_live: list[LiveChange] = []
        for chat in chats:
            self.add_chat(chat)

    # -- staging -----------------------------------------------------------------------------

    def add_chat(self, chat: Chat) -> Chat:
        """Add a chat, or replace its header (a renamed chat) keeping its messages."""
        if chat.id in self._histories:
            self._histories[chat.id].chat = chat
        else:
            self._histories[chat.id] = _History(chat)
        return chat

    def add_file(self, data: bytes, *, kind: str = MediaKind.DOCUMENT.value, **fields: Any) -> MediaRef:
        """Store ``data``; the MediaRef (``size`` filled in) to attach to messages, as often as wanted.

        ``fields`` are further :class:`MediaRef` fields (``file_name``, ``mime_type``, ``file_key``,
        ``dc_id`` ...); a ``file_key`` must name these bytes only.
        """
        locator = f"{LOCATOR_SCHEME}:{len(self._files) + 1}"
        self._files[locator] = _File(bytes(data))
        return MediaRef(kind=kind, locator=locator, size=len(data), **fields)

    def add_message(self, message: Message) -> Message:
        """Append a message to its chat's history; its id must be above every id there."""
        history = self._history(message.chat_id)
        if history.ids and message.id <= history.ids[-1]:
            last = history.ids[-1]
            raise ValueError(f"{self.name}: chat {message.chat_id}: message id {message.id} is not above {last}")
        for media in message.media:
            if media.locator is not None and media.locator not in self._files:
                raise ValueError(f"{self.name}: message {message.id}: media {media.locator!r} was not added here")
        history.ids.append(message.id)
        history.messages[message.id] = message
        return message

    def edit_message(self, chat_id: int, message_id: int, *, text: str, edited: int) -> Message:
        """Give a message new text (its entities dropped) and an edit time; returns the new message."""
        history = self._history(chat_id)
        if message_id not in history.messages:
            raise KeyError(f"{self.name}: chat {chat_id} has no message {message_id}")
        message = dataclasses.replace(history.messages[message_id], text=text, entities=(), edited=edited)
        history.messages[message_id] = message
        return message

    def change_message(self, message: Message) -> Message:
        """Replace the stored message with the same chat and id by ``message`` (any field may differ)."""
        history = self._history(message.chat_id)
        if message.id not in history.messages:
            raise KeyError(f"{self.name}: chat {message.chat_id} has no message {message.id}")
        history.messages[message.id] = message
        return message

    def delete_messages(self, chat_id: int, message_ids: Iterable[int]) -> list[int]:
        """Remove messages from a chat's history; the ids that were there."""
        history = self._history(chat_id)
        gone = [i for i in message_ids if history.messages.pop(i, None) is not None]
        history.ids = [i for i in history.ids if i in history.messages]
        return gone

    def push(self, change: LiveChange) -> None:
        """Report ``change`` to :meth:`live_changes` (kept until a session reads it)."""
        if self._live is not None:
            self._live.put_nowait(change)
        else:
            self._pending_live.append(change)

    def messages(self, chat_id: int) -> list[Message]:
        """The chat's history, ascending (for assertions)."""
        history = self._history(chat_id)
        return [history.messages[i] for i in history.ids]

    def fail_fetches(self, media: MediaRef, times: int = 1, reason: str = "the connection dropped") -> None:
        """The next ``times`` fetches of this file raise a transient :class:`SourceError`."""
        file = self._file(media)
        file.failures_left, file.failure = times, reason

    def make_unavailable(self, media: MediaRef, reason: str = "the file was deleted") -> None:
        """Every later fetch of this file raises :class:`MediaUnavailable`."""
        self._file(media).unavailable = reason

    def fail_history(self, chat_id: int, error: SourceError) -> None:
        """The next read of this chat's history raises ``error`` (once)."""
        self._history(chat_id).failure = error

    def _history(self, chat_id: int) -> _History:
        history = self._histories.get(chat_id)
        if history is None:
            raise SourceError(f"{self.name}: no chat with id {chat_id}")
        return history

    def _file(self, media: MediaRef) -> _File:
        file = self._files.get(media.locator or "")
        if file is None:
            raise KeyError(f"{self.name}: no file {media.locator!r}")
        return file

    # -- Source protocol ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._open = True
        self._live = asyncio.Queue()
        for change in self._pending_live:
            self._live.put_nowait(change)
        self._pending_live = []
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._open = False
        if self._live is not None:
            self._live.put_nowait(None)  # ends a running live_changes()
            self._live = None

    async def chats(self) -> AsyncIterator[Chat]:
        self._check_open()
        for history in list(self._histories.values()):
            yield history.chat

    async def batches(self, chat: Chat, after: int) -> AsyncIterator[Sequence[Message]]:
        self._check_open()
        history = self._history(chat.id)
        if history.failure is not None:
            failure, history.failure = history.failure, None
            raise failure
        cursor = after
        while True:
            start = bisect.bisect_right(history.ids, cursor)
            ids = history.ids[start:start + self._batch_size]
            if not ids:
                return
            cursor = ids[-1]
            yield [history.messages[i] for i in ids]

    async def live_changes(self) -> AsyncIterator[LiveChange]:
        """What :meth:`push` reported, in order, until the session ends."""
        self._check_open()
        queue = self._live
        if queue is None:  # pragma: no cover - set while open
            return
        while (change := await queue.get()) is not None:
            yield change

    async def recent_messages(self, chat: Chat, *, count: int, since: dt.datetime | None) -> Sequence[Message]:
        """The newest ``count`` messages of ``chat`` dated ``since`` or later, ascending."""
        self._check_open()
        self.recent_reads += 1
        history = self._history(chat.id)
        newest = history.ids[-count:] if count > 0 else []
        floor = None if since is None else since.timestamp()
        return [history.messages[i] for i in newest if floor is None or history.messages[i].date >= floor]

    async def media_chunks(self, media: MediaRef, offset: int = 0) -> AsyncIterator[bytes]:
        self._check_open()
        what = f"{self.name}: {media.locator or media.file_name or media.kind}"
        if media.locator is not None:
            self.fetch_calls[media.locator] += 1
        if media.unavailable or media.locator is None:
            raise MediaUnavailable(f"{what}: {media.unavailable or 'no file'}")
        file = self._files.get(media.locator)
        if file is None:
            raise MediaUnavailable(f"{what}: no such file")
        if file.unavailable:
            raise MediaUnavailable(f"{what}: {file.unavailable}")
        if file.failures_left > 0:
            file.failures_left -= 1
            raise SourceError(f"{what}: {file.failure}")
        if not 0 <= offset <= len(file.data):
            raise SourceError(f"{what}: offset {offset} is outside the file ({len(file.data)} bytes)")
        for start in range(offset, len(file.data), self._chunk_size):
            yield file.data[start:start + self._chunk_size]

    def _check_open(self) -> None:
        if not self._open:
            raise SourceError(f"{self.name}: the source is not open (use `async with`)")
