"""Simulated channel comments: a broadcast channel's linked discussion group and ``messages.getReplies``.

With ``comments=N`` in the spec (N > 0), every broadcast channel gets a discussion group (a megagroup
that is no dialog of the account, as when the user never joined it; ``channelFull.linked_chat_id``
names it). Every post (a plain message of the channel, not a service message) has a thread: the
group holds its automatic copy (``fwd_from`` the channel, ``saved_from_peer``/``saved_from_msg_id``
the post), and 0..N comments, messages of the group from the channel's members that answer the copy
(``reply_to_msg_id``) or an earlier comment of the thread (with ``reply_to_top_id`` the copy). The post
carries ``replies=messageReplies(comments=True, channel_id=<group>, replies=<count>, max_id=<newest
comment>)``. Everything is derived from the seed, post by post, after the channels' own history is
generated, so the channels' messages (ids, texts, dates) are those of the same spec without comments.

``messages.getReplies(peer=channel, msg_id=post)`` answers the thread's comments with the paging of
``messages.getHistory`` (``offset_id``/``add_offset``/``limit`` at most 100, exclusive ``min_id``/``max_id``,
newest first) as ``messages.channelMessages``. Errors as Telegram gives them: ``MSG_ID_INVALID`` for a
message without a thread (a service message, an unknown id, a chat without discussion group),
``CHANNEL_PRIVATE`` when the channel or its discussion group is private (:meth:`Faults.private_channel
<tobs_sync.sim.faults.Faults.private_channel>` with the group's marked id).

Limits: comments are text only; no comment is edited or deleted; a new comment
(:meth:`Discussions.add_comment`) is pushed to no client (Telegram sends channel comments only to the
group's members); threads of megagroup messages are not modelled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from telethon.tl import functions, types

from tobs_sync.sim import content
from tobs_sync.sim.content import rng_for, signed64
from tobs_sync.sim.history import position_of_date, position_of_id
from tobs_sync.sim.rpc import bad_request

MAX_REPLIES = 100
COMMENT_STEP_S = 43
"""Seconds between generated comments of one post."""


@dataclass(eq=False)
class Thread:
    """One post's comments: the group's copy of the post (the thread's top) and the comment ids."""

    post_id: int
    top_id: int
    comment_ids: list[int] = field(default_factory=list)


@dataclass(eq=False)
class Discussion:
    """A broadcast channel and its discussion group (both ``SimChat`` objects of the account)."""

    channel: Any
    group: Any
    threads: dict[int, Thread] = field(default_factory=dict)
    """By post id."""


class Discussions:
    """The account's discussion groups, by channel raw id; built by the account when ``spec.comments`` > 0."""

    def __init__(self, seed: int, per_post: int, people: Mapping[int, content.Person], self_id: int) -> None:
        self._seed = seed
        self._per_post = per_post
        self._people = people
        self._self_id = self_id
        self.by_channel: dict[int, Discussion] = {}
        self.live_counter = 0

    def link(self, channel: Any, group: Any) -> Discussion:
        """Link ``group`` to ``channel`` and give every post of the channel its thread and comments."""
        discussion = Discussion(channel, group)
        self.by_channel[channel.raw_id] = discussion
        for post in channel.messages:
            if isinstance(post, types.Message):
                self._open_thread(discussion, post)
                rng = rng_for(self._seed, "comments", channel.index, post.id)
                for k in range(rng.randint(0, self._per_post)):
                    self._comment(discussion, post.id, post.date + timedelta(seconds=(k + 1) * COMMENT_STEP_S),
                                  rng_for(self._seed, "comment", channel.index, post.id, k), None)
        return discussion

    def _open_thread(self, discussion: Discussion, post: types.Message) -> None:
        group, channel = discussion.group, discussion.channel
        top_id = group.last_id + 1
        copy = types.Message(
            id=top_id, peer_id=group.peer, date=post.date, message=post.message, entities=post.entities,
            from_id=channel.peer, post=None,
            fwd_from=types.MessageFwdHeader(
                date=post.date, from_id=channel.peer, channel_post=post.id,
                saved_from_peer=channel.peer, saved_from_msg_id=post.id,
            ),
        )
        group.append(copy)
        discussion.threads[post.id] = Thread(post.id, top_id)
        post.replies = types.MessageReplies(replies=0, replies_pts=group.log.pts, comments=True,
                                            channel_id=group.raw_id)
        channel.by_id[post.id] = post

    def _comment(
        self, discussion: Discussion, post_id: int, date: datetime, rng: Any, text: str | None
    ) -> types.Message:
        group = discussion.group
        thread = discussion.threads[post_id]
        members = [uid for uid in discussion.channel.member_ids if uid != self._self_id]
        author = rng.choice(members)
        if text is None:
            mentionable = [(uid, self._people[uid]) for uid in members if uid in self._people]
            text, entities = content.make_text(rng, mentionable, short=True)
        else:
            entities = []
        answered = rng.choice(thread.comment_ids) if thread.comment_ids and rng.random() < 0.3 else None
        header = (
            types.MessageReplyHeader(reply_to_msg_id=answered, reply_to_top_id=thread.top_id)
            if answered else types.MessageReplyHeader(reply_to_msg_id=thread.top_id)
        )
        comment = types.Message(
            id=group.last_id + 1, peer_id=group.peer, date=date, message=text, entities=entities or None,
            from_id=types.PeerUser(author), reply_to=header,
        )
        group.append(comment)
        thread.comment_ids.append(comment.id)
        post = discussion.channel.by_id.get(post_id)
        if isinstance(post, types.Message) and post.replies is not None:
            post.replies.replies = len(thread.comment_ids)
            post.replies.max_id = comment.id
            post.replies.replies_pts = group.log.pts
            discussion.channel.by_id[post_id] = post
        return comment

    def add_comment(self, channel: Any, post_id: int, date: datetime, text: str | None) -> types.Message:
        """A new comment on the channel's post (its count and newest id change on the post)."""
        discussion = self.by_channel.get(channel.raw_id)
        if discussion is None or post_id not in discussion.threads:
            raise KeyError(f"post {post_id} of chat {channel.marked_id} has no comments thread")
        self.live_counter += 1
        rng = rng_for(self._seed, "live-comment", self.live_counter)
        return self._comment(discussion, post_id, date, rng, text)

    def comments(self, channel: Any, post_id: int) -> list[types.Message]:
        discussion = self.by_channel.get(channel.raw_id)
        thread = discussion.threads.get(post_id) if discussion is not None else None
        if discussion is None or thread is None:
            return []
        return [discussion.group.by_id[i] for i in thread.comment_ids if i in discussion.group.by_id]


def new_group_id(seed: int, channel: Any) -> tuple[int, int]:
    """``(raw id, access hash)`` of a channel's discussion group."""
    rng = rng_for(seed, "discussion", channel.index)
    return 1_500_000_000 + channel.index * 1_000_000 + rng.randrange(1_000_000), signed64(rng)


def history_window(
    history: Sequence[Any], req: Any, *, maximum: int = MAX_REPLIES, offset_date: datetime | None = None
) -> list[Any]:
    """``history`` (ascending ids) cut as ``messages.getHistory`` (and ``getReplies``) cut it: newest
    first, from the position ``offset_id`` (else ``offset_date``) names shifted by ``add_offset``,
    ``limit`` (at most ``maximum``) messages, then the exclusive ``min_id``/``max_id`` bounds."""
    total = len(history)
    if req.offset_id:
        newer = total - position_of_id(history, req.offset_id)
    elif offset_date is not None:
        newer = total - position_of_date(history, offset_date)
    else:
        newer = 0
    limit = max(0, min(req.limit, maximum))
    start = max(newer + req.add_offset, 0)
    end = min(max(newer + req.add_offset + limit, 0), total)
    window = list(reversed(history[total - end : total - start])) if end > start else []
    if req.min_id:
        window = [m for m in window if m.id > req.min_id]
    if req.max_id:
        window = [m for m in window if m.id < req.max_id]
    return window


def discussion_handlers(account: Any, is_private: Callable[[int], bool]) -> Mapping[type, Callable[[Any, Any], Any]]:
    """Handlers for the server's dispatch table: ``messages.getReplies``."""

    def get_replies(req: functions.messages.GetRepliesRequest, ctx: Any) -> types.messages.ChannelMessages:
        chat = account.chat_for_peer(req.peer)
        if chat is not None and is_private(chat.marked_id):
            raise bad_request("CHANNEL_PRIVATE")
        discussion = account.discussions.by_channel.get(chat.raw_id) if chat is not None else None
        thread = discussion.threads.get(req.msg_id) if discussion is not None else None
        if discussion is None or thread is None:
            raise bad_request("MSG_ID_INVALID")
        group = discussion.group
        if is_private(group.marked_id):
            raise bad_request("CHANNEL_PRIVATE")
        history = [group.by_id[i] for i in thread.comment_ids if i in group.by_id]
        window = history_window(history, req)
        users, chats = account.entities_for(window, [chat.peer, group.peer])
        return types.messages.ChannelMessages(
            pts=group.log.pts, count=len(history), messages=window, topics=[], chats=chats, users=users
        )

    return {functions.messages.GetRepliesRequest: get_replies}
