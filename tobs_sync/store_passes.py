"""Pass records: what each pass did, per chat, and when the agent runs each chat next.

:class:`PassLog` works on a :class:`~tobs_sync.store.Store` (tables ``passes``, ``pass_chats`` and
``next_runs``). :meth:`PassLog.record` keeps one pass of a :class:`~tobs_sync.sync.SyncReport`: when it
started and finished, what started it (``sync``, ``import``, ``schedule``, ``live`` ...), its totals
and problems (chats deferred or failed, messages skipped, notes left as conflicts), and for every
chat it reached the new, edited and deleted counts and its errors. ``status`` and the status note
read them back (:meth:`PassLog.last_by_chat`, :meth:`PassLog.recent`, :meth:`PassLog.next_runs`).

Limits: the history is bounded: each chat keeps its last :data:`KEEP_PASSES` records (so a chat synced
nightly keeps its last pass however often other chats run), and a pass is kept while one of its chats
keeps it or it is among the last :data:`KEEP_PASSES`. Lists of problems are kept to their first
:data:`KEEP_ITEMS` entries (their full counts are kept). Times are stored as UTC seconds and come back
as aware UTC datetimes.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tobs_sync.store import Store

if TYPE_CHECKING:  # the report type only: the store layer does not import the engine
    from tobs_sync.sync import SyncReport

KEEP_PASSES = 50
"""Pass records kept per chat (and passes kept overall)."""
KEEP_ITEMS = 20
"""Entries kept of each problem list of a pass (conflicts, deferred, failed, skipped reasons)."""


@dataclass(frozen=True, slots=True)
class ChatPass:
    """One chat's part of one pass."""

    pass_id: int
    chat_id: int
    title: str
    trigger: str
    started: dt.datetime
    finished: dt.datetime
    new: int
    edited: int
    deleted: int
    errors: tuple[str, ...]
    reconciled: int = 0
    """Recent messages read again to find edits and deletions (the cost of reconciliation)."""


@dataclass(frozen=True, slots=True)
class PassRecord:
    """One pass: totals, problems, and the chats it reached."""

    pass_id: int
    trigger: str
    started: dt.datetime
    finished: dt.datetime
    messages: int = 0
    notes_written: int = 0
    notes_unchanged: int = 0
    conflicts: int = 0
    conflict_paths: tuple[str, ...] = ()
    deferred: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    skipped: Mapping[str, int] = field(default_factory=dict)
    chats: tuple[ChatPass, ...] = ()

    @property
    def seconds(self) -> float:
        return (self.finished - self.started).total_seconds()

    @property
    def changed(self) -> bool:
        """Whether the pass did or met anything (new, edited or deleted messages, or a problem)."""
        return bool(
            self.conflicts or self.deferred or self.failed or self.skipped
            or any(c.new or c.edited or c.deleted or c.errors for c in self.chats)
        )


class PassLog:
    """Pass records and next run times in a store (readable from a read-only store too)."""

    def __init__(self, store: Store, *, keep: int = KEEP_PASSES) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self._store = store
        self._keep = keep

    def record(self, report: SyncReport, started: dt.datetime, finished: dt.datetime, trigger: str) -> int:
        """Keep one pass (and trim the history); its id."""
        summary = {
            "messages": report.messages,
            "notes_written": report.notes_written,
            "notes_unchanged": report.notes_unchanged,
            "conflicts": len(report.conflicts),
            "conflict_paths": report.conflicts[:KEEP_ITEMS],
            "deferred": report.deferred[:KEEP_ITEMS],
            "failed": report.failed[:KEEP_ITEMS],
            "skipped": dict(sorted(report.skipped.items())[:KEEP_ITEMS]),
        }
        with self._store.transaction() as db:
            cursor = db.execute(
                "INSERT INTO passes (trigger, started, finished, summary) VALUES (?, ?, ?, ?)",
                (trigger, _seconds(started), _seconds(finished), json.dumps(summary)),
            )
            pass_id = int(cursor.lastrowid or 0)
            db.executemany(
                "INSERT INTO pass_chats (pass_id, chat_id, title, new, edited, deleted, errors, reconciled)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (pass_id, chat_id, c.title, c.new, c.edited, c.deleted, json.dumps(c.errors[:KEEP_ITEMS]),
                     c.reconciled)
                    for chat_id, c in report.per_chat.items()
                ],
            )
            for chat_id in report.per_chat:
                db.execute(
                    "DELETE FROM pass_chats WHERE chat_id=? AND pass_id NOT IN"
                    " (SELECT pass_id FROM pass_chats WHERE chat_id=? ORDER BY pass_id DESC LIMIT ?)",
                    (chat_id, chat_id, self._keep),
                )
            db.execute(
                "DELETE FROM passes WHERE pass_id NOT IN (SELECT pass_id FROM passes ORDER BY pass_id DESC LIMIT ?)"
                " AND pass_id NOT IN (SELECT pass_id FROM pass_chats)",
                (self._keep,),
            )
        return pass_id

    def replace_next_runs(self, next_runs: Mapping[int, dt.datetime]) -> None:
        """The agent's schedule now: these chats' next runs, and none for any other chat."""
        with self._store.transaction() as db:
            db.execute("DELETE FROM next_runs")
            db.executemany("INSERT INTO next_runs (chat_id, at) VALUES (?, ?)",
                           [(chat_id, _seconds(when)) for chat_id, when in next_runs.items()])

    def clear_next_runs(self) -> None:
        """No chat has a next run (the agent stopped)."""
        with self._store.transaction() as db:
            db.execute("DELETE FROM next_runs")

    def next_runs(self) -> dict[int, dt.datetime]:
        return {chat_id: _datetime(at) for chat_id, at in self._store.query("SELECT chat_id, at FROM next_runs")}

    def last_by_chat(self) -> dict[int, ChatPass]:
        """Each chat's latest pass record."""
        rows = self._store.query(
            "SELECT c.pass_id, c.chat_id, c.title, p.trigger, p.started, p.finished, c.new, c.edited, c.deleted,"
            " c.errors, c.reconciled FROM pass_chats c JOIN passes p ON p.pass_id = c.pass_id"
            " WHERE c.pass_id = (SELECT MAX(pass_id) FROM pass_chats WHERE chat_id = c.chat_id)"
        )
        return {row[1]: _chat_pass(row) for row in rows}

    def recent(self, limit: int = 10) -> list[PassRecord]:
        """The latest ``limit`` passes, newest first, each with its chats."""
        passes = self._store.query(
            "SELECT pass_id, trigger, started, finished, summary FROM passes ORDER BY pass_id DESC LIMIT ?", (limit,)
        )
        if not passes:
            return []
        ids = [row[0] for row in passes]
        chats: dict[int, list[ChatPass]] = {}
        rows = self._store.query(
            "SELECT c.pass_id, c.chat_id, c.title, p.trigger, p.started, p.finished, c.new, c.edited, c.deleted,"
            " c.errors, c.reconciled FROM pass_chats c JOIN passes p ON p.pass_id = c.pass_id"
            " WHERE c.pass_id >= ? ORDER BY c.pass_id, c.chat_id",
            (min(ids),),  # the latest passes: every id from the oldest of them on
        )
        for row in rows:
            chats.setdefault(row[0], []).append(_chat_pass(row))
        return [_pass_record(row, chats.get(row[0], [])) for row in passes]

    def count(self) -> int:
        return int(self._store.query("SELECT COUNT(*) FROM passes")[0][0])


def _seconds(when: dt.datetime) -> float:
    if when.tzinfo is None:
        raise ValueError("pass times must be aware datetimes")
    return when.timestamp()


def _datetime(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _chat_pass(row: Sequence[Any]) -> ChatPass:
    pass_id, chat_id, title, trigger, started, finished, new, edited, deleted, errors, reconciled = row
    return ChatPass(pass_id, chat_id, title, trigger, _datetime(started), _datetime(finished), new, edited, deleted,
                    tuple(json.loads(errors)), reconciled)


def _pass_record(row: Sequence[Any], chats: list[ChatPass]) -> PassRecord:
    pass_id, trigger, started, finished, summary = row
    data = json.loads(summary)
    return PassRecord(
        pass_id, trigger, _datetime(started), _datetime(finished),
        messages=data.get("messages", 0),
        notes_written=data.get("notes_written", 0),
        notes_unchanged=data.get("notes_unchanged", 0),
        conflicts=data.get("conflicts", 0),
        conflict_paths=tuple(data.get("conflict_paths", ())),
        deferred=tuple(data.get("deferred", ())),
        failed=tuple(data.get("failed", ())),
        skipped=dict(data.get("skipped", {})),
        chats=tuple(chats),
    )
