"""The Source protocol: where messages come from, and the contract every source keeps.

Vocabulary:

* **chat**: a :class:`~tobs_sync.model.Chat`, identified by its marked peer id (the same chat has
  the same id in every source, so an export and a live sync share one cursor).
* **cursor**: the highest message id of a chat whose notes are durably in the vault. It only
  ever moves forward, and only :mod:`tobs_sync.sync` moves it. Before a chat's first message it
  is below every id (:data:`tobs_sync.store_schema.NO_CURSOR`): ids can be zero or negative (Telegram
  Desktop exports a migrated group's old history shifted by -1 000 000 000).
* **skipped message**: one a source read but left out of its batches (:class:`SkippedMessage`).
* **batch**: a non-empty list of messages of one chat, in ascending id order.
* **session**: the time between entering and leaving a source's ``async with``.

Contract (checked for every source by the shared tests in ``tests/test_source_contract.py``, which
build a Desktop export, the Telethon source over the simulator and a :mod:`memory <tobs_sync.sources.memory>`
source from one account):

1. **Lifecycle.** A source is an async context manager; ``__aenter__`` returns the source itself.
   Entering checks the source is usable (a Desktop export is parsed once end to end, so a malformed
   file fails here, before anything is written; Telegram must answer and the session be logged in);
   leaving releases what it holds (open files, the connection). Callers use ``chats``, ``batches``
   and ``media_chunks`` only within a session, and ask for the history and the media of chats that
   ``chats()`` yielded in that session (Telegram needs the peers it lists).
2. **Chats.** ``chats()`` yields each chat once (distinct ids), in the source's own order.
3. **Batches.** ``batches(chat, after)`` yields the messages of ``chat`` with ``id > after``:

   a. every batch is non-empty and holds at most the source's ``batch_size`` messages, all with
      ``chat_id == chat.id``;
   b. ids strictly increase within and across batches (they may have gaps), so the last id of a
      batch is a cursor: no message comes twice, and none above ``after`` is left out unless it is
      reported as skipped (7);
   c. hence reading from any cursor ``c`` gives exactly the messages a full read gives above ``c``
      (resuming equals the tail), whether ``c`` is an id, falls in a gap, or lies beyond the end;
   d. a message carries its latest text and, if it was edited, its ``edited`` time;
   e. the members of an album (one ``grouped_id``) are consecutive in the history: an album may
      straddle two batches but no other message comes between its members.

4. **Order of reading.** Sources may be read most efficiently in the order ``chats()`` yields them
   (the export source streams one file): callers iterate ``batches`` for the chat just yielded,
   with the ``chats()`` generator suspended meanwhile. Any order is still correct, only slower.
5. **Media.** ``media_chunks(media, offset)`` yields the bytes of a file as non-empty chunks, in
   order, without holding the whole file in memory (the in-memory source excepted, by its nature):

   a. from offset 0 the chunks are the whole file, and their lengths add up to ``media.size`` when
      the source gave one;
   b. ``offset`` is the number of bytes received from an earlier call (the sum of its first
      chunks), to resume an interrupted download: the chunks from there are the rest of the file;
   c. a file the source cannot give raises :class:`~tobs_sync.errors.MediaUnavailable` (a placeholder
      or a file missing from an export, a deleted message, a ``MediaRef`` without ``locator``):
      it is recorded as unavailable and not asked for again. Any other
      :class:`~tobs_sync.errors.SourceError` is transient (a timeout, a dropped connection) and
      the media is retried on a later pass; :class:`~tobs_sync.errors.FloodWait` pauses the
      file's data centre (``dc_id``) and the download resumes at its offset;
   d. a ``file_key``, when set, names the bytes: media with equal keys have equal bytes (the
      engine skips fetching a key it has stored);
   e. a source never reads outside what it owns (an export folder, the user's account).
6. **Failures** are :class:`~tobs_sync.errors.SourceError` subclasses whose message names what
   failed (file and position, chat and request). :class:`~tobs_sync.errors.ChatDeferred` leaves a
   chat for the next pass; :class:`~tobs_sync.errors.ExportFormatError` stops the pass.
7. **Skips.** A source that can leave messages out (a Desktop export: repeated or out-of-order
   ids, ids at or below the cursor) is a :class:`ReportsSkips` and says which, after each read of a
   chat.

Where the sources legitimately differ:

* A **Desktop export** is a snapshot: nothing is added to it after it was made, and a file changed
  while it is read is refused. Exports do not record albums (no ``grouped_id``: each member becomes
  its own note), nor Telegram's file identity or data centre (no ``file_key``, no ``dc_id``: files
  are deduplicated by content only). Media the export left out carry ``unavailable``.
* **Telegram** is live: messages sent during a session may appear in a read that is still running,
  and later edits are not seen by a read that is past them. Message ids of private chats and basic
  groups come from one account-wide counter, so those chats' ids have gaps.
* The **in-memory** source fails only as staged by its test, and holds its files in memory.

Live sources. A source that can follow a session as it happens is a :class:`LiveSource`: its
``live_changes()`` yields :data:`LiveChange` values (new messages in a chat, an edited message, deleted
messages) until the session ends. They are hints of what changed, not a complete record: an update
can be lost (Telegram drops edits and deletions that arrive inside a difference), so a
:class:`RecentWindow` source also lets the engine re-read a chat's newest messages and compare
them with what it stored (reconciliation). The Telethon source and the in-memory source are both;
a Desktop export is neither (it is a snapshot).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import NamedTuple, Protocol, Self, runtime_checkable

from tobs_sync.model import Chat, MediaRef, Message

DEFAULT_BATCH_SIZE = 100


@runtime_checkable
class Source(Protocol):
    """A place messages come from: a Desktop export, Telegram itself, or the simulator."""

    name: str
    """Short human name for reports and logs (``"export result.json"``, ``"telegram"``)."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def chats(self) -> AsyncIterator[Chat]: ...

    def batches(self, chat: Chat, after: int) -> AsyncIterator[Sequence[Message]]: ...

    def media_chunks(self, media: MediaRef, offset: int = 0) -> AsyncIterator[bytes]: ...


class SkippedMessage(NamedTuple):
    """A message a source read but did not yield, and why (a short phrase for reports)."""

    message_id: int
    reason: str


@runtime_checkable
class ReportsSkips(Protocol):
    """A source that tells which messages of a chat its last ``batches`` read left out."""

    def skipped_messages(self, chat: Chat) -> Iterable[SkippedMessage]:
        """What the last read of ``chat`` left out, once it has ended. Messages at or below the
        cursor come with :data:`tobs_sync.store.BELOW_CURSOR`: the store keeps only those it does
        not hold."""
        ...


@dataclass(frozen=True, slots=True)
class MessagesArrived:
    """New messages in a chat: a hint; the chat's incremental pass reads them."""

    chat_id: int


@dataclass(frozen=True, slots=True)
class MessageEdited:
    """A message changed: converted as ``batches`` would give it (latest text, ``edited`` set)."""

    message: Message


@dataclass(frozen=True, slots=True)
class MessagesDeleted:
    """Messages deleted in Telegram.

    ``chat_id`` is None for private chats and basic groups: Telegram does not say which chat, and
    their ids are account-wide, so the engine maps them to chats through what it stored. ``up_to``
    (a cleared channel history) also deletes every message of the chat with an id up to it.
    """

    chat_id: int | None
    message_ids: tuple[int, ...]
    up_to: int | None = None


LiveChange = MessagesArrived | MessageEdited | MessagesDeleted


@runtime_checkable
class LiveSource(Protocol):
    """A source that reports changes as they happen, while its session lasts."""

    def live_changes(self) -> AsyncIterator[LiveChange]:
        """Changes in the selected chats, in the order received, until the session ends."""
        ...


@runtime_checkable
class RecentWindow(Protocol):
    """A source that can re-read a chat's newest messages (for reconciliation)."""

    async def recent_messages(self, chat: Chat, *, count: int, since: datetime | None) -> Sequence[Message]:
        """The chat's newest messages: at most ``count``, none dated before ``since``, ascending ids,
        converted exactly as ``batches`` converts them (so equal messages compare equal)."""
        ...
