"""Update sequences (``pts``) of the simulated account, for live events and ``getDifference``.

Telegram numbers message-related updates per *box*: one account-wide box for private chats and basic
groups, and one box per channel or megagroup. Each change bumps the box's ``pts`` by ``pts_count``;
clients detect gaps by comparing. :class:`UpdateLog` keeps the sequence of one box so the server can
answer ``updates.getDifference`` / ``updates.getChannelDifference`` with exactly the updates after a
client's ``pts``. Limits: the log keeps every update since the simulator started (no
``differenceTooLong``), and the generated history has no updates (it predates the log).
"""

from __future__ import annotations

from collections.abc import Callable

from telethon.tl.tlobject import TLObject


class UpdateLog:
    """The ``pts`` sequence of one update box."""

    def __init__(self, pts: int) -> None:
        self.pts = pts
        self._entries: list[tuple[int, TLObject]] = []

    def append(self, build: Callable[[int, int], TLObject], pts_count: int) -> TLObject:
        """Bump ``pts`` by ``pts_count`` and record ``build(new_pts, pts_count)``."""
        self.pts += pts_count
        update = build(self.pts, pts_count)
        self._entries.append((self.pts, update))
        return update

    def since(self, pts: int, limit: int | None = None) -> list[tuple[int, TLObject]]:
        """``(pts, update)`` pairs after ``pts``, oldest first, at most ``limit``."""
        found = [entry for entry in self._entries if entry[0] > pts]
        return found if limit is None else found[:limit]
