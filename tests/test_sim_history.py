"""The simulated account's compact history: messages kept serialised, served byte-identical, changes kept.

The account is compared with one built on a history that keeps the message objects themselves (what
the simulator stored before), so every generated message, and every message after live changes,
must serialise to the same bytes either way.
"""

from __future__ import annotations

import bisect
import tracemalloc
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from telethon.tl import types

from tobs_sync.sim import SimulatedTelegram, parse_spec
from tobs_sync.sim import account as account_module
from tobs_sync.sim.account import Account, SimChat
from tobs_sync.sim.chat_info import forum_topics
from tobs_sync.sim.history import History, decode

RICH_SPEC = "chats=7,messages=90,media=0.4,comments=3,seed=5"
"""Every chat kind (a forum with topics and its old group, Saved Messages), media with albums, replies,
polls, reactions, cross-chat replies, and discussion groups with comments."""


class ObjectHistory(list[Any]):
    """A history that keeps the message objects themselves (the simulator's storage before)."""

    def __init__(self, messages: Iterable[Any] = ()) -> None:
        super().__init__(messages)
        self.by_id: dict[int, Any] = {m.id: m for m in self}

    def append(self, message: Any) -> None:
        super().append(message)
        self.by_id[message.id] = message

    @property
    def ids(self) -> list[int]:
        return [m.id for m in self]

    def remove(self, msg_ids: Iterable[int]) -> list[int]:  # type: ignore[override]
        gone = [i for i in msg_ids if i in self.by_id]
        for msg_id in gone:
            self.by_id.pop(msg_id, None)
        self[:] = [m for m in self if m.id in self.by_id]
        return gone


def histories(account: Account) -> Iterator[tuple[str, SimChat]]:
    for chat in account.chats:
        yield f"chat {chat.index}", chat
        if chat.migrated_from is not None:
            yield f"old group of chat {chat.index}", chat.migrated_from
    for discussion in account.discussions.by_channel.values():
        yield f"discussion of chat {discussion.channel.index}", discussion.group


def serialised(sim: SimulatedTelegram) -> dict[str, list[bytes]]:
    return {label: [bytes(m) for m in chat.messages] for label, chat in histories(sim._account)}


def live_changes(sim: SimulatedTelegram) -> None:
    """Edits, reactions, deletions, new messages and comments in every chat, old messages included."""
    account = sim._account
    for chat in account.chats:
        plain = [m.id for m in chat.messages if isinstance(m, types.Message)]
        sim.edit_message(chat.marked_id, plain[3], "edited long after")
        sim.set_reactions(chat.marked_id, plain[5], [("❤️", 6), ("🔥", 2)])
        sim.delete_messages(chat.marked_id, [plain[7], plain[-2]])
        sim.add_message(chat.marked_id, "a live one")
        sim.add_message(chat.marked_id, media_kind="photo")
    for discussion in account.discussions.by_channel.values():
        post = sorted(discussion.threads)[2]
        sim.add_comment(discussion.channel.marked_id, post, "a new comment")
        sim.add_comment(discussion.channel.marked_id, post)
    for chat in account.chats:
        photo = next(m for m in chat.messages if isinstance(getattr(m, "media", None), types.MessageMediaPhoto))
        account.replace_media(photo)


def test_compact_history_serves_every_message_byte_identical_to_kept_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    compact = SimulatedTelegram(parse_spec(RICH_SPEC))
    with monkeypatch.context() as patched:
        patched.setattr(account_module, "History", ObjectHistory)
        kept = SimulatedTelegram(parse_spec(RICH_SPEC))
    assert isinstance(compact._account.chats[0].messages, History)
    assert isinstance(kept._account.chats[0].messages, ObjectHistory)
    labels = [label for label, _ in histories(kept._account)]
    assert any(label.startswith("old group") for label in labels)
    assert any(label.startswith("discussion") for label in labels)
    assert serialised(compact) == serialised(kept)
    assert [(c, bytes(m)) for c, m in compact.media_messages()] == [(c, bytes(m)) for c, m in kept.media_messages()]

    live_changes(compact)
    live_changes(kept)
    assert serialised(compact) == serialised(kept)
    for label, chat in histories(compact._account):
        assert [m.id for m in chat.messages] == list(chat.messages.ids), label


def test_history_round_trips_through_small_pages_and_a_one_page_cache() -> None:
    account = Account(parse_spec(RICH_SPEC))
    for label, chat in histories(account):
        originals = list(chat.messages)
        history = History(originals, page_size=4, cached_pages=1)
        expected = [bytes(m) for m in originals]
        assert len(history) == len(expected), label
        assert [bytes(m) for m in history] == expected, label
        assert [bytes(m) for m in reversed(history)] == expected[::-1], label
        assert [bytes(history[k]) for k in range(-len(expected), 0)] == expected, label
        assert [bytes(m) for m in history[3:-5]] == expected[3:-5], label
        assert [bytes(m) for m in history[::3]] == expected[::3], label
        assert [bytes(m) for m in history[-50:]] == expected[-50:], label
        for message in originals[::7]:
            assert bytes(history.by_id[message.id]) == bytes(message)
            assert history.position_of_id(message.id) == bisect.bisect_left(originals, message.id, key=lambda m: m.id)
            assert history.position_of_date(message.date) == bisect.bisect_left(
                originals, message.date, key=lambda m: m.date
            )
        assert history.by_id.get(max(history.ids) + 1) is None


def test_a_written_back_message_is_read_back_after_its_page_left_the_cache() -> None:
    account = Account(parse_spec("chats=1,messages=400,media=0,seed=3"))
    chat = account.chats[0]
    old = next(m for m in chat.messages[:20] if isinstance(m, types.Message))
    account.edit(chat, old.id, "changed")
    account.set_reactions(chat, old.id, [("👍", 3)])
    for _ in chat.messages:  # every page passes through the cache: the edited one is compressed again
        pass
    again = chat.by_id[old.id]
    assert again is not old  # decoded from the stored bytes
    assert (again.message, again.edit_date) == ("changed", account.now())
    assert [(r.reaction.emoticon, r.count) for r in again.reactions.results] == [("👍", 3)]

    unchanged = chat.messages[30]
    unchanged.message = "never written back"
    for _ in chat.messages:
        pass
    assert chat.messages[30].message != "never written back"


def test_a_comment_updates_its_post_for_later_reads() -> None:
    account = Account(parse_spec("chats=1,messages=400,media=0,comments=2,seed=4"))
    channel = account.chats[0]
    discussion = account.discussions.by_channel[channel.raw_id]
    post_id = min(discussion.threads)
    before = channel.by_id[post_id].replies.replies
    comment = account.discussions.add_comment(channel, post_id, account.tick(), "late comment")
    for _ in channel.messages:
        pass
    after = channel.by_id[post_id].replies
    assert (after.replies, after.max_id) == (before + 1, comment.id)
    assert account.discussions.comments(channel, post_id)[-1].message == "late comment"


def test_removing_messages_keeps_order_ids_and_the_remaining_bytes() -> None:
    account = Account(parse_spec("chats=1,messages=300,media=0.3,seed=6"))
    chat = account.chats[0]
    expected = {m.id: bytes(m) for m in chat.messages}
    ids = list(expected)
    doomed = [ids[1], ids[150], ids[-1], 10**9]
    assert account.delete(chat, [*doomed, ids[1]]) == [ids[1], ids[150], ids[-1], ids[1]]
    remaining = [i for i in ids if i not in doomed]
    assert list(chat.messages.ids) == remaining == [m.id for m in chat.messages]
    assert [bytes(m) for m in chat.messages] == [expected[i] for i in remaining]
    assert ids[150] not in chat.by_id and ids[151] in chat.by_id
    assert account.delete(chat, remaining) == remaining
    assert len(chat.messages) == 0 and not chat.messages and list(chat.messages) == []


def test_history_refuses_what_would_break_it() -> None:
    history = History()
    first = types.Message(id=10, peer_id=types.PeerUser(1), date=None, message="a")
    history.append(first)
    with pytest.raises(ValueError, match="not above"):
        history.append(types.Message(id=10, peer_id=types.PeerUser(1), date=None, message="b"))
    with pytest.raises(ValueError, match="has id 10"):
        history.by_id[11] = first
    with pytest.raises(KeyError, match="no message 12"):
        history.replace(types.Message(id=12, peer_id=types.PeerUser(1), date=None, message="c"))
    with pytest.raises(IndexError, match="out of range"):
        history[1]
    with pytest.raises(ValueError, match="page_size"):
        History(page_size=0)


def test_history_holds_a_message_in_a_small_fraction_of_its_object_size() -> None:
    account = Account(parse_spec("chats=1,messages=600,media=0,seed=11"))
    blobs = [bytes(m) for m in account.chats[0].messages]
    tracemalloc.start()
    try:
        objects = [decode(blob) for blob in blobs]
        as_objects, _peak = tracemalloc.get_traced_memory()
        history = History(objects, page_size=16, cached_pages=1)
        del objects  # but those of the newest page and of the cached one
        as_history, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(history) == len(blobs) and bytes(history[0]) == blobs[0]
    # Objects take kilobytes a message; compressed serialisations, with two pages of objects, a fraction.
    assert as_history < as_objects / 8


def test_forum_topics_name_each_topics_newest_message() -> None:
    account = Account(parse_spec("chats=6,messages=200,media=0.2,seed=7"))
    forum = next(chat for chat in account.chats if chat.kind == "forum")
    asked = [1, *forum.topics]
    answer = forum_topics(account, forum, asked)
    newest = {}
    for message in forum.messages:
        newest[forum.message_topics.get(message.id, 1)] = message.id
    assert [topic.top_message for topic in answer.topics] == [newest[topic_id] for topic_id in asked]
    assert sorted(m.id for m in answer.messages) == sorted(newest[topic_id] for topic_id in asked)
