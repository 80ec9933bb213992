"""What a pass, a live change or a re-render did: :class:`SyncReport`, with :class:`ChatCounts` per chat.

Filled in by the pass (:mod:`tobs_sync.sync`) and the engines it drives, printed by the CLI, recorded
per chat by the agent. Limits: plain counts and messages; it does no I/O and decides nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tobs_sync.model import Chat
from tobs_sync.publish import Outcome, Published


@dataclass(slots=True)
class ChatCounts:
    """What a pass did in one chat (``status`` and the agent's pass records show it)."""

    title: str
    new: int = 0
    """Messages read for the first time."""
    edited: int = 0
    """Messages whose stored text changed (a live edit, or found by re-reading recent messages)."""
    deleted: int = 0
    """Messages found deleted in Telegram (and handled by ``deletions.policy``)."""
    held: int = 0
    """Deletions held by the mass-deletion guard until the user confirms them."""
    reconciled: int = 0
    """Recent messages read again to find edits and deletions Telegram did not report (the cost)."""
    errors: list[str] = field(default_factory=list)
    """Why the chat was deferred or failed, or what else went wrong in it."""


@dataclass(slots=True)
class SyncReport:
    """What a pass did; printed by the CLI and returned to callers."""

    chats: int = 0
    messages: int = 0
    notes_written: int = 0
    notes_unchanged: int = 0
    conflicts: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    """Chats left for the next pass (long flood waits, stalled connections), with the reason."""
    failed: list[str] = field(default_factory=list)
    """Chats that could not be read at all (no access), with the reason."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Messages the source read but left out, counted by ``"chat 'Title': reason"``."""
    per_chat: dict[int, ChatCounts] = field(default_factory=dict)
    """The pass's counts by chat id, for every chat it reached."""
    comments: int = 0
    """Channel comments read (opted-in channels)."""

    def chat(self, chat: Chat) -> ChatCounts:
        """The counts of ``chat`` in this pass (created on first use)."""
        counts = self.per_chat.get(chat.id)
        if counts is None:
            counts = self.per_chat[chat.id] = ChatCounts(chat.title)
        return counts

    def add_skipped(self, chat: Chat, counts: dict[str, int]) -> None:
        for reason, count in counts.items():
            key = f"chat {chat.title!r}: {reason}"
            self.skipped[key] = self.skipped.get(key, 0) + count

    def count(self, published: Published) -> None:
        for path, outcome in published.outcomes:
            if outcome == Outcome.WRITTEN:
                self.notes_written += 1
            elif outcome == Outcome.UNCHANGED:
                self.notes_unchanged += 1
            else:
                self.conflicts.append(path)
