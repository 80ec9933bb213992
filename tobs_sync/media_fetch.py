"""Files being fetched, shared by every batch that needs them: one download per file, however many wait.

A :class:`Download` streams one file into a hidden temp file while hashing it, and resumes after a
flood wait. :class:`SharedFetches` holds the downloads of a pass by file key (Telegram's file
identity, or a message slot for a file without one): a batch that needs a file another batch is
already fetching waits for that one instead of fetching it again. The first batch to *claim* a
fetch places the file (in its own order, so names never depend on which download ended first) and
resolves the fetch's ``placed`` future with the outcome; the others take that outcome. A batch may
start fetches before it is published (:meth:`SharedFetches.start`, from a read-ahead), so a batch's
media download while later batches are read. A placed file stays known by its key for the rest of
the pass (:meth:`SharedFetches.end_pass` forgets it), so a batch published before the first
batch's rows are committed still finds it; a fetch that failed is forgotten at once, so a later
batch tries again.

Limits: single event loop. Memory grows with the files placed in one pass (a key and a few fields
each); a fetch started but never claimed when the pass ends is cancelled and its temp file removed.
A download started before its batch is published streams into the attachment folder of the note
its message would get on its own; placing it renames it into the folder of the note it ends up in
(the same one, except for an album continued from the previous batch).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from tobs_sync.errors import FloodWait
from tobs_sync.model import MediaRef
from tobs_sync.observe import NO_OBSERVER, SyncObserver
from tobs_sync.vault import Vault
from tobs_sync.workers import Job, LanePaused, stop_if_paused

Fetch = Callable[[MediaRef, int], AsyncIterator[bytes]]
Fetched = tuple[str, int, Path]
"""What a finished download gives: content hash, size, and the temp file holding the bytes."""


class Submits(Protocol):
    def submit(self, job: Job[Any]) -> asyncio.Future[Any]: ...


async def _close(chunks: AsyncIterator[bytes]) -> None:
    """Close a chunk stream left before its end (its connection is given back at once)."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()


class Download:
    """One file streaming into a hidden temp file; resumable after a flood wait.

    The scheduler re-runs a job that ended in :class:`FloodWait` once the DC's pause is over;
    the download then continues from the bytes it already has (hash state included) instead of
    starting again, so a throttled DC still makes progress. Between two chunks it stops (and is
    re-run likewise) when its DC has been paused meanwhile, so no request goes to a DC that asked to
    wait. Any other failure removes the temp file.
    """

    def __init__(
        self, vault: Vault, folder: str, media: MediaRef, fetch: Fetch,
        observer: SyncObserver = NO_OBSERVER, chat_id: int = 0,
    ) -> None:
        self._vault, self._folder, self._media, self._fetch = vault, folder, media, fetch
        self._observer, self._chat_id = observer, chat_id
        self._digest = hashlib.sha256()
        self._offset = 0
        self._out: BinaryIO | None = None
        self._temp: Path | None = None
        self.abandoned = False
        """Nobody will place this file: a finished temp file is removed at once."""

    async def run(self) -> Fetched:
        if self._out is None:
            self._out, self._temp = self._vault.open_temp(self._folder)
        chunks = self._fetch(self._media, self._offset)
        try:
            async for chunk in chunks:
                self._digest.update(chunk)
                self._out.write(chunk)
                self._offset += len(chunk)
                self._observer.media_bytes(self._chat_id, self._media.dc_id, len(chunk))
                if self._media.size is None or self._offset < self._media.size:
                    stop_if_paused()  # the DC asked another download to wait: send it nothing more until then
            temp = self._vault.finish_temp(self._out, self._temp)
        except LanePaused:
            raise  # keep what we have: the next run resumes at self._offset
        except FloodWait as flood:
            self._observer.flood_wait(self._media.dc_id, flood.seconds)
            raise  # keep what we have: the next run resumes at self._offset
        except BaseException:
            self.discard()
            raise
        finally:
            await _close(chunks)
        self._out = None  # finished: the temp file now belongs to the caller
        if self.abandoned:
            temp.unlink(missing_ok=True)
        return self._digest.hexdigest(), self._offset, temp

    def discard(self) -> None:
        """Close and remove the temp file of a download that will not be resumed."""
        if self._out is not None and self._temp is not None:
            self._vault.discard_temp(self._out, self._temp)
        self._out = None


@dataclass(slots=True)
class SharedFetch:
    """One file's fetch: the download's outcome, and (once a batch claimed it) the placement's."""

    key: str
    download: Download
    fetched: asyncio.Future[Fetched]
    placed: asyncio.Future[object] | None = None
    """Set when a batch claims the fetch; resolved with what became of the file (or an exception)."""


class SharedFetches:
    """The fetches of a pass, by file key (see the module docstring)."""

    def __init__(self) -> None:
        self._by_key: dict[str, SharedFetch] = {}

    def get(self, key: str) -> SharedFetch | None:
        return self._by_key.get(key)

    def start(self, key: str, dc_id: int | None, download: Download, scheduler: Submits | None) -> SharedFetch:
        """A new fetch of ``key``, submitted to ``scheduler`` (None: the claimer runs it, see :meth:`job`)."""
        loop = asyncio.get_running_loop()
        fetched: asyncio.Future[Fetched] = (
            loop.create_future() if scheduler is None else scheduler.submit(self.job(key, dc_id, download))
        )
        entry = self._by_key[key] = SharedFetch(key, download, fetched)
        return entry

    @staticmethod
    def job(key: str, dc_id: int | None, download: Download) -> Job[Fetched]:
        return Job(key, dc_id, download.run, abandon=download.discard)

    def claim(self, entry: SharedFetch) -> None:
        """The calling batch places this file; others wait for :attr:`SharedFetch.placed`."""
        entry.placed = asyncio.get_running_loop().create_future()

    def resolve(self, entry: SharedFetch, outcome: object) -> None:
        """What became of a claimed file; a failure is forgotten (a later batch fetches it again)."""
        if entry.placed is not None and not entry.placed.done():
            entry.placed.set_result(outcome)
        if isinstance(outcome, BaseException) and self._by_key.get(entry.key) is entry:
            del self._by_key[entry.key]

    def end_pass(self) -> None:
        """Forget every fetch; cancel those nobody claimed and remove their temp files."""
        for entry in self._by_key.values():
            if entry.placed is None:
                entry.download.abandoned = True
                entry.fetched.cancel()
                entry.download.discard()
                if entry.fetched.done() and not entry.fetched.cancelled() and entry.fetched.exception() is None:
                    entry.fetched.result()[2].unlink(missing_ok=True)
        self._by_key.clear()
