"""The live path: what the simulated Telegram's messages say reaches their notes.

The simulator generates real TL objects (``MessageReactions``, ``via_bot_id``, ``MessageMediaPoll``
with ``PollResults``, ``MessageReplyHeader.reply_to_peer_id``, ``DocumentAttributeAudio``,
``DocumentAttributeSticker``, ``MessageActionPinMessage``); a real TelegramClient reads them.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import frontmatter
from telethon.tl import types

from tobs_sync.app import App
from tobs_sync.config import load_settings
from tobs_sync.sim import SimulatedTelegram, parse_spec
from tobs_sync.sources.telegram import TelegramSource
from tobs_sync.sync import SyncReport

SPEC = "chats=3,messages=80,media=0,seed=3"


def sync_pass(vault: Path, sim: SimulatedTelegram) -> SyncReport:
    async def run() -> SyncReport:
        settings = dataclasses.replace(load_settings(vault).telegram)
        client = sim.client(raise_last_call_error=True, request_retries=1)
        with App.open(vault) as app:
            async with TelegramSource(client, settings, retry_delay=0.01, peers=app.store) as source:
                return await app.sync_source(source)

    return asyncio.run(run())


def notes(vault: Path) -> dict[tuple[int, int], frontmatter.Post]:
    found = {}
    for path in vault.rglob("*.md"):
        post = frontmatter.load(path)
        ids = post.metadata.get("tg_message_id")
        for ident in ids if isinstance(ids, list) else [ids] if ids is not None else []:
            found[(post.metadata["tg_chat_id"], ident)] = post
    return found


def expected_label(count: types.ReactionCount) -> str:
    reaction = count.reaction
    if isinstance(reaction, types.ReactionEmoji):
        return f"{reaction.emoticon} {count.count}"
    return f"{'custom emoji' if isinstance(reaction, types.ReactionCustomEmoji) else '⭐'} {count.count}"


def test_reactions_bots_polls_and_replies_into_another_chat_reach_the_notes(vault: Path) -> None:
    sim = SimulatedTelegram(parse_spec(SPEC))
    report = sync_pass(vault, sim)  # replies into a chat synced later are linked by the end of the pass
    assert report.conflicts == []
    by_id = notes(vault)
    channel_id = next(chat_id for chat_id in sim.chat_ids if sim.kind(chat_id) == "channel")
    channel_title = sim.title(channel_id)
    seen = {"reactions": 0, "via_bot": 0, "poll": 0, "reply": 0}
    for chat_id in sim.chat_ids:
        for message in sim.messages(chat_id):
            if not isinstance(message, types.Message) or message.grouped_id:
                continue
            post = by_id[(chat_id, message.id)]
            if message.reactions is not None:
                seen["reactions"] += 1
                assert post.metadata["reactions"] == [expected_label(r) for r in message.reactions.results]
                assert post.metadata["reactions_total"] == sum(
                    r.count for r in message.reactions.results if not isinstance(r.reaction, types.ReactionPaid)
                )
            if message.via_bot_id:
                seen["via_bot"] += 1
                assert post.metadata["via_bot"] == "@gif_finder_bot" and "*via @gif\\_finder\\_bot*" in post.content
            if isinstance(message.media, types.MessageMediaPoll):
                seen["poll"] += 1
                total = message.media.results.total_voters
                assert f"** — {total} voters" in post.content or (total == 1 and "** — 1 voter" in post.content)
            header = message.reply_to
            if isinstance(header, types.MessageReplyHeader) and header.reply_to_peer_id is not None:
                seen["reply"] += 1
                target = by_id[(channel_id, header.reply_to_msg_id)]
                link = f"[[{_note_path(vault, target)}|message {header.reply_to_msg_id} in {channel_title}]]"
                assert post.metadata["reply_to"] == link, chat_id
                assert post.metadata["reply_to_chat"] == channel_title
    assert all(seen.values()), seen  # the simulated history has each of them


def _note_path(vault: Path, post: frontmatter.Post) -> str:
    for path in vault.rglob("*.md"):
        if frontmatter.load(path).metadata.get("tg_message_id") == post.metadata["tg_message_id"] and (
            frontmatter.load(path).metadata.get("tg_chat_id") == post.metadata["tg_chat_id"]
        ):
            return path.relative_to(vault).with_suffix("").as_posix()
    raise AssertionError("no such note")


def test_live_stickers_and_audio_show_their_emoji_performer_and_title(vault: Path) -> None:
    sim = SimulatedTelegram(parse_spec("chats=1,messages=3,media=0,seed=5"))
    (chat_id,) = sim.chat_ids
    sticker = sim.add_message(chat_id, "", media_kind="sticker")
    audio = sim.add_message(chat_id, "", media_kind="audio")
    sync_pass(vault, sim)
    by_id = notes(vault)
    attributes = {type(a): a for a in sticker.media.document.attributes}
    emoji = attributes[types.DocumentAttributeSticker].alt
    sticker_note = by_id[(chat_id, sticker.id)]
    assert sticker_note.metadata["emoji"] == emoji
    assert f"|160]]\n\n*{emoji}*" in sticker_note.content
    sound = {type(a): a for a in audio.media.document.attributes}[types.DocumentAttributeAudio]
    audio_note = by_id[(chat_id, audio.id)]
    assert (audio_note.metadata["performer"], audio_note.metadata["title"]) == (sound.performer, sound.title)


def test_a_pinned_message_is_linked_from_the_service_message(vault: Path) -> None:
    sim = SimulatedTelegram(parse_spec(SPEC))
    sync_pass(vault, sim)
    by_id = notes(vault)
    pins = [
        (chat_id, m) for chat_id in sim.chat_ids for m in sim.messages(chat_id)
        if isinstance(m, types.MessageService) and isinstance(m.action, types.MessageActionPinMessage)
    ]
    assert pins
    for chat_id, pin in pins:
        pinned = pin.reply_to.reply_to_msg_id
        target = _note_path(vault, by_id[(chat_id, pinned)])
        assert f"pinned a message*: [[{target}|message {pinned}]]" in by_id[(chat_id, pin.id)].content


def test_reactions_change_without_an_edit_date(vault: Path) -> None:
    sim = SimulatedTelegram(parse_spec("chats=1,messages=5,media=0,seed=5"))
    (chat_id,) = sim.chat_ids
    message = next(m for m in sim.messages(chat_id) if isinstance(m, types.Message))
    before = message.edit_date
    sim.set_reactions(chat_id, message.id, [("❤️", 6), ("👍", 2)])
    assert sim.message(chat_id, message.id).edit_date == before
    sync_pass(vault, sim)
    assert notes(vault)[(chat_id, message.id)].metadata["reactions"] == ["❤️ 6", "👍 2"]
