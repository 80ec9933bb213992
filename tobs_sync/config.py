"""Settings: ``.tobs/config.toml`` inside the vault, parsed into typed, frozen settings.

Every error names the offending key (``vault.note_path: unknown field {chat_name}``) and,
for a misspelt key, the key that was probably meant. There are no module globals: callers load
a :class:`Settings` and pass it on. Limits: only the keys documented in :data:`DEFAULT_CONFIG`
are accepted; an unknown key is an error rather than silently ignored, so a typo never leaves a
setting without effect. This module reads the file, checks the sections and ``[vault]``; the
other sections' settings and parsers are in :mod:`tobs_sync.config_sections`, the value checks
they share in :mod:`tobs_sync.config_values` (both re-exported here where callers use them).
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tobs_sync.chat_rules import ChatRule, parse_chat_rules
from tobs_sync.config_sections import (
    AGENT_KEYS,
    DEFAULT_STATUS_NOTE,
    DELETIONS_KEYS,
    MEDIA_KEYS,
    SYNC_KEYS,
    TELEGRAM_KEYS,
    TEMPLATES_KEYS,
    AgentSettings,
    DeletionSettings,
    MediaSettings,
    SyncSettings,
    TelegramSettings,
    TemplateLimits,
    agent_settings,
    deletion_settings,
    media_settings,
    status_and_metrics,
    sync_settings,
    telegram_settings,
    template_limits,
)
from tobs_sync.config_values import STATE_DIR, check_path_template, check_vault_folder, suggest
from tobs_sync.errors import ConfigError

CONFIG_NAME = "config.toml"

NOTE_PATH_FIELDS = frozenset({"chat", "chat_id", "topic", "date", "year", "month", "day", "time", "id"})
CHAT_NOTE_PATH_FIELDS = frozenset({"chat", "chat_id"})

DEFAULT_CONFIG = """\
# tobs-sync configuration. Every key is optional; the values below are the defaults.

[vault]
# Where each message note goes, relative to the vault. Fields: {chat} (the chat's folder-safe
# title), {chat_id}, {topic} (a forum topic's title; "General" outside topics), {date}
# (YYYY-MM-DD), {year}, {month}, {day}, {time} (HHMMSS), {id}.
# Applies to notes written from now on; existing notes keep their path.
note_path = "Telegram/{chat}/{date} {id}.md"
# The chat's index note (properties, recent messages). Fields: {chat}, {chat_id}.
chat_note_path = "Telegram/{chat}/{chat}.md"
# Attachment folder: "" follows Obsidian's own setting (.obsidian/app.json attachmentFolderPath),
# "/" is the vault root, "Some/Folder" a vault folder, "./" the note's folder, "./sub" a
# subfolder of the note's folder.
attachments = ""
# Folder (inside the vault) whose templates override the built-in ones.
templates = "Telegram/_templates"
# IANA time zone for note dates and for old exports without unix times; "" = this computer's.
timezone = ""
# Obsidian's configuration folder (change it only if you renamed it in Obsidian).
obsidian_config = ".obsidian"

[telegram]
# From https://my.telegram.org; better given as the environment variables TOBS_API_ID and
# TOBS_API_HASH, which take precedence. Never printed or logged.
api_id = 0
api_hash = ""
# Folder for the login session (a full credential: kept outside the vault, 0700/0600).
# "" = the user's config folder (~/.config/tobs-sync/sessions on Linux).
session_dir = ""
# Which chats to sync: "all", "channels", "groups", "users", "bots", "saved", a numeric id,
# "@username", or "title:Pattern*" (shell-style, case-insensitive).
chats = ["all"]
exclude = []
# Use a takeout session for the first backfill of a chat (lower flood limits; Telegram may ask
# you to confirm it in another app first).
takeout = false
# A flood wait longer than this defers the chat to the next pass instead of sleeping.
flood_max_wait_s = 300
# Deadline of one request, and of one media chunk (a stalled connection is retried).
request_timeout_s = 60
stall_timeout_s = 60
# Parallel downloads per Telegram data centre, and in total.
download_workers_per_dc = 2
download_workers_total = 6
# Chats read at once in a pass (within Telegram's flood limits), and batches of one chat read
# while earlier ones are still being written (bounds the memory a pass holds).
concurrent_chats = 4
batches_ahead = 2
# Threads for blocking work (writing and fsyncing notes).
blocking_workers = 8
# How far back a chat's first backfill reaches (per chat: since / backfill in [[chat]] tables).
# since: a date ("2024-01-31") or a span ("30d", "2w", "1y"); "" = the whole history.
# backfill: at most the last N messages; 0 = no limit. When both are set, the tighter one wins
# (the later start). Widening either later fetches the older messages once; narrowing deletes
# nothing. A Desktop export import is not bounded (you chose what to export).
since = ""
backfill = 0
# Channels whose comments are synced ([[chat]] comments = true): how many of their newest posts
# are read again on every pass to find comments added since (0 = only posts new in the pass).
comments_recent_posts = 20

[media]
# Media kinds to store; others are listed in the note as skipped.
kinds = ["photo", "video", "animation", "voice", "audio", "video_note", "sticker", "document"]
# Largest file to store per kind, in MB (0 or absent = no limit), e.g. { video = 200 }.
max_mb = {}
# Media processors that add properties (duration, width, height, fps, codec): by default every
# built-in but "reencode" (re-encodes videos to H.264 to save space; needs ffmpeg). To turn it on:
# processors = ["ffprobe", "audio", "image", "reencode"]
# Threads shared by all processors.
processor_workers = 2

[templates]
# Bounds of one note's render, so a template cannot hang or exhaust memory. A render taking
# longer than this many milliseconds stops with an error naming the template and line.
max_render_ms = 1000
# The most characters (and list items) one render may produce in all: the note, and every text
# or list the template makes on the way.
max_output_chars = 1000000

[sync]
# Reconciliation: each pass re-reads a chat's newest messages (at most recent_messages, none
# older than recent_days) and compares them with what it stored, so edits and deletions Telegram
# did not report (while tobs-sync was stopped or disconnected) still reach the notes.
# recent_messages = 0 turns it off; recent_days = 0 drops the age limit.
recent_messages = 100
recent_days = 7

[deletions]
# What a message deleted in Telegram does to its note: "mark" (a `deleted` property and a line
# in the note), "keep" (recorded only, the note unchanged), "archive" (marked and moved into
# archive_folder), "remove" (the note deleted; a note you edited is marked instead).
policy = "mark"
archive_folder = "Telegram/_deleted"
# More deletions than this in one chat at once (a cleared chat, a wiped account) are held, not
# applied, until you confirm them: tobs-sync deletions --vault V [--confirm CHAT_ID | --discard CHAT_ID]
hold_above = 50

[status]
# A note in the vault listing the recent passes that brought or changed something, with their
# counts, and every problem (errors, deferred or failed chats, conflicts, held deletions, skipped
# messages). Rewritten only when its content changes; your text outside its %% tobs %% markers is
# kept. "" = no status note.
note = "Telegram/tobs-sync status.md"

[metrics]
# Serve Prometheus metrics (messages, notes, media bytes, flood waits, errors, pass durations,
# queue depths) on http://127.0.0.1:PORT/metrics while a command or the agent runs; 0 = off.
# Only this computer can connect (127.0.0.1).
port = 0

[agent]
# How often the agent (tobs-sync run) runs a pass over the chats no [[chat]] table schedules:
# seconds, minutes, hours or days ("90s", "15m", "1h30m", "2d"). New messages of a connected
# account arrive as they are sent; this pass also catches what live updates cannot bring.
every = "30m"

# Per-chat settings: each [[chat]] table selects chats (the selectors of telegram.chats) and sets
# some of: every / cron (how often the agent runs a pass), since / backfill (how far back a
# chat's first backfill reaches), comments (channel posts' comments). For each key the first
# table that selects a chat and sets the key wins. For example:
# [[chat]]
# select = ["saved"]
# every = "1m"
# [[chat]]
# select = ["title:Archive*"]
# cron = "0 3 * * *"
"""

_VAULT_KEYS = frozenset(
    {"note_path", "chat_note_path", "attachments", "templates", "timezone", "obsidian_config"}
)
_SECTIONS: Mapping[str, frozenset[str]] = {
    "vault": _VAULT_KEYS, "telegram": TELEGRAM_KEYS, "media": MEDIA_KEYS, "templates": TEMPLATES_KEYS,
    "sync": SYNC_KEYS, "deletions": DELETIONS_KEYS, "agent": AGENT_KEYS,
    "status": frozenset({"note"}), "metrics": frozenset({"port"}),
}


@dataclass(frozen=True, slots=True)
class Settings:
    """Validated settings of one vault."""

    vault_root: Path
    note_path: str = "Telegram/{chat}/{date} {id}.md"
    chat_note_path: str = "Telegram/{chat}/{chat}.md"
    attachments: str = ""
    templates: str = "Telegram/_templates"
    timezone_name: str = ""
    obsidian_config: str = ".obsidian"
    telegram: TelegramSettings = field(default_factory=TelegramSettings)
    media: MediaSettings = field(default_factory=MediaSettings)
    template_limits: TemplateLimits = field(default_factory=TemplateLimits)
    chat_rules: tuple[ChatRule, ...] = ()
    """The ``[[chat]]`` tables: per-chat values (see :mod:`tobs_sync.chat_rules`)."""
    sync: SyncSettings = field(default_factory=SyncSettings)
    deletions: DeletionSettings = field(default_factory=DeletionSettings)
    status_note: str = DEFAULT_STATUS_NOTE
    """``[status] note``: the vault path of the status note ("" = none)."""
    metrics_port: int = 0
    """``[metrics] port``: the Prometheus endpoint's port on 127.0.0.1 (0 = off)."""
    agent: AgentSettings = field(default_factory=AgentSettings)

    @property
    def state_dir(self) -> Path:
        return self.vault_root / STATE_DIR

    @property
    def config_path(self) -> Path:
        return self.state_dir / CONFIG_NAME

    @property
    def database_path(self) -> Path:
        return self.state_dir / "state.db"

    @property
    def timezone(self) -> tzinfo:
        return resolve_timezone(self.timezone_name)


def resolve_timezone(name: str) -> tzinfo:
    """An IANA zone by name, or this computer's local zone for ``""``."""
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"vault.timezone: unknown time zone {name!r}") from exc
    from datetime import datetime

    return datetime.now().astimezone().tzinfo or ZoneInfo("UTC")


def load_settings(vault_root: Path) -> Settings:
    """Read ``.tobs/config.toml`` of ``vault_root`` (defaults when it does not exist)."""
    root = vault_root.resolve()
    if not root.is_dir():
        raise ConfigError(f"vault: {vault_root} is not a folder")
    path = root / STATE_DIR / CONFIG_NAME
    if not path.exists():
        return Settings(vault_root=root)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    return settings_from_mapping(root, data)


def settings_from_mapping(vault_root: Path, data: Mapping[str, Any]) -> Settings:
    """Validate parsed TOML into :class:`Settings`; errors name the key."""
    _check_keys(data)
    vault = data.get("vault", {})
    values = {key: _string(vault, key) for key in _VAULT_KEYS if key in vault}
    if "timezone" in values:
        values["timezone_name"] = values.pop("timezone")
    settings = dataclasses.replace(
        Settings(vault_root=vault_root),
        **values,
        telegram=telegram_settings(data.get("telegram", {})),
        media=media_settings(data.get("media", {})),
        template_limits=template_limits(data.get("templates", {})),
        chat_rules=parse_chat_rules(data.get("chat", [])),
        sync=sync_settings(data.get("sync", {})),
        deletions=deletion_settings(data.get("deletions", {})),
        **status_and_metrics(data.get("status", {}), data.get("metrics", {})),
        agent=agent_settings(data.get("agent", {})),
    )
    check_path_template("vault.note_path", settings.note_path, NOTE_PATH_FIELDS, required=frozenset({"id"}))
    check_path_template("vault.chat_note_path", settings.chat_note_path, CHAT_NOTE_PATH_FIELDS)
    check_vault_folder("vault.templates", settings.templates)
    check_vault_folder("vault.obsidian_config", settings.obsidian_config)
    if not settings.obsidian_config.startswith("."):
        raise ConfigError("vault.obsidian_config: Obsidian's config folder name starts with a dot")
    if settings.attachments not in ("", "/", "./"):
        check_vault_folder("vault.attachments", settings.attachments.removeprefix("./"))
    resolve_timezone(settings.timezone_name)
    return settings


def _check_keys(data: Mapping[str, Any]) -> None:
    for section, value in data.items():
        if section == "chat":
            continue  # an array of tables, checked by parse_chat_rules
        if section not in _SECTIONS:
            raise ConfigError(f"{section}: unknown section{suggest(section, [*_SECTIONS, 'chat'])}")
        if not isinstance(value, dict):
            raise ConfigError(f"{section}: must be a table ([{section}])")
        for key in value:
            if key not in _SECTIONS[section]:
                raise ConfigError(f"{section}.{key}: unknown key{suggest(key, _SECTIONS[section])}")


def _string(table: Mapping[str, Any], key: str) -> str:
    value = table[key]
    if not isinstance(value, str):
        raise ConfigError(f"vault.{key}: must be a string, not {type(value).__name__}")
    return value
