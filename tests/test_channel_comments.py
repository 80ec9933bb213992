"""Channel comments end to end: the Telethon source over the simulated Telegram, whose broadcast channel
has a discussion group (spec ``comments``), into the vault through the real sync path."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import shutil
from pathlib import Path
from typing import Any

import frontmatter
import pytest
from crashing import CrashingVault, install
from telethon.tl import types
from test_hostile import context_problems, hostile, hostile_block, scan_note, shown
from vaultcheck import check_vault, note_ids, vault_differences

from tobs_sync.app import App
from tobs_sync.cli import main
from tobs_sync.comments import GROUP_COMMIT
from tobs_sync.config import load_settings
from tobs_sync.errors import ConfigError
from tobs_sync.model import Message
from tobs_sync.records import decode_message, encode_message
from tobs_sync.sim import SimulatedTelegram, parse_spec
from tobs_sync.sources.telegram import TelegramSource
from tobs_sync.sources.telegram_comments import PAGE_SIZE
from tobs_sync.sources.telegram_convert import message_from_tl
from tobs_sync.store import Store
from tobs_sync.store_comments import comment_cursors
from tobs_sync.sync import SyncReport
from tobs_sync.views import comments_view, message_view, post_view

SPEC = "chats=1,messages=16,media=0,comments=4,seed=3"
OPT_IN = '\n[[chat]]\nselect = ["channels"]\ncomments = true\n'


def configure(vault: Path, extra: str = OPT_IN) -> None:
    config = vault / ".tobs" / "config.toml"
    config.write_text(config.read_text(encoding="utf-8") + extra, encoding="utf-8")


class CrashAtCommentCursors(Store):
    """Shares ``store``'s database; dies (``SystemExit``) instead of committing a transaction that moves
    a post's comment cursor (the transaction is left open, and is rolled back when the database closes)."""

    def __init__(self, store: Store) -> None:
        super().__init__(store._db, store.path)

    def _commit(self) -> None:
        if self.query("SELECT 1 FROM comment_cursors WHERE max_id > 0 LIMIT 1"):
            raise SystemExit("simulated crash")
        super()._commit()


def sync_pass(vault: Path, sim: SimulatedTelegram, *, crash_after_renames: int | None = None,
              crash_at_cursors: bool = False, recent_posts: int | None = None,
              waits: list[float] | None = None) -> SyncReport:
    """One pass of the real sync path over ``sim``; ``crash_after_renames``: die (``SystemExit``) before
    the rename after that many; ``crash_at_cursors``: die instead of moving comment cursors; ``waits``:
    where the source's pauses (flood waits, retries) are recorded instead of slept."""

    async def pause(seconds: float) -> None:
        if waits is not None:
            waits.append(seconds)

    async def run() -> SyncReport:
        settings = load_settings(vault).telegram
        client = sim.client(raise_last_call_error=True, request_retries=1)
        with App.open(vault) as app:
            if crash_after_renames is not None or crash_at_cursors:
                renames = crash_after_renames if crash_after_renames is not None else 10**9
                install(app, CrashingVault(vault, renames),
                        CrashAtCommentCursors(app.store) if crash_at_cursors else None)
            if recent_posts is not None:
                app.synchronizer.comments.recent_posts = recent_posts
            async with TelegramSource(client, settings, retry_delay=0.01, peers=app.store, sleep=pause) as source:
                return await app.sync_source(source)

    return asyncio.run(run())


def notes(vault: Path) -> dict[tuple[int, int], tuple[Path, dict[str, Any], str]]:
    """Every message and comment note by ``(tg_chat_id, tg_message_id)``: path, properties, body."""
    found = {}
    for path in vault.rglob("*.md"):
        if ".tobs" in path.parts:
            continue
        post = frontmatter.load(path)
        if "tg_message_id" in post.metadata:
            found[(post.metadata["tg_chat_id"], post.metadata["tg_message_id"])] = (path, post.metadata, post.content)
        else:
            assert "tg_chat_id" in post.metadata, path
    return found


def link_target(vault: Path, link: str) -> Path:
    return vault / (link.removeprefix("[[").split("|")[0].removesuffix("]]") + ".md")


def expected_comments(sim: SimulatedTelegram, channel: int) -> dict[int, list[int]]:
    return {
        post.id: [c.id for c in sim.comments(channel, post.id)]
        for post in sim.messages(channel) if sim.comments(channel, post.id)
    }


def test_comments_reach_notes_linked_with_their_posts_on_the_first_sync_of_an_opted_in_channel(vault: Path) -> None:
    configure(vault)
    sim = SimulatedTelegram(parse_spec(SPEC))
    channel = sim.chat_ids[0]
    group = sim.discussion_group(channel)
    assert group is not None
    threads = expected_comments(sim, channel)
    assert sum(map(len, threads.values())) >= 10 and len(threads) >= 5

    report = sync_pass(vault, sim)

    assert report.failed == [] and report.per_chat[channel].errors == []
    assert report.comments == sum(map(len, threads.values()))
    found = notes(vault)
    comment_notes = {key: value for key, value in found.items() if key[0] == group}
    assert {mid for _, mid in comment_notes} == {cid for ids in threads.values() for cid in ids}
    assert max(note_ids(vault).values()) == 1
    for post_id, comment_ids in threads.items():
        post_path, post_meta, post_body = found[(channel, post_id)]
        assert post_meta["comments"] == len(comment_ids)
        for comment_id in comment_ids:
            path, meta, body = comment_notes[(group, comment_id)]
            assert path.parent.name == "Comments" and path.parent.parent == post_path.parent
            assert link_target(vault, meta["post"]) == post_path
            assert meta["chat"].startswith("[[") and "Comment on [[" in body
            assert path.stem in post_body, "the post's note links each of its comments"
        tl_comment = sim.comments(channel, post_id)[0]
        assert tl_comment.message.split()[0] in comment_notes[(group, comment_ids[0])][2]
    assert any("sender" in meta for _, meta, _ in comment_notes.values()), "senders are named"
    by_id = {c.id: c for post_id in threads for c in sim.comments(channel, post_id)}
    answering = [comment for comment in by_id.values() if comment.reply_to.reply_to_top_id]
    assert answering, "the account has comments answering comments"
    for comment in answering:
        meta = comment_notes[(group, comment.id)][1]
        assert link_target(vault, meta["reply_to"]) == comment_notes[(group, comment.reply_to.reply_to_msg_id)][0]
    answering_post = next(c for c in by_id.values() if not c.reply_to.reply_to_top_id)
    assert "reply_to" not in comment_notes[(group, answering_post.id)][1], "the post link says it, not a reply"
    assert check_vault(vault).broken == []
    with App.open(vault) as app:
        assert comment_cursors(app.store, channel, threads) == {p: ids[-1] for p, ids in threads.items()}


def test_comments_are_not_read_for_a_channel_that_did_not_opt_in(vault: Path) -> None:
    sim = SimulatedTelegram(parse_spec(SPEC))
    report = sync_pass(vault, sim)
    channel = sim.chat_ids[0]
    assert report.messages == len(sim.messages(channel))
    assert sim.stats.count("GetReplies") == 0
    assert {chat for chat, _ in notes(vault)} == {channel}
    assert not list(vault.rglob("Comments"))


def test_new_comments_on_a_later_pass_are_read_only_for_the_posts_that_have_them(vault: Path) -> None:
    configure(vault)
    sim = SimulatedTelegram(parse_spec(SPEC))
    channel = sim.chat_ids[0]
    group = sim.discussion_group(channel)
    sync_pass(vault, sim)
    first = sim.stats.count("GetReplies")
    assert first == len(expected_comments(sim, channel)), "one request per post with comments"

    sync_pass(vault, sim)  # nothing new: no post is asked about
    assert sim.stats.count("GetReplies") == first

    posts = [m.id for m in sim.messages(channel) if getattr(m, "replies", None)]
    quiet, busy = posts[-3], posts[-8]
    added = [sim.add_comment(channel, busy, "first new"), sim.add_comment(channel, quiet, "second new"),
             sim.add_comment(channel, busy, "third new")]
    report = sync_pass(vault, sim)

    assert sim.stats.count("GetReplies") == first + 2
    found = notes(vault)
    for comment in added:
        assert comment.message in found[(group, comment.id)][2]
    assert found[(channel, busy)][1]["comments"] == len(sim.comments(channel, busy))
    assert max(note_ids(vault).values()) == 1
    assert report.per_chat[channel].errors == []


def test_a_post_note_keeps_the_users_edits_when_its_comments_grow(vault: Path) -> None:
    configure(vault)
    sim = SimulatedTelegram(parse_spec(SPEC))
    channel = sim.chat_ids[0]
    group = sim.discussion_group(channel)
    sync_pass(vault, sim)
    post = [m.id for m in sim.messages(channel) if getattr(m, "replies", None)][-1]
    path = notes(vault)[(channel, post)][0]
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("tags:\n", "rating: 5\ntags:\n", 1) + "\nMy own thoughts.\n", encoding="utf-8")
    comment = sim.add_comment(channel, post, "a new comment")

    report = sync_pass(vault, sim)

    assert report.conflicts == []
    _, meta, body = notes(vault)[(channel, post)]
    assert meta["rating"] == 5 and body.endswith("My own thoughts.")
    assert meta["comments"] == len(sim.comments(channel, post))
    assert notes(vault)[(group, comment.id)][0].stem in body


def test_a_thread_longer_than_a_page_is_read_page_by_page(vault: Path) -> None:
    configure(vault)
    sim = SimulatedTelegram(parse_spec(SPEC))
    channel = sim.chat_ids[0]
    group = sim.discussion_group(channel)
    sync_pass(vault, sim)
    before = sim.stats.count("GetReplies")
    post = [m.id for m in sim.messages(channel) if getattr(m, "replies", None)][-1]
    added = [sim.add_comment(channel, post, f"comment number {n}") for n in range(PAGE_SIZE + 30)]

    sync_pass(vault, sim)

    assert sim.stats.count("GetReplies") == before + 2
    found = notes(vault)
    assert all((group, comment.id) in found for comment in added)
    assert found[(channel, post)][1]["comments"] == len(sim.comments(channel, post))


def test_a_post_outside_the_recent_window_is_asked_about_only_when_the_window_reaches_it(vault: Path) -> None:
    configure(vault, OPT_IN + "\n[telegram]\ncomments_recent_posts = 5\n")
    sim = SimulatedTelegram(parse_spec(SPEC))
    channel = sim.chat_ids[0]
    group = sim.discussion_group(channel)
    sync_pass(vault, sim)
    before = sim.stats.count("GetReplies")
    old_post = next(m.id for m in sim.messages(channel) if getattr(m, "replies", None))
    comment = sim.add_comment(channel, old_post, "late comment")

    sync_pass(vault, sim)
    assert sim.stats.count("GetReplies") == before
    assert (group, comment.id) not in notes(vault)

    config = vault / ".tobs" / "config.toml"
    config.write_text(config.read_text(encoding="utf-8").replace("= 5", "= 1000"), encoding="utf-8")
    sync_pass(vault, sim)
    assert sim.stats.count("GetReplies") == before + 1
    assert (group, comment.id) in notes(vault)


def test_comments_recent_posts_must_be_a_count_in_range(vault: Path) -> None:
    configure(vault, "\n[telegram]\ncomments_recent_posts = -1\n")
    with pytest.raises(ConfigError, match=r"telegram\.comments_recent_posts: must be at least 0"):
        load_settings(vault)


@pytest.mark.parametrize("crash", ["before the comment notes", "before the post notes", "at the cursors"])
def test_a_crash_between_comment_notes_and_the_comment_cursor_repeats_harmlessly(
    vault: Path, tmp_path: Path, crash: str
) -> None:
    """The crash comes before the rename of the first comment note, of the first post note (the comment
    notes are in place), or at the commit of the cursors (the posts' notes are in place too)."""
    sim_spec = parse_spec(SPEC)
    sync_pass(vault, SimulatedTelegram(sim_spec))  # the posts first, without comments
    configure(vault)
    reference = tmp_path / "reference"
    shutil.copytree(vault, reference)
    every_post = 1000  # the posts were read before the opt-in: every post is asked about through the window
    sync_pass(reference, SimulatedTelegram(sim_spec), recent_posts=every_post)

    sim = SimulatedTelegram(sim_spec)
    channel = sim.chat_ids[0]
    group = sim.discussion_group(channel)
    threads = expected_comments(sim, channel)
    comments = sum(map(len, threads.values()))
    assert comments < GROUP_COMMIT, "one group commit holds them all"
    renames = {"before the comment notes": 0, "before the post notes": comments}.get(crash)
    try:
        sync_pass(vault, sim, crash_after_renames=renames, crash_at_cursors=renames is None, recent_posts=every_post)
    except SystemExit:
        pass
    else:
        raise AssertionError("the pass did not crash")
    written = {key for key in notes(vault) if key[0] == group}
    with App.open(vault) as app:
        cursors = comment_cursors(app.store, channel, threads)
    assert cursors == {}, "the cursors did not move"
    assert len(written) == (0 if crash == "before the comment notes" else comments)
    post_notes = [notes(vault)[(channel, post)][1] for post in threads]
    assert all("comments" in meta for meta in post_notes) == (crash == "at the cursors")

    sync_pass(vault, sim, recent_posts=every_post)
    assert vault_differences(vault, reference) == ""
    assert max(note_ids(vault).values()) == 1
    assert sim.stats.count("GetReplies") == 2 * len(threads), "each post asked once per pass"


def test_hostile_comment_text_stays_inert_in_the_vault(vault: Path) -> None:
    configure(vault)
    sim = SimulatedTelegram(parse_spec(SPEC))
    channel = sim.chat_ids[0]
    group = sim.discussion_group(channel)
    post = [m.id for m in sim.messages(channel) if getattr(m, "replies", None)][-1]
    added = [sim.add_comment(channel, post, hostile_block("Comment")), sim.add_comment(channel, post, hostile("Short"))]
    report = sync_pass(vault, sim)
    assert report.per_chat[channel].errors == []
    paths = [notes(vault)[(group, comment.id)][0] for comment in added]
    assert [scan_note(path, vault) for path in paths] == [[], []]
    assert "Comment &lt;\\%\\* app.vault" in shown(paths[0].read_text(encoding="utf-8"))
    for path in paths:  # rendered again from the store alone
        path.unlink()
    with App.open(vault) as app:
        again = app.synchronizer.render_all()
    assert again.notes_written == 2 and again.conflicts == []
    assert [scan_note(path, vault) for path in paths] == [[], []]


def test_the_comments_and_post_values_of_the_template_context_are_inert() -> None:
    commenter = Message(-1002, 5, 1714557600, text=hostile_block("Text"), sender_name=hostile_block("Sender"))
    view = message_view([commenter], [], tz=datetime.UTC, reply_path=None, note_path="T/C/Comments/1-5.md",
                        comments=comments_view(3, [(commenter, "T/C/Comments/1-5.md")], datetime.UTC),
                        post=post_view(1, "T/C/2024-05-01 1.md"))
    assert context_problems(view) == []
    assert view["comments"]["more"] == 2 and view["post"]["link"] == "[[T/C/2024-05-01 1|post 1]]"


def test_a_post_whose_comments_cannot_be_read_is_reported_and_the_pass_goes_on(vault: Path) -> None:
    configure(vault)
    sim = SimulatedTelegram(parse_spec(SPEC))
    channel = sim.chat_ids[0]
    group = sim.discussion_group(channel)
    threads = expected_comments(sim, channel)
    refused = min(threads)
    sim.faults.rpc_error("GetReplies", 400, "MSG_ID_INVALID")

    report = sync_pass(vault, sim)

    errors = report.per_chat[channel].errors
    assert len(errors) == 1 and f"post {refused}" in errors[0] and "MSG_ID_INVALID" in errors[0]
    assert report.deferred == [f"chat {sim.title(channel)!r}: comments of 1 post; {errors[0]}"]
    found = notes(vault)
    assert {(group, cid) for post, ids in threads.items() if post != refused for cid in ids} <= set(found)
    assert not {(group, cid) for cid in threads[refused]} & set(found)
    assert {mid for chat, mid in found if chat == channel} == {m.id for m in sim.messages(channel)}

    report = sync_pass(vault, sim)  # the refused post is asked again, and now answers
    assert report.per_chat[channel].errors == []
    assert {(group, cid) for cid in threads[refused]} <= set(notes(vault))


def test_a_private_discussion_group_leaves_the_channels_comments_for_the_next_pass(vault: Path) -> None:
    configure(vault)
    sim = SimulatedTelegram(parse_spec(dataclasses.replace(parse_spec(SPEC), chats=2).to_text()))
    channel = next(c for c in sim.chat_ids if sim.kind(c) == "channel")
    group = sim.discussion_group(channel)
    assert group is not None
    sim.faults.private_channel(group)

    report = sync_pass(vault, sim)

    errors = report.per_chat[channel].errors
    assert len(errors) == 1 and "CHANNEL_PRIVATE" in errors[0]
    assert sim.stats.count("GetReplies") == 1, "the other posts are not asked about in vain"
    posts = len(expected_comments(sim, channel))
    assert report.deferred == [f"chat {sim.title(channel)!r}: comments of {posts} posts; {errors[0]}"]
    assert report.failed == [] and report.chats == 2
    assert {chat for chat, _ in notes(vault)} == set(sim.chat_ids)

    sim.faults.restore_channel(group)
    report = sync_pass(vault, sim)
    assert report.deferred == [] and report.per_chat[channel].errors == []
    assert {chat for chat, _ in notes(vault)} == {*sim.chat_ids, group}


def test_flood_waits_on_comments_are_waited_out_or_leave_the_rest_for_the_next_pass(vault: Path) -> None:
    configure(vault, OPT_IN + "\n[telegram]\nflood_max_wait_s = 60\n")
    sim = SimulatedTelegram(parse_spec(SPEC))
    channel = sim.chat_ids[0]
    group = sim.discussion_group(channel)
    threads = expected_comments(sim, channel)
    sim.faults.flood("GetReplies", 30, after=1)
    sim.faults.flood("GetReplies", 3600, after=3)
    waits: list[float] = []

    report = sync_pass(vault, sim, waits=waits)

    assert 30 in waits and 3600 not in waits
    errors = report.per_chat[channel].errors
    assert len(errors) == 1 and "3600" in errors[0]
    assert report.deferred == [f"chat {sim.title(channel)!r}: comments of {len(threads) - 3} posts; {errors[0]}"]
    done = sorted(threads)[:3]
    assert {(group, cid) for post in done for cid in threads[post]} <= set(notes(vault))

    report = sync_pass(vault, sim, waits=waits)
    assert report.deferred == []
    assert {(group, cid) for ids in threads.values() for cid in ids} <= set(notes(vault))


def test_a_channel_post_carries_its_comments_thread_and_a_groups_reply_count_does_not() -> None:
    date = datetime.datetime(2024, 5, 1, tzinfo=datetime.UTC)
    post = types.Message(id=7, peer_id=types.PeerChannel(100), date=date, message="post", post=True,
                         replies=types.MessageReplies(replies=3, replies_pts=9, comments=True, channel_id=200,
                                                      max_id=41))
    converted = message_from_tl(post, -1000000000100)
    assert converted is not None
    assert (converted.comments_count, converted.comments_max_id, converted.comments_chat_id) == (3, 41, -1000000000200)
    assert decode_message(encode_message(converted)) == converted
    quiet = types.Message(id=8, peer_id=types.PeerChannel(100), date=date, message="post", post=True,
                          replies=types.MessageReplies(replies=0, replies_pts=9, comments=True, channel_id=200))
    assert message_from_tl(quiet, -1000000000100).comments_max_id is None  # type: ignore[union-attr]
    in_group = types.Message(id=9, peer_id=types.PeerChannel(300), date=date, message="thread",
                             replies=types.MessageReplies(replies=2, replies_pts=9, max_id=12))
    threaded = message_from_tl(in_group, -1000000000300)
    assert threaded is not None and threaded.comments_chat_id is None and threaded.comments_max_id is None


def test_sync_on_the_command_line_counts_the_new_comments(vault: Path, capsys: Any) -> None:
    configure(vault)
    assert main(["sync", "--vault", str(vault), "--simulate", SPEC]) == 0
    sim = SimulatedTelegram(parse_spec(SPEC))
    channel = sim.chat_ids[0]
    total = sum(len(ids) for ids in expected_comments(sim, channel).values())
    assert f"{len(sim.messages(channel))} new messages, {total} new comments; notes:" in capsys.readouterr().out
    assert main(["sync", "--vault", str(vault), "--simulate", SPEC]) == 0
    assert "0 new messages; notes:" in capsys.readouterr().out


def test_templates_swapped_in_by_the_agent_render_comment_notes_too(vault: Path, tmp_path: Path) -> None:
    from tobs_sync.render import Renderer, builtin_templates_dir

    configure(vault)
    sim = SimulatedTelegram(parse_spec(SPEC))
    group = sim.discussion_group(sim.chat_ids[0])
    sync_pass(vault, sim)
    checked = tmp_path / "checked-templates"
    shutil.copytree(builtin_templates_dir(), checked)
    message_template = checked / "message.md"
    message_template.write_text(message_template.read_text(encoding="utf-8") + "\nChecked template.\n",
                                encoding="utf-8")
    with App.open(vault) as app:
        app.synchronizer.use_renderer(Renderer(checked, auto_reload=False))
        app.synchronizer.render_all()
    comment_bodies = [body for (chat, _), (_, _, body) in notes(vault).items() if chat == group]
    assert comment_bodies and all("Checked template." in body for body in comment_bodies)
