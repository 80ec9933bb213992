"""Chat selectors and ``[[chat]]`` per-chat settings: parsing, errors naming the key, first match wins."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tobs_sync.chat_rules import (
    ChatRule,
    Since,
    first_match,
    parse_chat_rules,
    parse_duration,
    parse_since,
    rule_for,
    setting_for,
)
from tobs_sync.config import settings_from_mapping
from tobs_sync.errors import ConfigError
from tobs_sync.model import Chat, ChatKind

NEWS = Chat(-1001, "Daily News", ChatKind.CHANNEL, username="DailyNews")
SAVED = Chat(7, "Saved Messages", ChatKind.SAVED)
ARCHIVE = Chat(-1002, "Archive 2019", ChatKind.SUPERGROUP)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("1h30m", 5400), ("2d", 172800), ("1H", 3600), (120, 120), (2.5, 2.5)],
)
def test_durations_read_in_seconds(text: object, seconds: float) -> None:
    assert parse_duration("chat[1].every", text) == seconds


@pytest.mark.parametrize("text", ["15", "m15", "15 minutes", "1.5h", "", 0, True, "0s"])
def test_a_bad_duration_names_its_key(text: object) -> None:
    with pytest.raises(ConfigError, match=r"^chat\[1\]\.every: "):
        parse_duration("chat[1].every", text)


def test_since_reads_spans_and_dates() -> None:
    now = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)
    assert parse_since("k", "30d") == Since(days=30)
    assert parse_since("k", "2w") == Since(days=14)
    assert parse_since("k", "1y") == Since(days=365)
    assert parse_since("k", "") is None
    assert parse_since("k", "2024-01-31").start(now) == dt.datetime(2024, 1, 31, tzinfo=dt.UTC)
    assert parse_since("k", dt.date(2024, 1, 31)) == Since(date=dt.date(2024, 1, 31))
    assert Since(days=30).start(now) == dt.datetime(2026, 10, 31, 12, tzinfo=dt.UTC)
    with pytest.raises(ConfigError, match=r"k: '30 days' is neither a date"):
        parse_since("k", "30 days")


def test_first_matching_rule_that_sets_a_key_gives_the_value() -> None:
    rules = parse_chat_rules([
        {"select": ["saved"], "every": "1m"},
        {"select": ["title:archive*"], "cron": "0 3 * * *", "backfill": 500},
        {"select": ["all"], "every": "30m", "backfill": 100, "since": "30d"},
    ])
    assert setting_for(SAVED, rules, "every_s", None) == 60
    assert setting_for(NEWS, rules, "every_s", None) == 1800
    assert rule_for(ARCHIVE, rules, "cron") == rules[1]
    assert setting_for(ARCHIVE, rules, "backfill", 0) == 500
    assert setting_for(ARCHIVE, rules, "since", None) == Since(days=30)
    assert setting_for(NEWS, rules, "comments", False) is False


def test_an_empty_since_means_the_whole_history_and_still_counts_as_set() -> None:
    rules = parse_chat_rules([{"select": ["saved"], "since": ""}, {"select": ["all"], "since": "30d"}])
    assert rule_for(SAVED, rules, "since") == rules[0]
    assert setting_for(SAVED, rules, "since", Since(days=1)) is None


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ({"select": ["all"]}, r"chat\[1\]: sets nothing"),
        ({"every": "1m"}, r"chat\[1\]: needs select"),
        ({"select": ["all"], "evry": "1m"}, r"chat\[1\]\.evry: unknown key \(did you mean 'every'\?\)"),
        ({"select": ["al"], "every": "1m"}, r"chat\[1\]\.select: 'al' is not a chat selector"),
        ({"select": ["all"], "every": "1m", "cron": "* * * * *"}, r"either every or cron"),
        ({"select": ["all"], "cron": "61 * * * *"}, r"chat\[1\]\.cron: '61 \* \* \* \*' is not a cron"),
        ({"select": ["all"], "backfill": -1}, r"chat\[1\]\.backfill: must be a whole number"),
        ({"select": ["all"], "comments": "yes"}, r"chat\[1\]\.comments: must be true or false"),
    ],
)
def test_a_bad_chat_table_names_its_key(tables: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_chat_rules([tables])


def test_chat_tables_reach_the_settings(tmp_path: Path) -> None:
    settings = settings_from_mapping(tmp_path, {"chat": [{"select": ["channels", "-1002"], "comments": True}]})
    assert settings.chat_rules == (ChatRule(select=("channels", -1002), comments=True),)
    with pytest.raises(ConfigError, match=r"^chat: must be an array of tables"):
        settings_from_mapping(tmp_path, {"chat": {"select": ["all"]}})
    with pytest.raises(ConfigError, match=r"chats: unknown section \(did you mean 'chat'\?\)"):
        settings_from_mapping(tmp_path, {"chats": {}})


def test_first_match_tells_which_selector_chose_a_chat() -> None:
    assert first_match(NEWS, ["users", "@dailynews", "channels"]) == "@dailynews"
    assert first_match(NEWS, ["users"]) is None
