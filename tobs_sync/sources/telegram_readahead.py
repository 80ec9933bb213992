"""Read-ahead of one history page: the next request to Telegram leaves while a page is converted.

Telethon's ``iter_messages`` is lazy: it asks for the next page (100 messages) only when the
caller wants the message after the last one it holds, so each chat paid a full round trip after
converting every page. :class:`ReadAhead` pulls the iterator in a task of its own into a queue of
one page: while the caller converts a page, the request for the next one is already out, and the
answer waits in Telethon's buffer until the queue has room. So at most two pages are held, and
the order of messages and errors is the iterator's: an error (a flood wait, a timeout, a refused
request) is raised to the caller after every message read before it, exactly where the lazy
iterator would have raised it.

Limits: a request is timed by the caller (its ``within`` around :meth:`ReadAhead.__anext__`),
from when it asks for the message, not from when the request left; :meth:`ReadAhead.aclose`
must be called (it cancels the pulling task) when the caller stops early.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

HISTORY_PAGE = 100
"""Messages per history request (Telethon's ``iter_messages`` page)."""

_END = StopAsyncIteration


class ReadAhead:
    """The items of ``iterator``, read by a task of its own up to ``ahead`` items before the caller."""

    def __init__(self, iterator: AsyncIterator[Any], ahead: int = HISTORY_PAGE) -> None:
        self._queue: asyncio.Queue[tuple[Any, BaseException | None]] = asyncio.Queue(maxsize=ahead)
        self._task = asyncio.get_running_loop().create_task(self._pull(iterator))
        self._done = False

    async def _pull(self, iterator: AsyncIterator[Any]) -> None:
        try:
            async for item in iterator:
                await self._queue.put((item, None))
        except asyncio.CancelledError:
            raise
        except Exception as error:  # handed to the caller in order, after what was read before it
            await self._queue.put((None, error))
        else:
            await self._queue.put((None, _END()))

    def __aiter__(self) -> ReadAhead:
        return self

    async def __anext__(self) -> Any:
        if self._done:
            raise StopAsyncIteration
        item, error = await self._queue.get()
        if error is not None:
            self._done = True
            raise error
        return item

    async def aclose(self) -> None:
        """Stop reading: the pulling task is cancelled (a request in flight is dropped)."""
        self._done = True
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
