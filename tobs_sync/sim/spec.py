"""The ``--simulate`` specification: which account the simulated Telegram serves, and how fast.

A spec is a comma-separated list of ``key=value`` pairs, e.g.
``chats=4,messages=5000,media=0.2,latency_ms=100,seed=1``. Every key is optional:

==================  =======  ===========================================================================
key                 default  meaning
==================  =======  ===========================================================================
``chats``           3        number of chats (channels, a megagroup, a basic group, private chats; from 6 on
                             also Saved Messages and a forum with topics upgraded from a basic group)
``messages``        200      generated messages per chat (service messages and album members included)
``media``           0.2      fraction (0..1) of messages that carry media
``latency_ms``      0        simulated round trip per request, in milliseconds
``seed``            1        seed of every generated id, text, date and file byte
``dcs``             3        number of data centres (1..5)
``live_every_s``    0        seconds between live changes after ``start_live()`` (0 = off)
``bandwidth_kbps``  0        download bandwidth per connection in kilobits per second (0 = unlimited)
``home_dc``         auto     the DC the account lives on (1..``dcs``); auto is 2 with two or more DCs,
                             else 1. A new session starts on DC 2 (as Telethon's does) and is sent
                             to this one with ``PHONE_MIGRATE_X`` when it logs in
``rate``            off      ``telegram``: per-method request budgets answered with ``FLOOD_WAIT_X``
                             when exceeded (:mod:`tobs_sync.sim.ratelimit`); ``off``: none
``comments``        0        most comments per channel post; above 0 every broadcast channel has a
                             discussion group (:mod:`tobs_sync.sim.discussion`)
==================  =======  ===========================================================================

Limits: the parser accepts exactly this flat syntax (no quoting, no nesting); ``rate`` is the only
key that takes a word, every other one a number; errors are
:class:`~tobs_sync.errors.ConfigError` whose message names the offending key.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, fields
from typing import Any

from tobs_sync.errors import ConfigError

_PREFIX = "--simulate"


@dataclass(frozen=True, slots=True)
class SimSpec:
    """What the simulated Telegram account looks like and how the simulated network behaves."""

    chats: int = 3
    messages: int = 200
    media: float = 0.2
    latency_ms: float = 0.0
    seed: int = 1
    dcs: int = 3
    live_every_s: float = 0.0
    bandwidth_kbps: float = 0.0
    home_dc: int = 0
    """The account's home data centre; 0 (the default) resolves to 2 with at least two DCs, else 1."""
    rate: str = "off"
    comments: int = 0

    def __post_init__(self) -> None:
        _check_range("chats", self.chats, 1, 10_000)
        _check_range("messages", self.messages, 0, 10_000_000)
        _check_range("media", self.media, 0.0, 1.0)
        _check_range("latency_ms", self.latency_ms, 0.0, 3_600_000.0)
        _check_range("seed", self.seed, -(2**63), 2**63 - 1)
        _check_range("dcs", self.dcs, 1, 5)
        _check_range("live_every_s", self.live_every_s, 0.0, 86_400.0)
        _check_range("bandwidth_kbps", self.bandwidth_kbps, 0.0, 1e12)
        _check_range("home_dc", self.home_dc, 0, self.dcs)
        _check_range("comments", self.comments, 0, 10_000)
        if self.home_dc == 0:
            object.__setattr__(self, "home_dc", 2 if self.dcs >= 2 else 1)
        if self.rate not in RATE_POLICIES:
            raise ConfigError(f"{_PREFIX}: key 'rate' must be one of {', '.join(RATE_POLICIES)}, got {self.rate!r}")

    @property
    def latency_s(self) -> float:
        return self.latency_ms / 1000.0

    @property
    def bandwidth_bytes_per_s(self) -> float:
        """Bytes per second per connection, or 0 for unlimited."""
        return self.bandwidth_kbps * 1000.0 / 8.0

    def to_text(self) -> str:
        """The spec in ``parse_spec`` syntax (round-trips exactly)."""
        return ",".join(
            f"{f.name}={value if isinstance(value, str) else repr(value)}"
            for f in fields(self)
            for value in (getattr(self, f.name),)
        )


RATE_POLICIES = ("off", "telegram")
_INT_KEYS = frozenset({"chats", "messages", "seed", "dcs", "home_dc", "comments"})
_WORD_KEYS = frozenset({"rate"})
_KEYS = tuple(f.name for f in fields(SimSpec))


def _check_range(key: str, value: Any, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{_PREFIX}: key {key!r} needs a number, got {value!r}")
    if key in _INT_KEYS and not isinstance(value, int):
        raise ConfigError(f"{_PREFIX}: key {key!r} needs a whole number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{_PREFIX}: key {key!r} needs a finite number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{_PREFIX}: key {key!r} must be between {low:g} and {high:g}, got {value!r}")


def _convert(key: str, raw: str) -> int | float | str:
    text = raw.strip()
    if key in _WORD_KEYS:
        return text
    try:
        if key in _INT_KEYS:
            return int(text.replace("_", ""), 10)
        return float(text.replace("_", ""))
    except ValueError:
        kind = "a whole number" if key in _INT_KEYS else "a number"
        raise ConfigError(f"{_PREFIX}: key {key!r} needs {kind}, got {raw!r}") from None


def parse_spec(text: str) -> SimSpec:
    """Parse ``key=value,...`` into a :class:`SimSpec`; an empty string gives the defaults.

    Raises :class:`ConfigError` naming the key for an unknown key (with a suggestion),
    a value that is not a number or out of range, a missing ``=``, or a key given twice.
    """
    values: dict[str, int | float | str] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, raw = item.partition("=")
        key = key.strip()
        if key not in _KEYS:
            close = difflib.get_close_matches(key, _KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(_KEYS)})"
            raise ConfigError(f"{_PREFIX}: unknown key {key!r}{hint}")
        if not sep:
            raise ConfigError(f"{_PREFIX}: key {key!r} needs a value ({key}=...)")
        if key in values:
            raise ConfigError(f"{_PREFIX}: key {key!r} given twice")
        values[key] = _convert(key, raw)
    return SimSpec(**values)  # type: ignore[arg-type]
