"""The message cache's records: every model field survives a msgpack round trip."""

from __future__ import annotations

import msgpack
from hypothesis import given
from hypothesis import strategies as st

from tobs_sync.model import (
    Chat,
    Contact,
    Entity,
    Forward,
    Location,
    MediaRef,
    Message,
    Poll,
    PollAnswer,
    Reaction,
    Reply,
    ServiceAction,
)
from tobs_sync.records import decode_chat, decode_message, encode_chat, encode_message, from_record, to_record

FULL = Message(
    chat_id=-1001234567890,
    id=42,
    date=1709284500,
    kind="message",
    text="Hi 😀 bold",
    entities=(Entity("bold", 6, 4), Entity("pre", 0, 2, language="py"), Entity("hologram", 1, 1)),
    sender_id=111,
    sender_name="Alice",
    author="ed",
    edited=1709284600,
    forward=Forward(from_name="News", from_id=-1001, date=1, channel_post=7, post_author="x", saved_from="S"),
    reply=Reply(41, chat_id=-5, quote_text="q"),
    media=(MediaRef("photo", "photos/a.jpg", width=1, height=2, size=3, dc_id=4, file_key="photo:9"),
           MediaRef("hologram", None, unavailable="not exported")),
    grouped_id=99,
    action=ServiceAction("invite_members", members=("A", "B"), details={"inviter": "C", "n": [1, 2]}),
    poll=Poll("Q?", (PollAnswer("a", 1, True), PollAnswer("b")), closed=True, total_voters=1),
    location=Location(1.5, -2.25, title="t", address="a", live_period=60),
    contact=Contact("A", "B", "+1"),
    via_bot="@gif",
    reactions=(Reaction("emoji", 6, emoji="❤️"), Reaction("custom_emoji", 1, document_id=53), Reaction("paid", 9)),
    extra={"reactions_recent": [{"reaction": "❤️", "from_id": 5}], "unknown_flag": True},
)


def test_every_field_round_trips() -> None:
    assert decode_message(encode_message(FULL)) == FULL


def test_defaults_are_left_out_of_records() -> None:
    record = to_record(Message(chat_id=1, id=2, date=3))
    assert record == {"chat_id": 1, "id": 2, "date": 3}


def test_a_record_written_before_reactions_decodes_with_none() -> None:
    old = msgpack.packb({"v": 1, "chat_id": 1, "id": 2, "date": 3, "via_bot": "@gif"}, use_bin_type=True)
    assert decode_message(old) == Message(chat_id=1, id=2, date=3, via_bot="@gif")
    assert decode_message(old).reactions == ()


def test_unknown_record_keys_from_a_newer_version_are_ignored() -> None:
    record = {**to_record(Message(chat_id=1, id=2, date=3)), "future_field": {"x": 1}}
    assert from_record(Message, record) == Message(chat_id=1, id=2, date=3)


def test_chat_round_trips() -> None:
    chat = Chat(-100123, "Title", "channel", "name")
    assert decode_chat(encode_chat(chat)) == chat


@given(
    text=st.text(),
    ids=st.integers(min_value=1, max_value=2**31),
    extra=st.dictionaries(
        st.text(min_size=1), st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text()
    ),
)
def test_random_messages_round_trip(text: str, ids: int, extra: dict[str, object]) -> None:
    message = Message(chat_id=-ids, id=ids, date=ids, text=text, extra=extra)
    assert decode_message(encode_message(message)) == message
