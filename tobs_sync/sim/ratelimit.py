"""An organic rate policy for the simulated Telegram: per-method request budgets and ``FLOOD_WAIT_X``.

Telegram publishes no rate limits; it answers ``FLOOD_WAIT_X`` (``X`` = seconds to wait) when an account
asks too much of one kind. The simulator models that with *budgets*: a budget covers one or more
request names and allows ``requests`` of them per ``window_s`` seconds. The window opens at the first
request it counts and closes ``window_s`` later; a request beyond the budget inside an open window is
refused with ``FLOOD_WAIT_X``, ``X`` being the window's remaining time rounded up (at least 1). Refused
requests do not use up the budget (Telegram answers them without doing the work). Budgets are per
account, shared by every connection and data centre.

:data:`TELEGRAM_BUDGETS` (``rate=telegram`` in the spec) are modelled on publicly reported behaviour, not
on numbers from Telegram:

=====================================================  ===========  =========================================
requests                                               budget       basis
=====================================================  ===========  =========================================
``messages.getHistory``, ``search``, ``getMessages``,  30 / 30 s    Telethon: "around 30 seconds per 10
``getReplies``, ``channels.getMessages``                            requests", 3000 messages per 30 s
``GetDialogs``                                         10 / 30 s    repeated dialog sweeps flood quickly
``ResolveUsername``                                    200 / 24 h   reports of long waits after ~160-200
``GetContacts``, ``ResolvePhone``                      10 / 60 s    (chosen; rarely needed by a sync)
``GetChannelDifference``, ``GetDifference``            60 / 60 s    (chosen; the update loop's catch-up)
``SendCode``                                           5 / 1 h      login codes are strictly limited
``CheckPassword``                                      5 / 1 h      (chosen; password guessing)
=====================================================  ===========  =========================================

Downloads (``GetFile``) have no budget here: the bandwidth model and the download fault rules cover them.
Configure with :meth:`RatePolicy.set_budget` (replace or add) and :meth:`RatePolicy.remove_budget`.

Limits: fixed windows, not Telegram's (unknown) algorithm; the clock is the running event loop's
``time()`` unless another is given, so a virtual-time loop makes waits instant and exact.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tobs_sync.sim.faults import KNOWN_REQUESTS
from tobs_sync.sim.rpc import RpcFault


@dataclass(frozen=True, slots=True)
class Budget:
    """``requests`` requests named in ``methods`` (short or qualified names) per ``window_s`` seconds."""

    methods: frozenset[str]
    requests: int
    window_s: float

    def __post_init__(self) -> None:
        unknown = sorted(m for m in self.methods if m not in KNOWN_REQUESTS)
        if unknown:
            raise ValueError(f"rate budget names unknown requests: {', '.join(unknown)}")
        if self.requests < 1:
            raise ValueError(f"a rate budget needs at least 1 request per window, got {self.requests}")
        if not (self.window_s > 0 and math.isfinite(self.window_s)):
            raise ValueError(f"a rate budget needs a positive window, got {self.window_s!r} s")


def _budget(methods: Iterable[str], requests: int, window_s: float) -> Budget:
    return Budget(frozenset(methods), requests, window_s)


TELEGRAM_BUDGETS: dict[str, Budget] = {
    "history": _budget(
        ("messages.GetHistory", "messages.Search", "messages.GetMessages", "channels.GetMessages",
         "messages.GetReplies"), 30, 30.0
    ),
    "dialogs": _budget(("messages.GetDialogs",), 10, 30.0),
    "resolve": _budget(("contacts.ResolveUsername",), 200, 86_400.0),
    "contacts": _budget(("contacts.GetContacts", "contacts.ResolvePhone"), 10, 60.0),
    "difference": _budget(("updates.GetChannelDifference", "updates.GetDifference"), 60, 60.0),
    "login_code": _budget(("auth.SendCode",), 5, 3_600.0),
    "password": _budget(("auth.CheckPassword",), 5, 3_600.0),
}
"""The documented defaults of ``rate=telegram`` (see the module table), by budget name."""


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


class RatePolicy:
    """Per-account request budgets; :meth:`admit` raises ``FLOOD_WAIT_X`` for a request over budget."""

    def __init__(self, budgets: dict[str, Budget] | None = None, clock: Callable[[], float] = _loop_time) -> None:
        self._budgets: dict[str, Budget] = dict(budgets or {})
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}
        self.floods: Counter[str] = Counter()
        """``FLOOD_WAIT`` answers given, by short request name."""

    @property
    def budgets(self) -> dict[str, Budget]:
        return dict(self._budgets)

    @property
    def enabled(self) -> bool:
        return bool(self._budgets)

    def set_budget(self, name: str, methods: Iterable[str], requests: int, window_s: float) -> None:
        """Add or replace the budget ``name``; its window starts afresh."""
        self._budgets[name] = _budget(methods, requests, window_s)
        self._windows.pop(name, None)

    def remove_budget(self, name: str) -> None:
        self._budgets.pop(name)
        self._windows.pop(name, None)

    def admit(self, short: str, qualified: str) -> None:
        """Count the request against every budget that names it, or raise ``RpcFault(420, FLOOD_WAIT_X)``."""
        matching = [n for n, b in self._budgets.items() if short in b.methods or qualified in b.methods]
        if not matching:
            return
        now = self._clock()
        wait = 0.0
        for name in matching:
            budget = self._budgets[name]
            start, used = self._windows.get(name, (now, 0))
            if now >= start + budget.window_s:
                start, used = now, 0
            self._windows[name] = (start, used)
            if used >= budget.requests:
                wait = max(wait, start + budget.window_s - now)
        if wait > 0:
            self.floods[short] += 1
            raise RpcFault(420, f"FLOOD_WAIT_{max(1, math.ceil(wait))}")
        for name in matching:
            start, used = self._windows[name]
            self._windows[name] = (start, used + 1)


def policy_for(name: str, clock: Callable[[], float] = _loop_time) -> RatePolicy:
    """The policy a spec's ``rate`` key names: ``"telegram"`` (the documented budgets) or ``"off"``."""
    if name == "telegram":
        return RatePolicy(TELEGRAM_BUDGETS, clock)
    if name == "off":
        return RatePolicy({}, clock)
    raise ValueError(f"unknown rate policy {name!r} (known: off, telegram)")
