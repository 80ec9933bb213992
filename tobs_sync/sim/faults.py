"""Deterministic fault injection for the simulated Telegram.

Every fault is a rule that fires a counted number of times (``times=``, default 1; ``None`` means
forever) on the requests it matches, in the order rules were added. Requests are matched by name --
the TL function without ``Request`` (``"GetHistory"``, ``"GetFile"``) or qualified
(``"upload.GetFile"``, ``"channels.GetMessages"``) -- and optionally by data centre. Names are checked
against Telethon's TL schema, so a typo fails at once instead of silently never firing.

What a caller sees (all exceptions are the real Telethon classes, built by ``rpc_message_to_error``):

* ``flood`` -- ``errors.FloodWaitError`` with ``e.seconds``; Telethon sleeps and retries when
  ``seconds <= client.flood_sleep_threshold``, otherwise it raises. With ``premium=True`` the answer is
  ``FLOOD_PREMIUM_WAIT_X`` (``errors.FloodPremiumWaitError``, a sibling class, not a subclass): the
  download speed limit Telegram applies to accounts without Premium (also for ``flood_downloads`` and
  ``throttle_downloads``).
* ``timeout`` -- ``errors.TimedOutError`` (``-503 Timeout``); Telethon's ``_call`` retries it.
* ``rpc_error`` -- any Telegram error, e.g. ``(420, "TAKEOUT_INIT_DELAY_3600")``.
* ``stall`` -- the request is never answered (a half-open connection); only a caller's
  ``asyncio.wait_for`` or a disconnect ends the wait.
* ``drop_connection`` -- with ``reconnect=True`` (default) the connection drops and Telethon's
  auto-reconnect re-sends the request: the caller sees only a delay of three round trips. With
  ``reconnect=False`` reconnection fails: the pending requests on that connection raise
  ``ConnectionError`` and the connection stays closed (``client.is_connected()`` turns false for the home
  DC; an exported DC sender refuses further requests until the client disconnects and reconnects),
  which is what Telethon does after ``connection_retries`` failed attempts.
* ``outage`` -- for ``seconds`` of wall-clock time every request to the DC is held and answered only
  when the outage ends (as if re-sent after reconnecting).
* ``expire_file_reference`` -- the next ``times`` GetFile calls for the file (any file if ``None``)
  rotate its file reference and fail with ``FileReferenceExpiredError`` (or another ``FILE_REFERENCE_*``
  error given as ``error``, e.g. ``FILE_REFERENCE_INVALID``); the old reference stays invalid until the
  message is fetched again (GetHistory/GetMessages return the new reference).
* ``replace_media`` -- after ``after_parts`` GetFile calls for the file, the messages carrying it get a
  new file instead (an edit of the message's media, pushed as an update), and the old reference is
  refused with ``error`` (``FILE_REFERENCE_EXPIRED`` by default): a fresh fetch of the message shows
  another file (id and size), so resuming at the old offset would splice two files.
* ``cdn_redirect`` -- the next ``times`` GetFile calls for the file (any file if ``None``) are answered
  with ``upload.fileCdnRedirect`` (a real TL object, as Telegram sends for popular files even to clients
  that never asked for CDN files); Telethon's ``iter_download`` raises its private ``_CdnRedirect``.
* ``end_takeouts`` -- at the next ``times`` matching requests every open takeout session ends (the user
  started another export, e.g. in Telegram Desktop): requests wrapped in it get ``TAKEOUT_INVALID``.
* ``private_channel`` -- history, messages and differences of that channel raise ``ChannelPrivateError``;
  the dialog list and ``channels.getChannels`` show it as ``channelForbidden``.
* ``flood_downloads`` -- a standing per-DC policy: every ``every_n``-th GetFile on the DC gets a flood wait.
* ``throttle_downloads`` -- the same, but each flood opens a window in which every GetFile on that DC
  is refused with the seconds left. The number of windows is then fixed by the number of requests,
  however they are spread in time (kept for tests that want a flood at a known request).
* ``limit_downloads`` -- a standing per-DC rate limit, as Telegram's limits are: at most ``requests``
  GetFile requests on the DC per sliding ``window_s`` seconds (:mod:`tobs_sync.sim.floodlimit`); one
  over it gets ``FLOOD_WAIT_X`` with the time until the window has room (with ``count_refused`` a
  refused request counts too, so asking during a wait makes it longer). ``fired["limit"]`` counts
  refusals and ``fired["limit_wait"]`` the floods (a refusal after an admitted request).
* ``refuse_connections`` -- opening a connection to the DC fails: ``ConnectionRefusedError`` (no
  network), or ``asyncio.IncompleteReadError`` holding the bytes something else answered with (a
  captive portal or an HTTP proxy), which is what Telethon's ``connect()`` raises then.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from dataclasses import dataclass

from telethon.tl.alltlobjects import tlobjects
from telethon.tl.tlobject import TLRequest

from tobs_sync.sim.files import media_id_of_key
from tobs_sync.sim.floodlimit import SlidingLimit


def class_names(cls: type) -> tuple[str, str]:
    """``(short, qualified)`` name of a request class, e.g. ``("GetFile", "upload.GetFile")``."""
    short = cls.__name__.removesuffix("Request")
    namespace = cls.__module__.rsplit(".", 1)[-1]
    return short, short if namespace == "functions" else f"{namespace}.{short}"


def request_names(request: TLRequest) -> tuple[str, str]:
    """``(short, qualified)`` name of a request object."""
    return class_names(type(request))


KNOWN_REQUESTS = frozenset(
    name
    for cls in tlobjects.values()
    if isinstance(cls, type) and issubclass(cls, TLRequest)
    for name in class_names(cls)
)


@dataclass(slots=True)
class FaultRule:
    """One injected fault; ``times`` counts down (``None`` = unlimited)."""

    kind: str
    request: str | None = None
    dc: int | None = None
    times: int | None = 1
    seconds: int = 0
    code: int = 0
    message: str = ""
    answer: bytes = b""
    reconnect: bool = True
    file_key: str | None = None
    every_n: int = 0
    seen: int = 0
    until: float = 0.0
    premium: bool = False
    after: int = 0
    limit: SlidingLimit | None = None

    @property
    def flood_message(self) -> str:
        """The error message of a flood answer: ``FLOOD_WAIT_X`` or ``FLOOD_PREMIUM_WAIT_X``."""
        return f"FLOOD_PREMIUM_WAIT_{self.seconds}" if self.premium else f"FLOOD_WAIT_{self.seconds}"

    def matches(self, short: str, qualified: str, dc: int) -> bool:
        return (self.request is None or self.request in (short, qualified)) and (self.dc is None or self.dc == dc)


def _request_name(request: str | None) -> str | None:
    if request is None:
        return None
    name = request.removesuffix("Request")
    if name not in KNOWN_REQUESTS:
        raise ValueError(f"unknown Telegram request {request!r} (use e.g. 'GetHistory' or 'upload.GetFile')")
    return name


def _times(times: int | None) -> int | None:
    if times is not None and times < 1:
        raise ValueError(f"times must be at least 1 or None (forever), got {times!r}")
    return times


def _file_key(file_key: str | None) -> str | None:
    if file_key is not None:
        media_id_of_key(file_key)
    return file_key


def _reference_error(error: str) -> str:
    if not (error.startswith("FILE_REFERENCE_") or error == "FILEREF_UPGRADE_NEEDED"):
        raise ValueError(f"not a file reference error: {error!r} (e.g. 'FILE_REFERENCE_INVALID')")
    return error


def _dc(dc: int | None) -> int | None:
    if dc is not None and not 1 <= dc <= 5:
        raise ValueError(f"dc must be between 1 and 5, got {dc!r}")
    return dc


_FILE_RULES = frozenset({"expire", "replace", "cdn"})
"""Rules applied by the GetFile handler itself (they need the file), not before the request."""


class Faults:
    """The fault rules of one simulator; ``fired`` counts faults that actually happened, by kind."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._outages: dict[int, float] = {}
        self._private: set[int] = set()
        self.fired: Counter[str] = Counter()

    # region injecting

    def flood(
        self, request: str | None, seconds: int, dc: int | None = None, times: int | None = 1, *,
        premium: bool = False, after: int = 0,
    ) -> None:
        """Answer the next matching requests with ``FLOOD_WAIT_<seconds>`` (``FLOOD_PREMIUM_WAIT_`` if
        ``premium``), after letting ``after`` of them through (e.g. the second page of a listing)."""
        if seconds < 0 or after < 0:
            raise ValueError("seconds and after must be >= 0")
        self._rules.append(
            FaultRule("flood", _request_name(request), _dc(dc), _times(times), seconds=int(seconds), premium=premium,
                      after=after)
        )

    def timeout(self, request: str | None, dc: int | None = None, times: int | None = 1) -> None:
        """Answer the next matching requests with ``-503 Timeout`` (``errors.TimedOutError``)."""
        self._rules.append(FaultRule("timeout", _request_name(request), _dc(dc), _times(times), code=-503))

    def rpc_error(
        self, request: str | None, code: int, message: str, dc: int | None = None, times: int | None = 1
    ) -> None:
        """Answer the next matching requests with an arbitrary Telegram error."""
        self._rules.append(FaultRule("rpc", _request_name(request), _dc(dc), _times(times), code=code, message=message))

    def stall(
        self, request: str | None = "GetFile", dc: int | None = None, times: int | None = 1, *, after: int = 0
    ) -> None:
        """Never answer the next matching requests (after letting ``after`` of them through)."""
        if after < 0:
            raise ValueError("after must be >= 0")
        self._rules.append(FaultRule("stall", _request_name(request), _dc(dc), _times(times), after=after))

    def drop_connection(
        self, dc: int, times: int | None = 1, *, request: str | None = None, reconnect: bool = True
    ) -> None:
        """Drop the connection to ``dc`` while the next matching request is pending (see module docs)."""
        self._rules.append(FaultRule("drop", _request_name(request), _dc(dc), _times(times), reconnect=reconnect))

    def refuse_connections(self, dc: int, times: int | None = 1, *, answer: bytes = b"") -> None:
        """Fail the next ``times`` attempts to open a connection to ``dc`` (see module docs)."""
        self._rules.append(FaultRule("refuse", None, _dc(dc), _times(times), answer=answer))

    def outage(self, dc: int, seconds: float) -> None:
        """Hold every request to ``dc`` for the next ``seconds`` of wall-clock time."""
        self._outages[_dc(dc) or 0] = time.monotonic() + seconds

    def expire_file_reference(
        self, file_key: str | None = None, times: int | None = 1, *, error: str = "FILE_REFERENCE_EXPIRED"
    ) -> None:
        """Expire the file reference of ``file_key`` (any file if ``None``) at its next GetFile,
        answering ``error`` (any ``FILE_REFERENCE_*`` message)."""
        self._rules.append(
            FaultRule("expire", "GetFile", None, _times(times), file_key=_file_key(file_key),
                      message=_reference_error(error))
        )

    def replace_media(self, file_key: str, after_parts: int = 1, *, error: str = "FILE_REFERENCE_EXPIRED") -> None:
        """After ``after_parts`` GetFile calls for ``file_key``, give its messages another file (see module docs)."""
        if after_parts < 0:
            raise ValueError("after_parts must be >= 0")
        self._rules.append(
            FaultRule("replace", "GetFile", None, 1, file_key=_file_key(file_key), every_n=after_parts,
                      message=_reference_error(error))
        )

    def cdn_redirect(self, file_key: str | None = None, times: int | None = 1) -> None:
        """Answer the next GetFile calls for ``file_key`` (any file if ``None``) with ``upload.fileCdnRedirect``."""
        self._rules.append(FaultRule("cdn", "GetFile", None, _times(times), file_key=_file_key(file_key)))

    def end_takeouts(self, request: str | None = None, dc: int | None = None, times: int | None = 1) -> None:
        """At the next matching requests, end every open takeout session (see module docs)."""
        self._rules.append(FaultRule("end_takeouts", _request_name(request), _dc(dc), _times(times)))

    def flood_downloads(self, dc: int, every_n: int, seconds: int, *, premium: bool = False) -> None:
        """Standing policy: every ``every_n``-th GetFile on ``dc`` gets ``FLOOD_WAIT_<seconds>``
        (``FLOOD_PREMIUM_WAIT_<seconds>`` if ``premium``)."""
        if every_n < 1:
            raise ValueError("every_n must be at least 1")
        self._rules.append(
            FaultRule("flood_every", "GetFile", _dc(dc), None, seconds=int(seconds), every_n=every_n, premium=premium)
        )

    def throttle_downloads(self, dc: int, every_n: int, seconds: int, *, premium: bool = False) -> None:
        """Standing policy, as Telegram throttles a DC: every ``every_n``-th GetFile on ``dc`` opens a
        window of ``seconds`` during which *every* GetFile on that DC gets ``FLOOD_WAIT_<seconds left>``
        (``FLOOD_PREMIUM_WAIT_`` if ``premium``: a non-Premium account's download speed limit)."""
        if every_n < 1 or seconds < 1:
            raise ValueError("every_n and seconds must be at least 1")
        self._rules.append(
            FaultRule("throttle", "GetFile", _dc(dc), None, seconds=int(seconds), every_n=every_n, premium=premium)
        )

    def limit_downloads(
        self, dc: int, requests: int, window_s: float, *, premium: bool = False, count_refused: bool = False
    ) -> None:
        """Standing policy, a rate limit on ``dc``: at most ``requests`` GetFile requests per sliding
        ``window_s`` seconds; one over it gets ``FLOOD_WAIT_X`` (``FLOOD_PREMIUM_WAIT_X`` if ``premium``),
        ``X`` the seconds until the window has room. With ``count_refused`` refused requests count too.
        Time is the running event loop's clock."""
        limit = SlidingLimit(requests, window_s, count_refused=count_refused)
        self._rules.append(FaultRule("limit", "GetFile", _dc(dc), None, premium=premium, limit=limit))

    def private_channel(self, chat_id: int) -> None:
        """Make the channel (marked id) private: its history raises ``ChannelPrivateError``."""
        self._private.add(chat_id)

    def restore_channel(self, chat_id: int) -> None:
        self._private.discard(chat_id)

    def clear(self) -> None:
        """Remove every rule, outage and private channel (``fired`` is kept)."""
        self._rules.clear()
        self._outages.clear()
        self._private.clear()

    def pending(self) -> list[FaultRule]:
        """Rules that can still fire."""
        return list(self._rules)

    # endregion

    # region consulted by the simulator

    def _fire(self, rule: FaultRule) -> FaultRule:
        self.fired[rule.kind] += 1
        if rule.times is not None:
            rule.times -= 1
            if rule.times <= 0:
                self._rules.remove(rule)
        return rule

    def take(self, short: str, qualified: str, dc: int) -> FaultRule | None:
        """The fault to apply to this request, if any (expiry rules are handled by the GetFile handler)."""
        for rule in self._rules:
            if rule.kind in _FILE_RULES or rule.kind == "refuse" or not rule.matches(short, qualified, dc):
                continue
            if rule.after and rule.seen < rule.after:
                rule.seen += 1
                continue
            if rule.kind == "flood_every":
                rule.seen += 1
                if rule.seen % rule.every_n:
                    continue
            if rule.kind == "throttle":
                if (window := self._throttle(rule)) is None:
                    continue
                return window
            if rule.kind == "limit":
                if (refusal := self._limit(rule)) is None:
                    continue
                return refusal
            return self._fire(rule)
        return None

    def _throttle(self, rule: FaultRule) -> FaultRule | None:
        """A flood answer while ``rule``'s window is open (opening it on every n-th request)."""
        now = time.monotonic()
        if rule.until <= now:
            rule.seen += 1
            if rule.seen % rule.every_n:
                return None
            rule.until = now + rule.seconds
            self.fired["throttle_window"] += 1
        self.fired["throttle"] += 1
        return FaultRule(
            "flood", rule.request, rule.dc, 1, seconds=max(1, math.ceil(rule.until - now)), premium=rule.premium
        )

    def _limit(self, rule: FaultRule) -> FaultRule | None:
        """A flood answer if ``rule``'s rate limit refuses this attempt."""
        assert rule.limit is not None  # nosec B101  # set by limit_downloads for every "limit" rule
        waits = rule.limit.waits
        wait = rule.limit.attempt(asyncio.get_running_loop().time())
        if not wait:
            return None
        self.fired["limit"] += 1
        if rule.limit.waits > waits:
            self.fired["limit_wait"] += 1
        return FaultRule("flood", rule.request, rule.dc, 1, seconds=SlidingLimit.told(wait), premium=rule.premium)

    def take_refusal(self, dc: int) -> BaseException | None:
        """The error opening a connection to ``dc`` ends with now, if a rule says so."""
        for rule in self._rules:
            if rule.kind == "refuse" and rule.dc == dc:
                self._fire(rule)
                if rule.answer:
                    return asyncio.IncompleteReadError(rule.answer, len(rule.answer) + 1_000_000)
                return ConnectionRefusedError(111, f"Connect call failed (simulated DC {dc})")
        return None

    def take_file_fault(self, file_key: str) -> FaultRule | None:
        """The file rule (``expire``, ``replace`` or ``cdn``) that applies to this GetFile of ``file_key``."""
        kind_id = media_id_of_key(file_key)
        for rule in self._rules:
            if rule.kind not in _FILE_RULES:
                continue
            if rule.file_key is not None and media_id_of_key(rule.file_key) != kind_id:
                continue
            if rule.kind == "replace":
                rule.seen += 1
                if rule.seen <= rule.every_n:
                    continue
            return self._fire(rule)
        return None

    def outage_left(self, dc: int) -> float:
        """Seconds until the outage of ``dc`` ends (0 when there is none)."""
        until = self._outages.get(dc)
        if until is None:
            return 0.0
        left = until - time.monotonic()
        if left <= 0:
            del self._outages[dc]
            return 0.0
        return left

    def is_private(self, chat_id: int) -> bool:
        return chat_id in self._private

    # endregion
