"""What a pass reports while it runs: the one observer the synchroniser and the media writer call.

:class:`SyncObserver` is the vocabulary: a pass starts and finishes, a chat starts (with the number of
messages it is expected to bring, when the source can tell) and finishes, a batch is published, media
bytes arrive, a media file is deduplicated, a data centre asks to wait, something goes wrong (by kind),
a queue grows or shrinks. Every method does nothing here, so the engine calls it unconditionally and a
pass without observers pays one method call per batch and per media chunk. :class:`Observers` hands
each call to several observers (progress display, log lines, metrics).

Limits: calls come from the event loop's thread, in the order things happen; an observer must be
quick and must not raise (it runs inside the pass). Counts are what the engine saw, not what
Telegram holds: ``expected`` is an estimate (Telegram's newest message id minus the cursor, which
overshoots in chats whose ids come from an account-wide counter).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from tobs_sync.model import Chat


class SyncObserver:
    """Hooks of a pass; each one a no-op. Subclass and override what you need."""

    def pass_started(self, trigger: str) -> None:
        """A pass begins (``trigger``: ``sync``, ``import``, ``schedule``, ``live`` ...)."""

    def chat_started(self, chat: Chat, expected: int | None) -> None:
        """A chat's reading begins; ``expected``: roughly how many messages it will bring, if known."""

    def batch_published(self, chat: Chat, messages: int) -> None:
        """A batch of ``messages`` messages of ``chat`` is durable in the vault."""

    def media_bytes(self, chat_id: int, dc_id: int | None, count: int) -> None:
        """``count`` more bytes of a media file of ``chat_id`` arrived from data centre ``dc_id``."""

    def media_deduplicated(self, count: int = 1) -> None:
        """Media not fetched or not stored again, because the same bytes are already in the vault."""

    def flood_wait(self, dc_id: int | None, seconds: float) -> None:
        """Telegram asked to wait ``seconds`` before more requests to data centre ``dc_id``."""

    def error(self, kind: str) -> None:
        """Something went wrong: ``deferred``, ``failed``, ``media_download``, or an exception's name."""

    def queue_depth(self, queue: str, depth: int) -> None:
        """Items now waiting in ``queue`` (``publish``: batches read and waiting to be written;
        ``downloads``: media files of the batch being fetched)."""

    def chat_finished(self, chat: Chat, new: int, errors: Sequence[str]) -> None:
        """A chat's part of the pass ended (``errors``: why it was deferred or failed, if it was)."""

    def pass_finished(self, seconds: float, notes_written: int, notes_unchanged: int, conflicts: int) -> None:
        """A pass ended after ``seconds``; its note counts."""


NO_OBSERVER = SyncObserver()
"""The observer of an engine nobody watches (stateless, so one instance serves every engine)."""


class Observers(SyncObserver):
    """Hands every call to each of several observers, in order."""

    def __init__(self, observers: Iterable[SyncObserver] = ()) -> None:
        self.observers: list[SyncObserver] = list(observers)

    def add(self, observer: SyncObserver) -> None:
        self.observers.append(observer)

    def remove(self, observer: SyncObserver) -> None:
        self.observers.remove(observer)

    def pass_started(self, trigger: str) -> None:
        for observer in self.observers:
            observer.pass_started(trigger)

    def chat_started(self, chat: Chat, expected: int | None) -> None:
        for observer in self.observers:
            observer.chat_started(chat, expected)

    def batch_published(self, chat: Chat, messages: int) -> None:
        for observer in self.observers:
            observer.batch_published(chat, messages)

    def media_bytes(self, chat_id: int, dc_id: int | None, count: int) -> None:
        for observer in self.observers:
            observer.media_bytes(chat_id, dc_id, count)

    def media_deduplicated(self, count: int = 1) -> None:
        for observer in self.observers:
            observer.media_deduplicated(count)

    def flood_wait(self, dc_id: int | None, seconds: float) -> None:
        for observer in self.observers:
            observer.flood_wait(dc_id, seconds)

    def error(self, kind: str) -> None:
        for observer in self.observers:
            observer.error(kind)

    def queue_depth(self, queue: str, depth: int) -> None:
        for observer in self.observers:
            observer.queue_depth(queue, depth)

    def chat_finished(self, chat: Chat, new: int, errors: Sequence[str]) -> None:
        for observer in self.observers:
            observer.chat_finished(chat, new, errors)

    def pass_finished(self, seconds: float, notes_written: int, notes_unchanged: int, conflicts: int) -> None:
        for observer in self.observers:
            observer.pass_finished(seconds, notes_written, notes_unchanged, conflicts)


@runtime_checkable
class KnowsNewestMessage(Protocol):
    """A source that can tell the newest message id of a chat it listed (for progress estimates)."""

    def newest_message_id(self, chat: Chat) -> int | None: ...


def expected_messages(source: object, chat: Chat, cursor: int) -> int | None:
    """Roughly how many messages a read of ``chat`` from ``cursor`` brings: the source's newest id
    minus the cursor (None when the source cannot tell)."""
    if not isinstance(source, KnowsNewestMessage):
        return None
    newest = source.newest_message_id(chat)
    if newest is None:
        return None
    return max(newest - max(cursor, 0), 0)
