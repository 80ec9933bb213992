"""Notes waiting for the note of a message in another chat, so their link can be made.

A reply into another chat links to the replied-to message's note, which may not exist when the
reply's note is written: that chat is synced later in the pass, in a later pass, or deferred. Such
notes are remembered here (before they are published, so a crash cannot lose one) and rendered
again once the note they point at exists, whatever order the chats were synced in.

Limits: a remembered note whose target never gets a note stays listed (one row, never rendered
again for it); rows of notes that no longer exist are dropped when found.
"""

from __future__ import annotations

from collections.abc import Iterable

from tobs_sync.store import Store


def remember_unlinked(store: Store, rows: Iterable[tuple[int, int, str]]) -> None:
    """Remember ``(target chat, target message, note path)``: the note links to that message once it has a note."""
    rows = list(rows)
    if rows:
        with store.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO pending_links (target_chat, target_message, path) VALUES (?, ?, ?)", rows
            )


def linkable(store: Store) -> list[str]:
    """Paths of remembered notes whose target now has a note, sorted; rows of notes that are gone are dropped."""
    with store.transaction() as db:
        rows = db.execute(
            "SELECT DISTINCT p.path FROM pending_links p JOIN note_members m"
            " ON m.chat_id = p.target_chat AND m.message_id = p.target_message ORDER BY p.path"
        ).fetchall()
    paths = []
    for (path,) in rows:
        if store.note_at(path) is None:
            forget(store, [path])
        else:
            paths.append(str(path))
    return paths


def forget(store: Store, paths: Iterable[str]) -> None:
    """Drop the rows of ``paths`` whose target has a note (they have been rendered with their link)."""
    with store.transaction() as db:
        db.executemany(
            "DELETE FROM pending_links WHERE path = ? AND EXISTS (SELECT 1 FROM note_members m"
            " WHERE m.chat_id = pending_links.target_chat AND m.message_id = pending_links.target_message)",
            [(path,) for path in paths],
        )
