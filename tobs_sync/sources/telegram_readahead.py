"""Read-ahead of one history page: the next request to Telegram leaves while a page is converted.

Telethon's ``iter_messages`` is lazy: it asks for the next page (100 messages) only when the
caller wants the message after the last one it holds, so each chat paid a full round trip after
converting every page. :class:`ReadAhead` pulls the iterator in a task of its own into a buffer of
one page: while the caller converts a page, the request for the next one is already out, and the
answer waits in Telethon's buffer until the buffer has room. So at most two pages are held besides
the one the caller is converting, and the order of messages and errors is the iterator's: an error
(a flood wait, a timeout, a refused request) is raised to the caller after every message read
before it, exactly where the lazy iterator would have raised it.

:meth:`ReadAhead.take` hands over everything read so far at once (a page, usually), with one
deadline for the wait when nothing is there yet: a history read pays for one timer per page, not
one per message. ``async for`` still gives one item at a time.

Limits: a request is timed by the caller (the ``timeout`` of :meth:`ReadAhead.take`), from when
it asks for more, not from when the request left; :meth:`ReadAhead.aclose` must be called (it
cancels the pulling task) when the caller stops early.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

HISTORY_PAGE = 100
"""Messages per history request (Telethon's ``iter_messages`` page)."""


class ReadAhead:
    """The items of ``iterator``, read by a task of its own up to ``ahead`` items before the caller."""

    def __init__(self, iterator: AsyncIterator[Any], ahead: int = HISTORY_PAGE) -> None:
        self._loop = asyncio.get_running_loop()
        self._ahead = ahead
        self._items: deque[Any] = deque()
        self._end: BaseException | None = None
        """What ends the items: ``StopAsyncIteration`` or the iterator's error, raised once they are taken."""
        self._wanted: asyncio.Future[None] | None = None
        """Set while the caller waits for items."""
        self._room: asyncio.Future[None] | None = None
        """Set while the pulling task waits for the caller to take items."""
        self._done = False
        self._task = self._loop.create_task(self._pull(iterator))

    async def _pull(self, iterator: AsyncIterator[Any]) -> None:
        items = self._items
        try:
            async for item in iterator:
                while len(items) >= self._ahead:
                    self._room = self._loop.create_future()
                    await self._room
                items.append(item)
                _wake(self._wanted)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # handed to the caller in order, after what was read before it
            self._end = error
        else:
            self._end = StopAsyncIteration()
        _wake(self._wanted)

    async def _arrival(self) -> None:
        """Wait until there is an item or the end."""
        while not self._items and self._end is None:
            self._wanted = self._loop.create_future()
            try:
                await self._wanted
            finally:
                self._wanted = None

    def _finish(self) -> BaseException:
        """The end to raise now that every item before it was taken (then the iterator is done)."""
        self._done = True
        end, self._end = self._end, StopAsyncIteration()
        return end if end is not None else StopAsyncIteration()

    async def take(self, timeout: float) -> list[Any]:
        """Every item read so far (at least one), waiting at most ``timeout`` seconds for the first
        (``TimeoutError``); raises the iterator's error, or ``StopAsyncIteration`` at its end, once
        every item before it was taken."""
        if self._done:
            raise StopAsyncIteration
        if not self._items and self._end is None:
            async with asyncio.timeout(timeout):
                await self._arrival()
        if not self._items:
            raise self._finish()
        taken = list(self._items)
        self._items.clear()
        _wake(self._room)
        return taken

    def __aiter__(self) -> ReadAhead:
        return self

    async def __anext__(self) -> Any:
        if self._done:
            raise StopAsyncIteration
        await self._arrival()
        if not self._items:
            raise self._finish()
        item = self._items.popleft()
        _wake(self._room)
        return item

    async def aclose(self) -> None:
        """Stop reading: the pulling task is cancelled (a request in flight is dropped)."""
        self._done = True
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
