"""Comments of a channel's posts, read from Telegram: ``messages.getReplies`` on the channel's post.

A channel with a linked discussion group carries, on each post, ``replies`` (``messageReplies`` with
``comments`` set, the group's id as ``channel_id`` and the newest comment's id as ``max_id``); the
comments themselves are messages of the group, which ``messages.getReplies(peer=channel,
msg_id=post)`` lists. :meth:`TelegramComments.batches` reads a post's comments above a cursor,
oldest first, one page (:data:`PAGE_SIZE`) per request (a raw request rather than Telethon's
``iter_messages(reply_to=...)``, which asks once more after every short page; the senders' entities
are attached with Telethon's ``Message._finish_init``, as its iterator does); :meth:`TelegramComments.recent_posts`
reads a channel's newest posts again to learn their current comment counts (posts read on earlier
passes have grown comments since).

Every request goes through :class:`~tobs_sync.sources.telegram_requests.Requests` (deadline,
retries, flood waits: a wait longer than ``telegram.flood_max_wait_s`` raises
:class:`~tobs_sync.errors.ChatDeferred`); Telegram's refusals are errors naming the post:
``MSG_ID_INVALID`` (a post without a thread) a :class:`~tobs_sync.errors.SourceError` for that post,
``CHANNEL_PRIVATE`` (a discussion group the account cannot read) a
:class:`~tobs_sync.errors.ChatDeferred`, since no other post's comments can be read either. Limits: a page shorter than
:data:`PAGE_SIZE` ends the read (a thread that returns short pages is finished on the next pass,
since the post's newest comment id is still above the cursor); the files of comments are not
downloaded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from telethon import errors, functions, types, utils

from tobs_sync.errors import ChatDeferred, SourceError
from tobs_sync.model import Chat, Message
from tobs_sync.sources.telegram_convert import message_from_tl
from tobs_sync.sources.telegram_requests import Requests, describe

PAGE_SIZE = 100
"""Comments asked for per ``messages.getReplies`` request (Telegram's maximum)."""
REFUSALS = (
    (errors.MsgIdInvalidError, "MSG_ID_INVALID: the post has no comments thread"),
    (errors.ChannelPrivateError, "CHANNEL_PRIVATE: the discussion group is private, or the account was banned from it"),
)
"""What Telegram's refusals of ``messages.getReplies`` mean for a post's comments."""
MAX_RECENT_POSTS = 1000
"""The most posts :meth:`TelegramComments.recent_posts` reads again."""


class TelegramComments:
    """Reads comments through a Telethon client (the source's :class:`Requests` and input peers)."""

    def __init__(self, client: Any, requests: Requests, peer_of: Callable[[int], Awaitable[Any]]) -> None:
        self._client = client
        self._requests = requests
        self._peer_of = peer_of

    async def batches(self, chat: Chat, post_id: int, after: int) -> AsyncIterator[list[Message]]:
        """The comments of ``chat``'s post ``post_id`` with ids above ``after``, oldest first, a page
        at a time (messages of the discussion group, ``chat_id`` the group's marked id)."""
        peer = await self._peer_of(chat.id)
        cursor = after
        what = f"chat {chat.title!r}: reading the comments of post {post_id}"
        while True:
            request = functions.messages.GetRepliesRequest(  # the PAGE_SIZE oldest comments above the cursor
                peer=peer, msg_id=post_id, offset_id=cursor + 1, offset_date=None, add_offset=-PAGE_SIZE,
                limit=PAGE_SIZE, max_id=0, min_id=cursor, hash=0,
            )
            answer = await self._request(request, what, chat)
            received = getattr(answer, "messages", None) or []
            page = sorted((tl for tl in received if tl.id > cursor), key=lambda tl: tl.id)
            entities = {utils.get_peer_id(e): e for e in [*getattr(answer, "users", ()), *getattr(answer, "chats", ())]}
            comments = []
            for tl in page:
                if not isinstance(tl, types.Message):  # a service message in the thread is no comment
                    continue
                tl._finish_init(self._client, entities, None)  # senders' names, as iter_messages attaches them
                if (comment := message_from_tl(tl, utils.get_peer_id(tl.peer_id))) is not None:
                    comments.append(comment)
            if comments:
                yield comments
            if not page or len(received) < PAGE_SIZE:
                return
            cursor = page[-1].id

    async def _request(self, request: Any, what: str, chat: Chat) -> Any:
        """``request`` through :class:`Requests`; a refusal names Telegram's error and what it means here."""
        try:
            return await self._requests.with_retries(lambda: self._client(request), what, chat=chat)
        except SourceError as error:
            cause = error.__cause__
            if isinstance(error, ChatDeferred) or not isinstance(cause, errors.RPCError):
                raise
            meaning = next((text for kind, text in REFUSALS if isinstance(cause, kind)), describe(cause))
            if isinstance(cause, errors.ChannelPrivateError):  # no other post's comments can be read either
                raise ChatDeferred(f"{what}: Telegram refused it ({meaning})") from cause
            raise SourceError(f"{what}: Telegram refused it ({meaning})") from cause

    async def recent_posts(self, chat: Chat, last: int) -> list[Message]:
        """``chat``'s newest ``last`` posts (at most :data:`MAX_RECENT_POSTS`) as they are now, for
        their comment counts; newest first."""
        peer = await self._peer_of(chat.id)
        limit = max(0, min(last, MAX_RECENT_POSTS))
        if not limit:
            return []
        page = await self._requests.with_retries(
            lambda: self._client.get_messages(peer, limit=limit),
            f"chat {chat.title!r}: reading its newest posts again for their comments", chat=chat,
        )
        return [m for tl in page if (m := message_from_tl(tl, chat.id)) is not None]
