"""Re-rendering: stored notes rendered again from the store and published where their bytes change.

:class:`Rerenderer` serves ``render`` (every note, or those at given paths, ``--force`` replacing an
edited generated part after a backup into ``.tobs/backups``), the relinking of notes whose replied-to
note now exists, the media retry, live changes (:mod:`tobs_sync.changes`) and channel comments. A
message note, a chat note and a comment note are each rendered the way the pass renders them
(:mod:`tobs_sync.note_render`, :mod:`tobs_sync.comments`). ``render_all`` reads the store per batch
of :data:`RENDER_BATCH` notes (their messages, the notes their replies and pins link to) and looks a
note whose bytes did not change up in its folder's listing (:mod:`tobs_sync.rerender_files`) rather
than on disk. Limits: only notes rendered from messages (:data:`RENDERED_KINDS`; the status note is
written after passes); it reads nothing from the source and moves no cursor; a note's path never
changes here; rendering runs in this process (a pool of worker processes did not pay on a busy
2-core machine: see the README's Benchmarks).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence

from tobs_sync.config import STATE_DIR
from tobs_sync.errors import VaultError
from tobs_sync.media import MediaWriter
from tobs_sync.merge import generated_base
from tobs_sync.model import Message
from tobs_sync.note_links import link_targets
from tobs_sync.note_placement import PlannedNote
from tobs_sync.note_render import NoteRendering
from tobs_sync.publish import Draft, Publisher
from tobs_sync.rerender_files import NoteFiles
from tobs_sync.store import Store
from tobs_sync.store_comments import COMMENT_NOTE
from tobs_sync.store_rows import CHAT_NOTE, MESSAGE_NOTE, ChatState, NoteRow
from tobs_sync.sync_report import SyncReport
from tobs_sync.vault import Vault, sha256_hex
from tobs_sync.views import StoredMedia

log = logging.getLogger(__name__)

KEPT_RENDERS_BYTES = 64 * 1024 * 1024
"""Rendered bytes of changed notes a re-render keeps between its two phases (the rest is rendered again)."""

BACKUP_FOLDER = "backups"
"""Inside the state folder: copies of notes that ``render --force`` replaced."""

RENDER_BATCH = 200
"""Notes published together by a re-render (one group commit each)."""
RENDERED_KINDS = (MESSAGE_NOTE, CHAT_NOTE, COMMENT_NOTE)
"""Notes a re-render renders from the store (others, like the status note, are written after passes)."""


class Rerenderer:
    """Renders stored notes again for one vault."""

    def __init__(
        self, store: Store, vault: Vault, media: MediaWriter, publisher: Publisher, notes: NoteRendering,
        *, comment_note: Callable[[NoteRow], bytes],
    ) -> None:
        self._store = store
        self._vault = vault
        self._media = media
        self._publisher = publisher
        self._notes = notes
        self._comment_note = comment_note

    def render_all(self, paths: Sequence[str] | None = None, *, force: bool = False) -> SyncReport:
        """Re-render every note from the store (or only those at ``paths``), writing only those whose bytes change.

        Two phases: every note is rendered first without writing, so a template error stops the
        run before any note is touched; then the changed ones are published, :data:`RENDER_BATCH` at
        a time, with the bytes the first phase rendered (up to :data:`KEPT_RENDERS_BYTES` of them;
        notes beyond that are rendered again). Each is merged with the user's edits; with ``force``
        (``render --force PATH``) an edited generated part is replaced too, after the file is
        copied to ``.tobs/backups/<path>.<UTC time>.md``.
        """
        self._notes.renderer.check()
        self._vault.forget_listings()  # a long-lived app: folders may have changed since the last pass
        report = SyncReport()
        states = {s.chat.id: s for s in self._store.chat_states()}
        rows = ([row for row in self._store.notes() if row.kind in RENDERED_KINDS] if paths is None
                else [self._known_note(path) for path in paths])
        changed: list[tuple[NoteRow, bytes | None]] = []
        kept = 0
        files = NoteFiles(self._vault)
        for start in range(0, len(rows), RENDER_BATCH):
            chunk = rows[start:start + RENDER_BATCH]
            bases = self._store.note_bases([row.path for row in chunk])
            cached = self._messages_of(chunk)
            targets = self._link_targets(chunk, cached)
            for row in chunk:
                data = self.rerender(row, states, messages=cached, linked=targets.get(row.chat_id))
                if force or self._needs_write(row, data, bases.get(row.path), files):
                    keep = kept + len(data) <= KEPT_RENDERS_BYTES
                    kept += len(data) if keep else 0
                    changed.append((row, data if keep else None))
        for start in range(0, len(changed), RENDER_BATCH):
            batch = changed[start:start + RENDER_BATCH]
            if force:
                for row, _ in batch:
                    self._back_up(row.path)
            drafts = [draft_of(row, self.rerender(row, states) if data is None else data) for row, data in batch]
            report.count(self._publisher.publish(drafts, force=force))
        report.chats = len(states)
        report.notes_unchanged += len(rows) - len(changed)
        return report

    def rerender(
        self, row: NoteRow, states: dict[int, ChatState], media: dict[int, list[StoredMedia]] | None = None,
        *, messages: Mapping[tuple[int, int], Message] | None = None, linked: dict[int, str] | None = None,
    ) -> bytes:
        """A stored note rendered again from the store (``media``: slots fetched just now, not yet committed;
        ``messages``: cached messages by ``(chat id, message id)`` read for a batch of notes, see
        :meth:`_messages_of`, and ``linked``: note paths of messages of the note's chat it may link to,
        see :meth:`_link_targets`; without them each is read on its own)."""
        if row.kind == COMMENT_NOTE:
            return self._comment_note(row)
        state = states[row.chat_id]
        if row.kind == CHAT_NOTE:
            return self._notes.chat_note(state, row.path)
        if messages is None:
            found = [m for mid in row.message_ids if (m := self._store.message(row.chat_id, mid)) is not None]
        else:
            found = [m for mid in row.message_ids if (m := messages.get((row.chat_id, mid))) is not None]
        note = PlannedNote(found, row.path, row)
        fetched = media or {}
        # slots fetched just now; the others are read by message_note (only for messages that have media)
        stored = {m.id: fetched[m.id] for m in found if m.id in fetched}
        return self._notes.message_note(state, note, stored, {} if linked is None else linked)

    def rerender_one(self, row: NoteRow, state: ChatState, media: dict[int, list[StoredMedia]] | None) -> bytes:
        """:meth:`rerender` of a note of the chat of ``state``."""
        return self.rerender(row, {state.chat.id: state}, media)

    def _known_note(self, path: str) -> NoteRow:
        row = self._store.note_at(path)
        if row is None:
            raise VaultError(f"{path!r} is not a note tobs-sync wrote (give its path inside the vault)")
        if row.kind not in RENDERED_KINDS:
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

    def _messages_of(self, rows: Sequence[NoteRow]) -> dict[tuple[int, int], Message]:
        """The cached messages of the message notes among ``rows``, by ``(chat id, message id)``: one
        query per chat (and 500 ids) instead of one per message."""
        wanted: dict[int, list[int]] = {}
        for row in rows:
            if row.kind == MESSAGE_NOTE:
                wanted.setdefault(row.chat_id, []).extend(row.message_ids)
        return {
            (chat_id, message_id): message
            for chat_id, ids in wanted.items()
            for message_id, message in self._store.messages_by_id(chat_id, ids).items()
        }

    def _link_targets(
        self, rows: Sequence[NoteRow], messages: Mapping[tuple[int, int], Message]
    ) -> dict[int, dict[int, str]]:
        """Per chat, the :func:`~tobs_sync.note_links.link_targets` of the first messages of the
        message notes among ``rows``: one query per chat."""
        firsts: dict[int, list[Message]] = {}
        for row in rows:
            first = messages.get((row.chat_id, row.message_ids[0])) if row.message_ids else None
            if row.kind == MESSAGE_NOTE and first is not None:
                firsts.setdefault(row.chat_id, []).append(first)
        return {chat_id: link_targets(self._store, chat_id, found) for chat_id, found in firsts.items()}

    def _needs_write(
        self, row: NoteRow, data: bytes, bases: tuple[bytes | None, bytes | None] | None, files: NoteFiles
    ) -> bool:
        if row.conflict_hash is not None or row.intended_hash is not None:
            return True  # re-check: the user may have reverted the edit; a write was left unfinished
        if sha256_hex(data) == row.content_hash:
            return not files.exists(row.path)  # unchanged bytes: nothing read, only the folder's listing
        # the note holds the user's text too: unchanged if the generated part is and the file is as written
        if bases is None or bases[0] is None or bases[0] != generated_base(data):
            return True
        return self._vault.file_stamp(row.path) != (row.size, row.mtime_ns)


def draft_of(row: NoteRow, data: bytes) -> Draft:
    """A draft replacing the stored note ``row`` with ``data``."""
    return Draft(row.path, data, row.chat_id, row.message_ids, kind=row.kind, previous=row)
