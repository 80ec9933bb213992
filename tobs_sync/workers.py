"""DC-aware download scheduling: one long-lived queue per Telegram data centre, each with its own workers.

A file lives on the data centre (DC) named by its ``dc_id``. A :class:`DcScheduler` lives as long
as the app and is shared by every batch and every chat of a pass: jobs are submitted to it
(:meth:`DcScheduler.submit`, or a whole set with :meth:`DcScheduler.run_all`) and queue per DC,
whoever submitted them. Each DC has at most ``per_dc`` workers running at once and a global cap
bounds them all, across every caller, so two batches (or two chats) fetching at the same time never
double a DC's concurrency. When a job reports a flood wait (:class:`~tobs_sync.errors.FloodWait`),
only that DC's queue pauses for the wait while the other DCs keep going; the job is retried after
the pause (the earliest end that the answers received during a pause allow: Telegram tells a wait in whole
seconds, rounded up, so a later answer to a request sent before the pause often ends it later than
the flood does). Nothing more is sent to a paused DC: a job of that DC already running (a file part way
through) calls :func:`stop_if_paused` between two requests and so goes back to the head of its queue,
to go on from where it stopped once the pause is over, instead of sending requests that Telegram
refuses (and, some users report, holds against the client: its wait grows). A DC whose
wait exceeds ``max_flood_wait`` is given up until that wait is over: the jobs
it holds then, and those submitted meanwhile, fail with ``FloodWait`` so the caller can record them
and retry on a later pass. Jobs of one DC run back to back, so its connection stays warm. A DC's
workers end when its queue is empty and start again with the next job submitted.

:class:`GlobalPool` is the naive alternative, what a plain client does (one shared pool; a flood
wait sleeps the worker that hit it while the other workers go on sending, to that DC too), kept for
the benchmark that shows why the DC-aware scheduler exists.

Time is read from the running event loop (``loop.time()``, a monotonic clock) and waited with
``asyncio.sleep`` on that same loop: one clock for both, so a loop with a virtual clock (tests)
decides every pause without real waiting.

Limits: the scheduler knows nothing of Telegram; jobs are coroutines that either return a result
or raise. Jobs without a DC (local files of a Desktop export) share one lane. One event loop at a
time: used from a new loop, the scheduler starts afresh (the old loop's workers are gone). A job
whose future is cancelled before it starts is skipped; one already running is not interrupted.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
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
    queue: deque[tuple[Job[Any], asyncio.Future[Any]]] = field(default_factory=deque)
    workers: int = 0
    paused_until: float = 0.0
    given_up: FloodWait | None = None
    given_up_until: float = 0.0


class LanePaused(Exception):  # a signal to the scheduler, not an error
    """Raised by :func:`stop_if_paused` in a job whose DC is paused: the job goes back to its queue."""


_RUNNING_LANE: contextvars.ContextVar[_Lane | None] = contextvars.ContextVar("tobs_sync_running_lane", default=None)
"""The lane of the job the current task runs for a :class:`DcScheduler` (None elsewhere)."""


def stop_if_paused() -> None:
    """For a job between two requests to its DC: raise :class:`LanePaused` if that DC is paused (a flood
    wait answered to another of its jobs, or given up until a long wait ends), so that nothing more is
    sent to it before the wait ends. The job is run again after the pause and must go on from where it
    stopped. Does nothing outside a :class:`DcScheduler` job (the naive pool sends on, as a plain client
    does)."""
    lane = _RUNNING_LANE.get()
    if lane is None:
        return
    now = _now()
    if lane.paused_until > now or (lane.given_up is not None and now < lane.given_up_until):
        raise LanePaused


def _now() -> float:
    """The running event loop's clock: the one ``asyncio.sleep`` waits on."""
    return asyncio.get_running_loop().time()


async def _attempt(job: Job[T], future: asyncio.Future[T]) -> FloodWait | LanePaused | None:
    """Run ``job`` once and settle ``future`` with its result or error. A flood wait (or a stop for a
    pause already known) is returned with ``future`` unsettled (the caller pauses, then runs the job
    again); a cancellation cancels ``future`` and goes on only when the worker itself is being stopped."""
    try:
        result = await job.run()
    except FloodWait as flood:
        return flood
    except LanePaused as paused:
        return paused
    except asyncio.CancelledError:
        future.cancel()
        if _stopping():
            raise
    except Exception as exc:
        _settle(future, error=exc)
    else:
        _settle(future, result)
    return None


def _settle(future: asyncio.Future[Any], result: object = None, error: BaseException | None = None) -> None:
    """Give ``future`` its outcome, unless its waiter has given up on it (cancelled)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _stopping() -> bool:
    """Whether the running worker itself is being cancelled (not merely a job that ended cancelled:
    then the worker goes on with the next job, so no job queued behind it waits forever)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _keep(tasks: set[asyncio.Task[None]], task: asyncio.Task[None]) -> None:
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _gather_keyed(jobs: Sequence[Job[Any]], futures: Sequence[asyncio.Future[Any]]) -> dict[Hashable, Any]:
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    return {job.key: outcome for job, outcome in zip(jobs, outcomes, strict=True)}


class DcScheduler:
    """Long-lived per-DC queues with per-DC concurrency and per-DC flood pauses, shared by every caller."""

    def __init__(self, *, per_dc: int = 2, total: int = 6, max_flood_wait: float = 300.0) -> None:
        if per_dc < 1 or total < 1:
            raise ValueError("per_dc and total must be at least 1")
        self._per_dc = per_dc
        self._total = total
        self._max_flood_wait = max_flood_wait
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lanes: dict[int | None, _Lane] = {}
        self._slots = asyncio.Semaphore(total)
        self._tasks: set[asyncio.Task[None]] = set()
        """The running workers (held here: the loop keeps only weak references to tasks)."""

    def submit(self, job: Job[T]) -> asyncio.Future[T]:
        """Queue ``job`` on its DC's lane; its result (or the exception it ended with) comes in the future."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop: the old one's workers are gone
            self._loop, self._lanes, self._slots = loop, {}, asyncio.Semaphore(self._total)
        slots = self._slots
        future: asyncio.Future[T] = loop.create_future()
        lane = self._lanes.setdefault(job.dc_id, _Lane())
        lane.queue.append((job, future))
        if lane.workers < self._per_dc:
            lane.workers += 1
            _keep(self._tasks, loop.create_task(self._worker(job.dc_id, lane, slots)))
        return future

    async def run_all(self, jobs: Sequence[Job[T]]) -> dict[Hashable, T | BaseException]:
        """Run every job; the result of each, or the exception it ended with, by key."""
        return await _gather_keyed(jobs, [self.submit(job) for job in jobs])

    async def _worker(self, dc_id: int | None, lane: _Lane, slots: asyncio.Semaphore) -> None:
        try:
            while lane.queue:
                wait = lane.paused_until - _now()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                job, future = lane.queue.popleft()
                if future.done():
                    continue  # its waiter gave up on it
                if lane.given_up is not None and _now() < lane.given_up_until:
                    _settle(future, error=lane.given_up)
                    if job.abandon is not None:
                        job.abandon()
                    continue
                lane.given_up = None
                async with slots:
                    running = _RUNNING_LANE.set(lane)
                    try:
                        stopped = await _attempt(job, future)
                    finally:
                        _RUNNING_LANE.reset(running)
                    if stopped is not None:
                        if isinstance(stopped, FloodWait):
                            self._pause(dc_id, lane, stopped)
                        lane.queue.appendleft((job, future))  # retried after the pause (or failed if given up)
        finally:
            lane.workers -= 1

    def _pause(self, dc_id: int | None, lane: _Lane, flood: FloodWait) -> None:
        now = _now()
        if flood.seconds > self._max_flood_wait:
            if lane.given_up is None:
                log.warning("DC %s asks to wait %g s (more than %g s): its downloads are deferred to the next pass",
                            dc_id, flood.seconds, self._max_flood_wait)
            lane.given_up = flood
            lane.given_up_until = max(lane.given_up_until, now + flood.seconds)
            return
        until = now + flood.seconds
        if lane.paused_until > now:
            # Answered to a request sent before the pause: the same flood, its end told again in whole
            # seconds rounded up. Every answer bounds the end from above; the earliest bound is the best.
            lane.paused_until = min(lane.paused_until, until)
            return
        log.info("DC %s asks to wait %g s: pausing its downloads, other DCs continue", dc_id, flood.seconds)
        lane.paused_until = until


class GlobalPool:
    """The naive scheduler: one pool for all DCs; a flood wait sleeps the worker that hit it."""

    def __init__(self, *, total: int = 6, max_flood_wait: float = 300.0) -> None:
        self._total = total
        self._max_flood_wait = max_flood_wait
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: deque[tuple[Job[Any], asyncio.Future[Any]]] = deque()
        self._workers = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, job: Job[T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._queue, self._workers = loop, deque(), 0
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append((job, future))
        if self._workers < self._total:
            self._workers += 1
            _keep(self._tasks, loop.create_task(self._worker()))
        return future

    async def run_all(self, jobs: Sequence[Job[T]]) -> dict[Hashable, T | BaseException]:
        return await _gather_keyed(jobs, [self.submit(job) for job in jobs])

    async def _worker(self) -> None:
        _RUNNING_LANE.set(None)  # this task's own context: no lane, whoever submitted the first job
        try:
            while self._queue:
                job, future = self._queue.popleft()
                if future.done():
                    continue
                while isinstance(flood := await _attempt(job, future), FloodWait):
                    if flood.seconds > self._max_flood_wait:
                        _settle(future, error=flood)
                        if job.abandon is not None:
                            job.abandon()
                        break
                    await asyncio.sleep(flood.seconds)
        finally:
            self._workers -= 1
