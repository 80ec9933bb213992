"""The Telethon source: a user's chats, read incrementally from Telegram itself.

The module that lists a user's chats and reads their history through ``telethon.TelegramClient``;
it composes the other ``telegram_*`` modules: conversion of TL objects
(:mod:`~tobs_sync.sources.telegram_convert`), deadlines, retries and flood waits
(:mod:`~tobs_sync.sources.telegram_requests`), the takeout session
(:mod:`~tobs_sync.sources.telegram_takeout`), downloads (:mod:`~tobs_sync.sources.telegram_downloads`)
and logging in (:mod:`~tobs_sync.sources.telegram_login`). It takes a client object, so production
passes a real client and tests pass the simulator's (a real client whose network senders are
fakes): the code here is the code users run.

What it guarantees:

* History is read with ``iter_messages(min_id=cursor, reverse=True)``; Telethon stops silently
  when ids repeat or go backwards, so the end of every chat is confirmed by one more ``min_id``
  query, and reading resumes from the last id seen if more is there.
* Every request and every media chunk has a deadline (``request_timeout_s``,
  ``stall_timeout_s``): Telethon's own timeout covers connecting only, and connections to other
  data centres get no keepalive, so a half-open socket would otherwise hang forever. A timed-out
  read is retried with backoff from where it stopped; downloads resume from their offset.
* Flood waits: the client's automatic sleeping is turned off (``flood_sleep_threshold = 0``) so
  each wait is handled by the work that hit it: history waits up to ``flood_max_wait_s`` (logged
  once), longer waits defer the chat to the next pass (:class:`ChatDeferred`); download waits,
  ``FLOOD_WAIT_X`` and a non-Premium account's ``FLOOD_PREMIUM_WAIT_X`` alike, surface as
  :class:`FloodWait`, which pauses only that data centre's queue. The dialog list is read page by
  page, each request with its own deadline; a flood wait resumes it at the page that was refused.
* Any ``FILE_REFERENCE_*`` error (expired, invalid, empty) is answered by fetching the message
  again for a fresh reference. The download resumes where it stopped only if the message still
  carries the same file (id and size); otherwise it raises :class:`MediaChanged` so that the bytes
  received so far are dropped and the file starts over.
* A per-chat or per-file refusal (a channel turned private, a message deleted, a file redirected
  to Telegram's CDN, which Telethon cannot download from) fails that chat or file with a reason
  (:class:`SourceError`, :class:`MediaUnavailable`); the pass goes on.
* With ``takeout`` on, a chat's first backfill runs in a takeout session (its lower flood
  limits); downloads never do (Telethon does not wrap them). A takeout left open in the session
  by an earlier run (killed mid-backfill, or ended by Telegram) is finished or cleared on start;
  ``TAKEOUT_INIT_DELAY_X`` and ``TAKEOUT_INVALID`` (another export, e.g. Telegram Desktop's,
  replaced it) fall back to reading history normally, with a warning that says why.
* A supergroup read from below zero first reads the basic group it was upgraded from, its ids
  shifted below zero (:mod:`~tobs_sync.sources.telegram_migrated`); forum messages get their topic's
  title (:mod:`~tobs_sync.sources.telegram_topics`).
* No network, a proxy or captive portal answering instead of Telegram, and refusals while logging
  in (:func:`~tobs_sync.sources.telegram_login.log_in`) are :class:`SourceError` naming the step,
  never a traceback; a start that fails disconnects the client.

* Live changes (:meth:`TelegramSource.live_changes`): new, edited and deleted messages of the chats
  listed in the session, from Telethon's update loop (:mod:`~tobs_sync.sources.telegram_live`);
  :meth:`TelegramSource.recent_messages` re-reads a chat's newest messages for reconciliation.

Limits: chats are listed from the dialogs once per pass.
The client must be created with ``raise_last_call_error=True`` (otherwise Telethon turns a
request's last error into a bare ``ValueError``); :func:`tobs_sync.app.open_client` does so.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self

from telethon import TelegramClient, errors, functions, utils
from telethon.extensions import BinaryReader

from tobs_sync.chat_rules import chat_selected
from tobs_sync.config import TelegramSettings
from tobs_sync.errors import ChatDeferred, SourceError
from tobs_sync.model import MIGRATED_ID_SHIFT, Chat, ChatKind, MediaRef, Message
from tobs_sync.sources.base import ALBUM_MAX, DEFAULT_BATCH_SIZE, LiveChange, start_before_album
from tobs_sync.sources.telegram_comments import TelegramComments
from tobs_sync.sources.telegram_convert import chat_from_entity, message_from_tl
from tobs_sync.sources.telegram_downloads import Downloads
from tobs_sync.sources.telegram_errors import FLOOD_ERRORS, TRANSIENT_ERRORS
from tobs_sync.sources.telegram_live import LiveUpdates, recent_window
from tobs_sync.sources.telegram_migrated import as_supergroup_message, old_group
from tobs_sync.sources.telegram_readahead import ReadAhead
from tobs_sync.sources.telegram_requests import MAX_ATTEMPTS, Requests, describe, within
from tobs_sync.sources.telegram_takeout import Takeout
from tobs_sync.sources.telegram_topics import TopicTitles
from tobs_sync.store_schema import NO_CURSOR

log = logging.getLogger(__name__)


class PeerCache(Protocol):
    """Where input peers outlive a pass (the store): TL bytes by chat id and username."""

    def remember_peer(self, chat: Chat, peer: bytes) -> None: ...

    def known_peer(self, rule: int | str) -> tuple[Chat, bytes] | None: ...


class TelegramSource:
    """A :class:`~tobs_sync.sources.base.Source` over a Telethon client."""

    name = "telegram"

    def __init__(
        self,
        client: TelegramClient,
        settings: TelegramSettings,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        retry_delay: float = 1.0,
        per_dc_download_floods: bool = True,
        peers: PeerCache | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``per_dc_download_floods=False`` keeps Telethon's own behaviour (a download flood wait on one
        DC blocks downloads on every DC); only the benchmark's naive baseline turns it off. ``sleep``
        waits out flood waits and retry pauses (a fake clock in tests)."""
        self._client = client
        self._settings = settings
        self._batch_size = batch_size
        self._peers: dict[int, Any] = {}
        self._peer_cache = peers
        self._newest: dict[int, int] = {}
        """The newest message id of each chat in the dialog list (for progress estimates)."""
        self._topics = TopicTitles()
        self._requests = Requests(client, settings, retry_delay=retry_delay, sleep=sleep)
        self._takeout = Takeout(client, self._requests, enabled=settings.takeout)
        self._downloads = Downloads(client, settings, self._requests, input_peer=self._peer,
                                    per_dc_floods=per_dc_download_floods)
        self._live = LiveUpdates(client, self._converted)
        self._comments = TelegramComments(client, self._requests, self._peer)

    async def __aenter__(self) -> Self:
        try:
            if not self._client.is_connected():
                await self._requests.deadline(self._client.connect(), "connecting to Telegram")
            self._client.flood_sleep_threshold = 0
            if not await self._requests.deadline(self._client.is_user_authorized(), "checking the login"):
                raise SourceError("not logged in to Telegram; run 'tobs-sync login --vault VAULT' first")
            await self._takeout.end_stale()
            self._live.start()
        except BaseException:
            self._live.stop()
            # ``async with`` skips __aexit__ when __aenter__ fails: close here, or Telethon's update
            # loop would keep running after the error.
            with contextlib.suppress(Exception):
                await self._client.disconnect()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._live.stop()
        await self._takeout.finish(exc_type, exc, tb)
        await self._client.disconnect()

    # -- chats ------------------------------------------------------------------------------

    async def chats(self) -> AsyncIterator[Chat]:
        """The selected chats: from the dialog list (one listing per pass), or, when the config names
        every chat by id or @username, from the peers remembered by earlier passes (no listing, no
        username resolution)."""
        include = self._settings.chats
        if include and all(isinstance(r, int) or r.startswith("@") for r in include):
            for rule in include:
                chat = await self._named_chat(rule)
                if chat is not None and chat_selected(chat, [rule], self._settings.exclude):
                    self._live.select(chat)
                    yield chat
            return
        seen: set[int] = set()
        usernames: set[str] = set()
        for dialog in await self._dialogs():
            chat = chat_from_entity(dialog.entity)
            if chat.id in seen or not chat_selected(chat, self._settings.chats, self._settings.exclude):
                continue
            seen.add(chat.id)
            if chat.username:
                usernames.add(f"@{chat.username.casefold()}")
            self._peers[chat.id] = utils.get_input_peer(dialog.entity)
            self._remember_peer(chat, self._peers[chat.id])
            self._live.select(chat)
            if dialog.message is not None:
                self._newest[chat.id] = dialog.message.id
            yield chat
        for rule in self._settings.chats:
            named = isinstance(rule, str) and rule.startswith("@") and rule.casefold() not in usernames
            if named or (isinstance(rule, int) and rule not in seen):
                chat = await self._named_chat(rule)
                if chat is not None and chat.id not in seen and chat_selected(chat, [rule], self._settings.exclude):
                    seen.add(chat.id)
                    self._live.select(chat)
                    yield chat

    def newest_message_id(self, chat: Chat) -> int | None:
        """The id of the chat's newest message when the dialog list was read (None: not listed)."""
        return self._newest.get(chat.id)

    async def dialog_chats(self) -> list[tuple[Chat, int | None]]:
        """Every chat of the dialog list, selected or not, with its newest message id (None: no message)."""
        seen: set[int] = set()
        found = []
        for dialog in await self._dialogs():
            chat = chat_from_entity(dialog.entity)
            if chat.id not in seen:
                seen.add(chat.id)
                found.append((chat, getattr(getattr(dialog, "dialog", None), "top_message", None) or None))
        return found

    async def _dialogs(self) -> list[Any]:
        """Every dialog, page by page: each request has its own deadline, and a flood wait or a
        timeout repeats only the page that failed (Telethon's iterator keeps its offsets when a
        request raises, so the same iterator resumes where it stopped)."""
        what = "listing chats"
        iterator = self._client.iter_dialogs(limit=None).__aiter__()
        dialogs: list[Any] = []
        attempts = 0
        while True:
            try:
                dialogs.append(await within(self._settings.request_timeout_s, iterator.__anext__()))
            except StopAsyncIteration:
                return dialogs
            except FLOOD_ERRORS as flood:
                if flood.seconds > self._settings.flood_max_wait_s:
                    raise SourceError(f"{what}: Telegram asks to wait {flood.seconds} s (more than "
                                      f"telegram.flood_max_wait_s = {self._settings.flood_max_wait_s:g})") from flood
                log.warning("%s: Telegram asks to wait %s s; waiting, then going on from chat %d",
                            what, flood.seconds, len(dialogs) + 1)
                await self._requests.wait_out(flood)
                continue
            except TRANSIENT_ERRORS as error:
                attempts += 1
                if attempts >= MAX_ATTEMPTS:
                    raise SourceError(f"{what}: failed {attempts} times ({describe(error)})") from error
                await self._requests.back_off(attempts)
                continue
            except errors.RPCError as error:
                raise SourceError(f"{what}: Telegram refused it ({describe(error)})") from error
            attempts = 0

    async def _named_chat(self, rule: str | int) -> Chat | None:
        """A chat named by id or @username: remembered from an earlier pass, else resolved once."""
        if self._peer_cache is not None and (known := self._peer_cache.known_peer(rule)) is not None:
            chat, raw = known
            self._peers[chat.id] = BinaryReader(raw).tgread_object()
            return chat
        try:
            entity = await self._requests.deadline(self._client.get_entity(rule), f"resolving {rule}")
        except (ValueError, errors.RPCError) as error:
            log.warning("telegram.chats: cannot find %s: %s", rule, error)
            return None
        chat = chat_from_entity(entity)
        self._peers[chat.id] = utils.get_input_peer(entity)
        self._remember_peer(chat, self._peers[chat.id])
        return chat

    def _remember_peer(self, chat: Chat, peer: Any) -> None:
        if self._peer_cache is not None:
            self._peer_cache.remember_peer(chat, bytes(peer))

    # -- history ----------------------------------------------------------------------------

    async def batches(self, chat: Chat, after: int) -> AsyncIterator[Sequence[Message]]:
        peer = await self._peer(chat.id)
        if after < 0 and chat.kind == ChatKind.SUPERGROUP:  # ids below zero: history from before an upgrade
            async for batch in self._old_group_history(chat, peer, after):
                yield batch
        after = max(after, 0)  # live ids start at 1: a cursor below zero means "from the start" (min_id=0)
        cursor = after
        call = self._caller(chat)
        while True:
            async for batch in self._read_history(peer, chat, cursor):
                cursor = batch[-1].id
                yield await self._topics.titled(chat, peer, batch, call)
            # Telethon ends a pass silently on repeated or out-of-order ids: confirm the end.
            newer = await self._requests.with_retries(
                lambda cursor=cursor: self._client.get_messages(peer, limit=1, min_id=cursor, reverse=True),
                f"checking for newer messages in {chat.title!r}", chat=chat,
            )
            if not [m for m in newer if m.id > cursor]:
                return
            log.info("chat %r: history read ended early at id %s; reading on", chat.title, cursor)

    async def _old_group_history(self, chat: Chat, peer: Any, after: int) -> AsyncIterator[list[Message]]:
        """The history of the basic group ``chat`` was upgraded from, above ``after``, as the supergroup's
        messages (ids shifted below zero, as Telegram Desktop exports them)."""
        request = functions.channels.GetFullChannelRequest(utils.get_input_channel(peer))
        try:
            full = await self._caller(chat)(request, f"reading the details of {chat.title!r}")
        except errors.RPCError as error:
            raise SourceError(f"chat {chat.title!r}: Telegram refused its details: {error}") from error
        if (found := old_group(full)) is None:
            return
        old_id, old_peer = found
        self._peers[old_id] = old_peer
        old_chat = dataclasses.replace(chat, id=old_id, kind=ChatKind.GROUP, forum=False, username=None)
        cursor = max(after + MIGRATED_ID_SHIFT, 0)
        while True:
            async for batch in self._read_history(old_peer, old_chat, cursor):
                cursor = batch[-1].id
                yield [as_supergroup_message(message, chat.id) for message in batch]
            newer = await self._requests.with_retries(  # as in batches(): a silent early stop must not lose the rest
                lambda cursor=cursor: self._client.get_messages(old_peer, limit=1, min_id=cursor, reverse=True),
                f"checking for older messages of {chat.title!r}", chat=chat,
            )
            if not [m for m in newer if m.id > cursor]:
                return

    async def history_start(self, chat: Chat, *, since: dt.datetime | None, last: int | None) -> int:
        """Where a bounded first backfill of ``chat`` starts (:class:`~tobs_sync.sources.base.BoundsHistory`):
        just before its ``last`` newest messages (``add_offset``, one request; an album the count would
        cut is taken whole) and at its newest message sent before ``since`` (``offset_date``, one
        request); the later of the two. Limit: the history of the basic group a supergroup was upgraded
        from is not counted; when the bounds reach past the supergroup's first message, the old group's
        history is read whole."""
        peer = await self._peer(chat.id)
        start = NO_CURSOR
        if last:
            newest_first = await self._requests.with_retries(
                lambda: self._client.get_messages(peer, limit=ALBUM_MAX + 1, add_offset=last - 1),
                f"finding the last {last} messages of {chat.title!r}", chat=chat,
            )
            start = max(start, start_before_album(newest_first))
        if since is not None:
            older = await self._requests.with_retries(
                lambda: self._client.get_messages(peer, limit=1, offset_date=since),
                f"finding the messages of {chat.title!r} since {since:%Y-%m-%d %H:%M}", chat=chat,
            )
            if older:
                start = max(start, older[0].id)
        return start

    def _caller(self, chat: Chat) -> Callable[[Any, str], Awaitable[Any]]:
        """``call(request, what)``: one request for ``chat`` with deadlines, retries and flood waits."""
        return lambda request, what: self._requests.with_retries(lambda: self._client(request), what, chat=chat)

    async def _read_history(self, peer: Any, chat: Chat, after: int) -> AsyncIterator[list[Message]]:
        cursor, attempts = after, 0
        batch: list[Message] = []
        while True:
            reader = await self._takeout.history_client(after)
            iterator = ReadAhead(reader.iter_messages(peer, min_id=cursor, reverse=True, wait_time=0))
            try:
                while True:
                    try:  # one deadline per page read, not per message
                        page = await iterator.take(self._settings.request_timeout_s)
                    except StopAsyncIteration:
                        if batch:
                            yield batch
                        return
                    attempts = 0
                    for tl_message in page:
                        if tl_message.id <= cursor:
                            continue
                        cursor = tl_message.id
                        self._downloads.remember(chat.id, tl_message)
                        message = message_from_tl(tl_message, chat.id, forum=chat.forum)
                        if message is not None:
                            batch.append(message)
                        if len(batch) >= self._batch_size:
                            yield batch
                            batch = []
            except FLOOD_ERRORS as flood:
                await self._requests.flood_sleep(flood, chat)
            except (errors.TakeoutInvalidError, errors.TakeoutRequiredError) as error:
                if reader is self._client:
                    raise SourceError(f"chat {chat.title!r}: {describe(error)}") from error
                self._takeout.ended_by_telegram(error)
            except TRANSIENT_ERRORS as error:
                attempts += 1
                if attempts >= MAX_ATTEMPTS:
                    raise ChatDeferred(
                        f"chat {chat.title!r}: history request failed {attempts} times ({describe(error)}); "
                        "deferred to the next pass"
                    ) from error
                await self._requests.back_off(attempts)
            except errors.RPCError as error:
                raise SourceError(
                    f"chat {chat.title!r}: Telegram refused to read its history ({describe(error)})"
                ) from error
            finally:
                await iterator.aclose()
            if batch:  # keep what was read before the interruption; the re-read starts after it
                yield batch
                batch = []

    async def _input_peer(self, chat_id: int) -> Any:
        if self._peer_cache is not None and (known := self._peer_cache.known_peer(chat_id)) is not None:
            peer = self._peers[chat_id] = BinaryReader(known[1]).tgread_object()
            return peer
        try:
            peer = await self._requests.deadline(self._client.get_input_entity(chat_id), f"resolving chat {chat_id}")
        except (ValueError, errors.RPCError) as error:
            raise SourceError(f"chat {chat_id}: cannot address it ({describe(error)})") from error
        self._peers[chat_id] = peer
        return peer

    async def _peer(self, chat_id: int) -> Any:
        """The input peer of a chat listed or resolved in this pass, else resolved now."""
        return self._peers.get(chat_id) or await self._input_peer(chat_id)

    # -- live changes and recent messages ---------------------------------------------------

    def live_changes(self) -> AsyncIterator[LiveChange]:
        """New, edited and deleted messages of the chats listed in this session, until it ends."""
        return self._live.changes()

    async def recent_messages(self, chat: Chat, *, count: int, since: datetime | None) -> Sequence[Message]:
        """The chat's newest messages (at most ``count``, none before ``since``), ascending, converted
        as :meth:`batches` converts them."""
        peer = await self._peer(chat.id)
        found = await recent_window(
            self._client, peer, chat, count=count, since=since,
            call=lambda request, what: self._requests.with_retries(request, what, chat=chat),
        )
        return await self._converted(chat, found)

    async def _converted(self, chat: Chat, tl_messages: list[Any]) -> list[Message]:
        """TL messages of ``chat`` as a history read gives them (files remembered, topic titles set)."""
        messages = []
        for tl_message in tl_messages:
            self._downloads.remember(chat.id, tl_message)
            message = message_from_tl(tl_message, chat.id, forum=chat.forum)
            if message is not None:
                messages.append(message)
        if not messages:
            return []
        return await self._topics.titled(chat, await self._peer(chat.id), messages, self._caller(chat))

    # -- media ------------------------------------------------------------------------------

    def media_chunks(self, media: MediaRef, offset: int = 0) -> AsyncIterator[bytes]:
        """The file's bytes from ``offset``, chunk by chunk (:meth:`Downloads.media_chunks
        <tobs_sync.sources.telegram_downloads.Downloads.media_chunks>`)."""
        return self._downloads.media_chunks(media, offset)

    # -- comments ---------------------------------------------------------------------------

    def comments(self, chat: Chat, post_id: int, after: int) -> AsyncIterator[Sequence[Message]]:
        """A channel post's comments above ``after`` (:mod:`~tobs_sync.sources.telegram_comments`)."""
        return self._comments.batches(chat, post_id, after)

    async def recent_posts(self, chat: Chat, last: int) -> Sequence[Message]:
        """A channel's newest ``last`` posts as they are now (their comment counts)."""
        return await self._comments.recent_posts(chat, last)
