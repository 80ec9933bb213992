"""One shared, bounded worker pool that runs every processor on every stored media file.

:class:`ProcessorPool` asks each processor ``available()`` once, at construction (a missing tool
costs one log line there, then the processor is skipped). :meth:`ProcessorPool.run` runs the
applicable processors of one file on worker threads (they block on subprocesses), at most
``max_workers`` at a time across all files and processors, and merges their properties in processor
order: a key set by an earlier processor is never overwritten by a later one. A processor that
raises, or returns something unusable, is logged and contributes nothing; the others still count.

Backpressure: at most ``max_workers`` jobs run and at most ``max_pending`` more wait for a worker;
a ``run`` that would exceed that awaits a free slot, so a fast producer (an import of 100 000
messages) cannot queue unbounded work. A job is one processor on one file.

Processors with ``replaces_file = True`` (the re-encoder) run after all other processors of that
file have finished, one after another, so nobody probes a file while it is being replaced.

Limits: a running job cannot be interrupted (a cancelled ``run`` stops waiting, the thread finishes
its job); ``aclose`` waits for running jobs and drops queued ones. Not thread-safe: use one event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from tobs_sync.model import MediaRef
from tobs_sync.processors.base import LOGGER, Processor, PropertyValue, clean_properties


class ProcessorPool:
    """Runs processors on a bounded thread pool; see the module docstring."""

    def __init__(self, processors: Iterable[Processor], max_workers: int = 2, max_pending: int = 64) -> None:
        if max_workers < 1 or max_pending < 0:
            raise ValueError("max_workers must be >= 1 and max_pending >= 0")
        self.max_workers = max_workers
        self.max_pending = max_pending
        self._processors = tuple(p for p in processors if _is_available(p))
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers, thread_name_prefix="tobs-processor")
        self._slots = asyncio.Semaphore(max_workers + max_pending)
        self._in_flight = 0
        self._closed = False

    @property
    def processors(self) -> tuple[Processor, ...]:
        """The available processors, in merge order."""
        return self._processors

    @property
    def in_flight(self) -> int:
        """Jobs submitted and not finished (running or waiting for a worker)."""
        return self._in_flight

    async def run(self, path: Path, media: MediaRef) -> dict[str, PropertyValue]:
        """Properties of the stored file ``path`` (absolute) from every processor for ``media.kind``."""
        if self._closed:
            raise RuntimeError("ProcessorPool is closed")
        kind = str(media.kind)
        applicable = [p for p in self._processors if kind in p.kinds]
        readers = [p for p in applicable if not getattr(p, "replaces_file", False)]
        writers = [p for p in applicable if getattr(p, "replaces_file", False)]
        results = list(await asyncio.gather(*(self._submit(p, path, media) for p in readers)))
        for processor in writers:
            results.append(await self._submit(processor, path, media))
        merged: dict[str, PropertyValue] = {}
        for processor, properties in zip([*readers, *writers], results, strict=True):
            for key, value in properties.items():
                if key in merged:
                    LOGGER.debug("processor %r: property %r already set by an earlier processor", processor.name, key)
                else:
                    merged[key] = value
        return merged

    async def _submit(self, processor: Processor, path: Path, media: MediaRef) -> dict[str, PropertyValue]:
        await self._slots.acquire()
        loop = asyncio.get_running_loop()
        try:
            future = self._executor.submit(_call, processor, path, media)
        except BaseException:
            self._slots.release()
            raise
        self._in_flight += 1

        def finished(_: concurrent.futures.Future[dict[str, PropertyValue]]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(self._release)

        # Registered before wrap_future's own callback, so the slot is free when ``run`` resumes.
        future.add_done_callback(finished)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if future.cancelled() and self._closed and task is not None and not task.cancelling():
                return {}  # a queued job dropped by aclose(), not a cancellation of the caller
            raise

    def _release(self) -> None:
        self._in_flight -= 1
        self._slots.release()

    def close(self) -> None:
        """Stop accepting work, drop queued jobs, wait for running ones (from synchronous code)."""
        self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def aclose(self) -> None:
        """Stop accepting work, drop queued jobs, wait for running ones."""
        self._closed = True
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)

    async def __aenter__(self) -> ProcessorPool:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def _is_available(processor: Processor) -> bool:
    try:
        return bool(processor.available())
    except Exception:
        LOGGER.exception("processor %r: available() failed; disabled", getattr(processor, "name", processor))
        return False


def _call(processor: Processor, path: Path, media: MediaRef) -> dict[str, PropertyValue]:
    """One job, on a worker thread: never raises."""
    try:
        properties = processor.process(path, media)
    except Exception:
        LOGGER.exception("processor %r failed on %s; its properties are ignored", processor.name, path)
        return {}
    return clean_properties(properties, repr(processor.name))
