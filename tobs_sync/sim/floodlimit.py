"""A rate-based flood limit for the simulated Telegram: at most ``requests`` attempts per sliding window.

Telegram publishes no limits. It documents error ``420 FLOOD`` as the maximum allowed number of
attempts to invoke a method being exceeded, answered with ``FLOOD_WAIT_X`` (``X`` seconds to wait;
Telethon raises ``errors.FloodWaitError`` with ``e.seconds == X``), and clients widely report that
the limits are rates: so many requests in so many seconds, per account and method. :class:`SlidingLimit`
models that and nothing more:

* an attempt is admitted when fewer than ``requests`` attempts were admitted in the last
  ``window_s`` seconds (a sliding window: no reset at fixed times);
* otherwise it is refused with the time until the window has room again (``X`` is that rounded up,
  at least 1, as Telegram tells waits in whole seconds).

So the number of floods depends on how fast a client asks, not on a fixed share of its requests,
and a client that respects every wait gets ``requests`` per ``window_s`` however it spreads them.

``count_refused=True`` also counts refused attempts in the window, so a client that keeps asking
during a wait is kept waiting longer, as some users report (Telegram documents nothing of it). It is
off by default: with it, a pool of workers that each wait as told but together retry at least
``requests`` times per window is never admitted again, and clients that download with many parallel
workers (Telethon's own retries of waits of 3 s or less, tdl) are not reported to stall that way.

Limits: the numbers are the caller's (no documented values exist); one window per limit, no
escalation to hour-long bans; the clock is given by the caller.
"""

from __future__ import annotations

import math
from collections import deque


class SlidingLimit:
    """At most ``requests`` attempts per ``window_s`` seconds (see the module docstring)."""

    def __init__(self, requests: int, window_s: float, *, count_refused: bool = False) -> None:
        if requests < 1:
            raise ValueError(f"a flood limit needs at least 1 request per window, got {requests}")
        if not (window_s > 0 and math.isfinite(window_s)):
            raise ValueError(f"a flood limit needs a positive window, got {window_s!r} s")
        self.requests = requests
        self.window_s = float(window_s)
        self.count_refused = count_refused
        self._attempts: deque[float] = deque()
        self._refusing = False
        self.admitted = 0
        self.refused = 0
        self.waits = 0
        """Floods: how many times an admitted attempt was followed by a refused one."""

    def attempt(self, now: float) -> float:
        """Admit an attempt at ``now`` (0.0), or refuse it: the seconds until the window has room."""
        attempts = self._attempts
        while attempts and attempts[0] + self.window_s <= now:
            attempts.popleft()
        if len(attempts) < self.requests:
            attempts.append(now)
            self.admitted += 1
            self._refusing = False
            return 0.0
        if self.count_refused:
            attempts.append(now)
        self.refused += 1
        if not self._refusing:
            self.waits += 1
            self._refusing = True
        # Room again once the oldest attempts have left the window, enough of them to go below the limit.
        return attempts[len(attempts) - self.requests] + self.window_s - now

    @staticmethod
    def told(wait: float) -> int:
        """The ``X`` of ``FLOOD_WAIT_X`` for a wait of ``wait`` seconds: whole seconds rounded up, at least 1."""
        return max(1, math.ceil(wait))
