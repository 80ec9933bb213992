"""Media into the vault: streamed, hashed, stored once, and never half-written.

Each file is streamed from its source into a hidden temp file inside the target attachment
folder while it is hashed (sha256), fsynced, then either renamed into place or dropped because
identical bytes are already stored. The media index (in the store) maps content hash -> vault
path and Telegram file identity -> content hash, so a known file is not fetched again. A new
file's name is reserved in the index just before the rename, and what each message's media
became is recorded after it: a crash leaves at most a hidden temp file (removed at the next
start) or a reserved name whose file the next run puts in place.

Where files go follows Obsidian's ``attachmentFolderPath`` (vault root ``/``, a named folder,
``./`` next to the note, ``./sub`` under the note's folder) unless the config overrides it.
Limits: a file stored once is embedded from every note that uses it, by its full vault path, so
in the ``./`` modes a file shared by several chats lives next to the first note that needed it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import logging
import mimetypes
import posixpath
from collections.abc import AsyncIterator, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

from tobs_sync.config import MediaSettings
from tobs_sync.errors import FloodWait, MediaUnavailable, SourceError
from tobs_sync.model import MediaRef, Message
from tobs_sync.names import inert_text
from tobs_sync.processors.pool import ProcessorPool
from tobs_sync.store import MediaSlot, Store
from tobs_sync.vault import Vault, sanitize_filename
from tobs_sync.views import StoredMedia
from tobs_sync.workers import DcScheduler, GlobalPool, Job

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
    """A fetched file in the vault, and the processing started on it (if it is new)."""

    content_hash: str
    path: str
    processing: asyncio.Future[Mapping[str, Any]] | None = None


@dataclass(frozen=True, slots=True)
class MediaItem:
    """One media slot of a message, and the note it will be embedded in."""

    message: Message
    slot: int
    note_path: str

    @property
    def media(self) -> MediaRef:
        return self.message.media[self.slot]


Fetch = Callable[[MediaRef, int], AsyncIterator[bytes]]


class _Download:
    """One file streaming into a hidden temp file; resumable after a flood wait.

    The scheduler re-runs a job that ended in :class:`FloodWait` once the DC's pause is over;
    the download then continues from the bytes it already has (hash state included) instead of
    starting again, so a throttled DC still makes progress. Any other failure removes the temp file.
    """

    def __init__(self, vault: Vault, folder: str, media: MediaRef, fetch: Fetch) -> None:
        self._vault, self._folder, self._media, self._fetch = vault, folder, media, fetch
        self._digest = hashlib.sha256()
        self._offset = 0
        self._out: BinaryIO | None = None
        self._temp: Path | None = None

    async def run(self) -> tuple[str, int, Path]:
        if self._out is None:
            self._out, self._temp = self._vault.open_temp(self._folder)
        try:
            async for chunk in self._fetch(self._media, self._offset):
                self._digest.update(chunk)
                self._out.write(chunk)
                self._offset += len(chunk)
            temp = self._vault.finish_temp(self._out, self._temp)
        except FloodWait:
            raise  # keep what we have: the next run resumes at self._offset
        except BaseException:
            self._vault.discard_temp(self._out, self._temp)
            raise
        return self._digest.hexdigest(), self._offset, temp


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
        self.counts = MediaCounts()

    @property
    def folder_rule(self) -> str:
        """Where attachments go: a vault folder, ``/`` (the root), ``./`` or ``./sub`` (beside the note)."""
        return self._folder_rule

    async def store_media(
        self, messages: Sequence[tuple[Message, str]], chat_folder: str, fetch: Fetch
    ) -> dict[int, list[StoredMedia]]:
        """Store the media of ``(message, note_path)`` pairs; what became of each slot, by message id.

        Files already known (by Telegram file identity or by an earlier slot) are not fetched;
        the rest are fetched concurrently, queued per data centre. A failed fetch is recorded as
        ``failed`` (retried on a later pass); the note is written without that embed meanwhile.
        """
        results: dict[int, list[StoredMedia | None]] = {m.id: [None] * len(m.media) for m, _ in messages}
        pending: dict[str, list[MediaItem]] = {}
        for message, note_path in messages:
            known = self._store.media_slots(message.chat_id, message.id)
            for slot in range(len(message.media)):
                item = MediaItem(message, slot, note_path)
                settled = self._settle_without_fetch(item, known.get(slot))
                if settled is not None:
                    results[message.id][slot] = settled
                else:
                    key = item.media.file_key or f"slot:{message.chat_id}:{message.id}:{slot}"
                    pending.setdefault(key, []).append(item)
        jobs = []
        for key, items in pending.items():
            folder = attachment_folder(self._folder_rule, items[0].note_path)
            download = _Download(self._vault, folder, items[0].media, fetch)
            jobs.append(Job(key, items[0].media.dc_id,
                            partial(self._fetch_and_place, download, items[0], folder, chat_folder)))
        outcomes = await self._scheduler.run_all(jobs)
        await self._finish_processing(outcomes)
        for key, items in pending.items():
            outcome = outcomes[key]
            for index, item in enumerate(items):
                stored = self._record(item, outcome, first=index == 0)
                results[item.message.id][item.slot] = stored
        stored = [s for slots in results.values() for s in slots if s is not None]
        await self._process_unprocessed(stored)
        return {
            mid: [self._with_properties(s) for s in slots if s is not None] for mid, slots in results.items()
        }

    async def _process_unprocessed(self, stored: Sequence[StoredMedia]) -> None:
        """Run processors on stored files they have not seen (e.g. a crash struck before they finished)."""
        if self._processors is None:
            return
        todo = {
            s.content_hash: s
            for s in stored
            if s.status == STORED and s.content_hash and s.path and self._store.media_properties(s.content_hash) is None
        }
        found = await asyncio.gather(
            *(self._processors.run(self._vault.resolve(s.path), s.media) for s in todo.values() if s.path)
        )
        for content_hash, properties in zip(todo, found, strict=True):
            self._store.set_media_properties(content_hash, properties, size=None)

    def _with_properties(self, item: StoredMedia) -> StoredMedia:
        if item.status != STORED or not item.content_hash:
            return item
        return dataclasses.replace(item, properties=self._store.media_properties(item.content_hash) or {})

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

    def _settle_without_fetch(self, item: MediaItem, previous: MediaSlot | None) -> StoredMedia | None:
        """The outcome of a slot when nothing needs fetching, else None."""
        message, slot, media = item.message, item.slot, item.media
        if previous and previous.status == STORED and previous.path and self._exists(previous.path):
            return StoredMedia(media, previous.path, STORED, content_hash=previous.content_hash)
        if media.unavailable or media.locator is None:
            return self._not_stored(message, slot, media, UNAVAILABLE, media.unavailable or "no file")
        if reason := self._settings.skip_reason(str(media.kind), media.size):
            return self._not_stored(message, slot, media, SKIPPED, reason)
        if media.file_key:
            content_hash = self._store.hash_of_remote(media.file_key)
            path = self._store.media_path(content_hash) if content_hash else None
            if content_hash and path and self._exists(path):
                self._store.record_media(message.chat_id, message.id, slot, status=STORED,
                                         content_hash=content_hash)
                self.counts.deduplicated += 1
                return StoredMedia(media, path, STORED, content_hash=content_hash)
        return None

    async def _fetch_and_place(self, download: _Download, item: MediaItem, folder: str, chat_folder: str) -> Placed:
        """Fetch one file into the vault; processors start on a new file while other downloads go on."""
        content_hash, size, temp = await download.run()
        self.counts.fetched_bytes += size
        path, new = self._place(temp, folder, content_hash, size, item.media, item.message, chat_folder)
        processing = None
        if new and self._processors is not None:
            processing = asyncio.ensure_future(self._processors.run(self._vault.resolve(path), item.media))
        return Placed(content_hash, path, processing)

    async def _finish_processing(self, outcomes: Mapping[Hashable, object]) -> None:
        """Wait for the processors of this batch's new files and record what they found."""
        for placed in outcomes.values():
            if isinstance(placed, Placed) and placed.processing is not None:
                properties = dict(await placed.processing)
                size = None
                if properties.get("reencoded"):
                    size = self._vault.resolve(placed.path).stat().st_size
                self._store.set_media_properties(placed.content_hash, properties, size=size)

    def _record(self, item: MediaItem, outcome: Placed | BaseException, *, first: bool) -> StoredMedia:
        message, slot, media = item.message, item.slot, item.media
        if isinstance(outcome, MediaUnavailable):
            return self._not_stored(message, slot, media, UNAVAILABLE, str(outcome))
        if isinstance(outcome, SourceError | TimeoutError | ConnectionError):
            reason = f"download failed, will retry: {outcome or type(outcome).__name__}"
            log.warning("media of message %s in chat %s: %s", message.id, message.chat_id, reason)
            return self._not_stored(message, slot, media, FAILED, reason)
        if isinstance(outcome, BaseException):
            raise outcome  # the vault refused a write, or a bug: stop the run, nothing is recorded
        if not first:
            self.counts.deduplicated += 1
        self._store.record_media(message.chat_id, message.id, slot, status=STORED,
                                 content_hash=outcome.content_hash, file_key=media.file_key)
        return StoredMedia(media, outcome.path, STORED, content_hash=outcome.content_hash)

    def _not_stored(self, message: Message, slot: int, media: MediaRef, status: str, reason: str) -> StoredMedia:
        self._store.record_media(message.chat_id, message.id, slot, status=status, reason=reason)
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
        chat_folder: str,
    ) -> tuple[str, bool]:
        """Move a fetched temp file to its vault path; ``(path, whether the file is new)``."""
        existing = self._store.media_path(content_hash)
        if existing and self._exists(existing):
            temp.unlink()
            self.counts.deduplicated += 1
            return existing, False
        if existing:
            # Indexed but not on disk: deleted by the user, or a crash struck between the
            # reservation below and the rename. Either way it goes back where notes expect it.
            target = existing
        else:
            target = self._vault.unique_path(
                posixpath.join(folder, self._file_name(media, message, chat_folder)), self._store.path_taken
            )
            # Reserve the name before the rename, so a crash in between cannot leave a visible
            # file the index does not know (the re-run would store a second copy beside it).
            self._store.add_media_file(content_hash, target, size, media.mime_type)
        self._vault.place(temp, target)
        self.counts.stored += 1
        return target, True

    def _file_name(self, media: MediaRef, message: Message, chat_folder: str) -> str:
        date = dt.datetime.fromtimestamp(message.date, self._tz).strftime("%Y-%m-%d")
        fallback = f"{chat_folder}-{date}-{message.id}"
        wanted = inert_text(media.file_name or fallback + extension_for(media))
        return inert_name(sanitize_filename(wanted, fallback_stem=fallback))


def inert_name(file_name: str) -> str:
    """A received file must not become a note, canvas or script in the vault: ``x.md`` -> ``x.md.txt``."""
    extension = file_name.rpartition(".")[2].lower() if "." in file_name else ""
    return f"{file_name}.txt" if extension in ACTIVE_EXTENSIONS else file_name
