"""The Source protocol: where messages come from, and the contract every source keeps.

Vocabulary:

* **chat**: a :class:`~tobs_sync.model.Chat`, identified by its marked peer id.
* **cursor**: the highest message id of a chat whose notes are durably in the vault. It only
  ever moves forward, and only :mod:`tobs_sync.sync` moves it. Before a chat's first message it
  is below every id (:data:`tobs_sync.store.NO_CURSOR`): ids can be zero or negative (Telegram
  Desktop exports a migrated group's old history shifted by -1 000 000 000).
* **skipped message**: one a source read but left out of its batches (:class:`SkippedMessage`).
* **batch**: a non-empty list of messages of one chat, in ascending id order.

Contract (checked by the shared contract tests in ``tests/test_source_contract.py``):

1. A source is an async context manager. Entering it checks the source is usable (a Desktop
   export is parsed once end to end, so a malformed file fails here, before anything is
   written); leaving it releases what it holds.
2. ``chats()`` yields each chat once.
3. ``batches(chat, after)`` yields every message of ``chat`` with ``id > after`` exactly once,
   oldest first, in batches of at most ``batch_size`` messages. Ids strictly increase across
   batches. Edited messages carry their latest text and ``edited`` time.
4. Sources may be read most efficiently in the order ``chats()`` yields them (the export source
   streams one file): callers iterate ``batches`` for the chat just yielded. Any order is still
   correct, only slower.
5. ``media_chunks(media, offset)`` yields the bytes of a file in order from ``offset`` (a
   multiple of the chunk size it yielded before, to resume an interrupted download), without
   holding the whole file in memory. It raises :class:`~tobs_sync.errors.MediaUnavailable` when the file cannot be
   had, and never reads outside what the source owns (an export folder, the user's account).
6. Failures are :class:`~tobs_sync.errors.SourceError` subclasses whose message names what
   failed (file and position, chat and request).
7. A source that can leave messages out (a Desktop export: repeated or out-of-order ids, ids at
   or below the cursor) is a :class:`ReportsSkips` and says which, after each read of a chat.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
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
