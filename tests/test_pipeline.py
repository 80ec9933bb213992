"""The pipeline's stages: backpressure, order per lane, the bound across lanes, failures and cancellation.

Fakes only (a slow source of numbers, a publisher that blocks on an event); time is the virtual
clock of tests/virtualtime.py, so nothing here sleeps for real.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from virtualtime import run_virtual

from tobs_sync.config import TelegramSettings, load_settings
from tobs_sync.errors import ChatDeferred, ConfigError
from tobs_sync.media import MediaWriter
from tobs_sync.model import Chat, ChatKind, MediaKind, MediaRef, Message
from tobs_sync.pipeline import Stage, read_ahead, run_lanes
from tobs_sync.render import Renderer
from tobs_sync.sources.memory import MemorySource
from tobs_sync.store import Store
from tobs_sync.store_schema import NO_CURSOR
from tobs_sync.sync import Synchronizer, SyncReport
from tobs_sync.vault import Vault


@dataclass
class SlowSource:
    """Yields ``count`` numbers, each after ``delay`` seconds of (virtual) time; records what it did."""

    count: int
    delay: float = 0.0
    fail_after: int | None = None
    yielded: int = 0
    closed: bool = False
    reads: list[float] = field(default_factory=list)

    async def items(self) -> AsyncIterator[int]:
        try:
            for number in range(self.count):
                if self.fail_after is not None and number == self.fail_after:
                    raise RuntimeError(f"reading item {number} failed")
                if self.delay:
                    await asyncio.sleep(self.delay)
                self.reads.append(asyncio.get_running_loop().time())
                self.yielded += 1
                yield number
        finally:
            self.closed = True


class BlockingPublisher:
    """Consumes items only when the test lets it (one event per item)."""

    def __init__(self) -> None:
        self.published: list[int] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def publish(self, item: int) -> None:
        self.started.set()
        await self.release.wait()
        self.release.clear()
        self.published.append(item)


async def settle() -> None:
    """Let every runnable task run until all of them wait."""
    for _ in range(50):
        await asyncio.sleep(0)


def test_a_blocked_publisher_stops_reading_a_bounded_number_of_items_ahead() -> None:
    async def main() -> tuple[int, int, list[int]]:
        source = SlowSource(count=1000)
        publisher = BlockingPublisher()
        task = asyncio.ensure_future(read_ahead(source.items(), publisher.publish, ahead=3))
        await publisher.started.wait()
        await settle()
        blocked_at = source.yielded
        publisher.release.set()  # one item published: reading may go on by exactly one
        await settle()
        after_one = source.yielded
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return blocked_at, after_one, publisher.published

    blocked_at, after_one, published = run_virtual(main())
    # one being published, three queued, one read and waiting for room: never the whole history
    assert blocked_at == 5
    assert after_one == 6
    assert published == [0]


def test_items_are_consumed_in_the_order_read_while_later_ones_are_read_meanwhile() -> None:
    async def main() -> tuple[list[int], float]:
        source = SlowSource(count=5, delay=1.0)
        consumed: list[int] = []

        async def slow_consume(item: int) -> None:
            await asyncio.sleep(1.0)
            consumed.append(item)

        await read_ahead(source.items(), slow_consume, ahead=2)
        return consumed, asyncio.get_running_loop().time()

    consumed, elapsed = run_virtual(main())
    assert consumed == [0, 1, 2, 3, 4]
    assert elapsed == 6.0  # overlapped: one read ahead of each consume (in turn: 10 s)


def test_a_read_failure_still_consumes_what_was_read_then_raises() -> None:
    async def main() -> list[int]:
        source = SlowSource(count=10, fail_after=3)
        consumed: list[int] = []

        async def consume(item: int) -> None:
            consumed.append(item)

        with pytest.raises(RuntimeError, match="reading item 3 failed"):
            await read_ahead(source.items(), consume, ahead=5)
        return consumed

    assert run_virtual(main()) == [0, 1, 2]


def test_a_consume_failure_cancels_the_reading_and_closes_the_source() -> None:
    async def main() -> tuple[SlowSource, set[asyncio.Task[object]]]:
        source = SlowSource(count=1000, delay=0.1)

        async def consume(item: int) -> None:
            if item == 2:
                raise ValueError("publishing item 2 failed")

        with pytest.raises(ValueError, match="item 2"):
            await read_ahead(source.items(), consume, ahead=4)
        others = asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]
        return source, others

    source, others = run_virtual(main())
    assert source.closed
    assert source.yielded < 10
    assert others == set()


@dataclass
class LaneLog:
    running: int = 0
    most_running: int = 0
    taken: int = 0
    ended: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)


def test_lanes_run_at_most_the_concurrency_at_once_and_are_taken_only_when_a_slot_is_free() -> None:
    log = LaneLog()
    taken_while_full: list[int] = []

    async def lanes() -> AsyncIterator[int]:
        for lane in range(10):
            if log.running >= 3:
                taken_while_full.append(lane)
            log.taken += 1
            yield lane

    async def run_lane(lane: int) -> None:
        log.running += 1
        log.most_running = max(log.most_running, log.running)
        await asyncio.sleep(1.0 + lane % 3)
        log.running -= 1
        log.ended.append(lane)

    async def main() -> float:
        await run_lanes(lanes(), run_lane, concurrency=3)
        return asyncio.get_running_loop().time()

    elapsed = run_virtual(main())
    assert log.most_running == 3
    assert taken_while_full == []
    assert sorted(log.ended) == list(range(10))
    assert elapsed < 1 + 2 + 3 + 1 + 2 + 3 + 1 + 2 + 3 + 1  # concurrent, not one after the other


def test_one_lane_at_a_time_runs_the_lanes_strictly_in_turn() -> None:
    events: list[str] = []

    async def lanes() -> AsyncIterator[int]:
        for lane in range(3):
            events.append(f"take {lane}")
            yield lane

    async def run_lane(lane: int) -> None:
        events.append(f"start {lane}")
        await asyncio.sleep(1.0)
        events.append(f"end {lane}")

    run_virtual(run_lanes(lanes(), run_lane, concurrency=1))
    assert events == ["take 0", "start 0", "end 0", "take 1", "start 1", "end 1", "take 2", "start 2", "end 2"]


def test_a_failing_lane_cancels_the_others_and_its_error_is_raised_with_no_task_left() -> None:
    log = LaneLog()

    async def lanes() -> AsyncIterator[int]:
        for lane in range(8):
            log.taken += 1
            yield lane

    async def run_lane(lane: int) -> None:
        try:
            if lane == 1:
                await asyncio.sleep(0.5)
                raise KeyError("lane 1 broke")
            await asyncio.sleep(10.0)
            log.ended.append(lane)
        except asyncio.CancelledError:
            log.cancelled.append(lane)
            raise

    async def main() -> tuple[set[asyncio.Task[object]], float]:
        with pytest.raises(KeyError, match="lane 1 broke"):
            await run_lanes(lanes(), run_lane, concurrency=3)
        return asyncio.all_tasks() - {asyncio.current_task()}, asyncio.get_running_loop().time()  # type: ignore[operator]

    others, elapsed = run_virtual(main())
    assert others == set()
    assert sorted(log.cancelled) == [0, 2]
    assert log.ended == []
    assert log.taken == 3  # no lane was started after the failure
    assert elapsed == 0.5


def test_a_stage_is_held_by_one_lane_at_a_time_and_each_lane_keeps_its_order() -> None:
    stage_users: list[int] = []
    holders = 0
    most_holders = 0
    published: dict[int, list[int]] = {}

    async def run_lane(lane: int) -> None:
        source = SlowSource(count=4, delay=0.25 * (lane + 1))

        async def publish(item: int) -> None:
            nonlocal holders, most_holders
            async with stage:
                holders += 1
                most_holders = max(most_holders, holders)
                await asyncio.sleep(0.5)
                published.setdefault(lane, []).append(item)
                stage_users.append(lane)
                holders -= 1

        await read_ahead(source.items(), publish, ahead=2)

    async def lanes() -> AsyncIterator[int]:
        for lane in range(3):
            yield lane

    async def main() -> None:
        nonlocal stage
        stage = Stage()
        await run_lanes(lanes(), run_lane, concurrency=3)

    stage: Stage
    run_virtual(main())
    assert most_holders == 1
    assert published == {0: [0, 1, 2, 3], 1: [0, 1, 2, 3], 2: [0, 1, 2, 3]}
    assert len(set(stage_users[:3])) > 1, "lanes share the stage, none waits for another to finish"


def test_bounds_below_one_are_refused() -> None:
    async def nothing(_: int) -> None:
        return None

    with pytest.raises(ValueError, match="ahead"):
        run_virtual(read_ahead(SlowSource(count=1).items(), nothing, ahead=0))
    with pytest.raises(ValueError, match="concurrency"):
        run_virtual(run_lanes(SlowSource(count=1).items(), nothing, concurrency=0))


# --- the pass as a pipeline (the synchroniser over a slow in-memory source) ------------------------

START = 1_700_000_000


class SlowMemorySource(MemorySource):
    """An in-memory source where each history request and each file take ``delay`` seconds (virtual),
    recording how far reading runs ahead of the chat's cursor and how many downloads run per DC."""

    def __init__(self, *args: object, delay: float = 1.0, media_delay: float = 1.0, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.delay, self.media_delay = delay, media_delay
        self.store: Store | None = None
        self.batch_size = int(kwargs.get("batch_size", 100))  # type: ignore[call-overload]
        self.most_ahead = 0
        self.downloading: Counter[int | None] = Counter()
        self.most_downloading = 0
        self.read_at: list[float] = []
        """When (virtual time) each batch was handed to the pass."""

    async def batches(self, chat: Chat, after: int) -> AsyncIterator[Sequence[Message]]:
        read = 0
        async for batch in super().batches(chat, after):
            await asyncio.sleep(self.delay)
            if self.store is not None:
                cursor = next(s.cursor for s in self.store.chat_states() if s.chat.id == chat.id)
                published = 0 if cursor == NO_CURSOR else cursor // self.batch_size
                self.most_ahead = max(self.most_ahead, read - published)
            read += 1
            self.read_at.append(asyncio.get_running_loop().time())
            yield batch

    async def media_chunks(self, media: MediaRef, offset: int = 0) -> AsyncIterator[bytes]:
        self.downloading[media.dc_id] += 1
        self.most_downloading = max(self.most_downloading, *self.downloading.values())
        try:
            await asyncio.sleep(self.media_delay)
            async for chunk in super().media_chunks(media, offset):
                yield chunk
        finally:
            self.downloading[media.dc_id] -= 1


def chats_with_history(count: int, messages: int, *, photos: bool = False, **kwargs: object) -> SlowMemorySource:
    chats = [Chat(-1001000 - n, f"Chat {n}", ChatKind.CHANNEL.value) for n in range(count)]
    source = SlowMemorySource(chats, **kwargs)
    for chat in chats:
        for message_id in range(1, messages + 1):
            media: tuple[MediaRef, ...] = ()
            if photos and message_id % 10 == 1:
                data = f"{chat.id}:{message_id}".encode() * 100
                media = (source.add_file(data, kind=MediaKind.PHOTO.value, mime_type="image/jpeg",
                                         file_key=f"photo:{chat.id}:{message_id}", dc_id=2),)
            source.add_message(Message(chat.id, message_id, START + message_id * 60, text=f"message {message_id}",
                                       media=media))
    return source


def timed_pass(vault: Path, source: SlowMemorySource, concurrent_chats: int) -> tuple[SyncReport, float, Store]:
    settings = load_settings(vault)
    vault_writer = Vault(settings.vault_root)
    store = Store.open(settings.database_path)
    source.store = store

    async def run() -> tuple[SyncReport, float]:
        renderer = Renderer(None)
        media = MediaWriter(vault_writer, store, "Telegram/_attachments", settings.timezone, settings=settings.media)
        synchronizer = Synchronizer(settings, store, vault_writer, renderer, media)
        async with source:
            report = await synchronizer.sync(source, concurrent_chats=concurrent_chats)
        return report, asyncio.get_running_loop().time()

    report, elapsed = run_virtual(run())
    return report, elapsed, store


def test_chats_are_read_concurrently_up_to_the_bound(vault: Path) -> None:
    source = chats_with_history(4, 30, batch_size=10, delay=1.0)
    report, elapsed, store = timed_pass(vault, source, concurrent_chats=4)
    try:
        assert report.messages == 120 and report.notes_written == 120 + 4
        assert {s.chat.title: s.cursor for s in store.chat_states()} == {f"Chat {n}": 30 for n in range(4)}
    finally:
        store.close()
    assert elapsed == 3.0  # three requests per chat, four chats at once (one after the other: 12 s)


def test_one_chat_at_a_time_when_the_source_asks_for_it(vault: Path) -> None:
    source = chats_with_history(2, 20, batch_size=10, delay=1.0)
    report, elapsed, store = timed_pass(vault, source, concurrent_chats=1)
    store.close()
    assert report.messages == 40
    assert elapsed == 4.0


def test_media_of_a_batch_downloads_while_the_next_batches_are_read(vault: Path) -> None:
    source = chats_with_history(1, 40, photos=True, batch_size=10, delay=1.0, media_delay=1.0)
    report, elapsed, store = timed_pass(vault, source, concurrent_chats=1)
    store.close()
    assert report.messages == 40
    # batches read at 1, 2, 3, 4 s; each batch's file fetched in the second after (in turn: 8 s)
    assert elapsed == 5.0


def test_reading_stays_a_bounded_number_of_batches_ahead_of_the_cursor(vault: Path) -> None:
    (vault / ".tobs" / "config.toml").write_text(
        '[vault]\ntimezone = "UTC"\n[telegram]\nbatches_ahead = 2\n', encoding="utf-8"
    )
    source = chats_with_history(1, 200, photos=True, batch_size=10, delay=0.0, media_delay=1.0)
    report, _, store = timed_pass(vault, source, concurrent_chats=1)
    store.close()
    assert report.messages == 200
    # one committing in the background, one publishing, two waiting; never the 20 batches of the history
    assert source.most_ahead == 4


def test_concurrent_chats_never_double_a_data_centres_downloads(vault: Path) -> None:
    source = chats_with_history(4, 40, photos=True, batch_size=10, delay=0.5, media_delay=1.0)
    report, _, store = timed_pass(vault, source, concurrent_chats=4)
    store.close()
    assert report.messages == 160
    assert 1 <= source.most_downloading <= TelegramSettings().download_workers_per_dc


def test_a_chat_that_fails_while_others_are_read_leaves_them_to_finish(vault: Path) -> None:
    source = chats_with_history(3, 30, batch_size=10, delay=1.0)
    source.fail_history(-1001001, ChatDeferred("Chat 1: flood wait of 900 s"))
    report, _, store = timed_pass(vault, source, concurrent_chats=3)
    try:
        cursors = {s.chat.title: s.cursor for s in store.chat_states()}
    finally:
        store.close()
    assert report.deferred == ["Chat 1: flood wait of 900 s"]
    assert cursors == {"Chat 0": 30, "Chat 1": NO_CURSOR, "Chat 2": 30}


@pytest.mark.parametrize("key", ["concurrent_chats", "batches_ahead", "blocking_workers"])
def test_a_concurrency_setting_below_one_is_refused_naming_its_key(vault: Path, key: str) -> None:
    (vault / ".tobs" / "config.toml").write_text(f"[telegram]\n{key} = 0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=f"telegram.{key}"):
        load_settings(vault)


def test_the_concurrency_settings_are_read_from_the_config(vault: Path) -> None:
    (vault / ".tobs" / "config.toml").write_text(
        "[telegram]\nconcurrent_chats = 3\nbatches_ahead = 5\nblocking_workers = 2\n", encoding="utf-8"
    )
    telegram = load_settings(vault).telegram
    assert (telegram.concurrent_chats, telegram.batches_ahead, telegram.blocking_workers) == (3, 5, 2)
