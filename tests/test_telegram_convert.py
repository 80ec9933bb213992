"""Tests of the Telethon TL -> model conversion (tobs_sync.sources.telegram_convert).

Every input is a real TL object from ``telethon.tl.types``, serialised with ``bytes(obj)`` and read
back with ``BinaryReader`` once (so it is valid TL of the pinned layer) before it is converted.
Entities Telethon attaches with a client (``_sender``, ``_chat``, ``_action_entities``,
``_via_bot``, ``_forward``) are set by hand after that round trip, as ``_finish_init`` would.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from telethon._updates import EntityCache
from telethon.extensions import BinaryReader
from telethon.tl import types as T
from telethon.utils import get_peer_id

from tobs_sync.markdown import render_text
from tobs_sync.model import (
    GENERAL_TOPIC_ID,
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
from tobs_sync.sources.telegram_convert import (
    SELF_DESTRUCTING,
    UNAVAILABLE_MEDIA,
    chat_from_entity,
    display_name,
    media_locator,
    message_from_tl,
    parse_locator,
    snake_case,
    tl_media_for_slot,
)

D = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
EPOCH = int(D.timestamp())
CHAN = T.PeerChannel(channel_id=1234567890)
CHAN_ID = -1001234567890
GROUP = T.PeerChat(chat_id=4242)
GROUP_ID = -4242
ALICE = T.PeerUser(user_id=111)
ALICE_USER = T.User(id=111, access_hash=1, first_name="Alice", last_name="Liddell", username="alice")


def roundtrip(obj: Any) -> Any:
    raw = bytes(obj)
    back = BinaryReader(raw).tgread_object()
    assert bytes(back) == raw
    return back


def convert(message: Any, chat_id: int = CHAN_ID, **attached: Any) -> Message:
    back = roundtrip(message)
    for name, value in attached.items():
        setattr(back, f"_{name}", value)
    result = message_from_tl(back, chat_id)
    assert result is not None
    json.dumps(dict(result.extra))  # extra is JSON-like
    if result.action is not None:
        json.dumps(dict(result.action.details))
    return result


def msg(**fields: Any) -> T.Message:
    values: dict[str, Any] = {"id": 10, "peer_id": CHAN, "date": D, "message": ""}
    return T.Message(**(values | fields))


def service(action: Any, **fields: Any) -> T.MessageService:
    values: dict[str, Any] = {"id": 20, "peer_id": GROUP, "date": D, "from_id": ALICE, "action": action}
    return T.MessageService(**(values | fields))


def photo(photo_id: int = 5001, sizes: list[Any] | None = None) -> T.Photo:
    if sizes is None:
        sizes = [
            T.PhotoStrippedSize(type="i", bytes=b"\x01\x28\x28"),
            T.PhotoSize(type="m", w=320, h=240, size=12345),
            T.PhotoSizeProgressive(type="y", w=1280, h=960, sizes=[1000, 5000, 90000]),
            T.PhotoPathSize(type="j", bytes=b"\x00" * 200),
        ]
    return T.Photo(id=photo_id, access_hash=-77, file_reference=b"\x01", date=D, dc_id=4, sizes=sizes)


def document(attributes: list[Any], mime: str = "application/octet-stream", size: int = 2048) -> T.Document:
    return T.Document(
        id=6001, access_hash=-88, file_reference=b"\x03", date=D, mime_type=mime, size=size, dc_id=5,
        attributes=attributes,
    )


# -- chats ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entity", "expected"),
    [
        (ALICE_USER, Chat(111, "Alice Liddell", "user", "alice")),
        (T.User(id=112, first_name="Bob"), Chat(112, "Bob", "user")),
        (T.User(id=113, username="carol"), Chat(113, "carol", "user", "carol")),
        (
            T.User(id=114, bot=True, bot_info_version=1, first_name="Helper", username="helper_bot"),
            Chat(114, "Helper", "bot", "helper_bot"),
        ),
        (T.User(id=115, is_self=True, first_name="Me"), Chat(115, "Saved Messages", "saved")),
        (T.User(id=116, deleted=True), Chat(116, "Deleted account 116", "user")),
        (T.UserEmpty(id=117), Chat(117, "Deleted account 117", "user")),
        (
            T.User(id=118, first_name="Dee", usernames=[
                T.Username(username="old", active=False), T.Username(username="dee", active=True)
            ]),
            Chat(118, "Dee", "user", "dee"),
        ),
        (T.Chat(id=4242, title="Family", photo=T.ChatPhotoEmpty(), participants_count=3, date=D, version=1),
         Chat(GROUP_ID, "Family", "group")),
        (T.ChatForbidden(id=4243, title="Gone"), Chat(-4243, "Gone", "group")),
        (T.Channel(id=1234567890, title="News", photo=T.ChatPhotoEmpty(), date=D, broadcast=True, username="news"),
         Chat(CHAN_ID, "News", "channel", "news")),
        (T.Channel(id=1234567891, title="Chatters", photo=T.ChatPhotoEmpty(), date=D, megagroup=True),
         Chat(-1001234567891, "Chatters", "supergroup")),
        (T.ChannelForbidden(id=1234567892, access_hash=1, title="Banned", broadcast=True),
         Chat(-1001234567892, "Banned", "channel")),
        (T.ChannelForbidden(id=1234567893, access_hash=1, title="", megagroup=True),
         Chat(-1001234567893, "Unnamed supergroup 1234567893", "supergroup")),
    ],
)
def test_chat_from_entity(entity: Any, expected: Chat) -> None:
    assert chat_from_entity(roundtrip(entity)) == expected


def test_display_name() -> None:
    assert display_name(ALICE_USER) == "Alice Liddell"
    assert display_name(T.User(id=1, last_name="Solo")) == "Solo"
    assert display_name(T.User(id=1, deleted=True)) is None
    assert display_name(T.ChatForbidden(id=1, title="Gone")) == "Gone"
    assert display_name(None) is None


def test_snake_case() -> None:
    assert snake_case("SetMessagesTTL") == "set_messages_ttl"
    assert snake_case("ChatJoinedByLink") == "chat_joined_by_link"
    assert snake_case("GeoLive") == "geo_live"


# -- text -------------------------------------------------------------------------------------


ENTITY_CASES = [
    (T.MessageEntityBold(0, 2), Entity("bold", 0, 2)),
    (T.MessageEntityItalic(0, 2), Entity("italic", 0, 2)),
    (T.MessageEntityUnderline(0, 2), Entity("underline", 0, 2)),
    (T.MessageEntityStrike(0, 2), Entity("strikethrough", 0, 2)),
    (T.MessageEntitySpoiler(0, 2), Entity("spoiler", 0, 2)),
    (T.MessageEntityCode(0, 2), Entity("code", 0, 2)),
    (T.MessageEntityPre(0, 2, language="py"), Entity("pre", 0, 2, language="py")),
    (T.MessageEntityPre(0, 2, language=""), Entity("pre", 0, 2, language="")),
    (T.MessageEntityUrl(0, 2), Entity("link", 0, 2)),
    (T.MessageEntityTextUrl(0, 2, url="https://example.org"), Entity("text_link", 0, 2, url="https://example.org")),
    (T.MessageEntityMention(0, 2), Entity("mention", 0, 2)),
    (T.MessageEntityMentionName(0, 2, user_id=222), Entity("mention_name", 0, 2, user_id=222)),
    (T.InputMessageEntityMentionName(0, 2, T.InputUser(223, 9)), Entity("mention_name", 0, 2, user_id=223)),
    (T.MessageEntityHashtag(0, 2), Entity("hashtag", 0, 2)),
    (T.MessageEntityCashtag(0, 2), Entity("cashtag", 0, 2)),
    (T.MessageEntityBotCommand(0, 2), Entity("bot_command", 0, 2)),
    (T.MessageEntityEmail(0, 2), Entity("email", 0, 2)),
    (T.MessageEntityPhone(0, 2), Entity("phone", 0, 2)),
    (T.MessageEntityBankCard(0, 2), Entity("bank_card", 0, 2)),
    (T.MessageEntityBlockquote(0, 2), Entity("blockquote", 0, 2)),
    (T.MessageEntityBlockquote(0, 2, collapsed=True), Entity("blockquote", 0, 2, collapsed=True)),
    (T.MessageEntityCustomEmoji(0, 2, document_id=987654321), Entity("custom_emoji", 0, 2, custom_emoji_id=987654321)),
    (T.MessageEntityUnknown(0, 2), Entity("unknown", 0, 2)),
    (T.MessageEntityFormattedDate(0, 2, date=EPOCH), Entity("formatted_date", 0, 2)),
]


@pytest.mark.parametrize(("tl", "expected"), ENTITY_CASES, ids=[type(c[0]).__name__ for c in ENTITY_CASES])
def test_entity_kinds(tl: Any, expected: Entity) -> None:
    assert convert(msg(message="ab", entities=[tl])).entities == (expected,)


def test_utf16_offsets_are_copied_as_is() -> None:
    text = "Hi 😀 bold 👍🏽 end"
    converted = convert(msg(message=text, entities=[T.MessageEntityBold(6, 4), T.MessageEntityItalic(15, 3)]))
    assert converted.text == text
    assert converted.entities == (Entity("bold", 6, 4), Entity("italic", 15, 3))


def test_render_rich_message() -> None:
    text = "Hi 😀 bold and a link\nprint(1)"
    entities = [
        T.MessageEntityBold(6, 4),
        T.MessageEntityTextUrl(17, 4, url="https://example.org"),
        T.MessageEntityPre(22, 8, language="python"),
    ]
    converted = convert(msg(message=text, entities=entities))
    assert render_text(converted.text, converted.entities) == (
        "Hi 😀 **bold** and a [link](https://example.org)\n```python\nprint(1)\n```"
    )


# -- senders and chats ------------------------------------------------------------------------


def test_channel_post() -> None:
    channel = T.Channel(id=1234567890, title="News", photo=T.ChatPhotoEmpty(), date=D, broadcast=True)
    tl = msg(id=7, message="hello", post=True, post_author="Ed", views=120, forwards=3,
             replies=T.MessageReplies(replies=4, replies_pts=1))
    converted = convert(tl, chat=channel)
    assert converted == Message(
        chat_id=CHAN_ID, id=7, date=EPOCH, text="hello", sender_id=CHAN_ID, sender_name="News", author="Ed",
        extra={"views": 120, "forwards": 3, "replies": 4},
    )


def test_basic_group_message_with_sender() -> None:
    converted = convert(msg(peer_id=GROUP, from_id=ALICE, message="hi"), GROUP_ID, sender=ALICE_USER)
    assert (converted.chat_id, converted.sender_id, converted.sender_name) == (GROUP_ID, 111, "Alice Liddell")


def test_sender_unknown_without_entities() -> None:
    converted = convert(msg(peer_id=GROUP, from_id=ALICE, message="hi"), GROUP_ID)
    assert (converted.sender_id, converted.sender_name) == (111, None)


def test_private_chat_incoming_and_outgoing() -> None:
    incoming = convert(msg(peer_id=ALICE, message="hey"), 111, chat=ALICE_USER)
    assert (incoming.chat_id, incoming.sender_id, incoming.sender_name) == (111, 111, "Alice Liddell")
    me = T.User(id=999, is_self=True, first_name="Me")
    outgoing = convert(msg(peer_id=ALICE, out=True, from_id=T.PeerUser(999), message="yo"), 111, sender=me)
    assert (outgoing.sender_id, outgoing.sender_name) == (999, "Me")


def test_outgoing_without_from_id_uses_the_clients_own_id() -> None:
    tl = msg(peer_id=ALICE, out=True, message="yo")
    assert convert(tl, 111).sender_id is None
    assert convert(tl, 111, client=SimpleNamespace(_self_id=999)).sender_id == 999


def test_anonymous_group_admin_speaks_as_the_group() -> None:
    converted = convert(msg(message="rules"), CHAN_ID)
    assert converted.sender_id == CHAN_ID


def test_message_empty_is_none() -> None:
    assert message_from_tl(roundtrip(T.MessageEmpty(id=5, peer_id=CHAN, date=None)), CHAN_ID) is None


# -- media ------------------------------------------------------------------------------------


def test_photo_picks_the_largest_size() -> None:
    converted = convert(msg(id=11, message="a photo", media=T.MessageMediaPhoto(photo=photo(), spoiler=True)))
    assert converted.media == (
        MediaRef(
            kind="photo", locator=f"tg:{CHAN_ID}:11:0", mime_type="image/jpeg", size=90000, width=1280, height=960,
            dc_id=4, file_key="photo:5001", spoiler=True,
        ),
    )


def test_photo_cached_size_counts_its_bytes() -> None:
    sizes = [T.PhotoCachedSize(type="s", w=90, h=60, bytes=b"x" * 700), T.PhotoSize(type="m", w=320, h=240, size=500)]
    (ref,) = convert(msg(media=T.MessageMediaPhoto(photo=photo(sizes=sizes)))).media
    assert (ref.size, ref.width, ref.height) == (700, 90, 60)


VIDEO = T.DocumentAttributeVideo(duration=12.5, w=1920, h=1080, supports_streaming=True)
DOCUMENT_CASES = [
    (
        [T.DocumentAttributeSticker(alt="😀", stickerset=T.InputStickerSetEmpty()),
         T.DocumentAttributeImageSize(w=512, h=512), T.DocumentAttributeFilename(file_name="sticker.webp")],
        "image/webp",
        {"kind": "sticker", "emoji": "😀", "width": 512, "height": 512, "file_name": "sticker.webp"},
    ),
    (
        [T.DocumentAttributeVideo(duration=7, w=384, h=384, round_message=True)],
        "video/mp4",
        {"kind": "video_note", "width": 384, "height": 384, "duration": 7.0},
    ),
    (
        [T.DocumentAttributeAnimated(), T.DocumentAttributeVideo(duration=2, w=320, h=200),
         T.DocumentAttributeFilename(file_name="giphy.mp4")],
        "video/mp4",
        {"kind": "animation", "width": 320, "height": 200, "duration": 2.0, "file_name": "giphy.mp4"},
    ),
    (
        [VIDEO, T.DocumentAttributeFilename(file_name="clip.mp4")],
        "video/mp4",
        {"kind": "video", "width": 1920, "height": 1080, "duration": 12.5, "file_name": "clip.mp4"},
    ),
    (
        [T.DocumentAttributeAudio(duration=3, voice=True, waveform=b"\x00\x01")],
        "audio/ogg",
        {"kind": "voice", "duration": 3.0},
    ),
    (
        [T.DocumentAttributeAudio(duration=200, title="Song", performer="Band"),
         T.DocumentAttributeFilename(file_name="song.mp3")],
        "audio/mpeg",
        {"kind": "audio", "duration": 200.0, "title": "Song", "performer": "Band", "file_name": "song.mp3"},
    ),
    (
        [T.DocumentAttributeFilename(file_name="report.pdf")],
        "application/pdf",
        {"kind": "document", "file_name": "report.pdf"},
    ),
    (
        [T.DocumentAttributeImageSize(w=4000, h=3000), T.DocumentAttributeFilename(file_name="raw.png")],
        "image/png",
        {"kind": "document", "width": 4000, "height": 3000, "file_name": "raw.png"},
    ),
]


@pytest.mark.parametrize(("attributes", "mime", "expected"), DOCUMENT_CASES, ids=[c[2]["kind"] for c in DOCUMENT_CASES])
def test_document_kinds(attributes: list[Any], mime: str, expected: dict[str, Any]) -> None:
    tl = msg(id=12, media=T.MessageMediaDocument(document=document(attributes, mime)))
    (ref,) = convert(tl).media
    base = MediaRef(
        kind="document", locator=f"tg:{CHAN_ID}:12:0", mime_type=mime, size=2048, dc_id=5, file_key="document:6001"
    )
    assert ref == MediaRef(**({name: getattr(base, name) for name in MediaRef.__slots__} | expected))


def test_album_messages_share_grouped_id() -> None:
    first = convert(msg(id=30, grouped_id=999, media=T.MessageMediaPhoto(photo=photo(1))))
    second = convert(msg(id=31, grouped_id=999, message="caption", media=T.MessageMediaPhoto(photo=photo(2))))
    assert (first.grouped_id, second.grouped_id) == (999, 999)
    assert [m.media[0].file_key for m in (first, second)] == ["photo:1", "photo:2"]


@pytest.mark.parametrize(
    ("media", "kind"),
    [
        (T.MessageMediaPhoto(photo=T.PhotoEmpty(id=1)), "photo"),
        (T.MessageMediaPhoto(), "photo"),
        (T.MessageMediaDocument(document=T.DocumentEmpty(id=1)), "document"),
        (T.MessageMediaDocument(voice=True), "voice"),
        (T.MessageMediaDocument(round=True), "video_note"),
        (T.MessageMediaDocument(video=True), "video"),
    ],
)
def test_missing_media_is_unavailable(media: Any, kind: str) -> None:
    tl = msg(media=media)
    assert convert(tl).media == (MediaRef(kind=kind, locator=None, unavailable=UNAVAILABLE_MEDIA),)
    assert tl_media_for_slot(tl, 0) is None


def test_self_destructing_media_is_not_saved() -> None:
    tl = msg(media=T.MessageMediaPhoto(photo=photo(), ttl_seconds=10))
    (ref,) = convert(tl).media
    assert (ref.kind, ref.locator, ref.unavailable, ref.file_key) == ("photo", None, SELF_DESTRUCTING, "photo:5001")
    assert tl_media_for_slot(tl, 0) is None


def test_live_photo_video_is_slot_one() -> None:
    video = document([VIDEO], "video/mp4")
    tl = msg(id=13, media=T.MessageMediaPhoto(photo=photo(), live_photo=True, video=video))
    refs = convert(tl).media
    assert [(r.kind, r.locator) for r in refs] == [("photo", f"tg:{CHAN_ID}:13:0"), ("video", f"tg:{CHAN_ID}:13:1")]
    assert tl_media_for_slot(tl, 1) is video


def test_tl_media_for_slot() -> None:
    the_photo, the_doc = photo(), document([VIDEO], "video/mp4")
    photo_message = roundtrip(msg(media=T.MessageMediaPhoto(photo=the_photo)))
    assert bytes(tl_media_for_slot(photo_message, 0)) == bytes(the_photo)
    assert tl_media_for_slot(photo_message, 1) is None
    assert tl_media_for_slot(photo_message, -1) is None
    assert tl_media_for_slot(msg(media=T.MessageMediaDocument(document=the_doc)), 0) is the_doc
    assert tl_media_for_slot(msg(message="text only"), 0) is None
    edit_photo = service(T.MessageActionChatEditPhoto(photo=the_photo))
    assert tl_media_for_slot(edit_photo, 0) is the_photo


@given(st.integers(-(10**13), 10**13), st.integers(1, 2**31 - 1), st.integers(0, 9))
def test_locator_round_trip(chat_id: int, message_id: int, slot: int) -> None:
    assert parse_locator(media_locator(chat_id, message_id, slot)) == (chat_id, message_id, slot)


@pytest.mark.parametrize(
    "bad", ["", "tg:1:2", "tg:1:2:3:4", "tg:a:2:3", "file:1:2:3", "tg:1:-2:3", "tg:1:2:-3", " tg:1:2:3", "photos/x.jpg"]
)
def test_parse_locator_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="locator"):
        parse_locator(bad)


def test_parse_locator_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match="locator"):
        parse_locator(None)  # type: ignore[arg-type]


# -- structured media -------------------------------------------------------------------------


def text_(text: str) -> T.TextWithEntities:
    return T.TextWithEntities(text=text, entities=[])


def poll_media(question: Any, answers: list[Any], results: Any) -> T.MessageMediaPoll:
    poll = T.Poll(id=1, question=question, answers=answers, hash=0, closed=True)
    return T.MessageMediaPoll(poll=poll, results=results)


def test_poll_with_results() -> None:
    answers = [T.PollAnswer(text=text_(t), option=o) for t, o in (("Yes", b"0"), ("No", b"1"), ("Maybe", b"2"))]
    results = T.PollResults(
        results=[
            T.PollAnswerVoters(option=b"1", voters=2, chosen=True, recent_voters=[]),
            T.PollAnswerVoters(option=b"0", voters=5, recent_voters=[]),
        ],
        total_voters=7,
    )
    converted = convert(msg(media=poll_media(text_("Lunch?"), answers, results)))
    assert converted.poll == Poll(
        question="Lunch?",
        answers=(PollAnswer("Yes", 5), PollAnswer("No", 2, chosen=True), PollAnswer("Maybe")),
        closed=True,
        total_voters=7,
    )
    assert converted.media == ()


def test_quiz_poll_keeps_correct_answer_in_extra() -> None:
    answers = [T.PollAnswer(text=text_(t), option=o) for t, o in (("A", b"a"), ("B", b"b"))]
    voters = T.PollAnswerVoters(option=b"b", voters=1, correct=True, recent_voters=[])
    media = poll_media(text_("Q"), answers, T.PollResults(results=[voters], total_voters=1))
    media.poll.quiz = True
    assert convert(msg(media=media)).extra == {"poll": {"quiz": True, "correct_answers": [1]}}


def test_poll_with_plain_string_texts_from_older_layers() -> None:
    tl = msg(media=T.MessageMediaPoll(
        poll=T.Poll(id=1, question="Old?", answers=[T.PollAnswer(text="Sure", option=b"0")], hash=0),
        results=T.PollResults(),
    ))
    converted = message_from_tl(tl, CHAN_ID)  # not serialisable: plain strings are not TL here
    assert converted is not None and converted.poll == Poll("Old?", (PollAnswer("Sure"),))
    tl.media.results = None
    converted = message_from_tl(tl, CHAN_ID)
    assert converted is not None and converted.poll == Poll("Old?", (PollAnswer("Sure"),))


def test_geo_live_venue_contact() -> None:
    point = T.GeoPoint(long=2.2945, lat=48.8584, access_hash=1)
    assert convert(msg(media=T.MessageMediaGeo(geo=point))).location == Location(48.8584, 2.2945)
    live = convert(msg(media=T.MessageMediaGeoLive(geo=point, period=900)))
    assert live.location == Location(48.8584, 2.2945, live_period=900)
    venue = convert(msg(media=T.MessageMediaVenue(
        geo=point, title="Eiffel Tower", address="Champ de Mars", provider="foursquare", venue_id="4adc", venue_type=""
    )))
    assert venue.location == Location(48.8584, 2.2945, title="Eiffel Tower", address="Champ de Mars")
    assert venue.extra == {"venue": {"provider": "foursquare", "venue_id": "4adc"}}
    contact = convert(msg(media=T.MessageMediaContact(
        phone_number="+15550100", first_name="Dana", last_name="", vcard="", user_id=321
    )))
    assert contact.contact == Contact("Dana", None, "+15550100")
    assert contact.extra == {"contact": {"user_id": 321}}


def test_empty_geo_point_goes_to_extra() -> None:
    converted = convert(msg(media=T.MessageMediaGeo(geo=T.GeoPointEmpty())))
    assert converted.location is None
    assert converted.extra == {"geo": {}}


def test_webpage_goes_to_extra() -> None:
    page = T.WebPage(id=1, url="https://example.org/a", display_url="example.org/a", hash=0,
                     site_name="Example", title="A page", description="About A")
    converted = convert(msg(message="https://example.org/a", media=T.MessageMediaWebPage(webpage=page)))
    assert converted.media == ()
    assert converted.extra == {"webpage": {
        "url": "https://example.org/a", "site_name": "Example", "title": "A page", "description": "About A"
    }}
    pending = convert(msg(media=T.MessageMediaWebPage(webpage=T.WebPagePending(id=2, date=D, url="https://x.org"))))
    assert pending.extra == {"webpage": {"url": "https://x.org"}}


@pytest.mark.parametrize(
    ("media", "extra"),
    [
        (T.MessageMediaDice(value=6, emoticon="🎲"), {"dice": {"value": 6, "emoticon": "🎲"}}),
        (T.MessageMediaUnsupported(), {"unsupported": {}}),
        (
            T.MessageMediaGame(game=T.Game(
                id=5, access_hash=99, short_name="tetris", title="Tetris", description="Blocks", photo=T.PhotoEmpty(1)
            )),
            {"game": {"game": {"id": 5, "short_name": "tetris", "title": "Tetris", "description": "Blocks"}}},
        ),
        (T.MessageMediaStory(peer=CHAN, id=77), {"story": {"peer": CHAN_ID, "id": 77}}),
        (
            T.MessageMediaGiveaway(channels=[1, 2], quantity=10, until_date=D, countries_iso2=["DE"], months=3),
            {"giveaway": {"channels": [1, 2], "quantity": 10, "until_date": EPOCH, "countries_iso2": ["DE"],
                          "months": 3}},
        ),
    ],
)
def test_other_media_go_to_extra(media: Any, extra: dict[str, Any]) -> None:
    converted = convert(msg(media=media))
    assert (converted.media, converted.extra) == ((), extra)


# -- forwards, replies, edits, bots -----------------------------------------------------------


def test_forward_from_channel_post() -> None:
    fwd = T.MessageFwdHeader(date=D, from_id=T.PeerChannel(42), channel_post=7, post_author="ed")
    converted = convert(msg(peer_id=ALICE, message="fwd", fwd_from=fwd), 111)
    assert converted.forward == Forward(from_id=-1000000000042, date=EPOCH, channel_post=7, post_author="ed")


def test_forward_from_hidden_user_and_saved_from() -> None:
    fwd = T.MessageFwdHeader(date=D, from_name="Hidden Person", saved_from_peer=GROUP, saved_from_msg_id=3)
    assert convert(msg(fwd_from=fwd)).forward == Forward(from_name="Hidden Person", date=EPOCH, saved_from="-4242")
    named = T.MessageFwdHeader(
        date=D, from_id=ALICE, saved_from_peer=GROUP, saved_from_msg_id=4, saved_from_name="Family"
    )
    assert convert(msg(fwd_from=named)).forward == Forward(from_id=111, date=EPOCH, saved_from="Family")


def test_forward_uses_the_resolved_original_sender_name() -> None:
    fwd = T.MessageFwdHeader(date=D, from_id=ALICE)
    converted = convert(msg(fwd_from=fwd), forward=SimpleNamespace(sender=ALICE_USER, chat=None))
    assert converted.forward == Forward(from_name="Alice Liddell", from_id=111, date=EPOCH)


def test_replies() -> None:
    same = convert(msg(reply_to=T.MessageReplyHeader(reply_to_msg_id=10, quote=True, quote_text="bold")))
    assert same.reply == Reply(10, quote_text="bold")
    here = convert(msg(reply_to=T.MessageReplyHeader(reply_to_msg_id=10, reply_to_peer_id=CHAN)))
    assert here.reply == Reply(10)
    other = convert(msg(reply_to=T.MessageReplyHeader(reply_to_msg_id=5, reply_to_peer_id=GROUP)))
    assert other.reply == Reply(5, chat_id=GROUP_ID)


def test_forum_topic_and_story_replies() -> None:
    topic = convert(msg(reply_to=T.MessageReplyHeader(reply_to_msg_id=50, reply_to_top_id=40, forum_topic=True)))
    assert (topic.reply, topic.topic_id, topic.extra) == (Reply(50), 40, {})
    story = convert(msg(reply_to=T.MessageReplyStoryHeader(peer=ALICE, story_id=9)))
    assert (story.reply, story.extra) == (None, {"reply_to_story": {"peer_id": 111, "story_id": 9}})


def test_a_forum_supergroup_is_marked_as_a_forum() -> None:
    entity = T.Channel(id=1234567892, title="Club", photo=T.ChatPhotoEmpty(), date=D, megagroup=True, forum=True)
    assert chat_from_entity(entity) == Chat(-1001234567892, "Club", "supergroup", forum=True)


def test_a_topic_message_that_replies_to_nothing_is_in_the_topic_and_no_reply() -> None:
    header = T.MessageReplyHeader(reply_to_msg_id=40, forum_topic=True)  # reply_to_msg_id is the topic itself
    converted = convert(msg(reply_to=header))
    assert (converted.reply, converted.topic_id, converted.extra) == (None, 40, {})


def test_forum_messages_without_a_topic_header_are_in_the_general_topic() -> None:
    plain = message_from_tl(roundtrip(msg()), CHAN_ID, forum=True)
    answer = message_from_tl(roundtrip(msg(reply_to=T.MessageReplyHeader(reply_to_msg_id=7))), CHAN_ID, forum=True)
    assert plain is not None and answer is not None
    assert (plain.topic_id, plain.reply) == (GENERAL_TOPIC_ID, None)
    assert (answer.topic_id, answer.reply) == (GENERAL_TOPIC_ID, Reply(7))
    assert convert(msg()).topic_id is None  # not a forum: no topic at all


def test_the_message_creating_a_topic_names_it() -> None:
    created = service(T.MessageActionTopicCreate(title="Ideas", icon_color=0x6FB9F0), peer_id=CHAN)
    converted = message_from_tl(roundtrip(created), CHAN_ID, forum=True)
    assert converted is not None
    assert (converted.topic_id, converted.topic_title) == (created.id, "Ideas")
    edited = convert(service(T.MessageActionTopicEdit(title="Ideas 2", closed=True), peer_id=CHAN,
                             reply_to=T.MessageReplyHeader(reply_to_msg_id=created.id, forum_topic=True)))
    assert edited.action == ServiceAction("topic_edit", details={"new_title": "Ideas 2", "closed": True})
    assert (edited.topic_id, edited.reply) == (created.id, None)


def test_edits() -> None:
    assert convert(msg(edit_date=datetime(2024, 5, 1, 13, 0, tzinfo=UTC))).edited == EPOCH + 3600
    assert convert(msg(edit_date=D)).edited is None
    assert convert(msg(edit_date=datetime(2024, 5, 2, tzinfo=UTC), edit_hide=True)).edited is None
    assert convert(msg()).edited is None


def test_via_bot() -> None:
    assert convert(msg(via_bot_id=555)).via_bot == "bot 555"
    bot = T.User(id=555, bot=True, bot_info_version=1, first_name="Gif", username="gif")
    assert convert(msg(via_bot_id=555), via_bot=bot).via_bot == "@gif"


def test_reactions_are_counted_and_buttons_and_counters_go_to_extra() -> None:
    reactions = T.MessageReactions(results=[
        T.ReactionCount(reaction=T.ReactionEmoji(emoticon="👍"), count=3),
        T.ReactionCount(reaction=T.ReactionCustomEmoji(document_id=123), count=1),
        T.ReactionCount(reaction=T.ReactionPaid(), count=5),
    ], recent_reactions=[T.MessagePeerReaction(
        peer_id=T.PeerUser(7), date=datetime(2024, 1, 1, tzinfo=UTC), reaction=T.ReactionEmoji(emoticon="👍"),
    )])
    markup = T.ReplyInlineMarkup(rows=[T.KeyboardButtonRow(buttons=[
        T.KeyboardButton(text="Open", type=T.InlineButtonTypeUrl(url="https://example.org")),
        T.KeyboardButton(text="Vote", type=T.InlineButtonTypeCallback(data=b"v1")),
    ])])
    converted = convert(msg(reactions=reactions, reply_markup=markup, ttl_period=86400))
    assert converted.reactions == (
        Reaction("emoji", 3, emoji="👍"), Reaction("custom_emoji", 1, document_id=123), Reaction("paid", 5),
    )
    assert converted.extra == {
        "reactions_recent": [{"reaction": "👍", "from_id": 7, "date": 1704067200}],
        "inline_bot_buttons": [[
            {"type": "url", "text": "Open", "url": "https://example.org"}, {"type": "callback", "text": "Vote"}
        ]],
        "ttl_period": 86400,
    }



EACH_COUNTER_ALONE = [
    ({"views": 7, "forwards": 2}, {"views": 7, "forwards": 2}),
    ({"replies": T.MessageReplies(replies=3, replies_pts=1)}, {"replies": 3}),
    ({"ttl_period": 60}, {"ttl_period": 60}),
    ({"via_business_bot_id": 99}, {"via_business_bot_id": 99}),
    ({"restriction_reason": [T.RestrictionReason(platform="ios", reason="x", text="t")]},
     {"restriction_reason": [{"platform": "ios", "reason": "x", "text": "t"}]}),
    ({"reply_markup": T.ReplyInlineMarkup(rows=[T.KeyboardButtonRow(buttons=[
        T.KeyboardButton(text="Go", type=T.InlineButtonTypeCallback(data=b"g"))])])},
     {"inline_bot_buttons": [[{"type": "callback", "text": "Go"}]]}),
    ({"views": 0, "forwards": 0}, {}),
]


@pytest.mark.parametrize(("fields", "extra"), EACH_COUNTER_ALONE)
def test_each_counter_reaches_extra_on_its_own_and_zero_counts_are_left_out(
    fields: dict[str, Any], extra: dict[str, Any]
) -> None:
    assert convert(msg(**fields)).extra == extra


# -- service messages -------------------------------------------------------------------------


BOB = T.User(id=222, first_name="Bob")
GHOST = T.User(id=333, deleted=True)
ACTION_CASES = [
    (T.MessageActionChatCreate(title="Family", users=[111, 222, 444]), [ALICE_USER, BOB],
     ServiceAction("create_group", title="Family", members=("Alice Liddell", "Bob", "user 444"))),
    (T.MessageActionChannelCreate(title="News"), None, ServiceAction("create_channel", title="News")),
    (T.MessageActionChatEditTitle(title="New"), None, ServiceAction("edit_group_title", title="New")),
    (T.MessageActionChatDeletePhoto(), None, ServiceAction("delete_group_photo")),
    (T.MessageActionChatAddUser(users=[222, 333]), [BOB, GHOST],
     ServiceAction("invite_members", members=("Bob", "Deleted account"))),
    (T.MessageActionChatAddUser(users=[222]), None, ServiceAction("invite_members", members=("user 222",))),
    (T.MessageActionChatDeleteUser(user_id=222), [BOB], ServiceAction("remove_members", members=("Bob",))),
    (T.MessageActionChatJoinedByLink(inviter_id=222), [BOB],
     ServiceAction("join_group_by_link", details={"inviter": "Bob"})),
    (T.MessageActionChatJoinedByRequest(), None, ServiceAction("join_group_by_request")),
    (T.MessageActionChatMigrateTo(channel_id=77), None,
     ServiceAction("migrate_to_supergroup", details={"channel_id": -1000000000077})),
    (T.MessageActionChannelMigrateFrom(title="Old", chat_id=4242), None,
     ServiceAction("migrate_from_group", title="Old", details={"chat_id": -4242})),
    (T.MessageActionHistoryClear(), None, ServiceAction("clear_history")),
    (T.MessageActionPhoneCall(call_id=1, reason=T.PhoneCallDiscardReasonHangup(), duration=56), None,
     ServiceAction("phone_call", duration=56, details={"discard_reason": "hangup"})),
    (T.MessageActionPhoneCall(call_id=1, reason=T.PhoneCallDiscardReasonMissed(), video=True), None,
     ServiceAction("phone_call", details={"discard_reason": "missed", "video": True})),
    (T.MessageActionPhoneCall(call_id=1, reason=T.PhoneCallDiscardReasonBusy()), None,
     ServiceAction("phone_call", details={"discard_reason": "busy"})),
    (T.MessageActionPhoneCall(call_id=1, reason=T.PhoneCallDiscardReasonDisconnect()), None,
     ServiceAction("phone_call", details={"discard_reason": "disconnect"})),
    (T.MessageActionGroupCall(call=T.InputGroupCall(id=1, access_hash=2), duration=300), None,
     ServiceAction("group_call", duration=300)),
    (T.MessageActionInviteToGroupCall(call=T.InputGroupCall(id=1, access_hash=2), users=[222]), None,
     ServiceAction("invite_to_group_call", members=("user 222",))),
    (T.MessageActionSetMessagesTTL(period=86400), None, ServiceAction("set_messages_ttl", details={"period": 86400})),
    (T.MessageActionGroupCallScheduled(call=T.InputGroupCall(id=1, access_hash=2), schedule_date=D), None,
     ServiceAction("group_call_scheduled", details={"schedule_date": EPOCH})),
    (T.MessageActionContactSignUp(), None, ServiceAction("joined_telegram")),
    (T.MessageActionScreenshotTaken(), None, ServiceAction("take_screenshot")),
    (T.MessageActionTopicCreate(title="Ideas", icon_color=0x6FB9F0), None, ServiceAction("topic_created", "Ideas")),
    (T.MessageActionCustomAction(message="Something happened"), None,
     ServiceAction("custom_action", text="Something happened")),
    (T.MessageActionGameScore(game_id=12, score=300), None,
     ServiceAction("game_score", details={"game_id": 12, "score": 300})),
    (T.MessageActionPaymentSent(currency="EUR", total_amount=500, subscription_until_date=D), None,
     ServiceAction("payment_sent", details={"currency": "EUR", "total_amount": 500, "subscription_until_date": EPOCH})),
]


@pytest.mark.parametrize(("action", "members", "expected"), ACTION_CASES, ids=[c[2].kind for c in ACTION_CASES])
def test_service_actions(action: Any, members: list[Any] | None, expected: ServiceAction) -> None:
    converted = convert(service(action), GROUP_ID, sender=ALICE_USER, action_entities=members)
    assert converted.kind == "service"
    assert converted.action == expected
    assert (converted.sender_id, converted.sender_name, converted.text, converted.media) == (
        111, "Alice Liddell", "", ()
    )


def test_pin_message_takes_the_id_from_reply_to() -> None:
    tl = service(T.MessageActionPinMessage(), reply_to=T.MessageReplyHeader(reply_to_msg_id=7))
    converted = convert(tl, GROUP_ID)
    assert (converted.action, converted.reply) == (ServiceAction("pin_message", message_id=7), None)


def test_edit_group_photo_carries_the_photo() -> None:
    converted = convert(service(T.MessageActionChatEditPhoto(photo=photo()), id=21), GROUP_ID)
    assert converted.action == ServiceAction("edit_group_photo")
    expected = [("photo", f"tg:{GROUP_ID}:21:0", "photo:5001")]
    assert [(m.kind, m.locator, m.file_key) for m in converted.media] == expected


def test_channel_service_message_is_from_the_channel() -> None:
    converted = convert(service(T.MessageActionChannelCreate(title="News"), peer_id=CHAN, from_id=None, post=True))
    assert (converted.sender_id, converted.action) == (CHAN_ID, ServiceAction("create_channel", title="News"))


def finished(message: Any, *users: Any) -> Any:
    """``message`` after Telethon's own ``_finish_init`` with ``users`` as the known entities."""
    back = roundtrip(message)
    client = SimpleNamespace(_self_id=999, _mb_entity_cache=EntityCache(self_id=999))
    back._finish_init(client, {get_peer_id(user): user for user in users}, None)
    return back


def test_entities_attached_by_telethon_finish_init() -> None:
    bot = T.User(id=555, bot=True, bot_info_version=1, first_name="Gif", username="gif")
    tl = msg(peer_id=GROUP, from_id=ALICE, via_bot_id=555, fwd_from=T.MessageFwdHeader(date=D, from_id=T.PeerUser(222)))
    converted = message_from_tl(finished(tl, ALICE_USER, BOB, bot), GROUP_ID)
    assert converted is not None
    assert (converted.sender_name, converted.via_bot) == ("Alice Liddell", "@gif")
    assert converted.forward == Forward(from_name="Bob", from_id=222, date=EPOCH)
    added = message_from_tl(finished(service(T.MessageActionChatAddUser(users=[222, 444])), ALICE_USER, BOB), GROUP_ID)
    assert added is not None and added.action == ServiceAction("invite_members", members=("Bob", "user 444"))


def test_saved_messages_are_ours() -> None:
    converted = message_from_tl(finished(msg(peer_id=T.PeerUser(999), message="note to self")), 999)
    assert converted is not None and converted.sender_id == 999


@given(st.text(max_size=40), st.lists(st.tuples(st.integers(0, 80), st.integers(1, 80)), max_size=4))
def test_any_text_and_spans_convert_and_render(text: str, spans: list[tuple[int, int]]) -> None:
    tl = msg(message=text, entities=[T.MessageEntityBold(offset, length) for offset, length in spans])
    converted = message_from_tl(tl, CHAN_ID)
    assert converted is not None
    assert [(e.offset, e.length) for e in converted.entities] == spans
    render_text(converted.text, converted.entities)
