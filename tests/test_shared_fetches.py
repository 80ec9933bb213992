"""One long-lived download scheduler shared by every batch and chat: a file wanted by two batches at
once is fetched once, media download while later batches are read, and a note embedding a file is
written only after the file is durable.

Time is the virtual clock of tests/virtualtime.py: nothing sleeps for real, and the times asserted
are exact, so they are decided by the pipeline alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import AsyncIterator
from pathlib import Path

from test_durability_order import Event, RecordingVault
from test_pipeline import START, SlowMemorySource, chats_with_history, timed_pass
from virtualtime import run_virtual

from tobs_sync.config import load_settings
from tobs_sync.errors import FloodWait
from tobs_sync.media import MediaWriter
from tobs_sync.media_fetch import Download
from tobs_sync.model import Chat, ChatKind, MediaKind, MediaRef, Message
from tobs_sync.render import Renderer
from tobs_sync.store import Store
from tobs_sync.store_rows import MediaRows
from tobs_sync.sync import Synchronizer
from tobs_sync.vault import Vault
from tobs_sync.workers import DcScheduler, Job

PHOTO = b"the same photo, posted again " * 200


def two_chats_reposting_one_file() -> tuple[SlowMemorySource, MediaRef, list[Chat]]:
    chats = [Chat(-1001000 - n, f"Chat {n}", ChatKind.CHANNEL.value) for n in range(2)]
    source = SlowMemorySource(chats, batch_size=10, delay=0.0, media_delay=5.0)
    photo = source.add_file(PHOTO, kind=MediaKind.PHOTO.value, mime_type="image/jpeg", file_key="photo:1", dc_id=2)
    for chat in chats:
        source.add_message(Message(chat.id, 1, START + 60, text="look", media=(photo,)))
    return source, photo, chats


def test_a_file_wanted_by_two_batches_at_once_is_fetched_once_and_stored_once(vault: Path) -> None:
    """Two batches (two chats) storing their media at the same time, neither committed yet: the second
    waits for the first's download instead of fetching the file again, and embeds the same file."""
    settings = load_settings(vault)
    source, photo, chats = two_chats_reposting_one_file()
    store = Store.open(settings.database_path)
    writer = Vault(settings.vault_root)

    async def run() -> list[dict[int, list[object]]]:
        media = MediaWriter(writer, store, "Telegram/_attachments", settings.timezone, settings=settings.media,
                            scheduler=DcScheduler())
        async with source:
            batches = [[(Message(c.id, 1, START + 60, media=(photo,)), f"{c.title}/1.md")] for c in chats]
            rows = [MediaRows(), MediaRows()]
            pairs = zip(batches, rows, strict=True)
            return list(await asyncio.gather(*(
                media.store_media(batch, "chat", source.media_chunks, rows=row) for batch, row in pairs
            )))

    try:
        first, second = run_virtual(run())
    finally:
        store.close()
    assert source.fetch_calls[photo.locator] == 1
    assert first[1][0].path == second[1][0].path == "Telegram/_attachments/" + first[1][0].path.rpartition("/")[2]
    assert [p.name for p in (vault / "Telegram" / "_attachments").iterdir()] == [first[1][0].path.rpartition("/")[2]]


def test_a_file_reposted_in_two_concurrently_read_chats_is_fetched_once(vault: Path) -> None:
    source, photo, _ = two_chats_reposting_one_file()
    report, _, store = timed_pass(vault, source, concurrent_chats=2)
    store.close()
    assert report.messages == 2
    assert source.fetch_calls[photo.locator] == 1
    notes = [p.read_text(encoding="utf-8") for p in vault.glob("Telegram/Chat */*.md") if "look" in p.read_text()]
    assert len(notes) == 2 and all("![[" in note for note in notes)


def test_the_pass_reads_the_next_batches_while_a_batchs_media_downloads(vault: Path) -> None:
    """Four batches, one photo each, 10 s per file, two downloads at a time on their DC: reading goes on
    at one batch a second while the files download, and the files of different batches download
    together (one after the other, the pass would take 41 s)."""
    source = chats_with_history(1, 40, photos=True, batch_size=10, delay=1.0, media_delay=10.0)
    report, elapsed, store = timed_pass(vault, source, concurrent_chats=1)
    store.close()
    assert report.messages == 40
    assert source.read_at == [1.0, 2.0, 3.0, 4.0]  # never held up by the first batch's file (until 11 s)
    assert elapsed == 22.0  # files of batches 1 and 2 from 1 s and 2 s, of 3 and 4 when a worker frees up


def test_a_note_embedding_a_file_is_renamed_only_after_the_files_folder_is_fsynced(vault: Path) -> None:
    log: list[Event] = []
    settings = load_settings(vault)
    source = chats_with_history(1, 20, photos=True, batch_size=10, delay=0.0, media_delay=0.0)
    store = Store.open(settings.database_path)

    async def run() -> None:
        writer = RecordingVault(settings.vault_root, log)
        media = MediaWriter(writer, store, "Telegram/_attachments", settings.timezone, settings=settings.media)
        async with source:
            await Synchronizer(settings, store, writer, Renderer(None), media).sync(source)

    try:
        run_virtual(run())
    finally:
        store.close()
    attachments = vault / "Telegram" / "_attachments"
    media_renames = [i for i, e in enumerate(log) if e.kind == "rename" and e.path.parent == attachments]
    assert len(media_renames) == 2
    for at in media_renames:
        next_note = next(i for i, e in enumerate(log) if i > at and e.kind == "rename" and e.path.suffix == ".md")
        assert any(e.kind == "fsync-folder" and e.path == attachments for e in log[at:next_note]), log[at:next_note]


class FloodingDc:
    """One DC serving files in parts (0.1 s each for the first file, 0.15 s for the others): the first
    file's second part is answered with a 1 s flood wait, and every request that arrives while that
    wait runs is refused with what is left of it. Records when each request arrived."""

    def __init__(self) -> None:
        self.flood_until = 0.0
        self.requests: list[tuple[str, float]] = []

    async def chunks(self, media: MediaRef, offset: int) -> AsyncIterator[bytes]:
        part = 100
        while offset < (media.size or 0):
            now = asyncio.get_running_loop().time()
            self.requests.append((media.file_key or "", now))
            if now < self.flood_until:
                raise FloodWait(math.ceil(self.flood_until - now), "downloading")
            if media.file_key == "document:1" and offset == part and not self.flood_until:
                self.flood_until = now + 1.0
                raise FloodWait(1, "downloading")
            await asyncio.sleep(0.1 if media.file_key == "document:1" else 0.15)
            yield bytes([offset // part]) * part
            offset += part


def test_a_download_sends_nothing_to_its_dc_while_another_download_there_waits_out_a_flood(vault: Path) -> None:
    """The DC says at 0.1 to wait 1 s: the other file on it, whose first part arrives at 0.15, asks for
    no part before 1.1 (a request meanwhile would be refused, and counted against the account), then
    resumes where it stopped; both files are whole."""
    dc = FloodingDc()
    files = [MediaRef(MediaKind.DOCUMENT.value, f"file-{n}", file_key=f"document:{n}", dc_id=2, size=400)
             for n in (1, 2)]
    downloads = [Download(Vault(vault), "files", media, dc.chunks) for media in files]
    scheduler = DcScheduler(per_dc=2, total=2)

    async def run() -> list[object]:
        return list((await scheduler.run_all([Job(d, 2, d.run) for d in downloads])).values())

    results = run_virtual(run())
    during_the_wait = [(key, at) for key, at in dc.requests if 0.1 < at < 1.1 - 1e-9]
    assert during_the_wait == []
    expected = b"".join(bytes([n]) * 100 for n in range(4))
    for result in results:
        assert not isinstance(result, BaseException)
        digest, size, temp = result  # type: ignore[misc]
        assert (digest, size, temp.read_bytes()) == (hashlib.sha256(expected).hexdigest(), 400, expected)
