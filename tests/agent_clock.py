"""Test helper: a wall clock that follows the virtual event loop, and can jump as after a hibernation.

The agent reads the time of day from its clock; APScheduler reads it from ``datetime.now`` in its
scheduler module, so :meth:`WallClock.install` points that at the same clock. ``loop.time()`` does
not count time spent suspended (as on a real machine, whose monotonic clock stops during sleep):
:meth:`WallClock.hibernate` moves the time of day forward without moving the loop's clock.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

START = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)


class WallClock:
    def __init__(self, start: dt.datetime = START) -> None:
        self.start = start
        self.suspended_s = 0.0

    def __call__(self) -> dt.datetime:
        return self.start + dt.timedelta(seconds=asyncio.get_running_loop().time() + self.suspended_s)

    def hibernate(self, seconds: float) -> None:
        self.suspended_s += seconds

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        clock = self

        class ClockedDatetime(dt.datetime):
            @classmethod
            def now(cls, tz: dt.tzinfo | None = None) -> dt.datetime:  # type: ignore[override]
                return clock().astimezone(tz)

        import apscheduler.schedulers.base

        monkeypatch.setattr(apscheduler.schedulers.base, "datetime", ClockedDatetime)
