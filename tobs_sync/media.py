"""Media into the vault: streamed, hashed, stored once, and never half-written.

Each file is streamed from its source into a hidden temp file inside the target attachment
folder while it is hashed (sha256) and fsynced (:mod:`tobs_sync.media_fetch`; a batch's downloads
may start before it is published, :meth:`MediaWriter.prefetch`, and a file another batch is already
fetching is waited for, not fetched again). Once every download of a batch has ended, the
files are placed in the batch's order (so names never depend on which download finished first):
each is renamed into place, or dropped because identical bytes are already stored, and their
folders are fsynced before any note embedding them is written. The media
index (in the store) maps content hash -> vault path and Telegram file identity -> content hash,
so a known file is not fetched again. Its rows are collected in a :class:`~tobs_sync.store_rows.MediaRows`
and committed with the batch's notes, in one transaction. A crash before that commit leaves at
most hidden temp files (removed at the next start) and files the index does not know yet. Where
a new file is about to be renamed is recorded in the store first (one short transaction), so the
re-run, whichever chat needs those bytes first, fetches the file again, finds them at the recorded
name (or at the name it would choose) and keeps that file instead of storing a second copy. A
download abandoned with its data centre (a flood wait too long to wait out) has its temp file
closed and removed at once.

Where files go follows Obsidian's ``attachmentFolderPath`` (vault root ``/``, a named folder,
``./`` next to the note, ``./sub`` under the note's folder) unless the config overrides it.
Limits: a file stored once is embedded from every note that uses it, by its full vault path, so
in the ``./`` modes a file shared by several chats lives next to the first note that needed it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import mimetypes
import posixpath
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tobs_sync.config import MediaSettings
from tobs_sync.errors import MediaUnavailable, SourceError
from tobs_sync.media_fetch import Download, Fetch, SharedFetch, SharedFetches
from tobs_sync.model import MediaRef, Message
from tobs_sync.names import inert_text, sanitize_filename
from tobs_sync.observe import NO_OBSERVER, SyncObserver
from tobs_sync.processors.pool import ProcessorPool
from tobs_sync.store import Store
from tobs_sync.store_rows import MediaRows, MediaSlot
from tobs_sync.vault import Vault
from tobs_sync.views import StoredMedia
from tobs_sync.workers import DcScheduler, GlobalPool

log = logging.getLogger(__name__)

STORED = "stored"
UNAVAILABLE = "unavailable"
"""The source cannot provide the file (left out of an export, deleted): not retried."""
SKIPPED = "skipped"
"""Left out on purpose (media.kinds, media.max_mb)."""
FAILED = "failed"
"""The fetch failed (timeouts, flood waits): retried on a later pass."""

ACTIVE_EXTENSIONS = frozenset({"md", "markdown", "mdown", "mkd", "canvas", "base", "js", "mjs", "cjs"})
"""Files Obsidian (or its plugins) read as notes or code; received files never keep these."""

_EXTENSION_OVERRIDES = {
    "image/jpeg": ".jpg",
    "audio/ogg": ".ogg",
    "audio/mpeg": ".mp3",
    "video/mp4": ".mp4",
    "image/webp": ".webp",
    "application/x-tgsticker": ".tgs",
    "text/plain": ".txt",
}
_KIND_EXTENSIONS = {"photo": ".jpg", "voice": ".ogg", "video": ".mp4", "video_note": ".mp4", "animation": ".mp4"}


def extension_for(media: MediaRef) -> str:
    """A file extension for media without a usable file name (from its MIME type or kind)."""
    if media.mime_type:
        ext = _EXTENSION_OVERRIDES.get(media.mime_type) or mimetypes.guess_extension(media.mime_type)
        if ext:
            return ext
    return _KIND_EXTENSIONS.get(str(media.kind), ".bin")


def attachment_folder(rule: str, note_path: str) -> str:
    """The vault folder for attachments of the note at ``note_path`` under Obsidian's rule."""
    note_folder = posixpath.dirname(note_path)
    if rule in ("", "/"):
        return ""
    if rule in (".", "./"):
        return note_folder
    if rule.startswith("./"):
        return posixpath.join(note_folder, rule[2:].strip("/"))
    return rule.strip("/")


@dataclass(slots=True)
class MediaCounts:
    stored: int = 0
    deduplicated: int = 0
    unavailable: int = 0
    skipped: int = 0
    failed: int = 0
    fetched_bytes: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Placed:
    """A fetched file in the vault (its index row's fields), and the processing started on it (if it is new)."""

    content_hash: str
    path: str
    processing: asyncio.Future[Mapping[str, Any]] | None = None
    size: int = 0
    mime_type: str | None = None


@dataclass(frozen=True, slots=True)
class MediaItem:
    """One media slot of a message, and the note it will be embedded in."""

    message: Message
    slot: int
    note_path: str

    @property
    def media(self) -> MediaRef:
        return self.message.media[self.slot]


class MediaWriter:
    """Stores the media of messages into the vault and the media index."""

    def __init__(
        self,
        vault: Vault,
        store: Store,
        folder_rule: str,
        tz: dt.tzinfo,
        *,
        settings: MediaSettings | None = None,
        scheduler: DcScheduler | GlobalPool | None = None,
        processors: ProcessorPool | None = None,
    ) -> None:
        self._vault = vault
        self._store = store
        self._folder_rule = folder_rule
        self._tz = tz
        self._settings = settings or MediaSettings()
        self._scheduler = scheduler or DcScheduler()
        self._processors = processors
        self._fetches = SharedFetches()
        self.counts = MediaCounts()
        self.observer: SyncObserver = NO_OBSERVER
        self._downloading = 0
        """Downloads started and not yet ended (the ``downloads`` queue's depth)."""
        """Told of media bytes, deduplicated files, flood waits and failed downloads; no-op by default."""

    @property
    def folder_rule(self) -> str:
        """Where attachments go: a vault folder, ``/`` (the root), ``./`` or ``./sub`` (beside the note)."""
        return self._folder_rule

    def prefetch(self, messages: Sequence[tuple[Message, str]], fetch: Fetch) -> list[SharedFetch]:
        """Start fetching the files of ``(message, note_path)`` pairs that are not stored yet; the fetches.

        Called as a batch is read, before it is published, so its files download while later
        batches are read; :meth:`store_media` then takes them over (and fetches nothing twice). Only
        with a scheduler that takes single jobs (``submit``); otherwise nothing starts early.
        """
        if getattr(self._scheduler, "submit", None) is None:
            return []
        started = []
        for message, note_path in messages:
            if not message.media:
                continue
            known = self._store.media_slots(message.chat_id, message.id)
            for slot in range(len(message.media)):
                item = MediaItem(message, slot, note_path)
                if self._needs_fetch(item, known.get(slot)):
                    started.append(self._fetches.get(self._fetch_key(item)) or self._start(item, fetch))
        return started

    @staticmethod
    async def fetched(fetches: Sequence[SharedFetch]) -> None:
        """Wait until every one of ``fetches`` has ended its download (with or without success)."""
        if fetches:
            await asyncio.wait([f.fetched for f in fetches])

    def end_pass(self) -> None:
        """Forget the pass's fetches; cancel those no batch took over (their temp files are removed)."""
        self._fetches.end_pass()

    def _start(self, item: MediaItem, fetch: Fetch) -> SharedFetch:
        folder = attachment_folder(self._folder_rule, item.note_path)
        download = Download(self._vault, folder, item.media, fetch, self.observer, item.message.chat_id)
        submit = getattr(self._scheduler, "submit", None)
        entry = self._fetches.start(self._fetch_key(item), item.media.dc_id, download,
                                    self._scheduler if submit is not None else None)  # type: ignore[arg-type]
        self._downloading += 1
        self.observer.queue_depth("downloads", self._downloading)
        entry.fetched.add_done_callback(self._download_ended)
        return entry

    def _download_ended(self, _fetched: asyncio.Future[Any]) -> None:
        self._downloading -= 1
        self.observer.queue_depth("downloads", self._downloading)

    @staticmethod
    def _fetch_key(item: MediaItem) -> str:
        return item.media.file_key or f"slot:{item.message.chat_id}:{item.message.id}:{item.slot}"

    async def store_media(
        self, messages: Sequence[tuple[Message, str]], chat_folder: str, fetch: Fetch,
        rows: MediaRows | None = None,
    ) -> dict[int, list[StoredMedia]]:
        """Store the media of ``(message, note_path)`` pairs; what became of each slot, by message id.

        Files already known (by Telegram file identity or by an earlier slot) are not fetched; a
        file another batch is fetching (or placed in this pass) is taken from that batch; the rest
        are fetched concurrently (or taken over from :meth:`prefetch`), queued per data centre, then
        placed in the order given, and their folders made durable before this returns (so a note
        embedding a file is written after the file is durable).
        A failed fetch is recorded as ``failed`` (retried on a later pass); the note is written
        without that embed meanwhile. The index rows go into ``rows``, for the caller to commit
        with its notes; without ``rows`` they are committed here.
        """
        batch = MediaRows() if rows is None else rows
        results: dict[int, list[StoredMedia | None]] = {m.id: [None] * len(m.media) for m, _ in messages}
        pending: dict[str, list[MediaItem]] = {}
        for message, note_path in messages:
            known = self._store.media_slots(message.chat_id, message.id)
            for slot in range(len(message.media)):
                item = MediaItem(message, slot, note_path)
                settled = self._settle_without_fetch(item, known.get(slot), batch)
                if settled is not None:
                    results[message.id][slot] = settled
                else:
                    pending.setdefault(self._fetch_key(item), []).append(item)
        owned: dict[str, SharedFetch] = {}
        others: dict[str, asyncio.Future[object]] = {}
        unsubmitted = []
        for key, items in pending.items():
            entry = self._fetches.get(key)
            if entry is not None and entry.placed is not None:
                others[key] = entry.placed  # another batch places it: take its outcome
                continue
            if entry is None:
                entry = self._start(items[0], fetch)
                if getattr(self._scheduler, "submit", None) is None:
                    unsubmitted.append(entry)
            self._fetches.claim(entry)
            owned[key] = entry
        placed: dict[str, Placed] = {}
        outcomes: dict[Hashable, object] = {}
        try:
            if unsubmitted:
                ran = await self._scheduler.run_all([
                    SharedFetches.job(e.key, pending[e.key][0].media.dc_id, e.download) for e in unsubmitted
                ])
                for entry in unsubmitted:
                    outcome = ran.get(entry.key)
                    if isinstance(outcome, BaseException):
                        entry.fetched.set_exception(outcome)
                    else:
                        entry.fetched.set_result(outcome)  # type: ignore[arg-type]
            done = await asyncio.gather(*(e.fetched for e in owned.values()), return_exceptions=True)
            outcomes = dict(zip(owned, done, strict=True))
            placed = self._place_all({k: pending[k] for k in owned}, outcomes, chat_folder, batch)
        finally:
            for key, entry in owned.items():
                entry.download.discard()
                outcome = placed.get(key, outcomes.get(key))
                self._fetches.resolve(entry, SourceError("the download was abandoned") if outcome is None else outcome)
        if placed:
            self._vault.sync_folders()  # the files are durable before any note embeds them
        for key, placing in others.items():
            outcome = await asyncio.shield(placing)
            outcomes[key] = outcome
            if isinstance(outcome, Placed):
                batch.files.setdefault(outcome.content_hash, (outcome.path, outcome.size, outcome.mime_type))
                placed[key] = outcome
        await self._finish_processing(placed, batch)
        for key, items in pending.items():
            outcome = placed.get(key, outcomes.get(key))
            for index, item in enumerate(items):
                stored = self._record(item, outcome, batch, first=index == 0 and key in owned)
                results[item.message.id][item.slot] = stored
        stored = [s for slots in results.values() for s in slots if s is not None]
        await self._process_unprocessed(stored, batch)
        if rows is None:
            self._vault.sync_folders()
            self._store.commit_media(batch)
        return {
            mid: [self._with_properties(s, batch) for s in slots if s is not None] for mid, slots in results.items()
        }

    def _place_all(
        self, pending: Mapping[str, list[MediaItem]], outcomes: Mapping[Hashable, object], chat_folder: str,
        batch: MediaRows,
    ) -> dict[str, Placed]:
        """Place the fetched files in the order of the batch; processors start on each new one."""
        placed = {}
        for key, items in pending.items():
            outcome = outcomes.get(key)
            if not isinstance(outcome, tuple):
                continue
            content_hash, size, temp = outcome
            self.counts.fetched_bytes += size
            item = items[0]
            folder = attachment_folder(self._folder_rule, item.note_path)
            path, new = self._place(temp, folder, content_hash, size, item.media, item.message, chat_folder, batch)
            processing = None
            if new and self._processors is not None:
                processing = asyncio.ensure_future(self._processors.run(self._vault.resolve(path), item.media))
            placed[key] = Placed(content_hash, path, processing, size, item.media.mime_type)
        return placed

    async def _process_unprocessed(self, stored: Sequence[StoredMedia], batch: MediaRows) -> None:
        """Run processors on stored files they have not seen (e.g. a crash struck before they finished)."""
        if self._processors is None:
            return
        todo = {
            s.content_hash: s
            for s in stored
            if s.status == STORED and s.content_hash and s.path and s.content_hash not in batch.properties
            and self._store.media_properties(s.content_hash) is None
        }
        found = await asyncio.gather(
            *(self._processors.run(self._vault.resolve(s.path), s.media) for s in todo.values() if s.path)
        )
        for content_hash, properties in zip(todo, found, strict=True):
            batch.properties[content_hash] = (properties, None)

    def _with_properties(self, item: StoredMedia, batch: MediaRows) -> StoredMedia:
        if item.status != STORED or not item.content_hash:
            return item
        if item.content_hash in batch.properties:
            properties = batch.properties[item.content_hash][0]
        else:
            properties = self._store.media_properties(item.content_hash) or {}
        return dataclasses.replace(item, properties=properties)

    def stored_media(self, message: Message) -> list[StoredMedia]:
        """What the index says about a message's media (for re-rendering without a source)."""
        known = self._store.media_slots(message.chat_id, message.id)
        results = []
        for slot, media in enumerate(message.media):
            row = known.get(slot)
            if row is None:
                results.append(StoredMedia(media, None, UNAVAILABLE, media.unavailable or "not fetched yet"))
            else:
                stored = row.status == STORED
                results.append(StoredMedia(media, row.path if stored else None, row.status, row.reason,
                                           properties=(row.properties or {}) if stored else {}))
        return results

    def _exists(self, path: str) -> bool:
        return self._vault.resolve(path).is_file()

    def _needs_fetch(self, item: MediaItem, previous: MediaSlot | None) -> bool:
        """Whether :meth:`_settle_without_fetch` would leave this slot to be fetched (it records nothing)."""
        media = item.media
        if previous and previous.status == STORED and previous.path and self._exists(previous.path):
            return False
        if media.unavailable or media.locator is None or self._settings.skip_reason(str(media.kind), media.size):
            return False
        if media.file_key and (content_hash := self._store.hash_of_remote(media.file_key)):
            path = self._store.media_path(content_hash)
            return not (path and self._exists(path))
        return True

    def _settle_without_fetch(
        self, item: MediaItem, previous: MediaSlot | None, batch: MediaRows
    ) -> StoredMedia | None:
        """The outcome of a slot when nothing needs fetching, else None."""
        message, slot, media = item.message, item.slot, item.media
        if previous and previous.status == STORED and previous.path and self._exists(previous.path):
            return StoredMedia(media, previous.path, STORED, content_hash=previous.content_hash)
        if media.unavailable or media.locator is None:
            return self._not_stored(message, slot, media, UNAVAILABLE, media.unavailable or "no file", batch)
        if reason := self._settings.skip_reason(str(media.kind), media.size):
            return self._not_stored(message, slot, media, SKIPPED, reason, batch)
        if media.file_key:
            content_hash = batch.remote.get(media.file_key) or self._store.hash_of_remote(media.file_key)
            path = self._stored_path(content_hash, batch) if content_hash else None
            if content_hash and path and self._exists(path):
                batch.record_media(message.chat_id, message.id, slot, status=STORED, content_hash=content_hash)
                self.counts.deduplicated += 1
                self.observer.media_deduplicated()
                return StoredMedia(media, path, STORED, content_hash=content_hash)
        return None

    def _stored_path(self, content_hash: str, batch: MediaRows) -> str | None:
        """Where a file with these bytes is stored: placed earlier in this batch, or indexed."""
        if content_hash in batch.files:
            return batch.files[content_hash][0]
        return self._store.media_path(content_hash)

    async def _finish_processing(self, placed: Mapping[str, Placed], batch: MediaRows) -> None:
        """Wait for the processors of this batch's new files and note what they found."""
        for item in placed.values():
            if item.processing is not None:
                properties = dict(await item.processing)
                size = None
                if properties.get("reencoded"):
                    size = self._vault.resolve(item.path).stat().st_size
                batch.properties[item.content_hash] = (properties, size)

    def _record(self, item: MediaItem, outcome: object, batch: MediaRows, *, first: bool) -> StoredMedia:
        message, slot, media = item.message, item.slot, item.media
        if isinstance(outcome, MediaUnavailable):
            return self._not_stored(message, slot, media, UNAVAILABLE, str(outcome), batch)
        if isinstance(outcome, SourceError | TimeoutError | ConnectionError | asyncio.CancelledError):
            reason = f"download failed, will retry: {outcome or type(outcome).__name__}"
            log.warning("media of message %s in chat %s: %s", message.id, message.chat_id, reason)
            self.observer.error("media_download")
            return self._not_stored(message, slot, media, FAILED, reason, batch)
        if isinstance(outcome, BaseException):
            raise outcome  # the vault refused a write, or a bug: stop the run, nothing is recorded
        if not isinstance(outcome, Placed):
            raise AssertionError(f"no outcome for media of message {message.id}")  # pragma: no cover
        if not first:
            self.counts.deduplicated += 1
            self.observer.media_deduplicated()
        batch.record_media(message.chat_id, message.id, slot, status=STORED,
                           content_hash=outcome.content_hash, file_key=media.file_key)
        return StoredMedia(media, outcome.path, STORED, content_hash=outcome.content_hash)

    def _not_stored(
        self, message: Message, slot: int, media: MediaRef, status: str, reason: str, batch: MediaRows
    ) -> StoredMedia:
        batch.record_media(message.chat_id, message.id, slot, status=status, reason=reason)
        if status == UNAVAILABLE:
            self.counts.unavailable += 1
        elif status == SKIPPED:
            self.counts.skipped += 1
        else:
            self.counts.failed += 1
        self.counts.reasons[reason] = self.counts.reasons.get(reason, 0) + 1
        return StoredMedia(media, None, status, reason)

    def _place(
        self, temp: Path, folder: str, content_hash: str, size: int, media: MediaRef, message: Message,
        chat_folder: str, batch: MediaRows,
    ) -> tuple[str, bool]:
        """Move a fetched temp file to its vault path; ``(path, whether the file is new)``."""
        existing = self._stored_path(content_hash, batch)
        if existing and self._exists(existing):
            temp.unlink()
            self.counts.deduplicated += 1
            self.observer.media_deduplicated()
            return existing, False
        if existing:
            target = existing  # indexed but deleted from the vault: it goes back where notes expect it
        else:
            # Placed by a run that stopped before committing its index rows: at the name it recorded
            # (whichever chat needs the file first now), or at the name this message would give it.
            intended = self._store.intended_media_path(content_hash)
            if intended is not None and self._holds(intended, content_hash, size):
                target, already_there = intended, True
            else:
                target, already_there = self._free_name(
                    posixpath.join(folder, self._file_name(media, message, chat_folder)), content_hash, size
                )
            if already_there:
                temp.unlink()
                batch.files[content_hash] = (target, size, media.mime_type)
                return target, False
            self._store.intend_media(content_hash, target)
        self._vault.place(temp, target, sync=False)  # made durable with the batch's notes
        batch.files[content_hash] = (target, size, media.mime_type)
        self.counts.stored += 1
        return target, True

    def _free_name(self, wanted: str, content_hash: str, size: int) -> tuple[str, bool]:
        """A name for new bytes: ``wanted`` or the first free ``wanted 2`` ...; or, if one of those
        names already holds exactly these bytes and the index does not know it, that name (True)."""

        def taken(candidate: str) -> bool:
            if self._store.path_taken(candidate):
                return True
            if self._holds(candidate, content_hash, size):
                raise _AlreadyThere(candidate)
            return False

        try:
            return self._vault.unique_path(wanted, taken), False
        except _AlreadyThere as found:
            return found.path, True

    def _holds(self, path: str, content_hash: str, size: int) -> bool:
        stamp = self._vault.file_stamp(path)
        return stamp is not None and stamp[0] == size and self._vault.sha256_of(path) == content_hash

    def _file_name(self, media: MediaRef, message: Message, chat_folder: str) -> str:
        date = dt.datetime.fromtimestamp(message.date, self._tz).strftime("%Y-%m-%d")
        fallback = f"{chat_folder}-{date}-{message.id}"
        wanted = inert_text(media.file_name or fallback + extension_for(media))
        return inert_name(sanitize_filename(wanted, fallback_stem=fallback))


class _AlreadyThere(Exception):
    """Ends a name search: ``path`` already holds the bytes being placed."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def inert_name(file_name: str) -> str:
    """A received file must not become a note, canvas or script in the vault: ``x.md`` -> ``x.md.txt``."""
    extension = file_name.rpartition(".")[2].lower() if "." in file_name else ""
    return f"{file_name}.txt" if extension in ACTIVE_EXTENSIONS else file_name
