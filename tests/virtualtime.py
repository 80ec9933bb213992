"""An asyncio event loop with a virtual clock, for tests where time decides the order of events.

``loop.time()`` starts at 0 and moves only when every task is waiting: instead of blocking until the
next timer is due, the loop jumps its clock to that timer. ``asyncio.sleep(300)`` then returns at
once, in order with every other sleeper, and ``loop.time()`` reads exactly 300 more afterwards, so
tests can assert *when* (in loop time) things happened without sleeping and without wall-clock bounds.

Work handed to threads (a ``ThreadPoolExecutor``: note writes and fsyncs, ``asyncio.to_thread``) takes
no virtual time: while any such work is under way the loop waits for it in real time instead of moving
its clock, so a pass that fsyncs in threads sees the same virtual times as one that does not.

Limits: only for code whose waiting is on this loop's timers (``asyncio.sleep``, ``asyncio.timeout``,
``loop.call_later``), on other tasks and on thread pools. A loop with nothing ready, no thread at work
and no timer pending would wait for I/O forever; it raises instead, naming that, so such a test fails
at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import selectors
import threading
from collections.abc import Coroutine, Iterator, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

_LATE_WAKE_UP_S = 2.0
"""Real seconds a loop with nothing to do waits for a thread's wake-up before it reports a deadlock."""


class _VirtualSelector(selectors.BaseSelector):
    """The loop's selector: reports ready file descriptors without blocking, and turns a wait for
    the next timer into a jump of the virtual clock."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._real = selectors.DefaultSelector()
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        while _THREAD_WORK.busy():  # time stands still while threads work: wait for them in real time
            ready = self._real.select(0.005)
            if ready:
                return ready
        ready = self._real.select(0)  # a thread that just ended may have woken the loop
        if ready:
            return ready
        if timeout is None:
            # A job counts as ended before its future's other callbacks run, so the wake-up of the loop
            # may still be on its way from that thread (late under load): wait for it in real time
            # before calling this a deadlock.
            ready = self._real.select(_LATE_WAKE_UP_S)
            if ready:
                return ready
            raise RuntimeError("virtual time: every task waits and no timer is pending (a deadlock, or real I/O)")
        self._loop.advance(timeout)
        return []

    def close(self) -> None:
        self._real.close()

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose ``time()`` is virtual (see the module docstring)."""

    def __init__(self) -> None:
        self._virtual_now = 0.0
        super().__init__(_VirtualSelector(self))

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        self._virtual_now += seconds


class _ThreadWork:
    """How many jobs submitted to thread pools have not ended (counted while a virtual loop runs)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending = 0

    def busy(self) -> bool:
        with self._lock:
            return self._pending > 0

    def started(self) -> None:
        with self._lock:
            self._pending += 1

    def ended(self, _future: object) -> None:
        with self._lock:
            self._pending -= 1


_THREAD_WORK = _ThreadWork()


@contextlib.contextmanager
def _counting_thread_work() -> Iterator[None]:
    """Count the jobs of every ``ThreadPoolExecutor`` (a test seam: the class's ``submit`` is wrapped)."""
    original = concurrent.futures.ThreadPoolExecutor.submit

    def submit(self: concurrent.futures.ThreadPoolExecutor, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        _THREAD_WORK.started()
        try:
            future = original(self, fn, *args, **kwargs)
        except BaseException:
            _THREAD_WORK.ended(None)
            raise
        future.add_done_callback(_THREAD_WORK.ended)
        return future

    concurrent.futures.ThreadPoolExecutor.submit = submit  # type: ignore[method-assign]
    try:
        yield
    finally:
        concurrent.futures.ThreadPoolExecutor.submit = original  # type: ignore[method-assign]


def run_virtual(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on a :class:`VirtualTimeLoop`."""
    with _counting_thread_work(), asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main)
