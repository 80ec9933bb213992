"""Sources -> store -> media -> notes: one pass of synchronisation, and re-rendering.

This is the only module that moves cursors. A pass runs as a pipeline
(:mod:`tobs_sync.pipeline`): several chats are read at once (``telegram.concurrent_chats``; one
at a time for a Desktop export, which streams one file), each chat's next batches are requested
while the current one is published (``telegram.batches_ahead`` at most, so memory does not grow
with the history). A batch's files start downloading as soon as it is read, under the one
long-lived download scheduler of the app shared by every batch and chat (a file two batches need is
fetched once), so later batches are read meanwhile; once they are in, publishing is one stage taken
by one batch at a time, in each chat's order. For every batch of a chat, under the stage: (1) its
media are placed into the vault (index rows kept for the batch's commit), (2) every note of the
batch is rendered (a template error stops here, before any write), (3)
:class:`~tobs_sync.publish.Publisher` caches the batch and records the notes' intended hashes in
one transaction and starts writing the notes' temp files in threads. Then, outside the stage and
in the background (:class:`~tobs_sync.chat_commits.ChatCommits`), (4) the writes are awaited, the
notes renamed, their folders fsynced, and the notes' rows, the media rows and the chat's cursor
committed in one transaction, while the stage renders the next batch of this chat or another. A
chat has at most one batch committing in the background, its commits follow its order, a batch
that continues a note of the batch still committing (an album) waits for that commit first, and
the chat's end-of-read steps run after its last commit. A crash at any point repeats at most the
unfinished batches (the one committing and the one started after it); repeating them writes
identical bytes (skipped), and the intended hashes make a note tobs-sync wrote just before the
crash its own, never a "user edit". The media retry, the
re-render and the chat's index note are published the same way. After an opted-in channel's
batches, its posts' comments are read and published by :class:`~tobs_sync.comments.CommentSync`
(each post's comment cursor, not the chat's, moves after their notes).

A chat's first read starts where its ``since`` / ``backfill`` bounds say, and a widening of them
fetches the older messages first, batch by batch in the same way (:mod:`tobs_sync.backfill`,
:mod:`tobs_sync.widening`).

The user's edits of a note are kept: the publisher merges the new generated part into the note
(properties the user added or changed, text outside the ``%% tobs %%`` markers stay); a note
whose generated part the user edited is a conflict, recorded (``status`` lists it) and left alone
until ``render --force PATH``. Albums (messages sharing ``grouped_id``) share one
note, also when an album straddles two batches. Limits: a note's path is chosen once, when it is
first written; later changes of the path template or of a chat's title apply to new notes only.

This module runs the pass and publishes its batches; the parts it composes each have a module of
their own: where notes go (:mod:`tobs_sync.note_placement`), rendering a note
(:mod:`tobs_sync.note_render`), re-rendering stored notes (:mod:`tobs_sync.rerender`), widenings and
relinking (:mod:`tobs_sync.widening`), live edits and deletions (:mod:`tobs_sync.changes`, for which
:class:`Synchronizer` keeps thin entry points that take the chat's lock), and the report
(:mod:`tobs_sync.sync_report`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Executor

from tobs_sync.backfill import Backfill
from tobs_sync.changes import ChangeEngine, ChatLocks
from tobs_sync.chat_commits import ChatCommits
from tobs_sync.comments import CommentSync
from tobs_sync.config import Settings
from tobs_sync.errors import ChatDeferred, ExportFormatError, SourceError
from tobs_sync.media import MediaWriter
from tobs_sync.media_fetch import SharedFetch
from tobs_sync.model import Chat, Message
from tobs_sync.note_links import link_targets
from tobs_sync.note_placement import NotePlacement
from tobs_sync.note_render import NoteRendering
from tobs_sync.observe import NO_OBSERVER, SyncObserver, expected_messages
from tobs_sync.pipeline import Stage, read_ahead, run_lanes
from tobs_sync.publish import PendingBatch, Published, Publisher
from tobs_sync.render import Renderer
from tobs_sync.rerender import Rerenderer, draft_of
from tobs_sync.sources.base import ReportsSkips, Source
from tobs_sync.store import Store
from tobs_sync.store_deletions import chats_of_unnamed, stored_ids_between
from tobs_sync.store_rows import ChatState, MediaRows, NoteRow
from tobs_sync.store_schema import NO_CURSOR
from tobs_sync.sync_report import SyncReport
from tobs_sync.vault import Vault
from tobs_sync.widening import HistoryWidening

__all__ = ["SyncReport", "Synchronizer"]

log = logging.getLogger(__name__)


class Synchronizer:
    """Runs sync passes and re-renders for one vault."""

    def __init__(
        self, settings: Settings, store: Store, vault: Vault, renderer: Renderer, media: MediaWriter,
        *, executor: Executor | None = None, clock: Callable[[], float] = time.time,
        observer: SyncObserver = NO_OBSERVER,
    ) -> None:
        self.observer = observer
        """Told of each chat, batch and failure of a pass (progress, logs, metrics); no-op by default."""
        self.batches_ahead = settings.telegram.batches_ahead
        """Batches of a chat read while earlier ones are still being published."""
        self._settings = settings
        self._store = store
        self._vault = vault
        self._media = media
        self._publisher = Publisher(vault, store, executor=executor, threads=settings.telegram.blocking_workers)
        self._placement = NotePlacement(settings, store, vault, media.folder_rule)
        """Chat folders, note paths, batches grouped into notes."""
        self._notes = NoteRendering(
            settings, store, media, self._placement, self._publisher, renderer,
            shown_deletions=lambda chat_id, ids: self.changes.shown_deletions(chat_id, ids),
            post_comments=lambda chat_id, post: self.comments.post_comments(chat_id, post),
        )
        """Renders message and chat notes with the renderer in force."""
        self._rerenderer = Rerenderer(store, vault, media, self._publisher, self._notes,
                                      comment_note=lambda row: self.comments.rerender(row))
        """Renders stored notes again (``render``, relinking, media retries, live changes)."""
        self._widening = HistoryWidening(store, publish_batch=self._sync_batch, render_again=self.render_all)
        """Older history a widening reaches, and relinking."""
        self._locks = ChatLocks()
        self.changes = ChangeEngine(
            settings, store, vault, media, self._publisher, render=self._rerenderer.rerender_one,
            write_chat_note=self._notes.write_chat_note, clock=clock,
        )
        """Edits, deletions and reconciliation (:mod:`tobs_sync.changes`); its ``clock`` dates deletions."""
        self._waiting = 0
        """Batches read and waiting for the publishing stage (the ``publish`` queue's depth)."""
        self.backfill = Backfill(settings, store)
        """Where each chat's read starts (``since`` / ``backfill`` bounds) and what older history to fetch."""
        self.comments = CommentSync(
            settings, store, vault, renderer, self._publisher,
            rerender_note=lambda row, state: self._rerenderer.rerender(row, {state.chat.id: state}),
        )
        """Channel comments, read after a chat's batches for opted-in channels."""

    # -- sync ------------------------------------------------------------------------------

    async def sync(
        self, source: Source, *, concurrent_chats: int = 1, only: Callable[[Chat], bool] | None = None
    ) -> SyncReport:
        """Bring every chat of ``source`` (or those ``only`` accepts) up to date in the vault.

        Up to ``concurrent_chats`` chats are read at once (1 for a source that streams one file);
        see :meth:`sync_chat` for what overlaps within a chat. A chat that fails (deferred, no
        access) is reported and the others go on; any other error ends the pass, after cancelling
        the chats still running.
        """
        self._notes.renderer.check()
        self._vault.forget_listings()  # files may have appeared since the last pass
        report = SyncReport()
        publishing = self._locks.stage()

        async def run_chat(chat: Chat) -> None:
            try:
                await self.sync_chat(source, chat, report, publishing)
            except ChatDeferred as deferred:
                log.warning("%s", deferred)
                report.deferred.append(str(deferred))
                report.chat(chat).errors.append(str(deferred))
                self.observer.error("deferred")
            except SourceError as error:
                if isinstance(error, ExportFormatError):
                    raise
                log.error("%s", error)
                report.failed.append(str(error))
                report.chat(chat).errors.append(str(error))
                self.observer.error("failed")
            counts = report.chat(chat)
            self.observer.chat_finished(chat, counts.new, counts.errors)

        chats = source.chats() if only is None else _accepted(source.chats(), only)
        try:
            await run_lanes(chats, run_chat, concurrency=concurrent_chats)
        finally:
            self._media.end_pass()
        self._widening.relink_other_chats(report)
        return report

    def use_renderer(self, renderer: Renderer) -> None:
        """Render with ``renderer`` from now on (the agent swaps in templates it has checked)."""
        self._notes.renderer = renderer
        self.comments.renderer = renderer

    def chat_lock(self, chat_id: int) -> asyncio.Lock:
        """Held by :meth:`sync_chat`, :meth:`apply_edits` and :meth:`apply_deletions`: a pass and live
        changes never interleave within a chat."""
        return self._locks.lock(chat_id)

    async def apply_edits(self, source: Source, messages: Sequence[Message]) -> SyncReport:
        """Apply edited messages (live edits): see :meth:`tobs_sync.changes.ChangeEngine.edit`."""
        report = SyncReport()
        for chat_id in dict.fromkeys(m.chat_id for m in messages):
            async with self.chat_lock(chat_id), self._locks.stage():
                if (state := self._store.chat_state(chat_id)) is not None:
                    await self.changes.edit(source.media_chunks, state, [m for m in messages if m.chat_id == chat_id],
                                            report)
        return report

    async def apply_deletions(
        self, chat_id: int | None, message_ids: Sequence[int], *, up_to: int | None = None
    ) -> SyncReport:
        """Apply deleted messages (live deletions; ``chat_id`` None: private chats and basic groups,
        mapped through the store; ``up_to``: every message of the chat up to that id, a cleared
        channel), by policy and behind the guard: see :meth:`tobs_sync.changes.ChangeEngine.delete`."""
        report = SyncReport()
        if chat_id is None:
            by_chat = chats_of_unnamed(self._store, message_ids)
        else:
            ids = list(message_ids)
            if up_to is not None:
                ids += stored_ids_between(self._store, chat_id, 1, up_to)
            by_chat = {chat_id: ids}
        for chat, ids in by_chat.items():
            async with self.chat_lock(chat), self._locks.stage():
                if (state := self._store.chat_state(chat)) is not None:
                    await self.changes.delete(state, ids, report)
        return report

    async def confirm_deletions(self, chat_id: int) -> SyncReport:
        """Apply the deletions the guard held in a chat."""
        report = SyncReport()
        async with self.chat_lock(chat_id), self._locks.stage():
            if (state := self._store.chat_state(chat_id)) is not None:
                await self.changes.confirm(state, report)
        return report

    async def sync_chat(
        self, source: Source, chat: Chat, report: SyncReport, publishing: Stage | None = None
    ) -> None:
        """:meth:`read_chat` holding the chat's lock."""
        async with self.chat_lock(chat.id):
            await self.read_chat(source, chat, report, publishing)

    async def read_chat(
        self, source: Source, chat: Chat, report: SyncReport, publishing: Stage | None = None
    ) -> None:
        """One chat: its batches are read ahead (up to :attr:`batches_ahead` waiting) while earlier
        ones are published, one batch at a time across all chats (``publishing``), in the chat's order.

        A batch is grouped into notes, its media stored, rendered and its writes started under the
        stage; its writes are then finished and committed with the cursor in the background, while
        the next batch is prepared (at most one batch of the chat committing; a batch continuing a
        note of that one, an album straddling two batches, waits for its commit). Batches already
        read when reading fails are still published before the failure is raised; a failed or
        cancelled commit abandons the batch after it. Then, unless this was the chat's first read, its
        recent window is read again (reconciliation, :meth:`tobs_sync.changes.ChangeEngine.reconcile`).
        """
        stage = publishing or self._locks.stage()
        async with stage:
            state = self._store.upsert_chat(chat, self._placement.chat_folder)
            report.chats += 1
            report.chat(chat)
            self.observer.chat_started(chat, expected_messages(source, chat, state.cursor))
            self._placement.reserve_chat_note(state)
            await self.changes.resume(state, report)
            await self._retry_failed_media(source, state, report)

        posts: dict[int, int] = {}  # channel posts with comments: id -> newest comment id

        def read(after: int) -> AsyncIterator[tuple[Sequence[Message], list[SharedFetch]]]:
            return self._prefetching(source, state, source.batches(chat, after))

        commits = ChatCommits(self._publisher)

        async def publish(item: tuple[Sequence[Message], list[SharedFetch]]) -> None:
            batch, fetches = item
            self._queue_for_publishing(+1)
            waiting = True
            try:
                await self._media.fetched(fetches)  # outside the stage: other chats publish meanwhile
                async with stage:
                    waiting = self._queue_for_publishing(-1)
                    pending = await self._start_batch(source, state, batch, commits)
            finally:
                if waiting:  # cancelled before its turn came
                    self._queue_for_publishing(-1)
            # committed in the background, after the batch before it: the stage renders the next one meanwhile
            await commits.hand_over(pending, lambda published: self._batch_committed(state, batch, published, report))
            posts.update((m.id, m.comments_max_id) for m in batch if m.comments_max_id)

        after, widening = await self.backfill.plan(source, state)
        if widening is not None:
            await self._widening.widen(source, state, widening, report, stage, ahead=self.batches_ahead)
        try:
            await read_ahead(read(after), publish, ahead=self.batches_ahead)
            await commits.wait()  # the chat's last batch committed before its end-of-read steps
        finally:
            await commits.close()
        if state.cursor != NO_CURSOR and (read_state := self._store.chat_state(chat.id)) is not None:
            await self.changes.reconcile(source, read_state, report, stage)
        if (comment_source := self.comments.source_for(chat, source)) is not None:
            report.comments += await self.comments.sync_chat(
                comment_source, state, posts, report.chat(chat).errors, report, stage
            )
        async with stage:
            if isinstance(source, ReportsSkips):
                report.add_skipped(chat, self._store.record_skipped(chat.id, source.skipped_messages(chat)))
            self._notes.write_chat_note(state, report)

    def _queue_for_publishing(self, change: int) -> bool:
        """One batch more (+1) or fewer (-1) waiting for the publishing stage; whether it is waiting."""
        self._waiting += change
        self.observer.queue_depth("publish", self._waiting)
        return change > 0

    async def _prefetching(
        self, source: Source, state: ChatState, batches: AsyncIterator[Sequence[Message]]
    ) -> AsyncIterator[tuple[Sequence[Message], list[SharedFetch]]]:
        """``batches`` as they are read, each with its files' fetches already started: they download
        while later batches are read (:meth:`tobs_sync.media.MediaWriter.prefetch`)."""
        async with contextlib.aclosing(batches) as reading:  # type: ignore[type-var]
            async for batch in reading:
                with_media = [(m, self._placement.note_path(state, m)) for m in batch if m.media]
                yield batch, self._media.prefetch(with_media, source.media_chunks)

    async def _sync_batch(
        self, source: Source, state: ChatState, batch: Sequence[Message], report: SyncReport
    ) -> None:
        """Publish one batch of a chat completely (notes, media, cursor) before returning."""
        pending = await self._start_batch(source, state, batch)
        self._batch_committed(state, batch, await self._publisher.finish(pending), report, observe=False)

    async def _start_batch(
        self, source: Source, state: ChatState, batch: Sequence[Message], commits: ChatCommits | None = None
    ) -> PendingBatch:
        """A batch grouped into notes, its media stored, its notes rendered, their intended hashes
        recorded and their writes started (:meth:`tobs_sync.publish.Publisher.start`). A note the
        chat's outstanding batch (in ``commits``) is still writing is read only once it committed."""
        notes = self._placement.group_notes(state, batch)
        if commits is not None and commits.holds(note.path for note in notes):
            await commits.wait()  # an album continues the note of the batch before: its commit first
            notes = self._placement.group_notes(state, batch)
        media_rows = MediaRows()
        media = await self._media.store_media(
            [(m, note.path) for note in notes for m in note.messages if m.media], state.folder, source.media_chunks,
            media_rows,
        )
        # replies and pins into earlier notes found in one query; the batch's own notes win
        assigned = link_targets(self._store, state.chat.id, (note.messages[0] for note in notes))
        assigned.update((m.id, n.path) for n in notes for m in n.messages)
        drafts = [note.draft(self._notes.message_note(state, note, media, assigned), state.chat.id) for note in notes]
        return self._publisher.start(drafts, cursor=(state.chat.id, batch[-1].id), media=media_rows, messages=batch)

    def _batch_committed(
        self, state: ChatState, batch: Sequence[Message], published: Published, report: SyncReport,
        *, observe: bool = True,
    ) -> None:
        report.count(published)
        report.messages += len(batch)
        report.chat(state.chat).new += len(batch)
        if observe:
            self.observer.batch_published(state.chat, len(batch))

    async def _retry_failed_media(self, source: Source, state: ChatState, report: SyncReport) -> None:
        """Fetch media that failed on an earlier pass, and update the notes that embed it."""
        rows: dict[str, NoteRow] = {}
        pairs = []
        for message_id in self._store.messages_with_failed_media(state.chat.id):
            message = self._store.message(state.chat.id, message_id)
            row = self._store.note_of_message(state.chat.id, message_id)
            if message is not None and row is not None:
                rows[row.path] = row
                pairs.append((message, row.path))
        if not pairs:
            return
        media_rows = MediaRows()
        media = await self._media.store_media(pairs, state.folder, source.media_chunks, media_rows)
        states = {state.chat.id: state}
        drafts = [draft_of(row, self._rerenderer.rerender(row, states, media)) for row in rows.values()]
        report.count(self._publisher.publish(drafts, media=media_rows))

    # -- re-render ---------------------------------------------------------------------------

    def render_all(self, paths: Sequence[str] | None = None, *, force: bool = False) -> SyncReport:
        """Re-render every note from the store (or only those at ``paths``), writing only those whose
        bytes change: see :meth:`tobs_sync.rerender.Rerenderer.render_all`."""
        return self._rerenderer.render_all(paths, force=force)


async def _accepted(chats: AsyncIterator[Chat], only: Callable[[Chat], bool]) -> AsyncIterator[Chat]:
    async for chat in chats:
        if only(chat):
            yield chat
