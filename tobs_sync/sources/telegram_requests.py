"""Deadlines, retries and flood waits for the Telethon source's requests to Telegram.

:func:`within` and :func:`deadline` put a time limit on one awaited request (Telethon's own
timeout covers connecting only); :class:`Requests` repeats a request that timed out or met a
server error, with backoff, up to :data:`MAX_ATTEMPTS` times, and sleeps through a flood wait
when it is short enough (``telegram.flood_max_wait_s``), logging it once per chat.

Limits: the pauses are the caller's ``sleep`` (a fake clock in tests); a flood wait of a chat's
history that is too long defers the chat (:class:`ChatDeferred`), one of any other request fails it
(:class:`SourceError`). Downloads handle their own waits (per data centre) and only use the pieces.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from telethon import errors

from tobs_sync.config import TelegramSettings
from tobs_sync.errors import ChatDeferred, SourceError
from tobs_sync.model import Chat
from tobs_sync.sources.telegram_errors import FLOOD_ERRORS, TRANSIENT_ERRORS

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_ATTEMPTS = 5
"""Tries of one request or one download before it is given up for this pass."""


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
        raise SourceError(f"{what}: {describe(error)} (is the network up?)") from error


def describe(error: BaseException) -> str:
    """An error's message for a log line or a reason, its class name when it has none."""
    return str(error) or type(error).__name__


class Requests:
    """One source's requests to Telegram: deadlines, retries with backoff, flood waits."""

    def __init__(
        self,
        client: Any,
        settings: TelegramSettings,
        *,
        retry_delay: float,
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._client = client
        self._settings = settings
        self._retry_delay = retry_delay
        self._sleep = sleep
        self._flood_logged: set[tuple[str, int]] = set()

    async def deadline(self, awaitable: Awaitable[T], what: str) -> T:
        """:func:`deadline` with the configured ``telegram.request_timeout_s``."""
        return await deadline(self._settings.request_timeout_s, awaitable, what)

    async def back_off(self, attempts: int) -> None:
        """The pause before the next try after ``attempts`` failed ones (doubling each time)."""
        await self._sleep(self._retry_delay * 2 ** (attempts - 1))

    async def with_retries(self, call: Callable[[], Awaitable[T]], what: str, chat: Chat | None = None) -> T:
        """``await call()``, repeated after timeouts and flood waits; ``chat`` is the chat it is for
        (its too-long flood waits and last failures defer the chat), None for other requests."""
        attempts = 0
        while True:
            try:
                return await within(self._settings.request_timeout_s, call())
            except FLOOD_ERRORS as flood:
                if chat is None:
                    if flood.seconds > self._settings.flood_max_wait_s:
                        raise SourceError(f"{what}: Telegram asks to wait {flood.seconds} s") from flood
                    await self.wait_out(flood)
                else:
                    await self.flood_sleep(flood, chat)
            except TRANSIENT_ERRORS as error:
                attempts += 1
                if attempts >= MAX_ATTEMPTS:
                    error_type = ChatDeferred if chat is not None else SourceError
                    raise error_type(f"{what}: failed {attempts} times ({describe(error)})") from error
                await self.back_off(attempts)
            except errors.RPCError as error:
                raise SourceError(f"{what}: Telegram refused it ({describe(error)})") from error

    async def flood_sleep(self, flood: errors.RPCError, chat: Chat) -> None:
        """Wait out a flood wait met reading ``chat`` (logged once per chat), or defer the chat if
        it is longer than ``telegram.flood_max_wait_s``."""
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
        await self.wait_out(flood)

    async def wait_out(self, flood: errors.RPCError) -> None:
        """Sleep through a flood wait, then drop Telethon's note of it: the wait is over, and Telethon
        would otherwise refuse the repeated request itself until its own clock says so."""
        await self._sleep(getattr(flood, "seconds", 0))
        self.forget_flood(getattr(flood.request, "CONSTRUCTOR_ID", None))

    def forget_flood(self, constructor_id: int | None) -> None:
        """Drop Telethon's note of a flood wait on requests of this type
        (``TelegramClient._flood_waited_requests``, a private attribute covered by a contract test)."""
        waited = getattr(self._client, "_flood_waited_requests", None)
        if isinstance(waited, dict) and constructor_id is not None:
            waited.pop(constructor_id, None)
