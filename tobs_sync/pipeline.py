"""Bounded stages with backpressure: lanes run concurrently, items are read ahead, work is committed in order.

Two building blocks, knowing nothing of what flows through them:

* :func:`run_lanes` runs one coroutine per lane (a chat, say), at most ``concurrency`` at once. The
  next lane is taken from the iterator only when a slot is free, so a lazy iterator (one that
  streams a file) is never advanced while it cannot be used, and with ``concurrency=1`` the lanes
  run strictly one after the other.
* :func:`read_ahead` reads items (batches) from an async iterator in a task of its own while the
  caller's ``consume`` handles earlier ones, in the order read. At most ``ahead`` items wait
  between the two (a bounded queue); when the consumer is slow, reading pauses. So the memory a
  lane holds is bounded by ``ahead`` + 2 items (one being read, ``ahead`` queued, one consumed)
  whatever the length of its history.

A :class:`Stage` serialises one kind of work across lanes (publishing: one writer per vault):
lanes queue for it in the order they ask, and while one lane holds it the others keep reading.

Failure and cancellation: an error while *reading* ends the reading; the items already read are
still consumed, in order, then the error is raised (what was read is not lost). An error while
*consuming* cancels the reading and is raised at once. In :func:`run_lanes` the first lane that
fails cancels every other lane; the error is raised once all of them have ended, so no task is
left running. Limits: single event loop; the consumer runs on the loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

_END = object()


class _Failed(Generic[T]):
    """What the reader puts in the queue when reading failed."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class Stage:
    """Work done by one lane at a time (e.g. publishing a batch), taken in the order lanes ask for it."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> Stage:
        await self._lock.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release()


async def read_ahead(
    items: AsyncIterable[T], consume: Callable[[T], Awaitable[None]], *, ahead: int
) -> None:
    """Consume every item of ``items`` in order while up to ``ahead`` later ones are read meanwhile."""
    if ahead < 1:
        raise ValueError("ahead must be at least 1")
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=ahead)

    async def reader() -> None:
        iterator = aiter(items)
        try:
            async for item in iterator:
                await queue.put(item)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            await queue.put(_Failed(error))
            return
        finally:
            if isinstance(iterator, AsyncIterator) and hasattr(iterator, "aclose"):
                with contextlib.suppress(Exception):
                    await iterator.aclose()
        await queue.put(_END)

    task = asyncio.ensure_future(reader())
    try:
        while True:
            item = await queue.get()
            if item is _END:
                break
            if isinstance(item, _Failed):
                raise item.error
            await consume(item)  # type: ignore[arg-type]
    finally:
        await _cancel(task)


async def run_lanes(
    lanes: AsyncIterable[T], run_lane: Callable[[T], Awaitable[None]], *, concurrency: int
) -> None:
    """Run ``run_lane`` for every lane, at most ``concurrency`` at once, started in the order given."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    slots = asyncio.Semaphore(concurrency)
    running: set[asyncio.Future[None]] = set()
    failures: list[BaseException] = []
    failed = asyncio.Event()

    def finished(task: asyncio.Future[None]) -> None:
        running.discard(task)
        slots.release()
        if not task.cancelled() and task.exception() is not None:
            failures.append(task.exception())  # type: ignore[arg-type]
            failed.set()

    iterator = aiter(lanes)
    try:
        while await _acquire_unless(slots, failed):
            try:
                lane = await anext(iterator)
            except StopAsyncIteration:
                slots.release()
                break
            task = asyncio.ensure_future(run_lane(lane))
            running.add(task)
            task.add_done_callback(finished)
        while running and not failed.is_set():
            await asyncio.wait(set(running), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in list(running):
            await _cancel(task)
    if failures:
        raise failures[0]


async def _acquire_unless(slots: asyncio.Semaphore, failed: asyncio.Event) -> bool:
    """Take a slot, unless a lane fails first (then False)."""
    if failed.is_set():
        return False
    acquire = asyncio.ensure_future(slots.acquire())
    stop = asyncio.ensure_future(failed.wait())
    try:
        await asyncio.wait({acquire, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        if not acquire.done():
            acquire.cancel()
            await asyncio.gather(acquire, return_exceptions=True)
    if failed.is_set():
        if acquire.done() and not acquire.cancelled():
            slots.release()
        return False
    return True


async def _cancel(task: asyncio.Future[object]) -> None:
    """Cancel ``task`` (if still running) and wait until it has really ended."""
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
