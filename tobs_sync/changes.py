"""Changes to messages already in the vault: edits, deletions (by policy, behind a guard), reconciliation.

:class:`ChangeEngine` is what :class:`tobs_sync.sync.Synchronizer` uses for live changes and for the
recent window its passes re-read; the synchronizer holds the chat's lock (:class:`ChatLocks`) around
every call, so a pass and a live change never interleave within a chat.

* **Edits.** A message at or below its chat's cursor whose stored record differs from the new one
  (the whole converted message: reactions change without an edit time) is stored and its note (an
  album's note too) re-rendered through the publisher, which keeps the user's text. A message above
  the cursor is left to the next pass, which reads it anyway.
* **Deletions** are recorded in the store once per message (:mod:`tobs_sync.store_deletions`) and
  applied by ``[deletions] policy``: ``mark`` re-renders the note with ``message.deleted`` set (a
  property and a line in the generated part), ``keep`` records only, ``archive`` marks the note and
  moves it into ``archive_folder`` once every message in it is deleted, ``remove`` deletes the note
  once every message in it is deleted, unless the user edited it (then it is marked instead).
* **The guard.** More than ``hold_above`` new deletions in one chat at once (one event, or one
  pass's reconciliation), or any while the chat already has held ones, are recorded as held and
  not applied until :meth:`ChangeEngine.confirm` (or dropped by :meth:`ChangeEngine.discard`).
* **Reconciliation.** After a pass has read a chat forward, the chat's newest messages (``[sync]
  recent_messages``, none older than ``recent_days``) are read again and compared with the store:
  a changed one is an edit; a stored id inside the window's range that Telegram no longer returns
  is a deletion. The window's range is from its lowest id to the cursor, or, when Telegram returned
  fewer messages than asked (the whole recent history), every stored id above zero dated within
  ``recent_days``. Its cost (messages re-read) is counted per chat.

Durability: a change first records, in one transaction, what it owes (the new message records and
the notes to re-render; the deletions as pending), then renders and publishes, then records the move
or removal of a note before touching the file, and marks the deletions applied last. Every step is
idempotent, and :meth:`ChangeEngine.resume` (run before any change of a chat) finishes what a crash
interrupted. Limits: a media file of an edited message fetched just before a crash is embedded after
the next edit or re-render of that note, not by the resume; moved or removed notes leave their
attachments where they are; messages with ids at or below zero (a migrated group's old history) are
never reconciled.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import posixpath
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from tobs_sync.config import Settings
from tobs_sync.errors import VaultError
from tobs_sync.media import Fetch, MediaWriter
from tobs_sync.model import Chat, Message
from tobs_sync.pipeline import Stage
from tobs_sync.publish import Draft, Published, Publisher
from tobs_sync.sources.base import RecentWindow, Source
from tobs_sync.store import Store
from tobs_sync.store_deletions import (
    APPLIED,
    DISCARDED,
    HELD,
    PENDING,
    cancel_move,
    clear_stale,
    finish_move,
    in_state,
    intend_move,
    mark_stale,
    moves,
    record,
    recorded,
    set_state,
    stale,
    stored_ids,
    stored_ids_between,
)
from tobs_sync.store_rows import ChatState, MediaRows, NoteRow
from tobs_sync.vault import Vault
from tobs_sync.views import StoredMedia

log = logging.getLogger(__name__)

DAY_S = 86_400

Render = Callable[[NoteRow, ChatState, dict[int, list[StoredMedia]] | None], bytes]
"""A stored note rendered again from the store (with media fetched just now, not yet committed)."""


class Report(Protocol):
    """Where counts go (:class:`tobs_sync.sync.SyncReport`)."""

    def chat(self, chat: Chat) -> Any: ...

    def count(self, published: Published) -> None: ...


class ChatLocks:
    """One lock per chat, and the one publishing stage, for the running event loop (a new loop,
    as in a new ``asyncio.run``, gets new ones: asyncio locks belong to one loop)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._locks: dict[int, asyncio.Lock] = {}
        self._stage: Stage | None = None

    def _check_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._locks, self._stage = loop, {}, None

    def lock(self, chat_id: int) -> asyncio.Lock:
        self._check_loop()
        return self._locks.setdefault(chat_id, asyncio.Lock())

    def stage(self) -> Stage:
        self._check_loop()
        if self._stage is None:
            self._stage = Stage()
        return self._stage


class ChangeEngine:
    """Applies edits and deletions to one vault (see the module docstring)."""

    def __init__(
        self, settings: Settings, store: Store, vault: Vault, media: MediaWriter, publisher: Publisher,
        *, render: Render, write_chat_note: Callable[[ChatState, Report], None], clock: Callable[[], float],
    ) -> None:
        self._settings = settings
        self._store = store
        self._vault = vault
        self._media = media
        self._publisher = publisher
        self._render = render
        self._write_chat_note = write_chat_note
        self.clock = clock

    # -- edits ----------------------------------------------------------------------------------

    async def edit(self, fetch: Fetch | None, state: ChatState, messages: Sequence[Message], report: Report) -> int:
        """Apply the messages of ``state.chat`` that changed; how many did."""
        await self.resume(state, report)
        chat_id = state.chat.id
        latest = {m.id: m for m in messages if m.chat_id == chat_id and m.id <= state.cursor}
        stored = self._store.messages_by_id(chat_id, list(latest))
        changed = [m for i, m in sorted(latest.items()) if i in stored and stored[i] != m]
        if not changed:
            return 0
        rows: dict[str, NoteRow] = {}
        with_media: list[tuple[Message, str]] = []
        for message in changed:
            row = self._store.note_of_message(chat_id, message.id)
            if row is None:
                continue
            rows[row.path] = row
            if message.media and message.media != stored[message.id].media:
                with_media.append((message, row.path))
        media_rows = MediaRows()
        fetched: dict[int, list[StoredMedia]] = {}
        if with_media and fetch is not None:
            fetched = await self._media.store_media(with_media, state.folder, fetch, media_rows)
        with self._store.transaction():
            self._store.put_messages(changed)
            mark_stale(self._store, chat_id, rows)
        self._render_stale(state, report, fetched, media_rows)
        report.chat(state.chat).edited += len(changed)
        log.info("chat %r: %d edited message(s) applied", state.chat.title, len(changed))
        return len(changed)

    def _render_stale(
        self, state: ChatState, report: Report,
        fetched: dict[int, list[StoredMedia]] | None = None, media_rows: MediaRows | None = None,
    ) -> None:
        """Re-render and publish the notes of the chat whose re-render is owed, then clear the debt."""
        paths = stale(self._store, state.chat.id)
        rows = [row for path in paths if (row := self._store.note_at(path)) is not None]
        if rows:
            drafts = [Draft(r.path, self._render(r, state, fetched), r.chat_id, r.message_ids, kind=r.kind, previous=r)
                      for r in rows]
            report.count(self._publisher.publish(drafts, media=media_rows))
        clear_stale(self._store, paths)

    # -- deletions ------------------------------------------------------------------------------

    async def delete(self, state: ChatState, message_ids: Sequence[int], report: Report) -> int:
        """Deletions of stored messages of ``state.chat``: new ones applied, or held by the guard; how
        many were applied."""
        await self.resume(state, report)
        chat_id = state.chat.id
        candidates = stored_ids(self._store, chat_id, message_ids)
        new = sorted(set(candidates) - recorded(self._store, chat_id, candidates))
        if not new:
            return 0
        threshold = self._settings.deletions.hold_above
        if len(new) > threshold or in_state(self._store, HELD, chat_id):
            policy = self._settings.deletions.policy
            record(self._store, chat_id, dict.fromkeys(new, policy), state=HELD, found_at=int(self.clock()))
            report.chat(state.chat).held += len(new)
            log.warning("chat %r: %d deletion(s) held (more than deletions.hold_above = %d at once, or the chat "
                        "already has held ones); review them with 'tobs-sync deletions'",
                        state.chat.title, len(new), threshold)
            return 0
        return self._apply(state, new, report)

    async def confirm(self, state: ChatState, report: Report) -> int:
        """Apply the held deletions of ``state.chat``; how many."""
        await self.resume(state, report)
        ids = list(in_state(self._store, HELD, state.chat.id).get(state.chat.id, {}))
        return self._apply(state, ids, report) if ids else 0

    def discard(self, chat_id: int) -> int:
        """Drop the held deletions of a chat (the notes stay as they are); how many."""
        ids = list(in_state(self._store, HELD, chat_id).get(chat_id, {}))
        set_state(self._store, chat_id, ids, DISCARDED)
        return len(ids)

    def _apply(self, state: ChatState, ids: Sequence[int], report: Report) -> int:
        """Apply the policy to the deletions ``ids`` (new, pending after a crash, or confirmed)."""
        chat_id = state.chat.id
        policy = self._settings.deletions.policy
        gone = set(ids) | set(in_state(self._store, APPLIED, chat_id).get(chat_id, {}))
        actions = dict.fromkeys(ids, policy)
        to_render: set[str] = set()
        to_move: dict[str, str | None] = {}
        notes = {row.path: row for i in ids if (row := self._store.note_of_message(chat_id, i)) is not None}
        for path, row in notes.items():
            every_member_gone = set(row.message_ids) <= gone
            if policy == "remove" and every_member_gone and self._untouched(row):
                to_move[path] = None
                continue
            if policy == "keep":
                continue
            if policy == "remove":
                for i in set(row.message_ids) & set(ids):
                    actions[i] = "mark"  # edited by the user, or an album with members left: marked instead
            to_render.add(path)
            if policy == "archive" and every_member_gone and not self._archived(path):
                to_move[path] = self._archive_target(state, path)
        with self._store.transaction():
            record(self._store, chat_id, actions, state=PENDING, found_at=int(self.clock()))
            mark_stale(self._store, chat_id, to_render)
        self._render_stale(state, report)
        for path, target in to_move.items():
            intend_move(self._store, chat_id, path, target)
        self._finish_moves(state, report)
        set_state(self._store, chat_id, ids, APPLIED)
        self._write_chat_note(state, report)
        report.chat(state.chat).deleted += len(ids)
        log.info("chat %r: %d deleted message(s) applied (deletions.policy = %s)", state.chat.title, len(ids), policy)
        return len(ids)

    def _untouched(self, row: NoteRow) -> bool:
        """Whether the note holds what tobs-sync wrote (so removing it loses nothing of the user's)."""
        if row.conflict_hash is not None:
            return False
        try:
            disk = self._vault.sha256_of(row.path)
        except VaultError:
            return False
        return disk is None or row.is_ours(disk)

    def _archived(self, path: str) -> bool:
        return path.startswith(self._settings.deletions.archive_folder.strip("/") + "/")

    def _archive_target(self, state: ChatState, path: str) -> str:
        wanted = f"{self._settings.deletions.archive_folder.strip('/')}/{state.folder}/{posixpath.basename(path)}"
        return self._vault.unique_path(wanted, self._store.path_taken)

    def _finish_moves(self, state: ChatState, report: Report) -> None:
        """Carry out the recorded moves and removals of the chat's notes (each idempotent)."""
        for path, target in moves(self._store, state.chat.id):
            source = self._vault.resolve(path)
            if target is None:
                row = self._store.note_at(path)
                if source.exists():
                    if row is not None and not self._untouched(row):  # edited since: marked instead
                        with self._store.transaction():
                            record(self._store, state.chat.id, dict.fromkeys(row.message_ids, "mark"),
                                   state=PENDING, found_at=int(self.clock()))
                            mark_stale(self._store, state.chat.id, [path])
                            cancel_move(self._store, path)
                        self._render_stale(state, report)
                        continue
                    os.unlink(source)
                    self._vault.sync_folders([source.parent])
                finish_move(self._store, path, None)
                continue
            destination = self._vault.resolve(target)
            if source.exists():
                if destination.exists():  # something appeared there since: another free name
                    target = self._vault.unique_path(target, self._store.path_taken)
                    intend_move(self._store, state.chat.id, path, target)
                    destination = self._vault.resolve(target)
                self._vault.ensure_folder(posixpath.dirname(target))
                os.rename(source, destination)
                self._vault.sync_folders([source.parent, destination.parent])
            finish_move(self._store, path, target)

    # -- crash recovery -------------------------------------------------------------------------

    async def resume(self, state: ChatState, report: Report) -> None:
        """Finish what a crash interrupted in this chat: owed re-renders, moves, pending deletions."""
        self._render_stale(state, report)
        self._finish_moves(state, report)
        pending = in_state(self._store, PENDING, state.chat.id).get(state.chat.id)
        if pending:
            self._apply(state, list(pending), report)

    # -- reconciliation -------------------------------------------------------------------------

    async def reconcile(self, source: Source, state: ChatState, report: Report, stage: Stage) -> None:
        """Re-read the chat's recent window and apply what changed or vanished (see the module docstring)."""
        window_size = self._settings.sync.recent_messages
        if window_size <= 0 or not isinstance(source, RecentWindow) or state.cursor <= 0:
            return
        days = self._settings.sync.recent_days
        since = None if days <= 0 else dt.datetime.fromtimestamp(self.clock() - days * DAY_S, dt.UTC)
        window = await source.recent_messages(state.chat, count=window_size, since=since)
        report.chat(state.chat).reconciled += len(window)
        seen = {m.id: m for m in window if 0 < m.id <= state.cursor}
        if len(window) >= window_size:
            low, floor = min(m.id for m in window), None
        else:
            low, floor = 1, None if since is None else int(since.timestamp())
        stored = stored_ids_between(self._store, state.chat.id, max(low, 1), state.cursor, since=floor)
        missing = [i for i in stored if i not in seen]
        async with stage:
            await self.edit(source.media_chunks, state, list(seen.values()), report)
            if missing:
                await self.delete(state, missing, report)
