"""Chat selectors and per-chat settings: which chats a rule means, and what it sets for them.

A **selector** names chats: ``"all"``, a kind (``"channels"``, ``"groups"``, ``"users"``,
``"bots"``, ``"saved"``), a marked chat id (``-1001234567890``), ``"@username"`` or
``"title:Pattern*"`` (shell-style, case-insensitive). ``telegram.chats`` / ``telegram.exclude``
choose the chats to sync; ``[[chat]]`` tables of the config set per-chat values::

    [[chat]]
    select = ["channels"]
    every = "15m"            # how often the agent runs a pass (or cron = "0 3 * * *")
    [[chat]]
    select = ["title:Archive*"]
    cron = "0 3 * * *"
    since = "90d"            # first backfill: messages of the last 90 days (or a date, 2024-01-31)
    backfill = 500           # first backfill: at most the last 500 messages
    comments = true          # channel posts' comments

For each key, the first ``[[chat]]`` whose selectors match a chat and that sets the key gives the
chat's value (:func:`setting_for`); a chat no table sets it for keeps the global default.
Limits: ``every`` takes seconds, minutes, hours and days (``"90s"``, ``"15m"``, ``"1h30m"``,
``"2d"``); ``since`` takes days, weeks and years (``"30d"``, ``"2w"``, ``"1y"`` = 365 days) or
an ISO date; a cron expression is checked by APScheduler's own parser.
"""

from __future__ import annotations

import datetime as dt
import difflib
import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from tobs_sync.errors import ConfigError
from tobs_sync.model import Chat, ChatKind

Selector = str | int

KIND_SELECTORS: Mapping[str, frozenset[str]] = {
    "channels": frozenset({ChatKind.CHANNEL}),
    "groups": frozenset({ChatKind.GROUP, ChatKind.SUPERGROUP}),
    "users": frozenset({ChatKind.USER}),
    "bots": frozenset({ChatKind.BOT}),
    "saved": frozenset({ChatKind.SAVED}),
}
SELECTOR_WORDS = frozenset({"all", *KIND_SELECTORS})

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SPAN_UNITS = {"d": 1, "w": 7, "y": 365}
_DURATION = re.compile(r"(?:(\d+)([smhd]))+")
_DURATION_PART = re.compile(r"(\d+)([smhd])")
_SPAN = re.compile(r"(\d+)([dwy])")


def matches(chat: Chat, selector: Selector) -> bool:
    """Whether ``selector`` names ``chat``."""
    if isinstance(selector, int):
        return chat.id == selector
    if selector == "all":
        return True
    if selector in KIND_SELECTORS:
        return chat.kind in KIND_SELECTORS[selector]
    if selector.startswith("@"):
        return chat.username is not None and chat.username.casefold() == selector[1:].casefold()
    if selector.startswith("title:"):
        return fnmatch.fnmatchcase(chat.title.casefold(), selector[6:].casefold())
    return False


def first_match(chat: Chat, selectors: Sequence[Selector]) -> Selector | None:
    """The first of ``selectors`` that names ``chat`` (for telling *why* a chat is selected)."""
    return next((selector for selector in selectors if matches(chat, selector)), None)


def chat_selected(chat: Chat, include: Sequence[Selector], exclude: Sequence[Selector]) -> bool:
    """Whether ``include`` names ``chat`` and ``exclude`` does not (``telegram.chats`` / ``exclude``)."""
    return first_match(chat, include) is not None and first_match(chat, exclude) is None


def parse_selectors(key: str, value: Any) -> tuple[Selector, ...]:
    """Validate a list of selectors from the config; the error names ``key``."""
    if not isinstance(value, list):
        raise ConfigError(f"{key}: must be a list, like [\"channels\", \"@name\", 12345]")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise ConfigError(f"{key}: {item!r} is neither a chat id nor text")
        if isinstance(item, str) and not (
            item in SELECTOR_WORDS or item.startswith(("@", "title:")) or item.lstrip("-").isdigit()
        ):
            raise ConfigError(
                f"{key}: {item!r} is not a chat selector; use one of "
                + ", ".join(sorted(SELECTOR_WORDS)) + ", a chat id, \"@username\" or \"title:Pattern*\""
            )
    return tuple(int(i) if isinstance(i, str) and i.lstrip("-").isdigit() else i for i in value)


def parse_duration(key: str, value: Any) -> float:
    """``"90s"``, ``"15m"``, ``"1h30m"``, ``"2d"`` (or a number of seconds) -> seconds, at least 1."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{key}: must be a duration like \"15m\", not {type(value).__name__}")
    if isinstance(value, str):
        text = value.strip().lower()
        if not _DURATION.fullmatch(text):
            raise ConfigError(f"{key}: {value!r} is not a duration; use e.g. \"90s\", \"15m\", \"1h30m\" or \"2d\"")
        seconds = float(sum(int(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(text)))
    else:
        seconds = float(value)
    if seconds < 1:
        raise ConfigError(f"{key}: must be at least one second, not {value!r}")
    return seconds


@dataclass(frozen=True, slots=True)
class Since:
    """Where a chat's first backfill starts: a number of days back, or a date."""

    days: int | None = None
    date: dt.date | None = None

    def start(self, now: dt.datetime) -> dt.datetime:
        """The earliest message time included, for a backfill made at ``now`` (aware)."""
        if self.days is not None:
            return now - dt.timedelta(days=self.days)
        if self.date is None:
            raise ValueError("Since: neither days nor a date")
        return dt.datetime.combine(self.date, dt.time(), tzinfo=now.tzinfo)

    def __str__(self) -> str:
        return f"{self.days}d" if self.days is not None else str(self.date)


def parse_since(key: str, value: Any) -> Since | None:
    """``"30d"``, ``"2w"``, ``"1y"``, ``"2024-01-31"`` -> :class:`Since`; ``""`` -> None (whole history)."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return Since(date=value)  # a bare TOML date
    if not isinstance(value, str):
        raise ConfigError(f"{key}: must be a date (2024-01-31) or a span like \"30d\", not {type(value).__name__}")
    text = value.strip().lower()
    if not text:
        return None
    if match := _SPAN.fullmatch(text):
        return Since(days=int(match[1]) * _SPAN_UNITS[match[2]])
    try:
        return Since(date=dt.date.fromisoformat(text))
    except ValueError:
        raise ConfigError(
            f"{key}: {value!r} is neither a date (2024-01-31) nor a span (\"30d\", \"2w\", \"1y\")"
        ) from None


def check_cron(key: str, value: Any) -> str:
    """A five-field crontab expression (``"0 3 * * *"``), checked by APScheduler's parser."""
    from apscheduler.triggers.cron import CronTrigger

    if not isinstance(value, str):
        raise ConfigError(f"{key}: must be a cron expression like \"0 3 * * *\", not {type(value).__name__}")
    try:
        CronTrigger.from_crontab(value)
    except ValueError as exc:
        raise ConfigError(f"{key}: {value!r} is not a cron expression (minute hour day month weekday): {exc}") from None
    return value


def parse_backfill(key: str, value: Any) -> int:
    """The last N messages of a chat's first backfill; 0 = no limit."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{key}: must be a whole number of messages (0 = no limit), not {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class ChatRule:
    """One ``[[chat]]`` table: the chats it selects and the values it sets (None: not set here)."""

    select: tuple[Selector, ...]
    every_s: float | None = None
    cron: str | None = None
    since: Since | None = None
    since_set: bool = False
    """Whether ``since`` was given (``since = ""`` sets "the whole history", which is None)."""
    backfill: int | None = None
    comments: bool | None = None

    @property
    def has_schedule(self) -> bool:
        return self.every_s is not None or self.cron is not None


RULE_KEYS = frozenset({"select", "every", "cron", "since", "backfill", "comments"})


def parse_chat_rules(value: Any) -> tuple[ChatRule, ...]:
    """The config's ``[[chat]]`` array of tables; every error names ``chat[N].key`` (N from 1)."""
    if not isinstance(value, list):
        raise ConfigError("chat: must be an array of tables ([[chat]] with select = [...])")
    return tuple(_parse_rule(f"chat[{number}]", table) for number, table in enumerate(value, start=1))


def _parse_rule(name: str, table: Any) -> ChatRule:
    if not isinstance(table, dict):
        raise ConfigError(f"{name}: must be a table ([[chat]])")
    for key in table:
        if key not in RULE_KEYS:
            close = difflib.get_close_matches(key, sorted(RULE_KEYS), n=1)
            raise ConfigError(f"{name}.{key}: unknown key" + (f" (did you mean {close[0]!r}?)" if close else ""))
    if "select" not in table:
        raise ConfigError(f"{name}: needs select = [...], the chats it applies to")
    values: dict[str, Any] = {"select": parse_selectors(f"{name}.select", table["select"])}
    if "every" in table and "cron" in table:
        raise ConfigError(f"{name}: set either every or cron, not both")
    if "every" in table:
        values["every_s"] = parse_duration(f"{name}.every", table["every"])
    if "cron" in table:
        values["cron"] = check_cron(f"{name}.cron", table["cron"])
    if "since" in table:
        values["since"] = parse_since(f"{name}.since", table["since"])
        values["since_set"] = True
    if "backfill" in table:
        values["backfill"] = parse_backfill(f"{name}.backfill", table["backfill"])
    if "comments" in table:
        if not isinstance(table["comments"], bool):
            raise ConfigError(f"{name}.comments: must be true or false")
        values["comments"] = table["comments"]
    if len(values) == 1:
        raise ConfigError(f"{name}: sets nothing; add every, cron, since, backfill or comments")
    return ChatRule(**values)


_SETTINGS = frozenset(f.name for f in fields(ChatRule)) - {"select", "since_set"}


def rule_for(chat: Chat, rules: Sequence[ChatRule], setting: str) -> ChatRule | None:
    """The first rule that matches ``chat`` and sets ``setting`` (``"every_s"`` and ``"cron"``
    count as one setting, the schedule), or None."""
    if setting not in _SETTINGS:
        raise ValueError(f"rule_for: unknown setting {setting!r}")
    for rule in rules:
        if first_match(chat, rule.select) is None:
            continue
        if setting in ("every_s", "cron"):
            if rule.has_schedule:
                return rule
        elif setting == "since":
            if rule.since_set:
                return rule
        elif getattr(rule, setting) is not None:
            return rule
    return None


def setting_for(chat: Chat, rules: Sequence[ChatRule], setting: str, default: Any) -> Any:
    """``chat``'s value of ``setting``: from the first matching rule that sets it, else ``default``."""
    rule = rule_for(chat, rules, setting)
    return default if rule is None else getattr(rule, setting)
