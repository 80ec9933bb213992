"""The comment cache and the per-post comment cursors in the state database."""

from __future__ import annotations

from pathlib import Path

from tobs_sync.model import Message
from tobs_sync.store import Store
from tobs_sync.store_comments import (
    COMMENT_NOTE,
    comment_cursors,
    comment_notes,
    due_posts,
    move_comment_cursor,
    note_newest_comments,
    put_comments,
    stored_comment,
)
from tobs_sync.store_rows import NoteRow

CHANNEL, GROUP = -1001, -1002


def comment(comment_id: int, text: str = "hi") -> Message:
    return Message(GROUP, comment_id, 1_700_000_000 + comment_id, text=text)


def test_a_post_stays_due_until_its_cursor_reaches_the_newest_comment_telegram_reported(tmp_path: Path) -> None:
    with Store.open(tmp_path / "state.db") as store:
        note_newest_comments(store, CHANNEL, {10: 5, 11: 7})
        assert due_posts(store, CHANNEL) == [(10, 0, 5), (11, 0, 7)]
        assert comment_cursors(store, CHANNEL, [10, 11]) == {}
        note_newest_comments(store, CHANNEL, {10: 3})  # an older report never lowers it
        move_comment_cursor(store, CHANNEL, 10, 5)
        move_comment_cursor(store, CHANNEL, 11, 6)
        move_comment_cursor(store, CHANNEL, 11, 2)  # never backwards
        assert due_posts(store, CHANNEL) == [(11, 6, 7)]
        assert comment_cursors(store, CHANNEL, [10, 11, 12]) == {10: 5, 11: 6}
        assert due_posts(store, -1003) == []


def test_comments_are_cached_by_group_and_id_and_a_post_lists_the_newest_that_have_notes(tmp_path: Path) -> None:
    with Store.open(tmp_path / "state.db") as store:
        put_comments(store, CHANNEL, 10, [comment(1), comment(2), comment(4)])
        put_comments(store, CHANNEL, 11, [comment(3)])
        put_comments(store, CHANNEL, 10, [comment(2, "edited")])  # read again: replaces its copy
        store.commit_notes([NoteRow(f"C/{cid}.md", COMMENT_NOTE, GROUP, cid, (cid,), "h") for cid in (1, 2, 3)])
        count, newest = comment_notes(store, CHANNEL, 10, limit=1)
        assert count == 2 and [(c.id, c.text, path) for c, path in newest] == [(2, "edited", "C/2.md")]
        found = stored_comment(store, GROUP, 3)
        assert found is not None and (found.chat_id, found.post_id, found.message) == (CHANNEL, 11, comment(3))
        assert stored_comment(store, GROUP, 5) is None
