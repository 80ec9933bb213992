"""The Telethon source: a user's chats, read incrementally from Telegram itself.

The only module that drives ``telethon.TelegramClient`` (conversion of TL objects lives in
:mod:`tobs_sync.sources.telegram_convert`). It takes a client object, so production passes a
real client and tests pass the simulator's (a real client whose network senders are fakes):
the code here is the code users run.

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
  in (:func:`log_in`) are :class:`SourceError` naming the step, never a traceback; a start that
  fails disconnects the client.

Limits: live updates are not handled here yet; chats are listed from the dialogs once per pass.
The client must be created with ``raise_last_call_error=True`` (otherwise Telethon turns a
request's last error into a bare ``ValueError``); :func:`tobs_sync.app.open_client` does so.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fnmatch
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

from telethon import TelegramClient, errors, functions, types, utils
from telethon.extensions import BinaryReader

from tobs_sync.config import TelegramSettings
from tobs_sync.errors import ChatDeferred, FloodWait, MediaChanged, MediaUnavailable, SourceError
from tobs_sync.model import MIGRATED_ID_SHIFT, Chat, ChatKind, MediaRef, Message
from tobs_sync.session import LoginPrompts, private_umask
from tobs_sync.sources.base import DEFAULT_BATCH_SIZE
from tobs_sync.sources.telegram_convert import chat_from_entity, message_from_tl, parse_locator, tl_media_for_slot
from tobs_sync.sources.telegram_errors import (
    FLOOD_ERRORS,
    TRANSIENT_ERRORS,
    CdnRedirect,
    needs_fresh_reference,
    same_file,
)
from tobs_sync.sources.telegram_migrated import as_supergroup_message, old_group
from tobs_sync.sources.telegram_topics import TopicTitles

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_ATTEMPTS = 5
"""Tries of one request or one download before it is given up for this pass."""
LOGIN_ATTEMPTS = 3
"""Times the login code, and then the 2FA password, are asked before logging in gives up."""
RECENT_MESSAGES = 2000
"""TL messages kept for their media (file references) after a batch is yielded."""
MIN_PART, MAX_PART = 4096, 512 * 1024

class PeerCache(Protocol):
    """Where input peers outlive a pass (the store): TL bytes by chat id and username."""

    def remember_peer(self, chat: Chat, peer: bytes) -> None: ...

    def known_peer(self, rule: int | str) -> tuple[Chat, bytes] | None: ...


def part_size(file_size: int | None) -> int:
    """Bytes per download request: the smallest power of two holding the file, 4 KiB to 512 KiB.

    Telegram needs limits that divide 1 MiB; small files then take one request, large ones the
    largest allowed part.
    """
    if not file_size or file_size >= MAX_PART:
        return MAX_PART
    size = MIN_PART
    while size < file_size:
        size *= 2
    return size


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """``await awaitable`` with a deadline, raising ``TimeoutError``.

    ``asyncio.timeout`` rather than ``asyncio.wait_for``: on Python 3.11 ``wait_for`` can swallow a
    cancellation that arrives just as the awaited work completes, and a shutdown would then wait forever.
    """
    async with asyncio.timeout(seconds):
        return await awaitable


async def deadline(seconds: float, awaitable: Awaitable[T], what: str) -> T:
    """:func:`within`, with a timeout or a network failure turned into a :class:`SourceError` naming ``what``."""
    try:
        return await within(seconds, awaitable)
    except TimeoutError as error:
        raise SourceError(f"{what}: no answer from Telegram in {seconds:g} s") from error
    except asyncio.IncompleteReadError as error:  # Telethon read a reply that was not Telegram's
        raise SourceError(
            f"{what}: something other than Telegram answered and closed the connection "
            "(a proxy, firewall or captive portal in the way?)"
        ) from error
    except OSError as error:
        raise SourceError(f"{what}: {_describe(error)} (is the network up?)") from error


async def log_in(client: TelegramClient, prompts: LoginPrompts, *, timeout_s: float) -> str:
    """Log ``client`` in, asking through ``prompts`` (a session already logged in asks nothing);
    returns the account's name. Always disconnects; Telegram's refusals become a :class:`SourceError`.

    The code and, for accounts with two-step verification, the password are each asked at most
    :data:`LOGIN_ATTEMPTS` times. An account homed on another data centre is followed there
    (Telethon handles ``PHONE_MIGRATE_X`` and saves the new DC in the session)."""
    try:
        await deadline(timeout_s, client.connect(), "connecting to Telegram")
        if not await deadline(timeout_s, client.is_user_authorized(), "checking the login"):
            phone = _ask_phone(prompts)
            with private_umask():  # Telethon writes the session file as it goes
                try:
                    await client.start(
                        phone=phone, code_callback=prompts.code, password=prompts.password,
                        max_attempts=LOGIN_ATTEMPTS,
                    )
                except RuntimeError as error:  # how Telethon gives up after three wrong codes
                    raise SourceError(f"logging in: {error}") from error
                except errors.PasswordHashInvalidError as error:  # ... and after three wrong passwords
                    raise SourceError(
                        f"logging in: the two-step verification password was wrong {LOGIN_ATTEMPTS} times "
                        "(TOBS_PASSWORD, or the one typed at the prompt)"
                    ) from error
        me = await deadline(timeout_s, client.get_me(), "reading the logged-in account")
    except errors.RPCError as error:
        raise SourceError(f"logging in: Telegram refused it ({_describe(error)})") from error
    finally:
        with contextlib.suppress(Exception):
            await client.disconnect()
    name = " ".join(p for p in (getattr(me, "first_name", None), getattr(me, "last_name", None)) if p)
    return name or "your account"


def _ask_phone(prompts: LoginPrompts, attempts: int = 3) -> str:
    """The phone number, asked until it parses (Telethon itself would ask forever, and a number
    from ``TOBS_PHONE`` would never change). The number is not repeated in the error: it is private."""
    for _ in range(attempts):
        if phone := utils.parse_phone(prompts.phone()):
            return str(phone)
    raise SourceError("logging in: that is not a phone number; give it in international format, e.g. +44 20 7946 0000")


def chat_selected(chat: Chat, include: Sequence[str | int], exclude: Sequence[str | int]) -> bool:
    """Whether the config's ``telegram.chats``/``telegram.exclude`` select ``chat``."""
    return any(_matches(chat, rule) for rule in include) and not any(_matches(chat, rule) for rule in exclude)


_KIND_RULES = {
    "channels": {ChatKind.CHANNEL},
    "groups": {ChatKind.GROUP, ChatKind.SUPERGROUP},
    "users": {ChatKind.USER},
    "bots": {ChatKind.BOT},
    "saved": {ChatKind.SAVED},
}


def _matches(chat: Chat, rule: str | int) -> bool:
    if isinstance(rule, int):
        return chat.id == rule
    if rule == "all":
        return True
    if rule in _KIND_RULES:
        return chat.kind in _KIND_RULES[rule]
    if rule.startswith("@"):
        return chat.username is not None and chat.username.casefold() == rule[1:].casefold()
    if rule.startswith("title:"):
        return fnmatch.fnmatchcase(chat.title.casefold(), rule[6:].casefold())
    return False


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
        self._retry_delay = retry_delay
        self._peers: dict[int, Any] = {}
        self._recent: OrderedDict[tuple[int, int], Any] = OrderedDict()
        self._takeout: Any = None
        self._takeout_client: Any = None
        self._flood_logged: set[tuple[str, int]] = set()
        self._per_dc_download_floods = per_dc_download_floods
        self._peer_cache = peers
        self._sleep = sleep
        self._topics = TopicTitles()

    async def __aenter__(self) -> Self:
        try:
            if not self._client.is_connected():
                await self._deadline(self._client.connect(), "connecting to Telegram")
            self._client.flood_sleep_threshold = 0
            if not await self._deadline(self._client.is_user_authorized(), "checking the login"):
                raise SourceError("not logged in to Telegram; run 'tobs-sync login --vault VAULT' first")
            await self._end_stale_takeout()
        except BaseException:
            # ``async with`` skips __aexit__ when __aenter__ fails: close here, or Telethon's update
            # loop would keep running after the error.
            with contextlib.suppress(Exception):
                await self._client.disconnect()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._takeout is not None:
            try:
                await self._takeout.__aexit__(exc_type, exc, tb)
            except (errors.RPCError, ValueError, *TRANSIENT_ERRORS) as error:  # finishing is a courtesy
                log.warning("could not finish the takeout session: %s", _describe(error))
            self._drop_takeout()
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
            yield chat
        for rule in self._settings.chats:
            named = isinstance(rule, str) and rule.startswith("@") and rule.casefold() not in usernames
            if named or (isinstance(rule, int) and rule not in seen):
                chat = await self._named_chat(rule)
                if chat is not None and chat.id not in seen and chat_selected(chat, [rule], self._settings.exclude):
                    seen.add(chat.id)
                    yield chat

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
                await self._wait_out(flood)
                continue
            except TRANSIENT_ERRORS as error:
                attempts += 1
                if attempts >= MAX_ATTEMPTS:
                    raise SourceError(f"{what}: failed {attempts} times ({_describe(error)})") from error
                await self._sleep(self._retry_delay * 2 ** (attempts - 1))
                continue
            except errors.RPCError as error:
                raise SourceError(f"{what}: Telegram refused it ({_describe(error)})") from error
            attempts = 0

    async def _named_chat(self, rule: str | int) -> Chat | None:
        """A chat named by id or @username: remembered from an earlier pass, else resolved once."""
        if self._peer_cache is not None and (known := self._peer_cache.known_peer(rule)) is not None:
            chat, raw = known
            self._peers[chat.id] = BinaryReader(raw).tgread_object()
            return chat
        try:
            entity = await self._deadline(self._client.get_entity(rule), f"resolving {rule}")
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
        peer = self._peers.get(chat.id) or await self._input_peer(chat.id)
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
            newer = await self._with_retries(
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
            newer = await self._with_retries(  # as in batches(): a silent early stop must not lose the rest
                lambda cursor=cursor: self._client.get_messages(old_peer, limit=1, min_id=cursor, reverse=True),
                f"checking for older messages of {chat.title!r}", chat=chat,
            )
            if not [m for m in newer if m.id > cursor]:
                return

    def _caller(self, chat: Chat) -> Callable[[Any, str], Awaitable[Any]]:
        """``call(request, what)``: one request for ``chat`` with deadlines, retries and flood waits."""
        return lambda request, what: self._with_retries(lambda: self._client(request), what, chat=chat)

    async def _read_history(self, peer: Any, chat: Chat, after: int) -> AsyncIterator[list[Message]]:
        cursor, attempts = after, 0
        batch: list[Message] = []
        while True:
            reader = await self._history_client(after)
            iterator = reader.iter_messages(peer, min_id=cursor, reverse=True, wait_time=0).__aiter__()
            try:
                while True:
                    try:
                        tl_message = await within(self._settings.request_timeout_s, iterator.__anext__())
                    except StopAsyncIteration:
                        if batch:
                            yield batch
                        return
                    attempts = 0
                    if tl_message.id <= cursor:
                        continue
                    cursor = tl_message.id
                    self._remember_message(chat.id, tl_message)
                    message = message_from_tl(tl_message, chat.id, forum=chat.forum)
                    if message is not None:
                        batch.append(message)
                    if len(batch) >= self._batch_size:
                        yield batch
                        batch = []
            except FLOOD_ERRORS as flood:
                await self._flood_sleep(flood, chat)
            except (errors.TakeoutInvalidError, errors.TakeoutRequiredError) as error:
                if reader is self._client:
                    raise SourceError(f"chat {chat.title!r}: {_describe(error)}") from error
                log.warning("Telegram ended the takeout session (%s): another data export, e.g. Telegram "
                            "Desktop's, replaces it; reading history normally from here on", _describe(error))
                self._drop_takeout()
                self._settings = _without_takeout(self._settings)
            except TRANSIENT_ERRORS as error:
                attempts += 1
                if attempts >= MAX_ATTEMPTS:
                    raise ChatDeferred(
                        f"chat {chat.title!r}: history request failed {attempts} times ({_describe(error)}); "
                        "deferred to the next pass"
                    ) from error
                await self._sleep(self._retry_delay * 2 ** (attempts - 1))
            except errors.RPCError as error:
                raise SourceError(
                    f"chat {chat.title!r}: Telegram refused to read its history ({_describe(error)})"
                ) from error
            if batch:  # keep what was read before the interruption; the re-read starts after it
                yield batch
                batch = []

    async def _history_client(self, after: int) -> Any:
        """The takeout client for a first backfill when enabled, else the normal client."""
        if not self._settings.takeout or after != 0:
            return self._client
        if self._takeout_client is None:
            takeout = self._client.takeout(finalize=True, contacts=False, users=True, chats=True,
                                           megagroups=True, channels=True, files=False)
            try:
                self._takeout_client = await self._deadline(takeout.__aenter__(), "starting a takeout session")
                self._takeout = takeout
            except errors.TakeoutInitDelayError as error:
                log.warning("Telegram allows the takeout session (data export) only after it is confirmed in "
                            "another Telegram app, and then in %s s; reading history normally", error.seconds)
                self._settings = _without_takeout(self._settings)
                return self._client
            except (errors.RPCError, ValueError, SourceError) as error:
                log.warning("could not start a takeout session (%s); reading history normally", _describe(error))
                self._clear_takeout_id()
                self._settings = _without_takeout(self._settings)
                return self._client
        return self._takeout_client

    async def _end_stale_takeout(self) -> None:
        """Finish a takeout an earlier run left in the session (it was killed mid-backfill, and
        Telethon saves the session as it goes), else Telethon refuses every new takeout with a
        ``ValueError``. Telegram may have ended it already (``TAKEOUT_INVALID``): then it is cleared."""
        if getattr(self._client.session, "takeout_id", None) is None:
            return
        try:
            await self._deadline(self._client.end_takeout(success=False), "finishing an earlier takeout session")
            log.info("finished a takeout session left open by an earlier run")
        except (errors.RPCError, SourceError) as error:
            log.info("cleared a takeout session left by an earlier run (%s)", _describe(error))
        self._clear_takeout_id()

    def _drop_takeout(self) -> None:
        self._takeout = self._takeout_client = None
        self._clear_takeout_id()

    def _clear_takeout_id(self) -> None:
        """Forget the session's takeout id (saved, so the next run does not inherit it)."""
        session = self._client.session
        if getattr(session, "takeout_id", None) is not None:
            session.takeout_id = None
            with contextlib.suppress(Exception):
                session.save()

    async def _flood_sleep(self, flood: errors.RPCError, chat: Chat) -> None:
        seconds = getattr(flood, "seconds", 0)
        if seconds > self._settings.flood_max_wait_s:
            raise ChatDeferred(
                f"chat {chat.title!r}: Telegram asks to wait {seconds:g} s (more than telegram.flood_max_wait_s = "
                f"{self._settings.flood_max_wait_s:g}); deferred to the next pass"
            )
        key = ("history", chat.id)
        if key not in self._flood_logged:
            self._flood_logged.add(key)
            log.warning("chat %r: Telegram asks to wait %g s; waiting", chat.title, seconds)
        await self._wait_out(flood)

    async def _wait_out(self, flood: errors.RPCError) -> None:
        """Sleep through a flood wait, then drop Telethon's note of it: the wait is over, and Telethon
        would otherwise refuse the repeated request itself until its own clock says so."""
        await self._sleep(getattr(flood, "seconds", 0))
        self._forget_flood(getattr(flood.request, "CONSTRUCTOR_ID", None))

    async def _input_peer(self, chat_id: int) -> Any:
        if self._peer_cache is not None and (known := self._peer_cache.known_peer(chat_id)) is not None:
            peer = self._peers[chat_id] = BinaryReader(known[1]).tgread_object()
            return peer
        try:
            peer = await self._deadline(self._client.get_input_entity(chat_id), f"resolving chat {chat_id}")
        except (ValueError, errors.RPCError) as error:
            raise SourceError(f"chat {chat_id}: cannot address it ({_describe(error)})") from error
        self._peers[chat_id] = peer
        return peer

    def _remember_message(self, chat_id: int, tl_message: Any) -> None:
        self._recent[(chat_id, tl_message.id)] = tl_message
        while len(self._recent) > RECENT_MESSAGES:
            self._recent.popitem(last=False)

    # -- media ------------------------------------------------------------------------------

    async def media_chunks(self, media: MediaRef, offset: int = 0) -> AsyncIterator[bytes]:
        """The file's bytes from ``offset``, chunk by chunk; resumes after stalls and stale references.

        A flood wait surfaces as :class:`FloodWait` (the caller pauses the DC); calling again with
        the number of bytes received so far continues where it stopped. :class:`MediaChanged` means
        the message now carries another file: drop what was received and call again from 0.
        """
        if media.locator is None:
            raise MediaUnavailable(media.unavailable or "no file")
        try:
            chat_id, message_id, slot = parse_locator(media.locator)
        except ValueError as error:
            raise MediaUnavailable(f"not a Telegram media reference: {media.locator!r}") from error
        file = await self._tl_file(chat_id, message_id, slot, refresh=False)
        self._check_resumable(media, file, offset)
        request_size = part_size(media.size)
        attempts = 0
        while True:
            iterator = self._client.iter_download(file, offset=offset, request_size=request_size, file_size=media.size)
            try:
                while True:
                    try:
                        chunk = await within(self._settings.stall_timeout_s, iterator.__anext__())
                    except StopAsyncIteration:
                        return
                    offset += len(chunk)
                    attempts = 0
                    yield chunk
            except FLOOD_ERRORS as flood:
                if self._per_dc_download_floods:
                    self._forget_download_flood()
                raise FloodWait(flood.seconds, f"downloading from DC {media.dc_id}") from flood
            except TRANSIENT_ERRORS as error:
                attempts += 1
                self._check_attempts(attempts, media, f"the connection stalled ({_describe(error)})")
                log.info("download of %s stalled at %d bytes (%s); retrying", media.file_key, offset, _describe(error))
                await self._sleep(self._retry_delay * 2 ** (attempts - 1))
            except errors.RPCError as error:
                if not needs_fresh_reference(error):
                    raise MediaUnavailable(f"Telegram refused the file ({_describe(error)})") from error
                attempts += 1
                self._check_attempts(attempts, media, f"its file reference keeps failing ({_describe(error)})")
                file = await self._tl_file(chat_id, message_id, slot, refresh=True)
                self._check_resumable(media, file, offset)
            except CdnRedirect as redirect:
                dc_id = getattr(redirect.cdn_redirect, "dc_id", "?")
                raise SourceError(
                    f"Telegram serves {media.file_key or media.locator} from its CDN (DC {dc_id}), which Telethon "
                    "cannot download from; tried again on the next pass"
                ) from None
            finally:
                await iterator.close()

    def _forget_download_flood(self) -> None:
        """Keep a download flood wait to its own data centre.

        Telethon remembers a flood wait per request *type* and then refuses that type on every
        connection until it ends, so a wait on one DC's ``GetFile`` would stop downloads from all
        DCs. The DC scheduler already pauses the DC that asked; this drops Telethon's global note
        (``TelegramClient._flood_waited_requests``, a private attribute covered by a contract test).
        """
        self._forget_flood(functions.upload.GetFileRequest.CONSTRUCTOR_ID)

    def _forget_flood(self, constructor_id: int | None) -> None:
        waited = getattr(self._client, "_flood_waited_requests", None)
        if isinstance(waited, dict) and constructor_id is not None:
            waited.pop(constructor_id, None)

    @staticmethod
    def _check_resumable(media: MediaRef, file: Any, offset: int) -> None:
        """Resuming at ``offset`` is only right for the very file the first bytes came from; from 0,
        whatever file the message carries now is simply downloaded whole."""
        if offset and not same_file(media, file):
            kind = "photo" if isinstance(file, types.Photo) else "document"
            raise MediaChanged(
                f"{media.file_key or media.locator}: the message now carries another file ({kind}:{file.id}, "
                f"{getattr(file, 'size', '?')} bytes); the {offset} bytes received are dropped and it starts over"
            )

    def _check_attempts(self, attempts: int, media: MediaRef, why: str) -> None:
        if attempts >= MAX_ATTEMPTS:
            raise SourceError(f"giving up on {media.file_key or media.locator} for this pass: {why}")

    async def _tl_file(self, chat_id: int, message_id: int, slot: int, *, refresh: bool) -> Any:
        tl_message = None if refresh else self._recent.get((chat_id, message_id))
        if tl_message is None:
            peer = self._peers.get(chat_id) or await self._input_peer(chat_id)
            fetched = await self._with_retries(
                lambda: self._client.get_messages(peer, ids=message_id),
                f"fetching message {message_id} of chat {chat_id} for its media",
            )
            if fetched is None:
                raise MediaUnavailable("the message was deleted")
            tl_message = fetched
            self._remember_message(chat_id, tl_message)
        file = tl_media_for_slot(tl_message, slot)
        if file is None:
            raise MediaUnavailable("the message no longer has this file")
        return file

    # -- deadlines and retries --------------------------------------------------------------

    async def _deadline(self, awaitable: Awaitable[T], what: str) -> T:
        return await deadline(self._settings.request_timeout_s, awaitable, what)

    async def _with_retries(self, call: Callable[[], Awaitable[T]], what: str, chat: Chat | None = None) -> T:
        attempts = 0
        while True:
            try:
                return await within(self._settings.request_timeout_s, call())
            except FLOOD_ERRORS as flood:
                if chat is None:
                    if flood.seconds > self._settings.flood_max_wait_s:
                        raise SourceError(f"{what}: Telegram asks to wait {flood.seconds} s") from flood
                    await self._wait_out(flood)
                else:
                    await self._flood_sleep(flood, chat)
            except TRANSIENT_ERRORS as error:
                attempts += 1
                if attempts >= MAX_ATTEMPTS:
                    error_type = ChatDeferred if chat is not None else SourceError
                    raise error_type(f"{what}: failed {attempts} times ({_describe(error)})") from error
                await self._sleep(self._retry_delay * 2 ** (attempts - 1))
            except errors.RPCError as error:
                raise SourceError(f"{what}: Telegram refused it ({_describe(error)})") from error


def _describe(error: BaseException) -> str:
    return str(error) or type(error).__name__


def _without_takeout(settings: TelegramSettings) -> TelegramSettings:
    return dataclasses.replace(settings, takeout=False)
