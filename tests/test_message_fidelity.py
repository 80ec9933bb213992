"""Everything a message says reaches its note: exports written here in Telegram Desktop's format.

Every field below is one Telegram Desktop's JSON writer emits: ``SerializeMessage`` in
Telegram/SourceFiles/export/output/export_output_json.cpp of telegramdesktop/tdesktop (lines at
commit 929032d598f7, 2025-09-06):

* ``saved_from`` (line 753), ``via_bot`` (``@username`` of the inline bot, line 760), ``forwarded_from``;
* ``sticker_emoji`` with ``media_type: "sticker"`` (782), and ``performer``/``title`` with
  ``media_type: "audio_file"`` (793-794), ``duration_seconds`` of documents (798);
* ``reply_to_message_id``, and ``reply_to_peer_id`` when the reply points into another chat (336);
* ``poll: {question, closed, total_voters, answers}`` (``total_voters``: 878);
* ``reactions: [{type, count, emoji | document_id, recent: [{from, from_id, date}]}]`` (1036-1085),
  ``type`` one of ``emoji``, ``custom_emoji``, ``paid``;
* service actions ``pin_message`` with ``message_id`` (442), ``remove_members``/``invite_members`` with
  ``members`` (``pushUserNames``, 340), ``join_group_by_link`` with ``inviter`` (428),
  ``migrate_from_group`` with ``title`` (438).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import frontmatter

from tobs_sync.app import import_export
from tobs_sync.model import Message, Reaction
from tobs_sync.views import message_view

CHANNEL_RAW, GROUP_RAW = 1777000101, 1777000102
CHANNEL, GROUP = -1001777000101, -1001777000102
NOT_INCLUDED = "(File not included. Change data exporting settings to download.)"


def message(ident: int, minute: int, **fields: Any) -> dict[str, Any]:
    base = {
        "id": ident, "type": "message", "date": f"2024-05-01T10:{minute:02d}:00",
        "date_unixtime": str(1714557600 + 60 * minute), "from": "Robin", "from_id": "user5550001",
        "text": "", "text_entities": [],
    }
    return base | fields


def service(ident: int, minute: int, action: str, **fields: Any) -> dict[str, Any]:
    base = {
        "id": ident, "type": "service", "date": f"2024-05-01T10:{minute:02d}:00",
        "date_unixtime": str(1714557600 + 60 * minute), "actor": "Robin", "actor_id": "user5550001",
        "action": action, "text": "", "text_entities": [],
    }
    return base | fields


def write_export(folder: Path) -> Path:
    channel = [
        message(1, 0, **{"from": "News", "from_id": f"channel{CHANNEL_RAW}"}, text="The first post"),
        message(2, 1, **{"from": "News", "from_id": f"channel{CHANNEL_RAW}"}, text="The second post"),
    ]
    group = [
        service(1, 2, "migrate_from_group", title="Old Crew"),
        service(2, 3, "invite_members", members=["Sam", "Alex"]),
        service(3, 4, "join_group_by_link", actor="Kim", actor_id="user5550009", inviter="Sam"),
        service(4, 5, "remove_members", members=["Alex"]),
        service(5, 6, "remove_members", actor="Kim", actor_id="user5550009", members=["Kim"]),
        message(6, 7, file=NOT_INCLUDED, media_type="sticker", sticker_emoji="🐸", mime_type="image/webp",
                file_name="sticker.webp", width=512, height=512),
        message(7, 8, file=NOT_INCLUDED, media_type="audio_file", performer="The Band", title="A Song",
                mime_type="audio/mpeg", duration_seconds=215),
        message(8, 9, file=NOT_INCLUDED, media_type="voice_message", mime_type="audio/ogg", duration_seconds=7),
        message(9, 10, via_bot="@gif", text="found it"),
        message(10, 11, forwarded_from="Sam", saved_from="Gardening Tips", text="saved tip"),
        message(11, 12, poll={"question": "Beans?", "closed": False, "total_voters": 9,
                              "answers": [{"text": "Yes", "voters": 9, "chosen": False}]}),
        service(12, 13, "pin_message", message_id=9),
        service(13, 14, "pin_message", message_id=999),
        # Replies into the channel: message 2 there has a note; message 77 there has none. This chat's
        # own message 2 must not be taken for the channel's.
        message(14, 15, reply_to_message_id=2, reply_to_peer_id=f"channel{CHANNEL_RAW}", text="about that post"),
        message(15, 16, reply_to_message_id=77, reply_to_peer_id=f"channel{CHANNEL_RAW}", text="and that one"),
        message(16, 17, reply_to_message_id=2, reply_to_peer_id="channel1777000999", text="somewhere else"),
        message(17, 18, reply_to_message_id=9, text="same chat"),
        message(18, 19, text="liked", reactions=[
            {"type": "emoji", "count": 6, "emoji": "❤️",
             "recent": [{"from": "Sam", "from_id": "user5550002", "date": "2024-05-01T10:20:00"}]},
            {"type": "emoji", "count": 2, "emoji": "👍"},
            {"type": "custom_emoji", "count": 1, "document_id": "5368324170671202286"},
            {"type": "paid", "count": 50},
        ]),
    ]
    data = {"chats": {"about": "", "list": [
        {"name": "News", "type": "public_channel", "id": CHANNEL_RAW, "messages": channel},
        {"name": "Crew", "type": "private_supergroup", "id": GROUP_RAW, "messages": group},
    ]}}
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return folder


def imported(vault: Path, tmp_path: Path) -> dict[tuple[int, int], frontmatter.Post]:
    asyncio.run(import_export(vault, write_export(tmp_path / "export")))
    notes = {}
    for path in vault.rglob("*.md"):
        post = frontmatter.loads(path.read_text(encoding="utf-8"))
        if "tg_message_id" in post.metadata:
            notes[(post.metadata["tg_chat_id"], post.metadata["tg_message_id"])] = post
    return notes


def body(post: frontmatter.Post) -> str:
    return post.content


def test_media_attributes_bots_saved_origins_and_poll_voters_are_shown(vault: Path, tmp_path: Path) -> None:
    notes = imported(vault, tmp_path)
    sticker = notes[(GROUP, 6)]
    assert sticker.metadata["emoji"] == "🐸"
    assert "*Sticker sticker.webp (🐸) not stored:" in body(sticker)
    audio = notes[(GROUP, 7)]
    assert (audio.metadata["performer"], audio.metadata["title"], audio.metadata["duration"]) == (
        "The Band", "A Song", 215.0,
    )
    assert "*Audio (The Band — A Song · 3:35) not stored:" in body(audio)
    assert "*Voice message (0:07) not stored:" in body(notes[(GROUP, 8)])
    bot = notes[(GROUP, 9)]
    assert bot.metadata["via_bot"] == "@gif" and "*via @gif*" in body(bot)
    saved = notes[(GROUP, 10)]
    assert saved.metadata["saved_from"] == "Gardening Tips"
    assert "> [!quote] Forwarded from Sam (saved from Gardening Tips)" in body(saved)
    assert "**Poll: Beans?** — 9 voters" in body(notes[(GROUP, 11)])


def test_service_messages_name_members_inviters_migrations_and_link_the_pinned_message(
    vault: Path, tmp_path: Path
) -> None:
    notes = imported(vault, tmp_path)
    assert "*Robin migrated from the group “Old Crew”*" in body(notes[(GROUP, 1)])
    assert "*Robin added Sam, Alex*" in body(notes[(GROUP, 2)])
    joined = body(notes[(GROUP, 3)])
    assert "*Kim joined by invite link from Sam*" in joined and "inviter" not in joined
    assert "*Robin removed Alex*" in body(notes[(GROUP, 4)])
    assert "*Kim left the group*" in body(notes[(GROUP, 5)])
    assert "*Robin pinned a message*: [[Telegram/Crew/2024-05-01 9|message 9]]" in body(notes[(GROUP, 12)])
    assert "*Robin pinned a message (message 999)*" in body(notes[(GROUP, 13)])


def test_a_reply_into_another_chat_is_labelled_with_it_and_links_its_note(vault: Path, tmp_path: Path) -> None:
    notes = imported(vault, tmp_path)
    linked = notes[(GROUP, 14)]
    link = "[[Telegram/News/2024-05-01 2|message 2 in News]]"
    assert linked.metadata["reply_to"] == link and linked.metadata["reply_to_chat"] == "News"
    assert f"> [!reply] In reply to {link}" in body(linked)
    unknown_message = notes[(GROUP, 15)]
    assert "reply_to" not in unknown_message.metadata
    assert "> [!reply] In reply to message 77 in News" in body(unknown_message)
    unknown_chat = body(notes[(GROUP, 16)])
    assert "> [!reply] In reply to message 2 in chat -1001777000999" in unknown_chat
    assert "Crew/2024-05-01 2" not in unknown_chat  # never this chat's own message 2
    assert notes[(GROUP, 17)].metadata["reply_to"] == "[[Telegram/Crew/2024-05-01 9|message 9]]"


def test_reactions_are_properties_and_shown(vault: Path, tmp_path: Path) -> None:
    notes = imported(vault, tmp_path)
    liked = notes[(GROUP, 18)]
    assert liked.metadata["reactions"] == ["❤️ 6", "👍 2", "custom emoji 1", "⭐ 50"]
    assert liked.metadata["reactions_total"] == 9  # paid stars are not people reacting
    assert "\n❤️ 6 · 👍 2 · custom emoji 1 · ⭐ 50\n" in body(liked)
    # Who reacted lately is listed under "Other Telegram data", the counts are not repeated there.
    assert "reactions\\_recent: \\[{reaction: ❤️, from: Sam" in body(liked)
    assert "reactions: " not in body(liked)
    assert "reactions" not in notes[(GROUP, 17)].metadata


def test_a_reply_into_a_chat_imported_after_it_links_by_the_end_of_the_pass(vault: Path, tmp_path: Path) -> None:
    folder = write_export(tmp_path / "export")
    data = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    data["chats"]["list"].reverse()  # the group, replying into the channel, comes first
    (folder / "result.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    first, _ = asyncio.run(import_export(vault, folder))
    post = frontmatter.load(vault / "Telegram" / "Crew" / "2024-05-01 14.md")
    assert post.metadata["reply_to"] == "[[Telegram/News/2024-05-01 2|message 2 in News]]"
    # Nothing is left to link: importing again writes nothing.
    again, _ = asyncio.run(import_export(vault, folder))
    assert again.notes_written == 0
    assert first.notes_written == 2 + len(data["chats"]["list"][0]["messages"]) + 2 + 1  # notes, chat notes, relink


def test_an_albums_reactions_are_shown_whichever_member_carries_them() -> None:
    album = [
        Message(chat_id=-1, id=1, date=5, grouped_id=9),
        Message(chat_id=-1, id=2, date=5, grouped_id=9, text="caption", reactions=(Reaction("emoji", 4, emoji="🔥"),)),
    ]
    view = message_view(album, [], tz=dt.UTC, note_path="Telegram/C/1.md")
    assert (view["reactions"], view["reactions_total"]) == (["🔥 4"], 4)
