"""Downloading a message's file through Telethon, for the Telethon source.

:class:`Downloads` yields a file's bytes chunk by chunk from any offset. Every chunk has a deadline
(``telegram.stall_timeout_s``); a stalled connection is retried with backoff from the offset it
reached. Any ``FILE_REFERENCE_*`` error is answered by fetching the message again for a fresh
reference, and the download resumes only if the message still carries the same file (id and
size); otherwise :class:`MediaChanged` says to drop the bytes received and start over. A flood wait
(``FLOOD_WAIT_X``, or a non-Premium account's ``FLOOD_PREMIUM_WAIT_X``) surfaces as
:class:`FloodWait`, and Telethon's note of it is dropped so that it pauses only the data centre
that asked. The TL messages of the latest history reads are kept (:data:`RECENT_MESSAGES`) so that
their files download without fetching the message again.

Limits: a file Telegram serves from its CDN cannot be downloaded (Telethon does not follow the
redirect outside ``download_media``); a file whose message was deleted or no longer has it is
:class:`MediaUnavailable`; one download is given up for the pass after ``MAX_ATTEMPTS`` failures.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from telethon import TelegramClient, errors, functions, types

from tobs_sync.config import TelegramSettings
from tobs_sync.errors import FloodWait, MediaChanged, MediaUnavailable, SourceError
from tobs_sync.model import MediaRef
from tobs_sync.sources.telegram_convert import parse_locator, tl_media_for_slot
from tobs_sync.sources.telegram_errors import (
    FLOOD_ERRORS,
    TRANSIENT_ERRORS,
    CdnRedirect,
    needs_fresh_reference,
    same_file,
)
from tobs_sync.sources.telegram_requests import MAX_ATTEMPTS, Requests, describe, within

log = logging.getLogger(__name__)

RECENT_MESSAGES = 2000
"""TL messages kept for their media (file references) after a batch is yielded."""
MIN_PART, MAX_PART = 4096, 512 * 1024


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


class Downloads:
    """A source's downloads: files of the messages it read, by their media locator."""

    def __init__(
        self,
        client: TelegramClient,
        settings: TelegramSettings,
        requests: Requests,
        *,
        input_peer: Callable[[int], Awaitable[Any]],
        per_dc_floods: bool = True,
    ) -> None:
        """``input_peer(chat_id)`` addresses a chat to fetch a message of it again; ``per_dc_floods``
        as the source's ``per_dc_download_floods``."""
        self._client = client
        self._settings = settings
        self._requests = requests
        self._input_peer = input_peer
        self._per_dc_floods = per_dc_floods
        self._recent: OrderedDict[tuple[int, int], Any] = OrderedDict()

    def remember(self, chat_id: int, tl_message: Any) -> None:
        """Keep a TL message just read, so that its files download without fetching it again."""
        self._recent[(chat_id, tl_message.id)] = tl_message
        while len(self._recent) > RECENT_MESSAGES:
            self._recent.popitem(last=False)

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
                if self._per_dc_floods:
                    self.forget_flood()
                raise FloodWait(flood.seconds, f"downloading from DC {media.dc_id}") from flood
            except TRANSIENT_ERRORS as error:
                attempts += 1
                self._check_attempts(attempts, media, f"the connection stalled ({describe(error)})")
                log.info("download of %s stalled at %d bytes (%s); retrying", media.file_key, offset, describe(error))
                await self._requests.back_off(attempts)
            except errors.RPCError as error:
                if not needs_fresh_reference(error):
                    raise MediaUnavailable(f"Telegram refused the file ({describe(error)})") from error
                attempts += 1
                self._check_attempts(attempts, media, f"its file reference keeps failing ({describe(error)})")
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

    def forget_flood(self) -> None:
        """Keep a download flood wait to its own data centre.

        Telethon remembers a flood wait per request *type* and then refuses that type on every
        connection until it ends, so a wait on one DC's ``GetFile`` would stop downloads from all
        DCs. The DC scheduler already pauses the DC that asked; this drops Telethon's global note
        (``TelegramClient._flood_waited_requests``, a private attribute covered by a contract test).
        """
        self._requests.forget_flood(functions.upload.GetFileRequest.CONSTRUCTOR_ID)

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

    @staticmethod
    def _check_attempts(attempts: int, media: MediaRef, why: str) -> None:
        if attempts >= MAX_ATTEMPTS:
            raise SourceError(f"giving up on {media.file_key or media.locator} for this pass: {why}")

    async def _tl_file(self, chat_id: int, message_id: int, slot: int, *, refresh: bool) -> Any:
        tl_message = None if refresh else self._recent.get((chat_id, message_id))
        if tl_message is None:
            peer = await self._input_peer(chat_id)
            fetched = await self._requests.with_retries(
                lambda: self._client.get_messages(peer, ids=message_id),
                f"fetching message {message_id} of chat {chat_id} for its media",
            )
            if fetched is None:
                raise MediaUnavailable("the message was deleted")
            tl_message = fetched
            self.remember(chat_id, tl_message)
        file = tl_media_for_slot(tl_message, slot)
        if file is None:
            raise MediaUnavailable("the message no longer has this file")
        return file
