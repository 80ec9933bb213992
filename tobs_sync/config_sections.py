"""The sections of ``config.toml`` after ``[vault]``: their keys, typed settings and parsers.

``[telegram]``, ``[media]``, ``[templates]``, ``[sync]``, ``[deletions]``, ``[agent]``, ``[status]`` and
``[metrics]``: each parser takes the section's table (its keys already checked against the sets
here) and returns frozen settings, raising :class:`~tobs_sync.errors.ConfigError` naming the key for
a bad value. Limits: no file reading, no ``[vault]`` keys and no ``[[chat]]`` tables
(:mod:`tobs_sync.config` and :mod:`tobs_sync.chat_rules`); defaults here must agree with
:data:`tobs_sync.config.DEFAULT_CONFIG`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tobs_sync.chat_rules import Since, parse_backfill, parse_duration, parse_selectors, parse_since
from tobs_sync.config_values import (
    STATE_DIR,
    bounded_number,
    check_path_template,
    check_vault_folder,
    suggest,
    typed_value,
)
from tobs_sync.errors import ConfigError

TELEGRAM_KEYS = frozenset(
    {
        "api_id", "api_hash", "session_dir", "chats", "exclude", "takeout", "flood_max_wait_s",
        "request_timeout_s", "stall_timeout_s", "download_workers_per_dc", "download_workers_total",
        "concurrent_chats", "batches_ahead", "blocking_workers", "since", "backfill", "comments_recent_posts",
    }
)
MEDIA_KEYS = frozenset({"kinds", "max_mb", "processors", "processor_workers"})
TEMPLATES_KEYS = frozenset({"max_render_ms", "max_output_chars"})
SYNC_KEYS = frozenset({"recent_messages", "recent_days"})
DELETIONS_KEYS = frozenset({"policy", "archive_folder", "hold_above"})
AGENT_KEYS = frozenset({"every"})
DELETION_POLICIES = ("mark", "keep", "archive", "remove")
DEFAULT_STATUS_NOTE = "Telegram/tobs-sync status.md"
MEDIA_KINDS = ("photo", "video", "animation", "voice", "audio", "video_note", "sticker", "document")


@dataclass(frozen=True, slots=True)
class TelegramSettings:
    """How to reach Telegram and what to sync. Secrets (api_hash) are never part of ``repr``."""

    api_id: int = 0
    api_hash: str = field(default="", repr=False)
    session_dir: str = ""
    chats: tuple[str | int, ...] = ("all",)
    exclude: tuple[str | int, ...] = ()
    takeout: bool = False
    flood_max_wait_s: float = 300.0
    request_timeout_s: float = 60.0
    stall_timeout_s: float = 60.0
    download_workers_per_dc: int = 2
    download_workers_total: int = 6
    concurrent_chats: int = 4
    """Chats read at once by a pass over Telegram (a Desktop export is always read one chat at a time)."""
    batches_ahead: int = 2
    """Batches of a chat read while earlier ones are still being published."""
    blocking_workers: int = 8
    """Threads of the one executor for blocking work (note writes and fsyncs)."""
    since: Since | None = None
    """How far back a chat's first backfill reaches by date (None: the whole history); ``[[chat]]`` may override."""
    backfill: int = 0
    """At most the last N messages in a chat's first backfill (0: no limit); ``[[chat]]`` may override."""
    comments_recent_posts: int = 20
    """Newest posts of a channel whose comments are synced, read again each pass for new comments."""


@dataclass(frozen=True, slots=True)
class MediaSettings:
    """Which media to store, and size limits per kind (bytes; absent = no limit)."""

    kinds: frozenset[str] = frozenset(MEDIA_KINDS)
    max_bytes: Mapping[str, int] = field(default_factory=dict)
    processors: tuple[str, ...] | None = None
    """Processors to run by name; None = every one that is on by default (not ``reencode``)."""
    processor_workers: int = 2

    def skip_reason(self, kind: str, size: int | None) -> str | None:
        """Why media of this kind and size is not stored, or None to store it."""
        if kind in MEDIA_KINDS and kind not in self.kinds:
            return f"{kind} files are not stored (media.kinds)"
        limit = self.max_bytes.get(kind)
        if limit is not None and size is not None and size > limit:
            return f"larger than {limit / 1e6:g} MB (media.max_mb.{kind})"
        return None


@dataclass(frozen=True, slots=True)
class TemplateLimits:
    """Bounds of one template render (``[templates]``); exceeding one is an error naming the key."""

    max_render_ms: int = 1000
    max_output_chars: int = 1_000_000


@dataclass(frozen=True, slots=True)
class SyncSettings:
    """``[sync]``: the recent window each pass re-reads (reconciliation)."""

    recent_messages: int = 100
    """At most this many of a chat's newest messages; 0 = no reconciliation."""
    recent_days: float = 7
    """None older than this many days; 0 = no age limit."""


@dataclass(frozen=True, slots=True)
class DeletionSettings:
    """``[deletions]``: what a message deleted in Telegram does to its note."""

    policy: str = "mark"
    archive_folder: str = "Telegram/_deleted"
    hold_above: int = 50
    """More deletions than this in one chat at once are held until confirmed."""


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """The long-running agent (``[agent]``)."""

    every_s: float = 1800.0
    """Seconds between the passes over chats that no ``[[chat]]`` table schedules."""



def telegram_settings(table: Mapping[str, Any]) -> TelegramSettings:
    defaults = TelegramSettings()
    values: dict[str, Any] = {}
    if "api_id" in table:
        values["api_id"] = bounded_number("telegram", table, "api_id", int, minimum=0)
    if "api_hash" in table:
        values["api_hash"] = typed_value("telegram", table, "api_hash", str)
    if "session_dir" in table:
        values["session_dir"] = typed_value("telegram", table, "session_dir", str)
    if "takeout" in table:
        values["takeout"] = typed_value("telegram", table, "takeout", bool)
    for key in ("chats", "exclude"):
        if key in table:
            values[key] = parse_selectors(f"telegram.{key}", table[key])
    if "since" in table:
        values["since"] = parse_since("telegram.since", table["since"])
    if "backfill" in table:
        values["backfill"] = parse_backfill("telegram.backfill", table["backfill"])
    for key in ("flood_max_wait_s", "request_timeout_s", "stall_timeout_s"):
        if key in table:
            values[key] = float(bounded_number("telegram", table, key, (int, float), minimum=1))
    for key in ("download_workers_per_dc", "download_workers_total", "concurrent_chats", "batches_ahead",
                "blocking_workers"):
        if key in table:
            values[key] = bounded_number("telegram", table, key, int, minimum=1, maximum=64)
    if "comments_recent_posts" in table:
        values["comments_recent_posts"] = bounded_number("telegram", table, "comments_recent_posts", int, minimum=0,
                                                  maximum=1000)
    return dataclasses.replace(defaults, **values)


def agent_settings(table: Mapping[str, Any]) -> AgentSettings:
    if "every" in table:
        return AgentSettings(every_s=parse_duration("agent.every", table["every"]))
    return AgentSettings()


def media_settings(table: Mapping[str, Any]) -> MediaSettings:
    values: dict[str, Any] = {}
    if "kinds" in table:
        kinds = table["kinds"]
        if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
            raise ConfigError("media.kinds: must be a list of media kinds, like [\"photo\", \"voice\"]")
        for kind in kinds:
            if kind not in MEDIA_KINDS:
                raise ConfigError(f"media.kinds: unknown kind {kind!r}{suggest(kind, MEDIA_KINDS)}")
        values["kinds"] = frozenset(kinds)
    if "max_mb" in table:
        limits = table["max_mb"]
        if not isinstance(limits, dict):
            raise ConfigError("media.max_mb: must be a table, like { video = 200 }")
        max_bytes = {}
        for kind in limits:
            if kind not in MEDIA_KINDS:
                raise ConfigError(f"media.max_mb.{kind}: unknown kind{suggest(kind, MEDIA_KINDS)}")
            number = bounded_number("media.max_mb", limits, kind, (int, float), minimum=0)
            if number:
                max_bytes[kind] = int(number * 1_000_000)
        values["max_bytes"] = max_bytes
    if "processors" in table:
        names = table["processors"]
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise ConfigError('media.processors: must be a list of names, like ["ffprobe", "image", "reencode"]')
        values["processors"] = tuple(names)
    if "processor_workers" in table:
        values["processor_workers"] = bounded_number("media", table, "processor_workers", int, minimum=1, maximum=32)
    return MediaSettings(**values)


def template_limits(table: Mapping[str, Any]) -> TemplateLimits:
    values: dict[str, Any] = {}
    if "max_render_ms" in table:
        values["max_render_ms"] = bounded_number("templates", table, "max_render_ms", int, minimum=1, maximum=600_000)
    if "max_output_chars" in table:
        values["max_output_chars"] = bounded_number(
            "templates", table, "max_output_chars", int, minimum=1000, maximum=100_000_000
        )
    return TemplateLimits(**values)


def sync_settings(table: Mapping[str, Any]) -> SyncSettings:
    values: dict[str, Any] = {}
    if "recent_messages" in table:
        values["recent_messages"] = bounded_number("sync", table, "recent_messages", int, minimum=0, maximum=10_000)
    if "recent_days" in table:
        values["recent_days"] = float(
            bounded_number("sync", table, "recent_days", (int, float), minimum=0, maximum=3650)
        )
    return SyncSettings(**values)


def deletion_settings(table: Mapping[str, Any]) -> DeletionSettings:
    values: dict[str, Any] = {}
    if "policy" in table:
        policy = typed_value("deletions", table, "policy", str)
        if policy not in DELETION_POLICIES:
            raise ConfigError(f"deletions.policy: must be one of {', '.join(DELETION_POLICIES)}, not {policy!r}"
                              f"{suggest(policy, DELETION_POLICIES)}")
        values["policy"] = policy
    if "archive_folder" in table:
        folder = typed_value("deletions", table, "archive_folder", str)
        if not folder.strip("/"):
            raise ConfigError("deletions.archive_folder: must name a folder inside the vault, like 'Telegram/_deleted'")
        check_vault_folder("deletions.archive_folder", folder)
        if folder.split("/")[0] == STATE_DIR:
            raise ConfigError(f"deletions.archive_folder: {folder!r} is inside tobs-sync's own {STATE_DIR} folder")
        values["archive_folder"] = folder.strip("/")
    if "hold_above" in table:
        values["hold_above"] = bounded_number("deletions", table, "hold_above", int, minimum=0)
    return DeletionSettings(**values)


def status_and_metrics(status: Mapping[str, Any], metrics: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if "note" in status:
        note = typed_value("status", status, "note", str)
        if note:
            check_path_template("status.note", note, frozenset())
        values["status_note"] = note
    if "port" in metrics:
        values["metrics_port"] = bounded_number("metrics", metrics, "port", int, minimum=0, maximum=65535)
    return values


