"""Step 3 of publishing a batch: its notes' temp files written and fsynced by a few threads at once.

:class:`BatchWrites` makes the batch's folders on the calling thread, then hands the temp-file
writes (:meth:`tobs_sync.vault.Vault.prepare_write`: write, fsync, ``fstat``) to an executor as a
few chunks, about one per worker thread, each written one note after the other. The caller waits
for them (:meth:`BatchWrites.wait` on the event loop, :meth:`BatchWrites.wait_blocking` off it)
and gets the prepared writes back in the batch's order, or drops them all
(:meth:`BatchWrites.abandon`): nothing visible has changed until the caller renames them.

Why chunks: a journaling file system commits concurrent fsyncs together, so several threads
fsyncing at once cost about one journal commit per round instead of one per note; but one
future per note costs a hand-off between threads (futex calls, the GIL changing hands) per note.
Chunks keep the concurrency (one fsync in flight per thread) with one hand-off per thread.
Limits: a chunk is as slow as its slowest note; a failed write ends its chunk (its other temp
files are removed), and the batch fails once every chunk has ended.
"""

from __future__ import annotations

import asyncio
import posixpath
from collections.abc import Sequence
from concurrent.futures import Executor, Future, wait

from tobs_sync.vault import PreparedWrite, Vault


def chunked(items: Sequence[tuple[str, bytes]], chunks: int) -> list[Sequence[tuple[str, bytes]]]:
    """``items`` cut into at most ``chunks`` contiguous slices of near-equal length (none empty)."""
    count = max(1, min(chunks, len(items)))
    return [items[i * len(items) // count:(i + 1) * len(items) // count] for i in range(count)]


def write_chunk(vault: Vault, items: Sequence[tuple[str, bytes]]) -> list[PreparedWrite]:
    """Prepare every write of ``items`` in order; on a failure, drop those already prepared and raise."""
    prepared: list[PreparedWrite] = []
    try:
        for path, data in items:
            prepared.append(vault.prepare_write(path, data))
    except BaseException:
        for write in prepared:
            vault.discard_write(write)
        raise
    return prepared


class BatchWrites:
    """The temp-file writes of one batch, under way on an executor."""

    def __init__(
        self, vault: Vault, items: Sequence[tuple[str, bytes]], executor: Executor | None, chunks: int
    ) -> None:
        """Start writing ``items`` (path, bytes) on ``executor`` in ``chunks``; with no executor, write
        them here and now (one note is not worth a thread)."""
        self._vault = vault
        for folder in dict.fromkeys(posixpath.dirname(path) for path, _ in items):
            vault.ensure_folder(folder)
        self._futures: list[Future[list[PreparedWrite]]] = []
        if executor is not None:
            self._futures = [executor.submit(write_chunk, vault, chunk) for chunk in chunked(items, chunks)]
        elif items:
            done: Future[list[PreparedWrite]] = Future()
            done.set_result(write_chunk(vault, items))
            self._futures = [done]

    async def wait(self) -> list[PreparedWrite]:
        """The prepared writes, in order, once every chunk has ended (the event loop runs meanwhile).

        Cancelled while waiting: the threads are let finish, then what they wrote is dropped."""
        if self._futures:
            try:
                await asyncio.wait([asyncio.wrap_future(future) for future in self._futures])
            except BaseException:
                self.abandon()
                raise
        return self._collect()

    def wait_blocking(self) -> list[PreparedWrite]:
        """:meth:`wait` for a caller off the event loop."""
        wait(self._futures)
        return self._collect()

    def abandon(self) -> None:
        """Wait until no thread writes any more (chunks not yet started never start), then remove
        every temp file written."""
        wait([future for future in self._futures if not future.cancel()])  # a cancelled chunk never runs
        for future in self._futures:
            if not future.cancelled() and future.exception() is None:
                for write in future.result():
                    self._vault.discard_write(write)

    def _collect(self) -> list[PreparedWrite]:
        failures = [f.exception() for f in self._futures if f.cancelled() or f.exception() is not None]
        if failures:
            self.abandon()
            raise failures[0] or asyncio.CancelledError()
        return [write for future in self._futures for write in future.result()]
