"""What ``status`` shows of each chat beyond its cursor (last pass, next run, notes, media, held
deletions), and of the recent passes.

:func:`chat_activity` reads the store only (pass records, the notes and media indexes), so it works on
a read-only store while a writer runs. Values are plain JSON types (times as ISO 8601 UTC text),
ready for ``status --json``. Limits: the counts are those of the store (a note deleted by hand is
still counted until the next pass writes it again); a chat the agent has not scheduled has no next run.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tobs_sync.status_note import held_deletions_by_chat
from tobs_sync.store import Store
from tobs_sync.store_passes import PassLog
from tobs_sync.store_rows import MESSAGE_NOTE


def chat_activity(store: Store) -> dict[int, dict[str, Any]]:
    """Per chat id: ``last_pass`` (when, trigger, new, edited, deleted, recent messages re-read, errors,
    or None), ``next_run``, ``notes``, ``media`` (slots by status) and ``held_deletions``."""
    passes = PassLog(store)
    last = passes.last_by_chat()
    next_runs = passes.next_runs()
    notes = dict(store.query("SELECT chat_id, COUNT(*) FROM notes WHERE kind=? GROUP BY chat_id", (MESSAGE_NOTE,)))
    media: dict[int, dict[str, int]] = {}
    for chat_id, status, count in store.query(
        "SELECT chat_id, status, COUNT(*) FROM message_media GROUP BY chat_id, status"
    ):
        media.setdefault(chat_id, {})[status] = count
    held = held_deletions_by_chat(store)
    activity = {}
    for state in store.chat_states():
        chat_id = state.chat.id
        record = last.get(chat_id)
        activity[chat_id] = {
            "last_pass": None if record is None else {
                "started": _iso(record.started),
                "finished": _iso(record.finished),
                "trigger": record.trigger,
                "new": record.new,
                "edited": record.edited,
                "deleted": record.deleted,
                "reconciled": record.reconciled,
                "errors": list(record.errors),
            },
            "next_run": _iso(next_runs[chat_id]) if chat_id in next_runs else None,
            "notes": notes.get(chat_id, 0),
            "media": media.get(chat_id, {}),
            "held_deletions": held.get(chat_id, 0),
        }
    return activity


def recent_passes(store: Store, limit: int = 10) -> list[dict[str, Any]]:
    """The latest passes, newest first: when, what ran them, totals and problems (``status --json``)."""
    return [
        {
            "started": _iso(record.started),
            "finished": _iso(record.finished),
            "seconds": record.seconds,
            "trigger": record.trigger,
            "messages": record.messages,
            "notes_written": record.notes_written,
            "notes_unchanged": record.notes_unchanged,
            "conflicts": record.conflicts,
            "deferred": list(record.deferred),
            "failed": list(record.failed),
            "skipped": dict(record.skipped),
            "chats": len(record.chats),
        }
        for record in PassLog(store).recent(limit)
    ]


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat(timespec="seconds")
