"""Sources -> store -> media -> notes: one pass of synchronisation, and re-rendering.

This is the only module that moves cursors. A pass runs as a pipeline
(:mod:`tobs_sync.pipeline`): several chats are read at once (``telegram.concurrent_chats``; one
at a time for a Desktop export, which streams one file), each chat's next batches are requested
while the current one is published (``telegram.batches_ahead`` at most, so memory does not grow
with the history). A batch's files start downloading as soon as it is read, under the one
long-lived download scheduler of the app shared by every batch and chat (a file two batches need is
fetched once), so later batches are read meanwhile; once they are in, publishing is one stage taken
by one batch at a time, in each chat's order. For every batch of a chat: (1) its media are placed
into the vault (index rows kept for the batch's commit), (2) every note of the batch is rendered
(a template error stops here, before any write), (3) :class:`~tobs_sync.publish.Publisher`
caches the batch and records the notes' intended hashes in one transaction, writes the notes
atomically with one fsync per file and per folder, then commits the notes' rows, the media rows
and the chat's cursor in one transaction. A crash at any point repeats at most the unfinished
batch; repeating it writes identical bytes (skipped), and the intended hashes make a note
tobs-sync wrote just before the crash its own, never a "user edit". The media retry, the
re-render and the chat's index note are published the same way. After an opted-in channel's
batches, its posts' comments are read and published by :class:`~tobs_sync.comments.CommentSync`
(each post's comment cursor, not the chat's, moves after their notes).

A chat's first read starts where its ``since`` / ``backfill`` bounds say, and a widening of them
fetches the older messages first, batch by batch in the same way (:mod:`tobs_sync.backfill`).

The user's edits of a note are kept: the publisher merges the new generated part into the note
(properties the user added or changed, text outside the ``%% tobs %%`` markers stay); a note
whose generated part the user edited is a conflict, recorded (``status`` lists it) and left alone
until ``render --force PATH``. Albums (messages sharing ``grouped_id``) share one
note, also when an album straddles two batches. Limits: a note's path is chosen once, when it is
first written; later changes of the path template or of a chat's title apply to new notes only.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import posixpath
import string
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

from tobs_sync.backfill import Backfill
from tobs_sync.changes import ChangeEngine, ChatLocks
from tobs_sync.comments import CommentSync
from tobs_sync.config import STATE_DIR, Settings
from tobs_sync.errors import ChatDeferred, ExportFormatError, SourceError, VaultError
from tobs_sync.media import MediaWriter
from tobs_sync.media_fetch import SharedFetch
from tobs_sync.merge import generated_base
from tobs_sync.model import Chat, Message
from tobs_sync.names import NAME_MAX_BYTES, inert_text, path_key, sanitize_component
from tobs_sync.note_links import linked_notes, unlinked_reply
from tobs_sync.note_lookups import NoteLookups
from tobs_sync.observe import NO_OBSERVER, SyncObserver, expected_messages
from tobs_sync.pipeline import Stage, read_ahead, run_lanes
from tobs_sync.publish import Draft, Outcome, Published, Publisher
from tobs_sync.render import CHAT_TEMPLATE, MESSAGE_TEMPLATE, Renderer, wikilink
from tobs_sync.sources.base import ReportsSkips, Source
from tobs_sync.store import Store
from tobs_sync.store_comments import COMMENT_NOTE
from tobs_sync.store_deletions import chats_of_unnamed, stored_ids_between
from tobs_sync.store_history import ChatHistory, finish_widening, replies_into, widened_to
from tobs_sync.store_links import forget, linkable, remember_unlinked
from tobs_sync.store_rows import CHAT_NOTE, MESSAGE_NOTE, ChatState, MediaRows, NoteRow
from tobs_sync.store_schema import NO_CURSOR
from tobs_sync.vault import Vault, sha256_hex
from tobs_sync.views import StoredMedia, chat_view, local_datetime, message_view, topic_path_value

log = logging.getLogger(__name__)

BACKUP_FOLDER = "backups"
"""Inside the state folder: copies of notes that ``render --force`` replaced."""

RECENT_IN_CHAT_NOTE = 50
RENDER_BATCH = 200
"""Notes published together by a re-render (one group commit each)."""
_RENDERED_KINDS = (MESSAGE_NOTE, CHAT_NOTE, COMMENT_NOTE)
"""Notes a re-render renders from the store (others, like the status note, are written after passes)."""


@dataclass(slots=True)
class ChatCounts:
    """What a pass did in one chat (``status`` and the agent's pass records show it)."""

    title: str
    new: int = 0
    """Messages read for the first time."""
    edited: int = 0
    """Messages whose stored text changed (a live edit, or found by re-reading recent messages)."""
    deleted: int = 0
    """Messages found deleted in Telegram (and handled by ``deletions.policy``)."""
    held: int = 0
    """Deletions held by the mass-deletion guard until the user confirms them."""
    reconciled: int = 0
    """Recent messages read again to find edits and deletions Telegram did not report (the cost)."""
    errors: list[str] = field(default_factory=list)
    """Why the chat was deferred or failed, or what else went wrong in it."""


@dataclass(slots=True)
class SyncReport:
    """What a pass did; printed by the CLI and returned to callers."""

    chats: int = 0
    messages: int = 0
    notes_written: int = 0
    notes_unchanged: int = 0
    conflicts: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    """Chats left for the next pass (long flood waits, stalled connections), with the reason."""
    failed: list[str] = field(default_factory=list)
    """Chats that could not be read at all (no access), with the reason."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Messages the source read but left out, counted by ``"chat 'Title': reason"``."""
    per_chat: dict[int, ChatCounts] = field(default_factory=dict)
    """The pass's counts by chat id, for every chat it reached."""
    comments: int = 0
    """Channel comments read (opted-in channels)."""

    def chat(self, chat: Chat) -> ChatCounts:
        """The counts of ``chat`` in this pass (created on first use)."""
        counts = self.per_chat.get(chat.id)
        if counts is None:
            counts = self.per_chat[chat.id] = ChatCounts(chat.title)
        return counts

    def add_skipped(self, chat: Chat, counts: dict[str, int]) -> None:
        for reason, count in counts.items():
            key = f"chat {chat.title!r}: {reason}"
            self.skipped[key] = self.skipped.get(key, 0) + count

    def count(self, published: Published) -> None:
        for path, outcome in published.outcomes:
            if outcome == Outcome.WRITTEN:
                self.notes_written += 1
            elif outcome == Outcome.UNCHANGED:
                self.notes_unchanged += 1
            else:
                self.conflicts.append(path)


@dataclass(slots=True)
class _Note:
    """One note to write: its messages (several for an album) and where it goes."""

    messages: list[Message]
    path: str
    previous: NoteRow | None

    def add(self, message: Message) -> None:
        """Add an album member; one already in the note (stored by a run that crashed) is replaced."""
        self.messages = sorted([m for m in self.messages if m.id != message.id] + [message], key=lambda m: m.id)

    def draft(self, data: bytes, chat_id: int) -> Draft:
        return Draft(self.path, data, chat_id, tuple(m.id for m in self.messages), previous=self.previous)


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
        self._renderer = renderer
        self._media = media
        self._publisher = Publisher(vault, store, executor=executor)
        self._tz = settings.timezone
        self._chat_note_paths: dict[int, str] = {}
        """Chat note paths, once reserved (they never change afterwards); spares a query per note."""
        self._reserved_names = _reserved_folder_names(settings.templates, media.folder_rule)
        self._note_lookups = NoteLookups(store)
        """Notes of consecutive messages, a window per query: one query serves a whole batch."""
        self._locks = ChatLocks()
        self.changes = ChangeEngine(
            settings, store, vault, media, self._publisher, render=self._rerender_one,
            write_chat_note=self._write_chat_note, clock=clock,
        )
        """Edits, deletions and reconciliation (:mod:`tobs_sync.changes`); its ``clock`` dates deletions."""
        self._waiting = 0
        """Batches read and waiting for the publishing stage (the ``publish`` queue's depth)."""
        self.backfill = Backfill(settings, store)
        """Where each chat's read starts (``since`` / ``backfill`` bounds) and what older history to fetch."""
        self.comments = CommentSync(settings, store, vault, renderer, self._publisher,
                                    rerender_note=lambda row, state: self._rerender(row, {state.chat.id: state}))
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
        self._renderer.check()
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
        self._relink(report)
        return report

    def use_renderer(self, renderer: Renderer) -> None:
        """Render with ``renderer`` from now on (the agent swaps in templates it has checked)."""
        self._renderer = renderer

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

    def _relink(self, report: SyncReport) -> None:
        """Render again the notes replying into another chat whose replied-to note now exists."""
        paths = linkable(self._store)
        if paths:
            relinked = self.render_all(paths)
            report.notes_written += relinked.notes_written
            report.conflicts.extend(relinked.conflicts)
            forget(self._store, paths)

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

        Publishing a batch (its notes grouped, its media fetched, rendered, written and committed
        with the cursor) needs the batches before it committed: an album straddling two batches
        continues the note of the one before. Batches already read when reading fails are still
        published before the failure is raised. Then, unless this was the chat's first read, its
        recent window is read again (reconciliation, :meth:`tobs_sync.changes.ChangeEngine.reconcile`).
        """
        stage = publishing or self._locks.stage()
        async with stage:
            state = self._store.upsert_chat(chat, self._chat_folder)
            report.chats += 1
            report.chat(chat)
            self.observer.chat_started(chat, expected_messages(source, chat, state.cursor))
            self._reserve_chat_note(state)
            await self.changes.resume(state, report)
            await self._retry_failed_media(source, state, report)

        posts: dict[int, int] = {}  # channel posts with comments: id -> newest comment id

        def read(after: int) -> AsyncIterator[tuple[Sequence[Message], list[SharedFetch]]]:
            return self._prefetching(source, state, source.batches(chat, after))

        async def publish(item: tuple[Sequence[Message], list[SharedFetch]]) -> None:
            batch, fetches = item
            self._queue_for_publishing(+1)
            waiting = True
            try:
                await self._media.fetched(fetches)  # outside the stage: other chats publish meanwhile
                async with stage:
                    waiting = self._queue_for_publishing(-1)
                    await self._sync_batch(source, state, batch, report)
            finally:
                if waiting:  # cancelled before its turn came
                    self._queue_for_publishing(-1)
            self.observer.batch_published(chat, len(batch))
            posts.update((m.id, m.comments_max_id) for m in batch if m.comments_max_id)

        after, widening = await self.backfill.plan(source, state)
        if widening is not None:
            await self._widen(source, state, widening, report, stage)
        await read_ahead(read(after), publish, ahead=self.batches_ahead)
        if state.cursor != NO_CURSOR and (read_state := self._store.chat_state(chat.id)) is not None:
            await self.changes.reconcile(source, read_state, report, stage)
        if (comment_source := self.comments.source_for(chat, source)) is not None:
            report.comments += await self.comments.sync_chat(
                comment_source, state, posts, report.chat(chat).errors, report, stage
            )
        async with stage:
            if isinstance(source, ReportsSkips):
                report.add_skipped(chat, self._store.record_skipped(chat.id, source.skipped_messages(chat)))
            self._write_chat_note(state, report)

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
                with_media = [(m, self._note_path(state, m)) for m in batch if m.media]
                yield batch, self._media.prefetch(with_media, source.media_chunks)

    async def _widen(
        self, source: Source, state: ChatState, widening: ChatHistory, report: SyncReport, stage: Stage
    ) -> None:
        """Fetch the older messages a widening of the chat's bounds reaches, once: from where the
        widening got to, up to the chat's floor, each batch's notes durable before the widening's
        cursor moves; then the floor moves down (:mod:`tobs_sync.backfill`). A widening the store
        does not record (an export's history below the floor) moves neither."""
        chat = state.chat
        recorded = widening.widen_start is not None

        async def publish(batch: Sequence[Message]) -> None:
            async with stage:
                await self._sync_batch(source, state, batch, report)
                if recorded:
                    widened_to(self._store, chat.id, batch[-1].id)

        after = NO_CURSOR if widening.widen_after is None else widening.widen_after
        await read_ahead(_up_to(source.batches(chat, after), widening.floor), publish, ahead=self.batches_ahead)
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
            relinked = self.render_all(sorted(replying))
            report.notes_written += relinked.notes_written
            report.notes_unchanged += relinked.notes_unchanged
            report.conflicts += relinked.conflicts

    def _chat_folder(self, chat: Chat) -> str:
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

    async def _sync_batch(
        self, source: Source, state: ChatState, batch: Sequence[Message], report: SyncReport
    ) -> None:
        notes = list(self._group_notes(state, batch))
        media_rows = MediaRows()
        media = await self._media.store_media(
            [(m, note.path) for note in notes for m in note.messages if m.media], state.folder, source.media_chunks,
            media_rows,
        )
        assigned = {m.id: n.path for n in notes for m in n.messages}
        drafts = [note.draft(self._render_message_note(state, note, media, assigned), state.chat.id) for note in notes]
        published = await self._publisher.publish_async(
            drafts, cursor=(state.chat.id, batch[-1].id), media=media_rows, messages=batch
        )
        report.count(published)
        report.messages += len(batch)
        report.chat(state.chat).new += len(batch)

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
        drafts = [_draft(row, self._rerender(row, states, media)) for row in rows.values()]
        report.count(self._publisher.publish(drafts, media=media_rows))

    def _group_notes(self, state: ChatState, batch: Sequence[Message]) -> Iterator[_Note]:
        """Split a batch into notes: one per message, one per album."""
        current: _Note | None = None
        for message in batch:
            if current and message.grouped_id and message.grouped_id == current.messages[-1].grouped_id:
                current.add(message)
                continue
            if current:
                yield current
            current = self._note_for(state, message)
        if current:
            yield current

    def _note_for(self, state: ChatState, message: Message) -> _Note:
        existing = self._note_lookups.note_of_message(state.chat.id, message.id)
        if existing is None and message.grouped_id:
            existing = self._album_note(state.chat.id, message)
        if existing is not None:
            stored = self._store.messages_by_id(state.chat.id, [i for i in existing.message_ids if i != message.id])
            members = [stored[mid] for mid in existing.message_ids if mid in stored]
            return _Note(sorted([*members, message], key=lambda m: m.id), existing.path, existing)
        path = self._vault.unique_path(self._note_path(state, message), self._store.path_taken)
        return _Note([message], path, None)

    def _album_note(self, chat_id: int, message: Message) -> NoteRow | None:
        """The note of an album this message continues (its predecessor in the same album).

        Asked of the store directly: the predecessor lies before the batch's lookup window."""
        for previous in self._store.messages_before(chat_id, message.id, limit=1):
            if previous.grouped_id == message.grouped_id:
                return self._store.note_of_message(chat_id, previous.id)
        return None

    def _note_path(self, state: ChatState, message: Message) -> str:
        when = dt.datetime.fromtimestamp(message.date, self._tz)
        fields = {
            "chat": state.folder,
            "chat_id": str(state.chat.id),
            "topic": topic_path_value(message),
            "date": when.strftime("%Y-%m-%d"),
            "year": when.strftime("%Y"),
            "month": when.strftime("%m"),
            "day": when.strftime("%d"),
            "time": when.strftime("%H%M%S"),
            "id": str(message.id),
        }
        return _fill_path(self._settings.note_path, fields)

    def _reserve_chat_note(self, state: ChatState) -> None:
        if self._store.chat_note(state.chat.id) is not None:
            return
        wanted = _fill_path(self._settings.chat_note_path, {"chat": state.folder, "chat_id": str(state.chat.id)})
        path = self._vault.unique_path(wanted, self._store.path_taken)
        self._store.commit_notes([NoteRow(path, CHAT_NOTE, state.chat.id, 0, (), "")])

    def _chat_note_path(self, state: ChatState) -> str:
        if (known := self._chat_note_paths.get(state.chat.id)) is not None:
            return known
        row = self._store.chat_note(state.chat.id)
        if row is None:
            self._reserve_chat_note(state)
            row = self._store.chat_note(state.chat.id)
        if row is None:  # pragma: no cover - reserved just above
            return ""
        self._chat_note_paths[state.chat.id] = row.path
        return row.path

    # -- rendering -------------------------------------------------------------------------

    def _render_message_note(
        self,
        state: ChatState,
        note: _Note,
        media: dict[int, list[StoredMedia]],
        assigned: dict[int, str],
    ) -> bytes:
        first = note.messages[0]
        stored = [  # a message without media has no index rows to ask about
            item
            for m in note.messages
            for item in (media[m.id] if m.id in media else self._media.stored_media(m) if m.media else [])
        ]
        links = linked_notes(self._store, state.chat.id, first, assigned)
        if (target := unlinked_reply(first, links)) is not None:
            remember_unlinked(self._store, [(*target, note.path)])  # before it is published
        # a note written before may show deleted messages (a new one never does: spares the query)
        deleted = self.changes.shown_deletions(state.chat.id, [m.id for m in note.messages]) if note.previous else None
        context = {
            "message": message_view(note.messages, stored, tz=self._tz, links=links, note_path=note.path,
                                    deleted=deleted, comments=self.comments.post_comments(state.chat.id, first)),
            "chat": chat_view(state.chat, self._chat_note_path(state)),
        }
        ids = [m.id for m in note.messages]
        identity = {"tg_chat_id": state.chat.id, "tg_message_id": ids[0] if len(ids) == 1 else ids}
        return self._renderer.render(MESSAGE_TEMPLATE, context, identity)

    def _render_chat_note(self, state: ChatState, path: str) -> bytes:
        count, first, last = self._store.message_stats(state.chat.id)
        recent = []
        for row in self._store.recent_notes(state.chat.id, RECENT_IN_CHAT_NOTE):
            message = self._store.message(state.chat.id, row.message_id)
            when = local_datetime(message.date, self._tz) if message else None
            label = f"{when:%Y-%m-%d %H:%M}" if when else posixpath.basename(row.path)
            recent.append({"path": row.path, "link": wikilink(row.path, label), "date": when})
        context = {
            "chat": chat_view(state.chat, path),
            "stats": {"count": count, "first": local_datetime(first, self._tz), "last": local_datetime(last, self._tz)},
            "recent": recent,
        }
        return self._renderer.render(CHAT_TEMPLATE, context, {"tg_chat_id": state.chat.id})

    def _write_chat_note(self, state: ChatState, report: SyncReport) -> None:
        path = self._chat_note_path(state)
        data = self._render_chat_note(state, path)
        previous = self._store.chat_note(state.chat.id)
        report.count(self._publisher.publish([Draft(path, data, state.chat.id, kind=CHAT_NOTE, previous=previous)]))

    # -- re-render -------------------------------------------------------------------------

    def render_all(self, paths: Sequence[str] | None = None, *, force: bool = False) -> SyncReport:
        """Re-render every note from the store (or only those at ``paths``), writing only those whose bytes change.

        Two phases: every note is rendered first without writing, so a template error stops the
        run before any note is touched; then the changed ones are rendered again and published,
        :data:`RENDER_BATCH` at a time. Each is merged with the user's edits; with ``force``
        (``render --force PATH``) an edited generated part is replaced too, after the file is
        copied to ``.tobs/backups/<path>.<UTC time>.md``.
        """
        self._renderer.check()
        self._vault.forget_listings()  # a long-lived app: folders may have changed since the last pass
        report = SyncReport()
        states = {s.chat.id: s for s in self._store.chat_states()}
        rows = ([row for row in self._store.notes() if row.kind in _RENDERED_KINDS] if paths is None
                else [self._known_note(path) for path in paths])
        changed: list[NoteRow] = []
        for start in range(0, len(rows), RENDER_BATCH):
            chunk = rows[start:start + RENDER_BATCH]
            bases = self._store.note_bases([row.path for row in chunk])
            changed += [row for row in chunk
                        if force or self._needs_write(row, self._rerender(row, states), bases.get(row.path))]
        for start in range(0, len(changed), RENDER_BATCH):
            batch = changed[start:start + RENDER_BATCH]
            if force:
                for row in batch:
                    self._back_up(row.path)
            drafts = [_draft(row, self._rerender(row, states)) for row in batch]
            report.count(self._publisher.publish(drafts, force=force))
        report.chats = len(states)
        report.notes_unchanged += len(rows) - len(changed)
        return report

    def _known_note(self, path: str) -> NoteRow:
        row = self._store.note_at(path)
        if row is None:
            raise VaultError(f"{path!r} is not a note tobs-sync wrote (give its path inside the vault)")
        if row.kind not in _RENDERED_KINDS:
            raise VaultError(f"{path!r} is not rendered from messages (tobs-sync rewrites it after each pass)")
        return row

    def _back_up(self, path: str) -> str | None:
        """Copy the note at ``path`` into the backups folder; its vault path (None: no file there)."""
        data = self._vault.read_bytes(path)
        if data is None:
            return None
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        stem = path[:-3] if path.endswith(".md") else path
        backup = f"{STATE_DIR}/{BACKUP_FOLDER}/{stem}.{stamp}.md"
        counter = 1
        while self._vault.resolve(backup).exists():
            counter += 1
            backup = f"{STATE_DIR}/{BACKUP_FOLDER}/{stem}.{stamp}-{counter}.md"
        self._vault.write_atomic(backup, data)
        log.warning("%s: the previous file is kept as %s", path, backup)
        return backup

    def _rerender(
        self, row: NoteRow, states: dict[int, ChatState], media: dict[int, list[StoredMedia]] | None = None
    ) -> bytes:
        """A stored note rendered again from the store (``media``: slots fetched just now, not yet committed)."""
        if row.kind == COMMENT_NOTE:
            return self.comments.rerender(row)
        state = states[row.chat_id]
        if row.kind == CHAT_NOTE:
            return self._render_chat_note(state, row.path)
        messages = [m for mid in row.message_ids if (m := self._store.message(row.chat_id, mid)) is not None]
        note = _Note(messages, row.path, row)
        fetched = media or {}
        stored = {m.id: fetched[m.id] if m.id in fetched else self._media.stored_media(m) for m in messages}
        return self._render_message_note(state, note, stored, {})

    def _rerender_one(self, row: NoteRow, state: ChatState, media: dict[int, list[StoredMedia]] | None) -> bytes:
        return self._rerender(row, {state.chat.id: state}, media)

    def _needs_write(self, row: NoteRow, data: bytes, bases: tuple[bytes | None, bytes | None] | None) -> bool:
        if row.conflict_hash is not None or row.intended_hash is not None:
            return True  # re-check: the user may have reverted the edit; a write was left unfinished
        if sha256_hex(data) == row.content_hash:
            return not self._vault.resolve(row.path).exists()
        # the note holds the user's text too: unchanged if the generated part is and the file is as written
        if bases is None or bases[0] is None or bases[0] != generated_base(data):
            return True
        return self._vault.file_stamp(row.path) != (row.size, row.mtime_ns)


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


async def _accepted(chats: AsyncIterator[Chat], only: Callable[[Chat], bool]) -> AsyncIterator[Chat]:
    async for chat in chats:
        if only(chat):
            yield chat


def _draft(row: NoteRow, data: bytes) -> Draft:
    return Draft(row.path, data, row.chat_id, row.message_ids, kind=row.kind, previous=row)


def _reserved_folder_names(templates: str, attachment_rule: str) -> frozenset[str]:
    """Folder names a chat may not take: the last part of the templates folder and of a named
    attachment folder (``/``, ``./`` and ``./sub`` name no folder of their own)."""
    folders = [templates] + ([attachment_rule] if not attachment_rule.startswith(("/", "./")) else [])
    return frozenset(path_key(posixpath.basename(folder.strip("/"))) for folder in folders if folder.strip("/"))


def _fill_path(template: str, fields: dict[str, str]) -> str:
    """Fill a validated path template; every value is sanitised into one path component."""
    parts = []
    for literal, name, _spec, _conv in string.Formatter().parse(template):
        parts.append(literal)
        if name is not None:
            parts.append(sanitize_component(fields[name]) if name != "chat" else fields[name])
    path = "".join(parts)
    folders, _, filename = path.rpartition("/")
    components = [sanitize_component(c) for c in folders.split("/") if c] if folders else []
    stem = filename[:-3]
    return "/".join([*components, sanitize_component(stem) + ".md"])
