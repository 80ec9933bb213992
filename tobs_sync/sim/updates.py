"""Update sequences (``pts``) of the simulated account, for live events and ``getDifference``.

Telegram numbers message-related updates per *box*: one account-wide box for private chats and basic
groups, and one box per channel or megagroup. Each change bumps the box's ``pts`` by ``pts_count``;
clients detect gaps by comparing. :class:`UpdateLog` keeps the sequence of one box so the server can
answer ``updates.getDifference`` / ``updates.getChannelDifference`` with exactly the updates after a
client's ``pts``, and remembers the date of each so an account difference can name the channels that
changed since the client's ``date``.

Limits: the log keeps every update since the simulator started until :meth:`UpdateLog.forget` drops
them (as Telegram drops old update history); a client whose ``pts`` lies before the forgotten part
then gets ``differenceTooLong``. The generated history has no updates (it predates the log).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from telethon.tl.tlobject import TLObject


@dataclass(frozen=True, slots=True)
class LoggedUpdate:
    """One update of a box: its ``pts`` after the change, when it happened, and the TL update."""

    pts: int
    date: datetime
    update: TLObject


class UpdateLog:
    """The ``pts`` sequence of one update box."""

    def __init__(self, pts: int) -> None:
        self.pts = pts
        self.floor = pts
        """The oldest ``pts`` a difference can start from; older ones get ``differenceTooLong``."""
        self._entries: list[LoggedUpdate] = []

    def append(self, build: Callable[[int, int], TLObject], pts_count: int, date: datetime) -> TLObject:
        """Bump ``pts`` by ``pts_count`` and record ``build(new_pts, pts_count)`` made at ``date``."""
        self.pts += pts_count
        update = build(self.pts, pts_count)
        self._entries.append(LoggedUpdate(self.pts, date, update))
        return update

    def since(self, pts: int, limit: int | None = None) -> list[LoggedUpdate]:
        """Updates after ``pts``, oldest first, at most ``limit``."""
        found = [entry for entry in self._entries if entry.pts > pts]
        return found if limit is None else found[:limit]

    def covers(self, pts: int) -> bool:
        """Whether the updates after ``pts`` are all still known (else the difference is too long)."""
        return pts >= self.floor

    def changed_after(self, date: datetime) -> bool:
        """Whether an update was made after ``date``."""
        return bool(self._entries) and self._entries[-1].date > date

    def forget(self) -> None:
        """Drop every update: differences from before now are too long."""
        self._entries.clear()
        self.floor = self.pts
