"""Channel comments: the comments of a channel's posts reach notes of their own, linked from the post's note.

Opt-in per chat (``comments = true`` in a ``[[chat]]`` table) and only for channels read from a
source that can read comments (:class:`ReadsComments`: the Telethon source). After a chat's
batches, :meth:`CommentSync.sync_chat` learns each post's newest comment id
(``Message.comments_max_id``) from this pass's batches and from the channel's newest
``telegram.comments_recent_posts`` posts read again (one request), records it, and asks for comments
(``messages.getReplies`` with ``min_id`` = the post's comment cursor) only for the posts whose newest
comment id is above their cursor, this pass's or a refused one's from an earlier pass. A pass with no
new comments makes one request per opted-in channel.

Each comment becomes a note (``Comments/<post id>-<comment id>.md`` beside the post's note),
rendered with the message template: ``message.post`` links the post, replies between comments link
each other. The post's note lists its comments (``message.comments``: count and links). Durability
is the messages' own, for up to :data:`GROUP_COMMIT` comments of one or more posts at a time:
(1) the comments are cached (:mod:`tobs_sync.store_comments`), (2) their notes are published
(intended hashes, atomic writes, rows committed: one group commit), (3) their posts' notes are
published again with the new links, and only then (4) the posts' comment cursors move, in one
transaction. A crash anywhere repeats at most that group, which writes identical bytes. A post
whose comments cannot be read (``MSG_ID_INVALID``) is reported in the chat's errors and the pass
goes on; a private discussion group or a long flood wait leaves the channel's remaining posts for
the next pass. The pass's ``deferred`` list gets one line per channel saying how many
posts' comments wait for the next pass (they stay due: their newest comment id is recorded).

Limits: the files of comments are not downloaded (listed as not stored); a comment edited or
deleted after its note was written is not noticed (its id is below the cursor); comments of posts
whose note does not exist (older than a bounded backfill) are not read.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import posixpath
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from tobs_sync.chat_rules import setting_for
from tobs_sync.config import Settings
from tobs_sync.errors import ChatDeferred, SourceError, StoreError
from tobs_sync.media import SKIPPED
from tobs_sync.model import Chat, ChatKind, Message
from tobs_sync.names import sanitize_component
from tobs_sync.pipeline import Stage
from tobs_sync.publish import Draft, Published, Publisher
from tobs_sync.render import MESSAGE_TEMPLATE, Renderer
from tobs_sync.store import Store
from tobs_sync.store_comments import (
    COMMENT_NOTE,
    comment_notes,
    due_posts,
    move_comment_cursor,
    note_newest_comments,
    put_comments,
    stored_comment,
)
from tobs_sync.store_rows import ChatState, NoteRow
from tobs_sync.vault import Vault
from tobs_sync.views import StoredMedia, chat_view, comments_view, message_view, post_view

log = logging.getLogger(__name__)

COMMENTS_FOLDER = "Comments"
"""The folder, beside a post's note, that holds the notes of its comments."""
GROUP_COMMIT = 200
"""Comments (of one or several posts) published together: one group commit for their notes, one for
their posts' notes, one transaction for the posts' cursors."""
LINKED_COMMENTS = 1000
"""The most comments a post's note links (the newest); the count covers them all."""
NOT_DOWNLOADED = "the files of comments are not downloaded"


@runtime_checkable
class ReadsComments(Protocol):
    """A source that can read the comments of a channel's posts."""

    def comments(self, chat: Chat, post_id: int, after: int) -> AsyncIterator[Sequence[Message]]:
        """The post's comments with ids above ``after``, oldest first, in batches."""
        ...

    async def recent_posts(self, chat: Chat, last: int) -> Sequence[Message]:
        """The channel's newest ``last`` posts as they are now (their ``comments_*`` fields)."""
        ...


class Reporter(Protocol):
    """Where the engine reports (the pass's :class:`~tobs_sync.sync.SyncReport`)."""

    deferred: list[str]

    def count(self, published: Published) -> None: ...


@dataclass(slots=True)
class _Pending:
    """Comments read but not yet published, by post, and where each post's cursor goes once they are."""

    comments: dict[int, list[Message]] = field(default_factory=dict)
    posts: dict[int, NoteRow] = field(default_factory=dict)
    cursors: dict[int, int] = field(default_factory=dict)
    paths: set[str] = field(default_factory=set)
    """Paths given to new comment notes of this pass (not yet in the store until they are published)."""
    size: int = 0
    read: int = 0

    def add(self, post_row: NoteRow, post_id: int, batch: Sequence[Message]) -> None:
        self.comments.setdefault(post_id, []).extend(batch)
        self.posts[post_id] = post_row
        self.cursors[post_id] = max(self.cursors.get(post_id, 0), batch[-1].id)
        self.size += len(batch)
        self.read += len(batch)

    def clear(self) -> None:
        """Forget what was published (the new notes' paths are in the store now)."""
        self.comments.clear()
        self.posts.clear()
        self.cursors.clear()
        self.paths.clear()
        self.size = 0


class CommentSync:
    """Reads and publishes channel comments for one vault (used by :class:`~tobs_sync.sync.Synchronizer`)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        vault: Vault,
        renderer: Renderer,
        publisher: Publisher,
        *,
        rerender_note: Callable[[NoteRow, ChatState], bytes],
    ) -> None:
        self.recent_posts = settings.telegram.comments_recent_posts
        """Newest posts of a channel read again each pass for new comments (0: only this pass's posts)."""
        self._settings = settings
        self._store = store
        self._vault = vault
        self.renderer = renderer
        """The renderer in force (the agent swaps in templates it has checked: :meth:`Synchronizer.use_renderer`)."""
        self._publisher = publisher
        self._rerender_note = rerender_note
        self._tz: dt.tzinfo = settings.timezone

    def source_for(self, chat: Chat, source: object) -> ReadsComments | None:
        """``source``, if ``chat``'s comments are to be read from it: an opted-in channel, and a source
        that reads comments; else None."""
        if chat.kind != ChatKind.CHANNEL or not isinstance(source, ReadsComments):
            return None
        return source if setting_for(chat, self._settings.chat_rules, "comments", False) else None

    async def sync_chat(
        self,
        source: ReadsComments,
        state: ChatState,
        posts: Mapping[int, int],
        errors: list[str],
        report: Reporter,
        stage: Stage,
    ) -> int:
        """Bring the comments of ``state``'s channel up to date; returns the comments read.

        ``posts``: post id -> newest comment id, for the posts this pass read. Failures are appended
        to ``errors`` (and logged); only errors outside Telegram's answers propagate.
        """
        chat = state.chat
        newest = dict(posts)
        if self.recent_posts > 0:
            try:
                for post in await source.recent_posts(chat, self.recent_posts):
                    if post.comments_max_id:
                        newest[post.id] = max(newest.get(post.id, 0), post.comments_max_id)
            except SourceError as error:
                _record(errors, str(error))
        async with stage:
            note_newest_comments(self._store, chat.id, newest)
            due = due_posts(self._store, chat.id)
        pending = _Pending()
        failed: list[str] = []
        for number, (post_id, cursor, top) in enumerate(due):
            try:
                await self._read_post(source, state, post_id, cursor, top, pending, report, stage)
            except ChatDeferred as deferred:
                failed += [str(deferred)] + [""] * (len(due) - number - 1)  # the rest is not asked about
                _record(errors, str(deferred))
                break
            except SourceError as error:
                failed.append(str(error))
                _record(errors, str(error))
        async with stage:
            self._flush(state, pending, report)
        if failed:
            posts = "1 post" if len(failed) == 1 else f"{len(failed)} posts"
            report.deferred.append(f"chat {chat.title!r}: comments of {posts}; {failed[0]}")
        return pending.read

    async def _read_post(
        self, source: ReadsComments, state: ChatState, post_id: int, after: int, newest: int,
        pending: _Pending, report: Reporter, stage: Stage,
    ) -> None:
        """Read one post's comments above ``after`` into ``pending``, publishing whenever it holds
        :data:`GROUP_COMMIT` comments."""
        chat = state.chat
        async with stage:
            post_row = self._store.note_of_message(chat.id, post_id)
        if post_row is None:
            log.info("chat %r: post %d has no note; its comments are not read", chat.title, post_id)
            return
        async for batch in source.comments(chat, post_id, after):
            pending.add(post_row, post_id, batch)
            after = max(after, batch[-1].id)
            if pending.size >= GROUP_COMMIT:
                async with stage:
                    self._flush(state, pending, report)
        if newest > after:  # the newest comments are gone (deleted): nothing more to ask for
            pending.cursors[post_id] = max(pending.cursors.get(post_id, 0), newest)

    def _flush(self, state: ChatState, pending: _Pending, report: Reporter) -> None:
        """Publish the comments read so far: (1) cached, (2) their notes published, (3) their posts'
        notes published again, (4) the posts' comment cursors moved, in one transaction."""
        if not pending.cursors:
            return
        chat_id = state.chat.id
        with self._store.transaction():
            for post_id, comments in pending.comments.items():
                put_comments(self._store, chat_id, post_id, comments)
        drafts = []
        for post_id, comments in pending.comments.items():
            post_path = pending.posts[post_id].path
            rows = {c.id: self._store.note_of_message(c.chat_id, c.id) for c in comments}
            assigned: dict[int, str] = {}
            for comment in comments:
                row = rows[comment.id]
                assigned[comment.id] = row.path if row is not None else self._new_path(
                    post_path, post_id, comment, pending.paths
                )
                pending.paths.add(assigned[comment.id])
            drafts += [
                Draft(assigned[c.id], self._render_comment(state, post_id, c, assigned[c.id], assigned), c.chat_id,
                      (c.id,), kind=COMMENT_NOTE, previous=rows[c.id])
                for c in comments
            ]
        if drafts:
            report.count(self._publisher.publish(drafts))
        post_drafts = []
        for post_id in pending.comments:
            row = self._store.note_of_message(chat_id, post_id) or pending.posts[post_id]
            post_drafts.append(Draft(row.path, self._rerender_note(row, state), chat_id, row.message_ids,
                                     kind=row.kind, previous=row))
        if post_drafts:
            report.count(self._publisher.publish(post_drafts))
        with self._store.transaction():
            for post_id, max_id in pending.cursors.items():
                move_comment_cursor(self._store, chat_id, post_id, max_id)
        pending.clear()

    def _new_path(self, post_path: str, post_id: int, comment: Message, planned: set[str]) -> str:
        """A free path in the ``Comments`` folder beside the post's note (``planned``: taken by this pass)."""
        folder = posixpath.join(posixpath.dirname(post_path), COMMENTS_FOLDER)
        wanted = f"{folder}/{sanitize_component(f'{post_id}-{comment.id}')}.md"
        return self._vault.unique_path(wanted, lambda p: p in planned or self._store.path_taken(p))

    # -- rendering -------------------------------------------------------------------------

    def post_comments(self, chat_id: int, message: Message) -> dict[str, Any] | None:
        """``message.comments`` of a post's note: its comments that have notes (None: none)."""
        if message.comments_chat_id is None:
            return None
        count, notes = comment_notes(self._store, chat_id, message.id, limit=LINKED_COMMENTS)
        return comments_view(count, notes, self._tz) if count else None

    def rerender(self, row: NoteRow) -> bytes:
        """A comment's note rendered again from the store."""
        found = stored_comment(self._store, row.chat_id, row.message_id)
        state = self._store.chat_state(found.chat_id) if found is not None else None
        if found is None or state is None:
            raise StoreError(f"{row.path}: the store no longer holds the comment or the channel of this note")
        return self._render_comment(state, found.post_id, found.message, row.path, {})

    def _render_comment(
        self, state: ChatState, post_id: int, comment: Message, path: str, assigned: Mapping[int, str]
    ) -> bytes:
        """``assigned``: note paths of the comments being published with this one (comment id -> path)."""
        chat = state.chat
        reply_path = None
        if comment.reply is not None:
            reply_path = assigned.get(comment.reply.message_id)
            if reply_path is None and (answered := self._store.note_of_message(comment.chat_id,
                                                                                comment.reply.message_id)):
                reply_path = answered.path
            if reply_path is None:  # it answers the post (the discussion group's copy of it): the post link says so
                comment = dataclasses.replace(comment, reply=None)
        post_row = self._store.note_of_message(chat.id, post_id)
        media = [StoredMedia(item, None, SKIPPED, NOT_DOWNLOADED) for item in comment.media]
        chat_note = self._store.chat_note(chat.id)
        context = {
            "message": message_view(
                [comment], media, tz=self._tz, reply_path=reply_path, note_path=path,
                post=post_view(post_id, post_row.path if post_row else None),
            ),
            "chat": chat_view(chat, chat_note.path if chat_note else ""),
        }
        identity = {"tg_chat_id": comment.chat_id, "tg_message_id": comment.id}
        return self.renderer.render(MESSAGE_TEMPLATE, context, identity)


def _record(errors: list[str], message: str) -> None:
    log.warning("%s", message)
    errors.append(message)
