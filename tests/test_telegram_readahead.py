"""History read-ahead: the next page is requested while the current one is handled, and reading stays bounded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tobs_sync.config import TelegramSettings
from tobs_sync.sim import SimulatedTelegram, parse_spec
from tobs_sync.sources.telegram import TelegramSource
from tobs_sync.sources.telegram_readahead import ReadAhead


async def _let_others_run(steps: int = 200) -> None:
    for _ in range(steps):
        await asyncio.sleep(0)


def test_the_next_history_request_leaves_while_a_batch_is_being_handled_and_reading_stays_bounded() -> None:
    sim = SimulatedTelegram(parse_spec("chats=1,messages=450,media=0,latency_ms=0,seed=4"))

    async def run() -> tuple[int, int, list[int]]:
        client = sim.client(raise_last_call_error=True, request_retries=1)
        async with TelegramSource(client, TelegramSettings(), batch_size=100) as source:
            (chat,) = [c async for c in source.chats()]
            batches = source.batches(chat, 0)
            first = await batches.__anext__()
            before = sim.stats.count("GetHistory")
            await _let_others_run()  # the caller is busy with the first batch (rendering, writing ...)
            during = sim.stats.count("GetHistory")
            ids = [m.id for m in first] + [m.id async for batch in batches for m in batch]
        return before, during, ids

    before, during, ids = asyncio.run(run())
    # the next page was asked for; at most one more waits in Telethon's buffer (two pages held, never more)
    assert before + 1 <= during <= before + 2
    assert ids == sorted(set(ids)) and len(ids) == 450  # in order, nothing lost or repeated


class _Pages:
    """A lazy iterator of pages like Telethon's: a page is fetched when the caller wants its first item."""

    def __init__(self, pages: list[list[int]], error_after: int | None = None) -> None:
        self.pages, self.fetched, self.error_after = pages, 0, error_after

    async def __aiter__(self) -> AsyncIterator[int]:
        for page in self.pages:
            if self.error_after is not None and self.fetched == self.error_after:
                raise ConnectionError("flood or timeout")
            await asyncio.sleep(0)  # the request
            self.fetched += 1
            for item in page:
                yield item


def test_read_ahead_raises_an_error_after_every_item_read_before_it() -> None:
    pages = _Pages([[1, 2], [3, 4], [5, 6]], error_after=2)

    async def run() -> list[int]:
        ahead = ReadAhead(pages.__aiter__(), ahead=2)
        seen = []
        with pytest.raises(ConnectionError):
            async for item in ahead:
                seen.append(item)
        await ahead.aclose()
        return seen

    assert asyncio.run(run()) == [1, 2, 3, 4]


def test_read_ahead_closed_early_stops_fetching() -> None:
    pages = _Pages([[n, n] for n in range(50)])

    async def run() -> int:
        ahead = ReadAhead(pages.__aiter__(), ahead=2)
        assert await ahead.__anext__() == 0
        await ahead.aclose()
        fetched = pages.fetched
        await _let_others_run()
        assert pages.fetched == fetched
        with pytest.raises(StopAsyncIteration):
            await ahead.__anext__()
        return fetched

    assert asyncio.run(run()) <= 2


def test_take_hands_over_everything_read_so_far_then_the_error_after_it() -> None:
    pages = _Pages([[1, 2], [3, 4], [5, 6]], error_after=2)

    async def run() -> list[list[int]]:
        ahead = ReadAhead(pages.__aiter__(), ahead=2)
        taken = [await ahead.take(60), await ahead.take(60)]
        with pytest.raises(ConnectionError):
            await ahead.take(60)
        with pytest.raises(StopAsyncIteration):
            await ahead.take(60)
        await ahead.aclose()
        return taken

    assert asyncio.run(run()) == [[1, 2], [3, 4]]


def test_take_ends_with_stop_async_iteration_after_the_last_page() -> None:
    pages = _Pages([[1, 2, 3], [4]])

    async def run() -> list[int]:
        ahead = ReadAhead(pages.__aiter__(), ahead=3)
        seen: list[int] = []
        with pytest.raises(StopAsyncIteration):
            while True:
                seen.extend(await ahead.take(60))
        await ahead.aclose()
        return seen

    assert asyncio.run(run()) == [1, 2, 3, 4]


def test_take_times_out_when_no_page_arrives_and_can_be_asked_again() -> None:
    from virtualtime import run_virtual

    gate: list[asyncio.Future[None]] = []

    async def stalled() -> AsyncIterator[int]:
        yield 1
        gate.append(asyncio.get_running_loop().create_future())
        await gate[0]  # the next request hangs until released
        yield 2

    async def run() -> tuple[list[int], float, list[int]]:
        loop = asyncio.get_running_loop()
        ahead = ReadAhead(stalled(), ahead=5)
        first = await ahead.take(30)
        started = loop.time()
        with pytest.raises(TimeoutError):
            await ahead.take(30)
        waited = loop.time() - started
        gate[0].set_result(None)
        second = await ahead.take(30)
        await ahead.aclose()
        return first, waited, second

    first, waited, second = run_virtual(run())
    assert first == [1] and second == [2]
    assert waited == pytest.approx(30)


def test_a_history_read_sets_one_deadline_per_page_not_per_message(monkeypatch: pytest.MonkeyPatch) -> None:
    sim = SimulatedTelegram(parse_spec("chats=1,messages=450,media=0,latency_ms=0,seed=4"))
    deadlines = 0
    real_timeout = asyncio.timeout

    def counting_timeout(delay: float | None) -> asyncio.Timeout:
        nonlocal deadlines
        deadlines += 1
        return real_timeout(delay)

    async def run() -> int:
        nonlocal deadlines
        client = sim.client(raise_last_call_error=True, request_retries=1)
        async with TelegramSource(client, TelegramSettings(), batch_size=100) as source:
            (chat,) = [c async for c in source.chats()]
            deadlines = 0
            monkeypatch.setattr(asyncio, "timeout", counting_timeout)
            read = [m.id async for batch in source.batches(chat, 0) for m in batch]
            monkeypatch.undo()
        return len(read)

    assert asyncio.run(run()) == 450
    assert deadlines <= 20  # 5 pages, their waits and the end check; per message it was over 450
