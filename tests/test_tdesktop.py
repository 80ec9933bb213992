"""Tests of the Telegram Desktop export source (tobs_sync.sources.tdesktop) and its helpers.

Real exports from ``shared/testdata/external`` (see SOURCES.md there) check the facts each file
is known for; small exports written to ``tmp_path`` check the traps one at a time.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import tracemalloc
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from telethon import types
from telethon.utils import get_peer_id

from tobs_sync.app import import_export
from tobs_sync.errors import ExportFormatError, MediaUnavailable, SourceError
from tobs_sync.model import Chat, ChatKind, Entity, MediaRef, Message, MessageKind, Reaction
from tobs_sync.sources.base import Source
from tobs_sync.sources.jsonstream import EscapeFixingReader, build_object, json_errors, parse_events
from tobs_sync.sources.tdesktop import OUT_OF_ORDER, DesktopExport
from tobs_sync.store import BELOW_CURSOR, Store
from tobs_sync.store_schema import NO_CURSOR

EXTERNAL = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "external"
CHANNEL_2021 = "tdesktop-la-ninpre-tg2md-private-channel-2021.json"
CHANNEL_2020 = "tdesktop-la-ninpre-tg2md-private-channel-2020.json"
MLOMB = "tdesktop-mlomb-chat-analytics-personal-chat.json"
TK_PERSONAL = "tdesktop-loganavter-tkonverter-synthetic-personal.json"
TK_GROUP = "tdesktop-loganavter-tkonverter-synthetic-group.json"
INVALID_FULL = "invalid/tdesktop-joweich-chat-miner-minimal-full-export.json"
MOSCOW = timezone(timedelta(hours=3))
NOT_INCLUDED = "File not included. Change data exporting settings to download."


# -- helpers ---------------------------------------------------------------------------------


class CountingExport(DesktopExport):
    """A DesktopExport that counts how often it opens the export file (a fake, not a mock)."""

    def __init__(self, path: Path, **options: Any) -> None:
        super().__init__(path, **options)
        self.opens = 0

    def _open(self) -> BinaryIO:
        self.opens += 1
        return super()._open()


def external(name: str) -> Path:
    if not EXTERNAL.is_dir():
        pytest.skip(f"external Telegram exports not available: {EXTERNAL} is absent")
    return EXTERNAL / name


def read_export(
    path: Path, tz: tzinfo = UTC, batch_size: int = 100
) -> tuple[list[Chat], dict[int, list[Message]]]:
    """Every chat and message of an export, read the way the sync reads it."""

    async def collect() -> tuple[list[Chat], dict[int, list[Message]]]:
        chats: list[Chat] = []
        messages: dict[int, list[Message]] = {}
        async with DesktopExport(path, local_timezone=tz, batch_size=batch_size) as source:
            async for chat in source.chats():
                chats.append(chat)
                messages[chat.id] = [m async for batch in source.batches(chat, 0) for m in batch]
        return chats, messages

    return asyncio.run(collect())


def only_chat(path: Path, tz: tzinfo = UTC) -> tuple[Chat, dict[int, Message]]:
    chats, messages = read_export(path, tz)
    assert len(chats) == 1
    return chats[0], {m.id: m for m in messages[chats[0].id]}


def enter_error(path: Path) -> str:
    """The ExportFormatError message raised by ``__aenter__`` of the export at ``path``."""
    source = DesktopExport(path, local_timezone=UTC)
    with pytest.raises(ExportFormatError) as caught:
        asyncio.run(source.__aenter__())
    return str(caught.value)


def write_json(folder: Path, document: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "result.json"
    path.write_text(json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def message(ident: int, **fields: Any) -> dict[str, Any]:
    return {"id": ident, "type": "message", "date_unixtime": str(1_700_000_000 + ident), "text": ""} | fields


def chat_export(messages: list[dict[str, Any]], **header: Any) -> dict[str, Any]:
    return {"name": "Chat", "type": "personal_chat", "id": 42} | header | {"messages": messages}


def one_message(tmp_path: Path, raw: dict[str, Any], tz: tzinfo = UTC) -> Message:
    _, by_id = only_chat(write_json(tmp_path / "export", chat_export([raw])), tz)
    return by_id[raw["id"]]


def full_export(tmp_path: Path, chats: int = 3, per_chat: int = 5) -> Path:
    """A full account export with ``chats`` supergroups (ids 101...) of ``per_chat`` messages."""
    listed = [
        {
            "name": f"Group {n}",
            "type": "private_supergroup",
            "id": 100 + n,
            "messages": [message(i, text=f"chat {n} message {i}") for i in range(1, per_chat + 1)],
        }
        for n in range(1, chats + 1)
    ]
    document = {"personal_information": {"user_id": 7}, "chats": {"about": "", "list": listed}}
    return write_json(tmp_path / "full", document)


def read_batches(source: DesktopExport, chat: Chat, after: int = 0) -> list[Sequence[Message]]:
    async def collect() -> list[Sequence[Message]]:
        return [batch async for batch in source.batches(chat, after)]

    return asyncio.run(collect())


def reference_rewrite(data: bytes) -> bytes:
    """``\\xHH`` -> ``\\u00HH`` where the backslash is unescaped, one byte at a time."""
    out = bytearray()
    i = 0
    while i < len(data):
        if data[i : i + 1] != b"\\":
            out += data[i : i + 1]
            i += 1
            continue
        escape = data[i : i + 4]
        if len(escape) == 4 and escape[1:2] == b"x" and re.fullmatch(rb"[0-9A-Fa-f]{2}", escape[2:]):
            out += b"\\u00" + escape[2:]
            i += 4
        else:
            out += data[i : i + 2]
            i += 2
    return bytes(out)


# -- the real exports ------------------------------------------------------------------------


def test_la_ninpre_2021_private_channel_facts() -> None:
    chat, by_id = only_chat(external(CHANNEL_2021))
    assert chat == Chat(id=-1001292077344, title="test", kind=ChatKind.CHANNEL)
    assert len(by_id) == 19
    assert Counter(m.kind for m in by_id.values()) == {"message": 18, "service": 1}
    assert {6, 12, 16, 17, 18, 19, 20}.isdisjoint(by_id)
    assert by_id[1].action is not None and by_id[1].action.kind == "create_channel"
    assert by_id[1].action.title == "test"
    assert {m.sender_id for m in by_id.values()} == {-1001292077344}
    photos = [m.media[0] for m in by_id.values() if m.media and m.media[0].kind == "photo"]
    assert len(photos) == 5
    assert len({p.locator for p in photos}) == 2
    assert all(p.unavailable == "file missing from the export" for p in photos)
    assert (photos[0].width, photos[0].height) == (801, 526)
    kinds = [m.media[0].kind for m in by_id.values() if m.media]
    assert Counter(kinds) == {"photo": 5, "voice": 1, "audio": 1, "document": 2}
    assert by_id[7].media[0].mime_type == "audio/ogg" and by_id[7].media[0].duration == 2.0
    assert by_id[8].media[0].mime_type == "audio/x-vorbis+ogg"
    assert by_id[22].extra == {"thumbnail": "files/dice.svg_thumb.jpg"}
    assert by_id[26].media[0].mime_type == "text/markdown"
    assert sum(m.edited is not None for m in by_id.values()) == 5
    assert by_id[21].text == "тестирование utf-8."
    entity_kinds = {e.kind for m in by_id.values() for e in m.entities}
    assert entity_kinds == {
        "italic",
        "bold",
        "underline",
        "strikethrough",
        "code",
        "pre",
        "text_link",
        "link",
        "email",
    }
    assert by_id[14].entities[0] == Entity("text_link", 0, 11, url="http://example.com/")
    assert by_id[13].entities[1] == Entity("pre", 28, 19, language="")


def test_la_ninpre_2021_dates_are_local_time_in_the_given_zone() -> None:
    _, by_id = only_chat(external(CHANNEL_2021), tz=MOSCOW)
    assert by_id[1].date == int(datetime(2020, 11, 12, 9, 53, 52, tzinfo=UTC).timestamp())
    assert by_id[5].edited == int(datetime(2020, 11, 12, 10, 3, 0, tzinfo=UTC).timestamp())


def test_la_ninpre_2020_integer_peer_ids_decode_to_the_2021_channel() -> None:
    old_chat, old = only_chat(external(CHANNEL_2020))
    new_chat, new = only_chat(external(CHANNEL_2021))
    assert 9882011936 - 0x200000000 == 1292077344
    assert old_chat == new_chat
    assert len(old) == 13 and max(old) == 15
    assert old[1].sender_id == new[1].sender_id == -1001292077344
    assert old[2].sender_id == new[2].sender_id
    for ident, message_2020 in old.items():
        assert message_2020.text == new[ident].text
        assert message_2020.entities == new[ident].entities


def test_la_ninpre_photos_become_available_next_to_their_files(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "result.json").write_bytes(external(CHANNEL_2021).read_bytes())
    (folder / "photos").mkdir()
    (folder / "photos" / "photo_1@12-11-2020_12-57-31.jpg").write_bytes(b"jpeg")
    _, by_id = only_chat(folder)
    assert by_id[3].media[0].unavailable is None
    assert by_id[3].media[0].locator == "photos/photo_1@12-11-2020_12-57-31.jpg"
    assert by_id[23].media[0].unavailable == "file missing from the export"


def test_mlomb_personal_chat_facts() -> None:
    chat, by_id = only_chat(external(MLOMB), tz=MOSCOW)
    assert chat == Chat(id=700000000, title="Bob", kind=ChatKind.USER)
    assert len(by_id) == 8
    assert Counter(m.kind for m in by_id.values()) == {"message": 6, "service": 2}
    assert by_id[2675].action is not None and by_id[2675].action.kind == "joined_telegram"
    call = by_id[3674].action
    assert call is not None and call.kind == "phone_call"
    assert call.duration == 56.0 and call.details == {"discard_reason": "hangup"}
    assert by_id[3645].sender_id == 300000000 and by_id[3645].sender_name == "Alice"
    emoji = by_id[3644]
    assert emoji.text == "https://google.com 👀"
    assert emoji.entities == (Entity("link", 0, 18),)
    assert len(emoji.text.encode("utf-16-le")) // 2 == 21 == len(emoji.text) + 1


def test_mlomb_placeholder_photos_are_unavailable() -> None:
    _, by_id = only_chat(external(MLOMB))
    for ident in (3672, 3673):
        (photo,) = by_id[ident].media
        assert photo == MediaRef(kind="photo", locator=None, width=960, height=1280, unavailable=NOT_INCLUDED)


def test_mlomb_uses_whichever_date_field_is_present() -> None:
    _, by_id = only_chat(external(MLOMB), tz=MOSCOW)
    assert by_id[3645].date == int(datetime(2022, 3, 8, 10, 7, 42, tzinfo=UTC).timestamp())
    assert by_id[3662].date == 1652135033
    assert by_id[3674].date == 1691719862


def test_tkonverter_personal_facts() -> None:
    chat, by_id = only_chat(external(TK_PERSONAL))
    assert chat == Chat(id=10001, title="Alice Example", kind=ChatKind.USER)
    assert len(by_id) == 87
    assert Counter(m.kind for m in by_id.values()) == {"message": 25, "service": 61, "unsupported": 1}
    unsupported = by_id[87]
    assert unsupported.kind == MessageKind.UNSUPPORTED and unsupported.text == ""
    assert unsupported.date == by_id[86].date
    actions = {m.action.kind for m in by_id.values() if m.action is not None}
    assert len(actions) == 44
    assert by_id[41].action is not None
    assert (by_id[41].action.kind, by_id[41].action.text) == ("custom_action", "Custom service text")
    assert by_id[48].action is not None and by_id[48].action.details["to_id"] == "user777000"
    assert by_id[48].sender_id is None and by_id[48].action.details["from_id"] == "user10001"
    assert by_id[50].action is not None and by_id[50].action.duration == 3600.0


def test_tkonverter_personal_regular_messages() -> None:
    _, by_id = only_chat(external(TK_PERSONAL))
    first = by_id[1]
    assert first.text == "Baseaj text with @alice and link"
    assert [e.kind for e in first.entities] == ["bold", "mention", "text_link"]
    assert set(first.extra) == {"inline_bot_buttons", "reactions_recent"}
    assert first.reactions == (
        Reaction("emoji", 2, emoji="🔥"),
        Reaction("custom_emoji", 1, document_id=1234567890123456789),
        Reaction("paid", 3),
    )
    assert first.extra["reactions_recent"] == [
        {"reaction": "🔥", "from": "Alice Example", "from_id": "user10001", "date": "2026-02-01T09:01:00"}
    ]
    second = by_id[2]
    assert second.edited == 1769936580
    assert second.forward is not None
    assert (second.forward.from_name, second.forward.from_id) == ("Channel News", -1000000000500)
    assert second.forward.saved_from == "Saved Messages"
    assert second.reply is not None and (second.reply.message_id, second.reply.chat_id) == (1, 777000)
    assert second.via_bot == "@gif"
    (photo,) = by_id[3].media
    assert (photo.spoiler, photo.size, photo.width) == (True, 550000, 1280)
    assert by_id[3].extra == {"self_destruct_period_seconds": 60}
    kinds = {ident: by_id[ident].media[0].kind for ident in range(4, 10)}
    assert kinds == {4: "sticker", 5: "video_note", 6: "voice", 7: "animation", 8: "video", 9: "audio"}
    assert by_id[4].media[0].emoji == "🙂"
    audio = by_id[9].media[0]
    assert (audio.performer, audio.title, audio.duration, audio.file_name) == (
        "Artist",
        "Track",
        210.0,
        "song.mp3",
    )
    assert by_id[10].contact is not None and by_id[10].contact.phone_number == "+1 555 111 22 33"
    assert by_id[10].extra == {"contact_vcard": "vcards/bob.vcf", "contact_vcard_file_size": 1024}
    assert by_id[11].location is not None and by_id[11].location.live_period == 900
    assert by_id[12].location is None and by_id[12].extra == {"location_information": None}
    venue = by_id[13].location
    assert venue is not None and (venue.latitude, venue.title, venue.address) == (
        50.45,
        "Coffee Bar",
        "Main Street 42",
    )
    assert by_id[14].extra == {"place_name": "No coords venue", "address": "Unknown"}
    assert by_id[17].poll is not None and [a.voters for a in by_id[17].poll.answers] == [7, 5]
    for ident, key in (
        (15, "game_title"),
        (16, "invoice_information"),
        (18, "todo_list"),
        (21, "paid_stars_amount"),
    ):
        assert key in by_id[ident].extra
    unavailable = by_id[22].media[0]
    assert (unavailable.locator, unavailable.unavailable) == (
        None,
        "File unavailable, please try again later",
    )


def test_tkonverter_group_facts() -> None:
    chat, by_id = only_chat(external(TK_GROUP))
    assert chat == Chat(id=-20001, title="Team Chat", kind=ChatKind.GROUP)
    assert Counter(m.kind for m in by_id.values()) == {"message": 23, "service": 21, "unsupported": 1}
    assert len({m.action.kind for m in by_id.values() if m.action is not None}) == 21
    created = by_id[1].action
    assert created is not None and created.members == ("Alice Example", "Bob Sample")
    assert by_id[3].media[0].kind == "photo" and by_id[3].media[0].locator == "photos/group_photo.jpg"
    assert by_id[5].action is not None and by_id[5].action.details == {"inviter": "Me"}
    assert by_id[13].action is not None and by_id[13].action.message_id == 7
    assert by_id[19].action is not None and by_id[19].action.duration == 1800.0
    assert by_id[21].action is not None and by_id[21].action.details == {"schedule_date": 1769999999}
    assert by_id[25].author == "Admin" and by_id[25].forward is not None
    assert by_id[25].forward.from_id == -1000000000500
    assert by_id[26].reply is not None and by_id[26].reply.chat_id is None
    poll = by_id[10].poll
    assert poll is not None and [(a.voters, a.chosen) for a in poll.answers] == [
        (2, True),
        (1, False),
        (1, False),
    ]
    assert by_id[34].entities == (Entity("mention", 19, 6), Entity("mention", 30, 4))
    assert (
        by_id[31].media[0].unavailable
        == "File exceeds maximum size. Change data exporting settings to download."
    )


def test_invalid_full_export_is_refused_on_enter() -> None:
    path = external(INVALID_FULL)
    error = enter_error(path)
    assert error == f'{path}: chat 1 ("Chatname"), message 1: no "id"'


def test_every_external_export_imports() -> None:
    paths = sorted(external("").glob("tdesktop-*.json"))
    assert len(paths) == 5
    for path in paths:
        chats, messages = read_export(path)
        assert len(chats) == 1 and messages[chats[0].id]


def test_external_json_that_is_not_an_export_is_refused() -> None:
    paths = sorted(external("").glob("ffprobe-*.json"))
    assert paths
    for path in paths:
        assert enter_error(path).startswith(f"{path}: not a Telegram Desktop export")


# -- the escape-fixing reader ----------------------------------------------------------------


def parse_string(raw: bytes) -> str:
    """The string value of ``{"s": <raw>}`` read through the reader."""
    reader = EscapeFixingReader(io.BytesIO(b'{"s": "' + raw + b'"}'))
    with json_errors(reader, "t.json"):
        values = [value for prefix, event, value in parse_events(reader) if prefix == "s"]
    return values[0]


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (rb"a\x0Bb", "a\x0bb"),
        (rb"\x00\x1f", "\x00\x1f"),
        (rb"\\x41", "\\x41"),
        (rb"\\\x41", "\\A"),
        (rb"\\\\x41", "\\\\x41"),
        (rb"\u0041\n\"", 'A\n"'),
    ],
)
def test_hex_escapes_are_rewritten_only_when_the_backslash_is_unescaped(raw: bytes, text: str) -> None:
    assert parse_string(raw) == text


@pytest.mark.parametrize("start", range(65529, 65539))
def test_hex_escape_split_across_the_read_buffer_boundary(tmp_path: Path, start: int) -> None:
    head = b'{"name": "x", "type": "personal_chat", "id": 1, "messages": [{"id": 1, "type": "message", '
    head += b'"date_unixtime": "1", "text": "'
    filler = b"a" * (start - len(head))
    document = head + filler + rb"\x0B\\x41" + b'"}]}'
    assert document.index(rb"\x0B") == start
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "result.json").write_bytes(document)
    _, by_id = only_chat(folder)
    assert by_id[1].text == filler.decode() + "\x0b\\x41"


@settings(max_examples=300, deadline=None)
@given(
    data=st.lists(st.sampled_from([b"\\", b"x", b"0", b"B", b"f", b"g", b"\n", b"a"]), max_size=60).map(
        b"".join
    ),
    sizes=st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=20),
    chunk=st.integers(min_value=1, max_value=9),
)
def test_reader_matches_a_whole_buffer_rewrite_for_any_split(
    data: bytes, sizes: list[int], chunk: int
) -> None:
    reader = EscapeFixingReader(io.BytesIO(data), chunk_size=chunk)
    pieces: list[bytes] = []
    index = 0
    while piece := reader.read(sizes[index % len(sizes)]):
        assert len(piece) <= sizes[index % len(sizes)]
        pieces.append(piece)
        index += 1
    output = b"".join(pieces)
    assert output == reference_rewrite(data)
    assert reader.delivered == len(output) and reader.newlines == output.count(b"\n")


def test_build_object_matches_the_document() -> None:
    document = {"a": [1, {"b": [], "c": {"d": None}}, 2.5], "e": "f", "g": {}, "h": True}
    events = parse_events(EscapeFixingReader(io.BytesIO(json.dumps(document).encode())))
    assert next(events) == ("", "start_map", None)
    assert build_object(events) == document


def test_build_object_turns_decimals_into_numbers() -> None:
    events = iter(
        [
            ("m.a", "map_key", "a"),
            ("m.a", "number", Decimal("1.5")),
            ("m", "map_key", "b"),
            ("m.b", "number", Decimal("7")),
            ("m", "end_map", None),
        ]
    )
    built = build_object(events)
    assert built == {"a": 1.5, "b": 7}
    assert [type(value) for value in built.values()] == [float, int]


# -- malformed files -------------------------------------------------------------------------


def test_truncated_file_fails_on_enter_naming_the_line(tmp_path: Path) -> None:
    path = write_json(tmp_path / "export", chat_export([message(i) for i in range(1, 50)]))
    text = path.read_text(encoding="utf-8")
    cut = text.index('"id": 30')
    path.write_text(text[:cut], encoding="utf-8")
    line = text[:cut].count("\n") + 1
    assert enter_error(path) == f"{path}: file ends early (truncated?) at line {line}"


def test_malformed_json_names_line_and_column(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    path = folder / "result.json"
    path.write_text(
        '{\n "name": "x",\n "type": "personal_chat"\n "id": 5,\n "messages": []\n}\n', encoding="utf-8"
    )
    error = enter_error(path)
    # yajl points at (or just after) the unexpected token: `"id"` spans columns 2-5 of line 4.
    found = re.fullmatch(rf"{re.escape(str(path))}: invalid JSON at line 4, column (\d+): (.*)", error)
    assert found is not None, error
    assert 2 <= int(found.group(1)) <= 6
    assert found.group(2) == "after key and value, inside map, I expect ',' or '}'"


def test_malformed_json_far_into_a_long_line_is_located(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    path = folder / "result.json"
    messages = ",".join(json.dumps(message(i, text="é" * 50)) for i in range(1, 3000))
    document = '{"name": "x", "type": "personal_chat", "id": 5, "messages": [' + messages + "}]}"
    path.write_text(document, encoding="utf-8")
    error = enter_error(path)
    found = re.search(r"invalid JSON at line 1, column (\d+): ", error)
    assert found is not None, error
    # Columns count characters (the line holds 150 000 two-byte "é"); the stray "}" is at len - 2.
    assert len(document) - 2 <= int(found.group(1)) <= len(document) - 1


def test_invalid_utf8_is_a_format_error(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "result.json").write_bytes(b'{"name": "\xff", "messages": []}')
    assert "the export is not UTF-8 (line 1 has bytes that are not UTF-8" in enter_error(folder)


@pytest.mark.parametrize("document", [{"about": "x", "personal_information": {"user_id": 1}}, [1, 2], "text"])
def test_a_root_that_is_neither_shape_is_refused(tmp_path: Path, document: Any) -> None:
    path = write_json(tmp_path / "export", document)
    error = enter_error(path)
    assert error.startswith(f"{path}: not a Telegram Desktop export")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"type": "message", "date_unixtime": "1", "text": ""}, 'message 2: no "id"'),
        ({"id": "3", "type": "message", "date_unixtime": "1"}, 'message 2: "id" is not an integer'),
        ({"id": 3, "date_unixtime": "1"}, 'message 2 (id 3): no "type"'),
        (
            {"id": 3, "type": "message", "text": "no date"},
            'message 2 (id 3): no usable "date" or "date_unixtime"',
        ),
        ([1], "message 2: not a JSON object"),
    ],
)
def test_bad_messages_are_refused_on_enter_with_their_position(
    tmp_path: Path, raw: Any, expected: str
) -> None:
    path = write_json(tmp_path / "export", chat_export([message(1), raw, message(9)], name="Pat"))
    error = enter_error(path)
    assert error.startswith(f'{path}: chat "Pat", {expected}')


def test_full_export_errors_name_the_list_and_chat(tmp_path: Path) -> None:
    bad = {"name": "Gone", "type": "private_group", "id": 9, "messages": [message(1), {"type": "message"}]}
    document = {"chats": {"list": [chat_export([message(1)])]}, "left_chats": {"list": [bad]}}
    path = write_json(tmp_path / "export", document)
    assert enter_error(path) == f'{path}: left chat 1 ("Gone"), message 2: no "id"'


def test_chat_without_id_is_refused(tmp_path: Path) -> None:
    document = {"chats": {"list": [{"name": "Nameless", "type": "personal_chat", "messages": [message(1)]}]}}
    path = write_json(tmp_path / "export", document)
    assert enter_error(path) == f'{path}: chat 1 ("Nameless"): no "id"'


def test_changed_file_is_refused_when_read_again(tmp_path: Path) -> None:
    path = write_json(tmp_path / "export", chat_export([message(1)]))

    async def run() -> None:
        async with DesktopExport(path, local_timezone=UTC) as source:
            (chat,) = [c async for c in source.chats()]
            path.write_text(path.read_text(encoding="utf-8") + "\n", encoding="utf-8")
            with pytest.raises(SourceError, match="changed"):
                [b async for b in source.batches(chat, 0)]

    asyncio.run(run())


# -- shapes and chat identity ----------------------------------------------------------------


def test_full_export_chats_and_left_chats(tmp_path: Path) -> None:
    document = {
        "personal_information": {"user_id": 555, "first_name": "Me"},
        "chats": {
            "about": "",
            "list": [
                {"type": "saved_messages", "messages": [message(1, text="note to self")]},
                {"name": None, "type": "personal_chat", "id": 77, "messages": [message(2)]},
                {"name": "Bot", "type": "bot_chat", "id": 78, "messages": [message(3)]},
                {"name": "Basic", "type": "private_group", "id": 79, "messages": [message(4)]},
                {"name": "Super", "type": "public_supergroup", "id": 80, "messages": [message(5)]},
                {"name": "Empty", "type": "public_channel", "id": 81},
                {"type": "replies", "id": 1271266957, "messages": [message(7)]},
                {"type": "verification_codes", "id": 489000, "messages": [message(8)]},
                {"name": "Mystery", "type": None, "id": 83, "messages": [message(9)]},
            ],
        },
        "left_chats": {
            "about": "",
            "list": [
                {"name": "News", "type": "private_channel", "id": 82, "messages": [message(6)]},
            ],
        },
    }
    chats, messages = read_export(write_json(tmp_path / "export", document))
    assert chats == [
        Chat(555, "Saved Messages", ChatKind.SAVED),
        Chat(77, "Deleted account 77", ChatKind.USER),
        Chat(78, "Bot", ChatKind.BOT),
        Chat(-79, "Basic", ChatKind.GROUP),
        Chat(-1000000000080, "Super", ChatKind.SUPERGROUP),
        Chat(-1000000000081, "Empty", ChatKind.CHANNEL),
        Chat(1271266957, "Replies", ChatKind.BOT),
        Chat(489000, "Verification Codes", ChatKind.USER),
        Chat(83, "Mystery", ChatKind.UNKNOWN),
        Chat(-1000000000082, "News", ChatKind.CHANNEL),
    ]
    assert messages[555][0].text == "note to self" and messages[555][0].chat_id == 555
    assert messages[-1000000000081] == []
    assert [m.id for m in messages[-1000000000082]] == [6]


# Telegram Desktop before v2.7.2 wrote peer ids as its exporter's PeerId: ``kUserPeerIdShift =
# 1 << 32`` or-ed into user ids and ``kChatPeerIdShift = 2 << 32`` into basic group *and* channel
# ids (export/data/export_data_types.cpp: UserPeerId, ChatPeerId, ParsePeerId, until commit
# 4625e7613b "Use data_peer_id in export"). A chat's "id" was that PeerId; "from_id"/"actor_id" were
# the bare user id up to v2.3 and the PeerId from v2.4.0 (commit 55edb3bdfe).
USER_SHIFT = 1 << 32
CHAT_SHIFT = 2 << 32


@pytest.mark.parametrize(
    ("chat_type", "raw_id", "peer", "kind"),
    [
        ("personal_chat", USER_SHIFT | 33, types.PeerUser(33), ChatKind.USER),
        ("private_group", CHAT_SHIFT | 44, types.PeerChat(44), ChatKind.GROUP),
        ("public_supergroup", CHAT_SHIFT | 55, types.PeerChannel(55), ChatKind.SUPERGROUP),
        ("private_channel", CHAT_SHIFT | 66, types.PeerChannel(66), ChatKind.CHANNEL),
    ],
)
def test_old_integer_chat_ids_decode_as_the_exporter_encoded_them(
    tmp_path: Path, chat_type: str, raw_id: int, peer: Any, kind: ChatKind
) -> None:
    document = chat_export([message(1, from_id=USER_SHIFT | 7)], type=chat_type, id=raw_id)
    chat, by_id = only_chat(write_json(tmp_path / "export", document))
    # the id a live sync of the same chat gives it (Telethon's marked peer id)
    assert chat.id == get_peer_id(peer)
    assert chat.kind == kind
    assert by_id[1].sender_id == 7


def test_old_integer_sender_ids_decode_by_export_version(tmp_path: Path) -> None:
    group = CHAT_SHIFT | 44
    old = [
        message(1, from_id=5),  # before v2.4.0: the bare user id
        message(2, from_id=USER_SHIFT | 5),  # v2.4.0 to v2.7.1: the user's PeerId
        message(3, type="service", actor_id=USER_SHIFT | 6, action="pin_message", message_id=2),
        message(4, from_id=(3 << 32) | 5),  # no exporter wrote this tag: kept verbatim, no sender
    ]
    chats, messages = read_export(write_json(tmp_path / "export", chat_export(old, type="private_group", id=group)))
    assert chats[0].id == -44
    assert [m.sender_id for m in messages[-44]] == [5, 5, 6, None]
    assert messages[-44][3].extra["from_id"] == (3 << 32) | 5


def test_old_channel_and_supergroup_senders_are_the_chat_or_another_channel(tmp_path: Path) -> None:
    supergroup = CHAT_SHIFT | 55
    old = [
        message(1, from_id=supergroup),  # an anonymous admin posts as the group itself
        message(2, from_id=USER_SHIFT | 5, reply_to_message_id=9, reply_to_peer_id=CHAT_SHIFT | 77),
    ]
    document = {"chats": {"list": [chat_export(old, type="private_supergroup", id=supergroup)]}}
    chats, messages = read_export(write_json(tmp_path / "export", document))
    chat_id = get_peer_id(types.PeerChannel(55))
    assert chats[0].id == chat_id
    assert [m.sender_id for m in messages[chat_id]] == [chat_id, 5]
    reply = messages[chat_id][1].reply
    assert reply is not None and reply.chat_id == get_peer_id(types.PeerChannel(77))


def test_old_chat_of_unknown_type_is_decoded_from_its_tag(tmp_path: Path) -> None:
    listed = [
        chat_export([message(1, from_id=5)], name="Someone", type=None, id=USER_SHIFT | 12),
        chat_export([message(1, from_id=5)], name="Something", type=None, id=CHAT_SHIFT | 13),
    ]
    chats, _ = read_export(write_json(tmp_path / "export", {"chats": {"list": listed}}))
    assert [(chat.id, chat.kind) for chat in chats] == [(12, ChatKind.USER), (-1000000000013, ChatKind.UNKNOWN)]


def test_old_group_without_sender_ids_is_recognised_by_its_tag(tmp_path: Path) -> None:
    """No from_id and no date_unixtime: the tag that matches a group type marks the id as old."""
    old = {"id": 1, "type": "service", "date": "2019-01-01T10:00:00", "action": "clear_history", "text": ""}
    document = chat_export([old], type="private_group", id=CHAT_SHIFT | 44)
    chat, _ = only_chat(write_json(tmp_path / "export", document))
    assert chat.id == -44


def test_la_ninpre_old_and_new_exports_import_into_one_chat(vault: Path) -> None:
    first = asyncio.run(import_export(vault, external(CHANNEL_2020)))[0]
    second = asyncio.run(import_export(vault, external(CHANNEL_2021)))[0]
    assert (first.chats, first.messages) == (1, 13)
    assert (second.chats, second.messages) == (1, 19 - 13)
    with Store.open(vault / ".tobs" / "state.db") as store:
        (state,) = store.chat_states()
        assert state.chat.id == get_peer_id(types.PeerChannel(1292077344))
        assert state.cursor == 26


def test_new_export_large_ids_are_not_mistaken_for_old_ones(tmp_path: Path) -> None:
    group_id = (1 << 32) | 33
    document = chat_export([message(1, from_id="user6000000000")], type="private_group", id=group_id)
    chats, messages = read_export(write_json(tmp_path / "export", document))
    assert chats[0].id == -group_id
    assert messages[-group_id][0].sender_id == 6000000000


def test_source_protocol_and_names(tmp_path: Path) -> None:
    path = write_json(tmp_path / "export", chat_export([message(1)]))
    by_folder = DesktopExport(path.parent, local_timezone=UTC)
    by_file = DesktopExport(path, local_timezone=UTC)
    assert isinstance(by_folder, Source)
    assert by_folder.name == by_file.name == "export result.json"
    assert by_folder.export_root == by_file.export_root == path.parent
    assert by_folder.json_path == path


def test_reading_before_entering_is_an_error(tmp_path: Path) -> None:
    source = DesktopExport(write_json(tmp_path / "export", chat_export([])), local_timezone=UTC)
    with pytest.raises(SourceError, match="not open"):
        read_batches(source, Chat(42, "Chat"))


def test_missing_export_file_is_a_source_error(tmp_path: Path) -> None:
    async def enter() -> None:
        async with DesktopExport(tmp_path / "nowhere", local_timezone=UTC):
            pass

    with pytest.raises(SourceError, match="cannot read the export"):
        asyncio.run(enter())


# -- message conversion ----------------------------------------------------------------------


def test_text_as_plain_string(tmp_path: Path) -> None:
    converted = one_message(tmp_path, message(1, text="just text"))
    assert (converted.text, converted.entities) == ("just text", ())


def test_text_as_mixed_list(tmp_path: Path) -> None:
    text = ["👋 hi ", {"type": "bold", "text": "you"}, "!", {"type": "italic", "text": ""}]
    converted = one_message(tmp_path, message(1, text=text))
    assert converted.text == "👋 hi you!"
    assert converted.entities == (Entity("bold", 6, 3),)


def test_text_entities_are_preferred_over_text(tmp_path: Path) -> None:
    entities = [{"type": "plain", "text": "from "}, {"type": "code", "text": "entities"}]
    converted = one_message(tmp_path, message(1, text="from text", text_entities=entities))
    assert converted.text == "from entities"
    assert converted.entities == (Entity("code", 5, 8),)
    assert converted.extra == {}


def test_every_entity_kind(tmp_path: Path) -> None:
    runs = [
        {"type": kind, "text": kind}
        for kind in (
            "bold",
            "italic",
            "underline",
            "strikethrough",
            "spoiler",
            "code",
            "link",
            "mention",
            "hashtag",
            "cashtag",
            "bot_command",
            "email",
            "phone",
            "bank_card",
            "unknown",
        )
    ] + [
        {"type": "pre", "text": "pre", "language": "python"},
        {"type": "text_link", "text": "site", "href": "https://example.org"},
        {"type": "mention_name", "text": "Ann", "user_id": 123},
        {"type": "blockquote", "text": "quote", "collapsed": True},
        {"type": "custom_emoji", "text": "🙂", "document_id": "5368324170671202286"},
        {"type": "date_time", "text": "tomorrow", "unix": 5},
        {"text": "typeless"},
    ]
    converted = one_message(tmp_path, message(1, text_entities=runs))
    by_kind = {entity.kind: entity for entity in converted.entities[:-1]}
    assert len(converted.entities) == len(runs)
    assert converted.entities[-1].kind == "unknown" and converted.entities[-1].length == 8
    assert by_kind["pre"].language == "python"
    assert by_kind["text_link"].url == "https://example.org"
    assert by_kind["mention_name"].user_id == 123
    assert by_kind["blockquote"].collapsed is True
    assert by_kind["custom_emoji"].custom_emoji_id == 5368324170671202286
    assert by_kind["custom_emoji"].length == 2
    assert by_kind["date_time"].length == 8
    assert by_kind["unknown"].length == 7
    offset = 0
    for entity, run in zip(converted.entities, runs, strict=True):
        assert entity.offset == offset
        offset += len(run["text"].encode("utf-16-le")) // 2
    assert len(converted.text.encode("utf-16-le")) // 2 == offset


def test_unknown_media_type_and_unknown_fields_are_kept(tmp_path: Path) -> None:
    raw = message(
        1,
        file="(File not included. Change data exporting settings to download.)",
        media_type="hologram",
        future_field={"nested": [1, 2.5, None]},
        reactions=[{"type": "paid", "count": 3}],
        width="wide",
    )
    converted = one_message(tmp_path, raw)
    (media,) = converted.media
    assert (media.kind, media.locator, media.unavailable) == ("hologram", None, NOT_INCLUDED)
    assert media.width is None
    assert converted.extra == {
        "future_field": {"nested": [1, 2.5, None]},
        "width": "wide",
    }
    assert converted.reactions == (Reaction("paid", 3),)


def test_future_message_type_is_kept_as_its_kind(tmp_path: Path) -> None:
    converted = one_message(tmp_path, {"id": 1, "type": "story_reply", "date_unixtime": "5", "text": "x"})
    assert (converted.kind, converted.text, converted.date) == ("story_reply", "x", 5)


def test_dates_fall_back_to_local_time_in_the_given_zone(tmp_path: Path) -> None:
    raw = {
        "id": 1,
        "type": "message",
        "date": "2021-06-01T12:00:00",
        "edited": "2021-06-01T13:30:00",
        "text": "",
    }
    converted = one_message(tmp_path, raw, tz=MOSCOW)
    assert converted.date == int(datetime(2021, 6, 1, 9, 0, tzinfo=UTC).timestamp())
    assert converted.edited == int(datetime(2021, 6, 1, 10, 30, tzinfo=UTC).timestamp())


def test_unixtime_wins_over_local_date(tmp_path: Path) -> None:
    raw = message(1, date="1999-01-01T00:00:00", edited="1999-01-01T00:00:00", edited_unixtime="1700000100")
    converted = one_message(tmp_path, raw, tz=MOSCOW)
    assert (converted.date, converted.edited) == (1_700_000_001, 1_700_000_100)
    assert converted.extra == {}


def test_service_messages(tmp_path: Path) -> None:
    raws = [
        message(
            1, type="service", actor="Ann", actor_id="user5", action="invite_members", members=["Bob", None]
        ),
        message(2, type="service", actor=None, actor_id="user6", information_text="Ann did something"),
        message(3, type="service", action="phone_call", duration_seconds=12, discard_reason="missed"),
        message(4, type="service", action="edit_group_photo", photo="../outside.jpg", width=5, height=6),
    ]
    _, by_id = only_chat(write_json(tmp_path / "export", chat_export(raws)))
    invite = by_id[1]
    assert (invite.sender_id, invite.sender_name) == (5, "Ann")
    assert invite.action is not None and invite.action.members == ("Bob", "Deleted account")
    custom = by_id[2].action
    assert custom is not None and (custom.kind, custom.text) == ("custom_action", "Ann did something")
    assert by_id[2].sender_name == "Deleted account" and by_id[2].sender_id == 6  # a null actor
    call = by_id[3].action
    assert call is not None and (call.duration, call.details) == (12.0, {"discard_reason": "missed"})
    assert by_id[4].media == (
        MediaRef(
            kind="photo",
            locator="../outside.jpg",
            mime_type="image/jpeg",
            width=5,
            height=6,
            unavailable="path outside the export folder",
        ),
    )
    assert all(m.extra == {} for m in by_id.values())


def test_poll_location_and_contact(tmp_path: Path) -> None:
    poll = {
        "question": ["Which ", {"type": "bold", "text": "one"}, "?"],
        "closed": True,
        "total_voters": 3,
        "answers": [
            {"text": [{"type": "italic", "text": "A"}], "voters": 2, "chosen": True},
            {"text": "B", "voters": 1},
        ],
    }
    raws = [
        message(1, poll=poll),
        message(
            2, location_information={"latitude": 1.5, "longitude": -2.25}, live_location_period_seconds=60
        ),
        message(3, location_information=None),
        message(4, contact_information={"first_name": "Ann", "phone_number": "+1"}),
    ]
    _, by_id = only_chat(write_json(tmp_path / "export", chat_export(raws)))
    converted_poll = by_id[1].poll
    assert converted_poll is not None and converted_poll.question == "Which one?"
    assert [(a.text, a.voters, a.chosen) for a in converted_poll.answers] == [("A", 2, True), ("B", 1, False)]
    assert (converted_poll.closed, converted_poll.total_voters) == (True, 3)
    location = by_id[2].location
    assert location is not None and (location.latitude, location.longitude, location.live_period) == (
        1.5,
        -2.25,
        60,
    )
    assert by_id[3].location is None and by_id[3].extra == {"location_information": None}
    contact = by_id[4].contact
    assert contact is not None and (contact.first_name, contact.last_name, contact.phone_number) == (
        "Ann",
        None,
        "+1",
    )
    assert all(not m.extra for ident, m in by_id.items() if ident != 3)


def test_unsupported_message_without_date_takes_the_previous_date(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "export", chat_export([message(1), message(2), {"id": 3, "type": "unsupported"}])
    )
    _, by_id = only_chat(path)
    assert by_id[3] == Message(chat_id=42, id=3, date=by_id[2].date, kind=MessageKind.UNSUPPORTED)

    async def after_two() -> list[Message]:
        async with DesktopExport(path, local_timezone=UTC) as source:
            (chat,) = [c async for c in source.chats()]
            return [m async for batch in source.batches(chat, 2) for m in batch]

    assert [m.date for m in asyncio.run(after_two())] == [by_id[2].date]


# -- media -----------------------------------------------------------------------------------


def media_export(tmp_path: Path, paths: list[str]) -> tuple[DesktopExport, list[MediaRef]]:
    """An entered export whose message i+1 has ``file`` = paths[i]; its media refs, in order."""
    path = write_json(tmp_path / "export", chat_export([message(i + 1, file=p) for i, p in enumerate(paths)]))
    source = DesktopExport(path, local_timezone=UTC)

    async def enter() -> list[MediaRef]:
        await source.__aenter__()
        return [m.media[0] async for batch in source.batches(Chat(42, "Chat"), 0) for m in batch]

    return source, asyncio.run(enter())


def chunks_of(source: DesktopExport, media: MediaRef) -> list[bytes]:
    async def collect() -> list[bytes]:
        return [chunk async for chunk in source.media_chunks(media)]

    return asyncio.run(collect())


def test_media_paths_outside_the_export_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret", encoding="utf-8")
    files = tmp_path / "export" / "files"
    files.mkdir(parents=True)
    (files / "escape.txt").symlink_to(secret)
    (files / "ok.txt").write_text("fine", encoding="utf-8")
    paths = [
        "../secret.txt",
        "files/../../secret.txt",
        str(secret),
        "files/escape.txt",
        "files/gone.txt",
        "files/ok.txt",
    ]
    source, refs = media_export(tmp_path, paths)
    outside = "path outside the export folder"
    assert [ref.unavailable for ref in refs] == [outside] * 4 + ["file missing from the export", None]
    assert [ref.kind for ref in refs] == ["document"] * 6
    for ref in refs[:5]:
        with pytest.raises(MediaUnavailable):
            chunks_of(source, ref)
    assert chunks_of(source, refs[5]) == [b"fine"]


def test_media_refs_are_checked_again_when_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret", encoding="utf-8")
    source, _ = media_export(tmp_path, [])
    forged = MediaRef(kind="document", locator="../secret.txt")
    with pytest.raises(MediaUnavailable, match="outside the export folder"):
        chunks_of(source, forged)
    with pytest.raises(MediaUnavailable, match="File not included"):
        chunks_of(source, MediaRef(kind="photo", locator=None, unavailable=NOT_INCLUDED))


def test_media_chunks_stream_the_file_in_mebibyte_chunks(tmp_path: Path) -> None:
    content = os.urandom(2 * 1024 * 1024 + 12345)
    folder = tmp_path / "export" / "video_files"
    folder.mkdir(parents=True)
    (folder / "clip.mp4").write_bytes(content)
    source, refs = media_export(tmp_path, ["video_files/clip.mp4"])
    chunks = chunks_of(source, refs[0])
    assert [len(chunk) for chunk in chunks] == [1024 * 1024, 1024 * 1024, 12345]
    assert b"".join(chunks) == content


# -- batches and the single pass -------------------------------------------------------------


def test_batches_respect_after_and_batch_size(tmp_path: Path) -> None:
    ids = [1, 2, 3, 5, 8, 13, 21, 34, 55]
    path = write_json(tmp_path / "export", chat_export([message(i) for i in ids]))
    source = DesktopExport(path, local_timezone=UTC, batch_size=3)
    asyncio.run(source.__aenter__())
    chat = Chat(42, "Chat")
    batches = read_batches(source, chat, after=4)
    assert [[m.id for m in batch] for batch in batches] == [[5, 8, 13], [21, 34, 55]]
    assert [[m.id for m in batch] for batch in read_batches(source, chat, after=20)] == [[21, 34, 55]]
    assert read_batches(source, chat, after=55) == []
    assert [len(b) for b in read_batches(source, chat, after=0)] == [3, 3, 3]


def test_ids_below_zero_are_read_and_what_a_read_leaves_out_is_reported(tmp_path: Path) -> None:
    ids = [-999999995, -999999993, -999999992, 0, 1, 2, 1, 4, 4, 6]
    path = write_json(tmp_path / "export", chat_export([message(i) for i in ids]))
    source = DesktopExport(path, local_timezone=UTC, batch_size=2)
    asyncio.run(source.__aenter__())
    chat = Chat(42, "Chat")
    assert list(source.skipped_messages(chat)) == []
    everything = [m.id for batch in read_batches(source, chat, after=NO_CURSOR) for m in batch]
    assert everything == [-999999995, -999999993, -999999992, 0, 1, 2, 4, 6]
    assert list(source.skipped_messages(chat)) == [(1, OUT_OF_ORDER), (4, OUT_OF_ORDER)]
    assert [m.id for batch in read_batches(source, chat, after=2) for m in batch] == [4, 6]
    assert list(source.skipped_messages(chat)) == [
        (1, OUT_OF_ORDER), (4, OUT_OF_ORDER),
        *[(i, BELOW_CURSOR) for i in (-999999995, -999999993, -999999992, 0, 1, 2)],
    ]


def test_chats_read_in_order_cost_one_pass_in_total(tmp_path: Path) -> None:
    source = CountingExport(full_export(tmp_path, chats=4), local_timezone=UTC, batch_size=2)

    async def run() -> list[list[int]]:
        async with source:
            assert source.opens == 1
            seen = []
            async for chat in source.chats():
                seen.append([m.id async for batch in source.batches(chat, 0) for m in batch])
            return seen

    assert asyncio.run(run()) == [[1, 2, 3, 4, 5]] * 4
    assert source.opens == 2


def test_asking_for_an_earlier_chat_restarts_from_the_beginning(tmp_path: Path) -> None:
    source = CountingExport(full_export(tmp_path), local_timezone=UTC)

    async def texts(chat: Chat) -> list[str]:
        return [m.text async for batch in source.batches(chat, 3) for m in batch]

    async def run() -> None:
        async with source:
            first, second, third = [c async for c in source.chats()]
            assert await texts(third) == ["chat 3 message 4", "chat 3 message 5"]
            assert source.opens == 2
            assert await texts(first) == ["chat 1 message 4", "chat 1 message 5"]
            assert source.opens == 3
            assert await texts(second) == ["chat 2 message 4", "chat 2 message 5"]
            assert source.opens == 3
            assert await texts(second) == ["chat 2 message 4", "chat 2 message 5"]
            assert source.opens == 4

    asyncio.run(run())


def test_interleaved_batch_generators_each_see_their_own_chat(tmp_path: Path) -> None:
    source = CountingExport(full_export(tmp_path), local_timezone=UTC, batch_size=1)

    async def run() -> tuple[list[str], list[str]]:
        async with source:
            first, second, _ = [c async for c in source.chats()]
            one, two = source.batches(first, 0), source.batches(second, 0)
            seen_one: list[str] = []
            seen_two: list[str] = []
            for _ in range(5):
                seen_one += [m.text for m in await anext(one)]
                seen_two += [m.text for m in await anext(two)]
            await one.aclose()
            await two.aclose()
            return seen_one, seen_two

    seen_one, seen_two = asyncio.run(run())
    assert seen_one == [f"chat 1 message {i}" for i in range(1, 6)]
    assert seen_two == [f"chat 2 message {i}" for i in range(1, 6)]


def test_unknown_chat_is_a_source_error(tmp_path: Path) -> None:
    source = DesktopExport(full_export(tmp_path), local_timezone=UTC)
    asyncio.run(source.__aenter__())
    with pytest.raises(SourceError, match="no chat with id 999"):
        read_batches(source, Chat(999, "Nope"))


def write_big_export(path: Path, chats: int, per_chat: int) -> None:
    """A full export streamed to disk line by line (never held in memory)."""
    with path.open("w", encoding="utf-8") as out:
        out.write('{\n "personal_information": {"user_id": 1},\n "chats": {\n  "list": [\n')
        for n in range(chats):
            out.write(
                ("  ,\n" if n else "") + f'  {{"name": "Chat {n}", "type": "private_group", "id": {n + 1},'
            )
            out.write(' "messages": [\n')
            for i in range(1, per_chat + 1):
                separator = "," if i < per_chat else ""
                out.write(
                    f'   {{"id": {i}, "type": "message", "date_unixtime": "{1_600_000_000 + i}",'
                    f' "from_id": "user{i % 7}", "text": "message {i}"}}{separator}\n'
                )
            out.write("  ]}\n")
        out.write("  ]\n }\n}\n")


@pytest.mark.slow
def test_memory_stays_flat_over_a_200k_message_export(tmp_path: Path) -> None:
    folder = tmp_path / "big"
    folder.mkdir()
    write_big_export(folder / "result.json", chats=2, per_chat=100_000)

    async def run() -> int:
        count = 0
        async with DesktopExport(folder, local_timezone=UTC, batch_size=500) as source:
            async for chat in source.chats():
                async for batch in source.batches(chat, 0):
                    count += len(batch)
        return count

    tracemalloc.start()
    try:
        count = asyncio.run(run())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 200_000
    assert peak < 20 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
