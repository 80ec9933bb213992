"""Fetching the older history a widening of a chat's bounds reaches, and relinking the notes that reply into it.

:class:`HistoryWidening` runs what :meth:`tobs_sync.backfill.Backfill.plan` decided: the older
messages are read from where the widening got to up to the chat's floor and published batch by
batch by the pass's own batch publishing, each batch's notes durable before the widening's cursor
moves (:mod:`tobs_sync.store_history`); then the notes above the floor that reply to the fetched
messages are re-rendered (they link to them now) and the floor moves down. It also relinks, after a
pass, notes replying into another chat whose replied-to note now exists. Limits: it decides no
bounds (that is :mod:`tobs_sync.backfill`'s) and renders nothing itself; a crash repeats at most the
unfinished batch, and a widening the store does not record (an export's history below the floor)
moves neither cursor nor floor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from tobs_sync.model import Chat, Message
from tobs_sync.pipeline import Stage, read_ahead
from tobs_sync.sources.base import Source
from tobs_sync.store import Store
from tobs_sync.store_history import ChatHistory, finish_widening, replies_into, widened_to
from tobs_sync.store_links import forget, linkable
from tobs_sync.store_rows import ChatState
from tobs_sync.store_schema import NO_CURSOR
from tobs_sync.sync_report import SyncReport

PublishBatch = Callable[[Source, ChatState, Sequence[Message], SyncReport], Awaitable[None]]
"""Publishes one batch of a chat as the pass does (notes, media, the chat's cursor)."""
RenderAgain = Callable[[Sequence[str]], SyncReport]
"""Re-renders the notes at the given paths, writing only those whose bytes change."""


class HistoryWidening:
    """Widenings and relinking for one vault."""

    def __init__(self, store: Store, *, publish_batch: PublishBatch, render_again: RenderAgain) -> None:
        self._store = store
        self._publish_batch = publish_batch
        self._render_again = render_again

    async def widen(
        self, source: Source, state: ChatState, widening: ChatHistory, report: SyncReport, stage: Stage,
        *, ahead: int,
    ) -> None:
        """Fetch the older messages a widening of the chat's bounds reaches, once: from where the
        widening got to, up to the chat's floor, each batch's notes durable before the widening's
        cursor moves (``ahead``: batches read while earlier ones are published); then the floor
        moves down. A widening the store does not record (an export's history below the floor)
        moves neither."""
        chat = state.chat
        recorded = widening.widen_start is not None

        async def publish(batch: Sequence[Message]) -> None:
            async with stage:
                await self._publish_batch(source, state, batch, report)
                if recorded:
                    widened_to(self._store, chat.id, batch[-1].id)

        after = NO_CURSOR if widening.widen_after is None else widening.widen_after
        await read_ahead(_up_to(source.batches(chat, after), widening.floor), publish, ahead=ahead)
        async with stage:
            self._relink_replies(chat, widening, report)  # before the floor moves: a crash repeats it
            if recorded:
                finish_widening(self._store, chat.id)

    def _relink_replies(self, chat: Chat, widening: ChatHistory, report: SyncReport) -> None:
        """Re-render the notes above the floor that reply to messages a widening fetched (they link
        to them now), writing only those whose bytes change."""
        start = NO_CURSOR if widening.widen_start is None else widening.widen_start
        replying = {row.path for message_id in replies_into(self._store, chat.id, widening.floor, start)
                    if (row := self._store.note_of_message(chat.id, message_id)) is not None}
        if replying:
            relinked = self._render_again(sorted(replying))
            report.notes_written += relinked.notes_written
            report.notes_unchanged += relinked.notes_unchanged
            report.conflicts += relinked.conflicts

    def relink_other_chats(self, report: SyncReport) -> None:
        """Render again the notes replying into another chat whose replied-to note now exists."""
        paths = linkable(self._store)
        if paths:
            relinked = self._render_again(paths)
            report.notes_written += relinked.notes_written
            report.conflicts.extend(relinked.conflicts)
            forget(self._store, paths)


async def _up_to(batches: AsyncIterator[Sequence[Message]], last_id: int) -> AsyncIterator[Sequence[Message]]:
    """The messages of ``batches`` with ids up to ``last_id``; reading stops at the first beyond it."""
    try:
        async for batch in batches:
            kept = [m for m in batch if m.id <= last_id]
            if kept:
                yield kept
            if len(kept) < len(batch):
                return
    finally:
        if hasattr(batches, "aclose"):
            await batches.aclose()
