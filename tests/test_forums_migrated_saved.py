"""Forum topics, groups upgraded to supergroups and Saved Messages, end to end on the simulated Telegram.

Every test runs a real sync pass (the Telethon source over the simulator's TelegramClient, the
engine, the built-in templates) and reads the vault it wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sqlite3
from pathlib import Path
from typing import Any

import frontmatter
import pytest
from telethon import errors, functions
from telethon.tl import types
from vaultcheck import note_ids

from tobs_sync.app import App, import_export
from tobs_sync.config import load_settings
from tobs_sync.model import MIGRATED_ID_SHIFT
from tobs_sync.names import inert_text, sanitize_component
from tobs_sync.sim import SimSpec, SimulatedTelegram, parse_spec
from tobs_sync.sources.telegram import TelegramSource
from tobs_sync.sync import SyncReport

SPEC = "chats=6,messages=70,media=0.2,seed=9"


def sync_pass(vault: Path, sim: SimulatedTelegram, client: Any = None, **telegram: Any) -> SyncReport:
    async def run() -> SyncReport:
        settings = dataclasses.replace(load_settings(vault).telegram, **telegram)
        nonlocal client
        client = client or sim.client(raise_last_call_error=True, request_retries=1)
        with App.open(vault) as app:
            async with TelegramSource(client, settings, retry_delay=0.01, peers=app.store) as source:
                return await app.sync_source(source)

    return asyncio.run(run())


def notes(vault: Path, chat_id: int) -> dict[int, tuple[Path, frontmatter.Post]]:
    """The message notes of one chat by (first) message id; a duplicate fails the test."""
    found: dict[int, tuple[Path, frontmatter.Post]] = {}
    for path in (vault / "Telegram").rglob("*.md"):
        post = frontmatter.load(path)
        if post.metadata.get("tg_chat_id") != chat_id or "tg_message_id" not in post.metadata:
            continue
        ids = post.metadata["tg_message_id"]
        for message_id in ids if isinstance(ids, list) else [ids]:
            assert message_id not in found, f"message {message_id} has two notes"
            found[message_id] = (path.relative_to(vault), post)
    return found


def first_id(post: frontmatter.Post) -> int:
    ids = post.metadata["tg_message_id"]
    return ids[0] if isinstance(ids, list) else ids


def only_chat(sim: SimulatedTelegram, kind: str) -> int:
    (chat_id,) = [c for c in sim.chat_ids if sim.kind(c) == kind]
    return chat_id


def topic_title(sim: SimulatedTelegram, forum: int, topic: int) -> str:
    return "General" if topic == 1 else sim.topics(forum)[topic]


def is_real_reply(message: Any) -> bool:
    """Telegram's rule: a topic message's header names the topic; it answers a message only with a top id."""
    header = getattr(message, "reply_to", None)
    if not isinstance(header, types.MessageReplyHeader) or isinstance(message, types.MessageService):
        return False
    return not header.forum_topic or header.reply_to_top_id is not None


# region forum topics (case 7)


def test_forum_messages_record_their_topic_and_answer_only_real_replies(vault: Path) -> None:
    sim = SimulatedTelegram(parse_spec(SPEC))
    forum = only_chat(sim, "forum")
    report = sync_pass(vault, sim)
    assert report.failed == [] and report.deferred == []
    written = notes(vault, forum)
    own = sim.messages(forum)
    assert {m.id for m in own} <= set(written)
    in_topics = [m for m in own if sim.message_topic(forum, m.id) != 1]
    assert len({sim.message_topic(forum, m.id) for m in in_topics}) >= 3, "the account has topics in use"
    assert any(sim.message_topic(forum, m.id) == 1 for m in own), "and messages in the General topic"

    answered_in_topic = 0
    for message in own:
        path, post = written[message.id]
        topic = sim.message_topic(forum, message.id)
        if message.id != first_id(post):
            continue  # a later album member: the note is its first member's
        assert post.metadata["tg_topic_id"] == topic, path
        assert post.metadata["topic"] == topic_title(sim, forum, topic), path
        if is_real_reply(message):
            target = message.reply_to.reply_to_msg_id
            assert post.metadata["reply_to"].endswith(f"|message {target}]]"), path
            answered_in_topic += message.reply_to.forum_topic is True
        else:
            assert "reply_to" not in post.metadata, f"{path}: a topic message shown as a reply to its topic"
            assert "In reply to" not in post.content, path
    assert answered_in_topic, "some messages answer others inside a topic"


def test_topic_titles_come_from_the_history_and_are_asked_for_once_when_the_read_resumes(vault: Path) -> None:
    first = SimulatedTelegram(parse_spec("chats=6,messages=40,media=0,seed=4"))
    forum = only_chat(first, "forum")
    sync_pass(vault, first)
    # The General topic is the only one whose creation the history does not hold.
    assert first.stats.count("GetForumTopicsByID") == 1

    later = SimulatedTelegram(parse_spec("chats=6,messages=90,media=0,seed=4"))  # the same account, later
    report = sync_pass(vault, later)
    assert report.messages == sum(len(later.messages(c)) - len(first.messages(c)) for c in later.chat_ids)
    assert later.stats.count("GetForumTopicsByID") == 1, "one request for the topics of the new messages"
    written = notes(vault, forum)
    new = [m for m in later.messages(forum) if m.id > first.messages(forum)[-1].id]
    assert {later.message_topic(forum, m.id) for m in new} - {1}, "new messages in topics created earlier"
    for message in new:
        _, post = written[message.id]
        if message.id == first_id(post):
            assert post.metadata["topic"] == topic_title(later, forum, later.message_topic(forum, message.id))


def test_topic_field_of_the_note_path_puts_each_topic_in_its_folder(vault: Path) -> None:
    config = vault / ".tobs" / "config.toml"
    config.write_text(config.read_text(encoding="utf-8").replace(
        "[vault]\n", '[vault]\nnote_path = "Telegram/{chat}/{topic}/{date} {id}.md"\n'
    ), encoding="utf-8")
    sim = SimulatedTelegram(parse_spec("chats=6,messages=50,media=0,seed=4"))
    forum = only_chat(sim, "forum")
    sync_pass(vault, sim)
    for message_id, (path, _) in notes(vault, forum).items():
        topic = sim.message_topic(forum, message_id)
        expected = "General" if topic is None else sanitize_component(inert_text(topic_title(sim, forum, topic)))
        assert path.parent.name == expected, path
    channel = only_chat(sim, "channel")
    assert {path.parent.name for path, _ in notes(vault, channel).values()} == {"General"}


def unresolved(request: Any) -> Any:
    """``request`` sent with its fields as given: Telethon would otherwise convert peers to the schema's types."""

    async def resolve(client: Any, utils: Any) -> None:
        return None

    request.resolve = resolve
    return request


def test_the_simulator_refuses_peers_of_the_wrong_constructor_as_the_schema_does() -> None:
    sim = SimulatedTelegram(parse_spec("chats=6,messages=20,media=0,seed=4"))
    forum = only_chat(sim, "forum")
    peer = sim.input_peer(forum)  # an InputPeerChannel
    channel = types.InputChannel(peer.channel_id, peer.access_hash)

    async def scenario() -> None:
        client = sim.client(raise_last_call_error=True)
        for wrong in (
            functions.channels.GetFullChannelRequest(peer),
            functions.channels.GetChannelsRequest([peer]),
            functions.messages.GetForumTopicsByIDRequest(channel, [1]),
        ):
            with pytest.raises(errors.InputConstructorInvalidError):
                await client(unresolved(wrong))
        full = await client(functions.channels.GetFullChannelRequest(peer))  # Telethon makes it an InputChannel
        assert full.full_chat.migrated_from_chat_id == sim.migrated_messages(forum)[0].peer_id.chat_id
        topics = await client(functions.messages.GetForumTopicsByIDRequest(peer, [1, *sim.topics(forum), 99_999]))
        titles = [getattr(topic, "title", None) for topic in topics.topics]
        assert titles == ["General", *sim.topics(forum).values(), None]

    asyncio.run(scenario())


# endregion

# region migrated groups (case 8)


def test_a_migrated_group_syncs_its_old_history_below_zero_in_the_same_chat(vault: Path) -> None:
    sim = SimulatedTelegram(parse_spec(SPEC))
    forum = only_chat(sim, "forum")
    old = sim.migrated_messages(forum)
    assert old and isinstance(old[-1].action, types.MessageActionChatMigrateTo)
    sync_pass(vault, sim)
    written = notes(vault, forum)
    expected = {m.id - MIGRATED_ID_SHIFT for m in old} | {m.id for m in sim.messages(forum)}
    assert set(written) == expected
    folders = {path.parent for path, _ in written.values()}
    assert len(folders) == 1, "old and new history share the chat's folder"
    for message in old:
        _, post = written[message.id - MIGRATED_ID_SHIFT]
        assert post.metadata["tg_chat_id"] == forum
        if is_real_reply(message):
            target = message.reply_to.reply_to_msg_id - MIGRATED_ID_SHIFT
            assert post.metadata["reply_to"].endswith(f"|message {target}]]")
    assert any(is_real_reply(m) for m in old), "the old history has replies"
    assert not [c for c, _ in note_ids(vault) if c not in sim.chat_ids], "the old group is no chat of its own"


def test_a_read_interrupted_in_the_old_history_resumes_there(vault: Path) -> None:
    sim = SimulatedTelegram(parse_spec(SPEC))
    forum = only_chat(sim, "forum")
    sync_pass(vault, sim)
    cursor = sim.migrated_messages(forum)[4].id - MIGRATED_ID_SHIFT
    with contextlib.closing(sqlite3.connect(vault / ".tobs" / "state.db")) as db, db:
        db.execute("UPDATE chats SET cursor = ? WHERE chat_id = ?", (cursor, forum))
    report = sync_pass(vault, sim, chats=(f"title:{sim.title(forum)}",))
    old_left = [m for m in sim.migrated_messages(forum) if m.id - MIGRATED_ID_SHIFT > cursor]
    assert report.messages == len(old_left) + len(sim.messages(forum))
    assert report.notes_written == 0
    assert max(note_ids(vault).values()) == 1


def test_an_old_history_read_that_telethon_ends_early_is_read_on(vault: Path) -> None:
    """Telethon ends a history read silently on a bad page; the old group's read is confirmed like any."""
    sim = SimulatedTelegram(parse_spec(SPEC))
    forum = only_chat(sim, "forum")
    client = sim.client(raise_last_call_error=True, request_retries=1)
    read_history = client.iter_messages
    cut_short: list[Any] = []

    async def first_five(iterator: Any) -> Any:
        count = 0
        async for message in iterator:
            if count == 5:
                return
            count += 1
            yield message

    def iter_messages(entity: Any, *args: Any, **kwargs: Any) -> Any:
        iterator = read_history(entity, *args, **kwargs)
        if isinstance(entity, types.InputPeerChat) and not cut_short:
            cut_short.append(entity)
            return first_five(iterator)
        return iterator

    client.iter_messages = iter_messages
    sync_pass(vault, sim, client, chats=(f"title:{sim.title(forum)}",))
    assert cut_short, "the old group's read was cut short"
    old_ids = {m.id - MIGRATED_ID_SHIFT for m in sim.migrated_messages(forum)}
    assert old_ids <= set(notes(vault, forum))


def desktop_export(sim: SimulatedTelegram, chat_id: int, supergroup_messages: int) -> dict[str, Any]:
    """A Telegram Desktop export of the upgraded forum as the exporter writes it: the old history first,
    ids shifted by -1e9; a topic message's ``reply_to_message_id`` is its header's (the topic, or the
    message it answers); no topic field."""

    def exported(message: Any, shift: int) -> dict[str, Any]:
        date = str(int(message.date.timestamp()))
        if isinstance(message, types.MessageService):
            if isinstance(message.action, types.MessageActionTopicCreate):
                return {"id": message.id + shift, "type": "service", "date_unixtime": date,
                        "action": "topic_created", "title": message.action.title, "text": ""}
            return {"id": message.id + shift, "type": "service", "date_unixtime": date, "action": "custom_action",
                    "text": ""}
        entry = {"id": message.id + shift, "type": "message", "date_unixtime": date, "text": message.message}
        if isinstance(message.reply_to, types.MessageReplyHeader) and message.reply_to.reply_to_msg_id:
            entry["reply_to_message_id"] = message.reply_to.reply_to_msg_id + shift
        return entry

    entity = sim.entity(chat_id)
    return {
        "name": entity.title, "type": "private_supergroup", "id": entity.id,
        "messages": [exported(m, -MIGRATED_ID_SHIFT) for m in sim.migrated_messages(chat_id)]
        + [exported(m, 0) for m in sim.messages(chat_id)[:supergroup_messages]],
    }


def empty_vault(folder: Path) -> Path:
    (folder / ".tobs").mkdir(parents=True)
    (folder / ".tobs" / "config.toml").write_text('[vault]\ntimezone = "UTC"\n', encoding="utf-8")
    return folder


def test_an_imported_forum_has_the_topics_and_replies_a_live_sync_gives_it(vault: Path, tmp_path: Path) -> None:
    sim = SimulatedTelegram(parse_spec("chats=6,messages=70,media=0,seed=9"))
    forum = only_chat(sim, "forum")
    export = tmp_path / "result.json"
    export.write_text(json.dumps(desktop_export(sim, forum, supergroup_messages=1000)), encoding="utf-8")
    asyncio.run(import_export(vault, export))
    live = empty_vault(tmp_path / "live")
    sync_pass(live, sim, chats=(f"title:{sim.title(forum)}",))

    imported, synced = notes(vault, forum), notes(live, forum)
    assert set(imported) == set(synced)
    compared = 0
    for message in sim.messages(forum):
        topic = sim.message_topic(forum, message.id)
        if topic == 1 or not isinstance(message, types.Message) or message.grouped_id:
            continue  # the export cannot tell the General topic; it does not record albums
        a, b = imported[message.id][1].metadata, synced[message.id][1].metadata
        assert (a.get("tg_topic_id"), a.get("topic")) == (b["tg_topic_id"], b["topic"]) == (
            topic, sim.topics(forum)[topic]
        )
        assert ("reply_to" in a) == ("reply_to" in b) == is_real_reply(message)
        compared += 1
    assert compared > 10


def test_an_export_of_a_migrated_group_and_a_live_sync_meet_without_duplicates(
    vault: Path, tmp_path: Path
) -> None:
    sim = SimulatedTelegram(parse_spec("chats=6,messages=60,media=0,seed=4"))
    forum = only_chat(sim, "forum")
    live_only = empty_vault(tmp_path / "live-only")
    sync_pass(live_only, sim, chats=(f"title:{sim.title(forum)}",))

    export = tmp_path / "result.json"
    export.write_text(json.dumps(desktop_export(sim, forum, supergroup_messages=10)), encoding="utf-8")
    asyncio.run(import_export(vault, export))
    sync_pass(vault, sim, chats=(f"title:{sim.title(forum)}",))

    both = note_ids(vault)
    assert max(both.values()) == 1, "no message has two notes"
    assert set(both) == set(note_ids(live_only)), "the export numbers the old history as the live sync does"
    assert any(mid < 0 for _, mid in both)


# endregion

# region Saved Messages


def test_saved_messages_sync_like_any_chat(vault: Path) -> None:
    sim = SimulatedTelegram(parse_spec("chats=6,messages=40,media=0.3,seed=4"))
    saved = only_chat(sim, "saved")
    assert saved == sim.me.id
    report = sync_pass(vault, sim, chats=("saved",))
    assert report.chats == 1 and report.failed == []
    written = notes(vault, saved)
    assert set(written) == {m.id for m in sim.messages(saved)}
    assert {path.parts[1] for path, _ in written.values()} == {"Saved Messages"}
    sim.add_message(saved, "a note to self")
    report = sync_pass(vault, sim, chats=("saved",))
    assert report.messages == 1


# endregion

# region the simulated account


def combined_history(sim: SimulatedTelegram, chat_id: int) -> list[bytes]:
    return [bytes(m) for m in sim.migrated_messages(chat_id) + sim.messages(chat_id)]


def test_six_chats_include_a_forum_a_migrated_group_and_saved_messages_and_stay_prefix_stable() -> None:
    shorter = SimulatedTelegram(SimSpec(chats=6, messages=50, seed=3))
    longer = SimulatedTelegram(SimSpec(chats=6, messages=65, seed=3))
    kinds = {shorter.kind(c) for c in shorter.chat_ids}
    assert {"forum", "saved", "group", "megagroup", "channel", "private"} == kinds
    forum = only_chat(shorter, "forum")
    assert shorter.entity(forum).forum and shorter.topics(forum)
    assert isinstance(shorter.messages(forum)[0].action, types.MessageActionChannelMigrateFrom)
    assert shorter.migrated_messages(forum), "the forum was upgraded from a basic group"
    assert shorter.entity(only_chat(shorter, "saved")).is_self
    for chat_id in shorter.chat_ids:
        short, long = combined_history(shorter, chat_id), combined_history(longer, chat_id)
        assert (len(short), len(long)) == (50, 65)
        assert long[:50] == short
