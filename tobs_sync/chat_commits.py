"""A chat's started batches finished in the background, one at a time, in the chat's order.

A sync pass publishes a batch in two halves. The first (grouping, media, rendering, the intended
hashes recorded, the temp-file writes started: :meth:`tobs_sync.publish.Publisher.start`) runs
under the publishing stage; the second (the writes awaited, renames, folder fsyncs, the commit of
rows, media rows and cursor: :meth:`tobs_sync.publish.Publisher.finish`) is handed to
:class:`ChatCommits`, which runs it in a task of its own while the stage renders the next batch of
this chat or of another one.

Rules, per chat: at most one batch is outstanding (handed over and not yet committed); a batch is
handed over only once the one before it has committed, so commits (and so the cursor) follow the
chat's order and a cursor never passes a batch that was not committed. If the outstanding batch
fails or is cancelled, the next one is abandoned (its temp files removed, nothing committed) and
the error is raised to the chat. A batch that touches a note the outstanding one is writing (an
album continued) waits for that commit before it reads the note (:meth:`ChatCommits.holds`,
:meth:`ChatCommits.wait`). Limits: one event loop; the chat's other writers (reconciliation,
comments, the chat note) must run after :meth:`ChatCommits.wait`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from tobs_sync.publish import PendingBatch, Published, Publisher


class ChatCommits:
    """The outstanding second half of a chat's batches (at most one)."""

    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher
        self._running: asyncio.Future[None] | None = None
        self._paths: frozenset[str] = frozenset()

    def holds(self, paths: Iterable[str]) -> bool:
        """Whether the outstanding batch (if any) publishes one of ``paths``."""
        return self._running is not None and not self._paths.isdisjoint(paths)

    async def wait(self) -> None:
        """Until the outstanding batch has committed; raises its error (or its cancellation)."""
        running = self._running
        if running is None:
            return
        await asyncio.wait({running})
        self._running, self._paths = None, frozenset()
        running.result()

    async def hand_over(self, pending: PendingBatch, committed: Callable[[Published], None]) -> None:
        """Finish ``pending`` in the background once the batch before it has committed, then call
        ``committed`` with what was published. If the batch before failed, or this call is
        cancelled, ``pending`` is abandoned and the error raised."""
        try:
            await self.wait()
        except BaseException:
            self._publisher.abandon(pending)
            raise
        self._running = asyncio.ensure_future(self._finish(pending, committed))
        self._paths = pending.paths

    async def close(self) -> None:
        """On the way out after an error: let the outstanding batch commit (it is complete), or
        cancel it if this call is cancelled meanwhile. Raises nothing of its own."""
        running = self._running
        if running is None:
            return
        try:
            await asyncio.wait({running})
        except asyncio.CancelledError:
            running.cancel()
            await asyncio.wait({running})
            raise
        finally:
            self._running, self._paths = None, frozenset()
            if running.done() and not running.cancelled():
                running.exception()  # retrieved: the error that ends the chat is raised already

    async def _finish(self, pending: PendingBatch, committed: Callable[[Published], None]) -> None:
        committed(await self._publisher.finish(pending))
