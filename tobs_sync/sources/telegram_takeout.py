"""The takeout session (Telegram's data export mode) the Telethon source reads first backfills in.

With ``telegram.takeout`` on, a chat's first backfill (cursor 0) reads history through a takeout
client, whose flood limits are lower; later reads and every download use the normal client
(Telethon does not wrap downloads). :class:`Takeout` starts the session on first use, finishes it
when the source closes, and on start finishes or clears one an earlier run left in the session
(killed mid-backfill: Telethon saves the session as it goes, then refuses every new takeout).
When Telegram delays the takeout (``TAKEOUT_INIT_DELAY_X``: it must be confirmed in another app),
refuses to start it, or ends it mid-read (``TAKEOUT_INVALID``: another export, e.g. Telegram
Desktop's, replaced it), history is read normally from then on, with a warning that says why.

Limits: once it has fallen back, a source does not try a takeout again (a new run does); finishing
the session is a courtesy whose failure is only logged. A takeout id dropped is saved in the
session at once, so the next run does not inherit it.
"""

from __future__ import annotations

import contextlib
import logging
from types import TracebackType
from typing import Any

from telethon import TelegramClient, errors

from tobs_sync.errors import SourceError
from tobs_sync.sources.telegram_errors import TRANSIENT_ERRORS
from tobs_sync.sources.telegram_requests import Requests, describe

log = logging.getLogger(__name__)


class Takeout:
    """A source's takeout session: started lazily for first backfills, finished on close."""

    def __init__(self, client: TelegramClient, requests: Requests, *, enabled: bool) -> None:
        self._client = client
        self._requests = requests
        self._enabled = enabled
        self._takeout: Any = None
        self._takeout_client: Any = None

    async def end_stale(self) -> None:
        """Finish a takeout an earlier run left in the session (it was killed mid-backfill, and
        Telethon saves the session as it goes), else Telethon refuses every new takeout with a
        ``ValueError``. Telegram may have ended it already (``TAKEOUT_INVALID``): then it is cleared."""
        if getattr(self._client.session, "takeout_id", None) is None:
            return
        try:
            await self._requests.deadline(
                self._client.end_takeout(success=False), "finishing an earlier takeout session"
            )
            log.info("finished a takeout session left open by an earlier run")
        except (errors.RPCError, SourceError) as error:
            log.info("cleared a takeout session left by an earlier run (%s)", describe(error))
        self._clear_takeout_id()

    async def history_client(self, after: int) -> Any:
        """The takeout client for a first backfill when enabled, else the normal client."""
        if not self._enabled or after != 0:
            return self._client
        if self._takeout_client is None:
            takeout = self._client.takeout(finalize=True, contacts=False, users=True, chats=True,
                                           megagroups=True, channels=True, files=False)
            try:
                self._takeout_client = await self._requests.deadline(
                    takeout.__aenter__(), "starting a takeout session"
                )
                self._takeout = takeout
            except errors.TakeoutInitDelayError as error:
                log.warning("Telegram allows the takeout session (data export) only after it is confirmed in "
                            "another Telegram app, and then in %s s; reading history normally", error.seconds)
                self._enabled = False
                return self._client
            except (errors.RPCError, ValueError, SourceError) as error:
                log.warning("could not start a takeout session (%s); reading history normally", describe(error))
                self._clear_takeout_id()
                self._enabled = False
                return self._client
        return self._takeout_client

    def ended_by_telegram(self, error: BaseException) -> None:
        """Telegram ended the takeout mid-read (``TAKEOUT_INVALID``/``TAKEOUT_REQUIRED``): drop it and
        read history normally from here on."""
        log.warning("Telegram ended the takeout session (%s): another data export, e.g. Telegram "
                    "Desktop's, replaces it; reading history normally from here on", describe(error))
        self._drop()
        self._enabled = False

    async def finish(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Finish the takeout session if one was started (as the source closes)."""
        if self._takeout is None:
            return
        try:
            await self._takeout.__aexit__(exc_type, exc, tb)
        except (errors.RPCError, ValueError, *TRANSIENT_ERRORS) as error:  # finishing is a courtesy
            log.warning("could not finish the takeout session: %s", describe(error))
        self._drop()

    def _drop(self) -> None:
        self._takeout = self._takeout_client = None
        self._clear_takeout_id()

    def _clear_takeout_id(self) -> None:
        """Forget the session's takeout id (saved, so the next run does not inherit it)."""
        session = self._client.session
        if getattr(session, "takeout_id", None) is not None:
            session.takeout_id = None
            with contextlib.suppress(Exception):
                session.save()
