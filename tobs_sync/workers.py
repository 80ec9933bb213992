"""DC-aware download scheduling: one queue per Telegram data centre, each with its own workers.

A file lives on the data centre (DC) named by its ``dc_id``. Jobs are queued per DC; each DC
has its own bounded number of workers, and a global cap bounds them all. When a job reports a
flood wait (:class:`~tobs_sync.errors.FloodWait`), only that DC's queue pauses for the wait
while the other DCs keep going; the job is retried after the pause. A DC whose wait exceeds
``max_flood_wait`` is given up for this run: its remaining jobs fail with ``FloodWait`` so the
caller can record them and retry on a later pass. Jobs of one DC run back to back, so its
connection stays warm.

:class:`GlobalPool` is the naive alternative (one shared pool, a flood wait sleeps in the
worker that hit it), kept for the benchmark that shows why the DC-aware scheduler exists.

Time is read from the running event loop (``loop.time()``, a monotonic clock) and waited with
``asyncio.sleep`` on that same loop: one clock for both, so a loop with a virtual clock (tests)
decides every pause without real waiting.

Limits: the scheduler knows nothing of Telegram; jobs are coroutines that either return a
result or raise. Jobs without a DC (local files of a Desktop export) share one lane.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from tobs_sync.errors import FloodWait

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Job(Generic[T]):
    """One download: ``run`` does the work; ``dc_id`` says which queue it waits in; ``abandon``
    (if given) is called when the job is given up for this run after a flood wait that was too long,
    so it can release what it holds (a half-written temp file) at once."""

    key: Hashable
    dc_id: int | None
    run: Callable[[], Awaitable[T]]
    abandon: Callable[[], None] | None = None


@dataclass(slots=True)
class _Lane:
    jobs: list[Job[Any]]
    paused_until: float = 0.0
    given_up: FloodWait | None = None


def _now() -> float:
    """The running event loop's clock: the one ``asyncio.sleep`` waits on."""
    return asyncio.get_running_loop().time()


class DcScheduler:
    """Runs jobs with per-DC queues, per-DC concurrency and per-DC flood pauses."""

    def __init__(self, *, per_dc: int = 2, total: int = 6, max_flood_wait: float = 300.0) -> None:
        if per_dc < 1 or total < 1:
            raise ValueError("per_dc and total must be at least 1")
        self._per_dc = per_dc
        self._total = total
        self._max_flood_wait = max_flood_wait

    async def run_all(self, jobs: Sequence[Job[T]]) -> dict[Hashable, T | BaseException]:
        """Run every job; the result of each, or the exception it ended with, by key."""
        lanes: dict[int | None, _Lane] = {}
        grouped: dict[int | None, list[Job[Any]]] = defaultdict(list)
        for job in jobs:
            grouped[job.dc_id].append(job)
        for dc_id, dc_jobs in grouped.items():
            lanes[dc_id] = _Lane(list(reversed(dc_jobs)))  # pop() from the end keeps submission order
        results: dict[Hashable, T | BaseException] = {}
        slots = asyncio.Semaphore(self._total)
        workers = [
            self._worker(dc_id, lane, slots, results)
            for dc_id, lane in lanes.items()
            for _ in range(min(self._per_dc, len(lane.jobs)))
        ]
        await asyncio.gather(*workers)
        return results

    async def _worker(
        self, dc_id: int | None, lane: _Lane, slots: asyncio.Semaphore, results: dict[Hashable, Any]
    ) -> None:
        while lane.jobs:
            wait = lane.paused_until - _now()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            job = lane.jobs.pop()
            if lane.given_up is not None:
                results[job.key] = lane.given_up
                if job.abandon is not None:
                    job.abandon()
                continue
            async with slots:
                try:
                    results[job.key] = await job.run()
                except FloodWait as flood:
                    self._pause(dc_id, lane, flood)
                    lane.jobs.append(job)  # retried after the pause (or failed if the DC is given up)
                except Exception as exc:
                    results[job.key] = exc

    def _pause(self, dc_id: int | None, lane: _Lane, flood: FloodWait) -> None:
        if flood.seconds > self._max_flood_wait:
            if lane.given_up is None:
                log.warning("DC %s asks to wait %g s (more than %g s): its downloads are deferred to the next pass",
                            dc_id, flood.seconds, self._max_flood_wait)
            lane.given_up = flood
            return
        now = _now()
        until = now + flood.seconds
        if until > lane.paused_until:
            if lane.paused_until <= now:
                log.info("DC %s asks to wait %g s: pausing its downloads, other DCs continue", dc_id, flood.seconds)
            lane.paused_until = until


class GlobalPool:
    """The naive scheduler: one pool for all DCs; a flood wait sleeps the worker that hit it."""

    def __init__(self, *, total: int = 6, max_flood_wait: float = 300.0) -> None:
        self._total = total
        self._max_flood_wait = max_flood_wait

    async def run_all(self, jobs: Sequence[Job[T]]) -> dict[Hashable, T | BaseException]:
        queue = list(reversed(jobs))
        results: dict[Hashable, T | BaseException] = {}

        async def worker() -> None:
            while queue:
                job = queue.pop()
                while True:
                    try:
                        results[job.key] = await job.run()
                    except FloodWait as flood:
                        if flood.seconds > self._max_flood_wait:
                            results[job.key] = flood
                            if job.abandon is not None:
                                job.abandon()
                            break
                        await asyncio.sleep(flood.seconds)
                        continue
                    except Exception as exc:
                        results[job.key] = exc
                    break

        await asyncio.gather(*(worker() for _ in range(min(self._total, len(jobs)) or 1)))
        return results
