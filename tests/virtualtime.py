"""An asyncio event loop with a virtual clock, for tests where time decides the order of events.

``loop.time()`` starts at 0 and moves only when every task is waiting: instead of blocking until the
next timer is due, the loop jumps its clock to that timer. ``asyncio.sleep(300)`` then returns at
once, in order with every other sleeper, and ``loop.time()`` reads exactly 300 more afterwards, so
tests can assert *when* (in loop time) things happened without sleeping and without wall-clock bounds.

Limits: only for code whose waiting is on this loop's timers (``asyncio.sleep``, ``asyncio.timeout``,
``loop.call_later``) and on other tasks. A loop with nothing ready and no timer pending would wait for
I/O or threads forever; it raises instead, naming that, so such a test fails at once.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


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
        if timeout is None:
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


def run_virtual(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on a :class:`VirtualTimeLoop`."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main)
