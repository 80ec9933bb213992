"""Settings: ``.tobs/config.toml`` inside the vault, parsed into typed, frozen settings.

Every error names the offending key (``vault.note_path: unknown field {chat_name}``) and,
for a misspelt key, the key that was probably meant. There are no module globals: callers load
a :class:`Settings` and pass it on. Limits: only the keys documented in :data:`DEFAULT_CONFIG`
are accepted; an unknown key is an error rather than silently ignored, so a typo never leaves a
setting without effect.
"""

from __future__ import annotations

import dataclasses
import difflib
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tobs_sync.chat_rules import (
    ChatRule,
    Since,
    parse_backfill,
    parse_chat_rules,
    parse_duration,
    parse_selectors,
    parse_since,
)
from tobs_sync.errors import ConfigError

STATE_DIR = ".tobs"
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
_TELEGRAM_KEYS = frozenset(
    {
        "api_id", "api_hash", "session_dir", "chats", "exclude", "takeout", "flood_max_wait_s",
        "request_timeout_s", "stall_timeout_s", "download_workers_per_dc", "download_workers_total",
        "concurrent_chats", "batches_ahead", "blocking_workers", "since", "backfill", "comments_recent_posts",
    }
)
_MEDIA_KEYS = frozenset({"kinds", "max_mb", "processors", "processor_workers"})
_TEMPLATES_KEYS = frozenset({"max_render_ms", "max_output_chars"})
_SYNC_KEYS = frozenset({"recent_messages", "recent_days"})
_DELETIONS_KEYS = frozenset({"policy", "archive_folder", "hold_above"})
_AGENT_KEYS = frozenset({"every"})
_SECTIONS: Mapping[str, frozenset[str]] = {
    "vault": _VAULT_KEYS, "telegram": _TELEGRAM_KEYS, "media": _MEDIA_KEYS, "templates": _TEMPLATES_KEYS,
    "sync": _SYNC_KEYS, "deletions": _DELETIONS_KEYS, "agent": _AGENT_KEYS,
    "status": frozenset({"note"}), "metrics": frozenset({"port"}),
}
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
        telegram=_telegram_settings(data.get("telegram", {})),
        media=_media_settings(data.get("media", {})),
        template_limits=_template_limits(data.get("templates", {})),
        chat_rules=parse_chat_rules(data.get("chat", [])),
        sync=_sync_settings(data.get("sync", {})),
        deletions=_deletion_settings(data.get("deletions", {})),
        **_status_and_metrics(data.get("status", {}), data.get("metrics", {})),
        agent=_agent_settings(data.get("agent", {})),
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


def _telegram_settings(table: Mapping[str, Any]) -> TelegramSettings:
    defaults = TelegramSettings()
    values: dict[str, Any] = {}
    if "api_id" in table:
        values["api_id"] = _number("telegram", table, "api_id", int, minimum=0)
    if "api_hash" in table:
        values["api_hash"] = _typed("telegram", table, "api_hash", str)
    if "session_dir" in table:
        values["session_dir"] = _typed("telegram", table, "session_dir", str)
    if "takeout" in table:
        values["takeout"] = _typed("telegram", table, "takeout", bool)
    for key in ("chats", "exclude"):
        if key in table:
            values[key] = parse_selectors(f"telegram.{key}", table[key])
    if "since" in table:
        values["since"] = parse_since("telegram.since", table["since"])
    if "backfill" in table:
        values["backfill"] = parse_backfill("telegram.backfill", table["backfill"])
    for key in ("flood_max_wait_s", "request_timeout_s", "stall_timeout_s"):
        if key in table:
            values[key] = float(_number("telegram", table, key, (int, float), minimum=1))
    for key in ("download_workers_per_dc", "download_workers_total", "concurrent_chats", "batches_ahead",
                "blocking_workers"):
        if key in table:
            values[key] = _number("telegram", table, key, int, minimum=1, maximum=64)
    if "comments_recent_posts" in table:
        values["comments_recent_posts"] = _number("telegram", table, "comments_recent_posts", int, minimum=0,
                                                  maximum=1000)
    return dataclasses.replace(defaults, **values)


def _agent_settings(table: Mapping[str, Any]) -> AgentSettings:
    if "every" in table:
        return AgentSettings(every_s=parse_duration("agent.every", table["every"]))
    return AgentSettings()


def _media_settings(table: Mapping[str, Any]) -> MediaSettings:
    values: dict[str, Any] = {}
    if "kinds" in table:
        kinds = table["kinds"]
        if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
            raise ConfigError("media.kinds: must be a list of media kinds, like [\"photo\", \"voice\"]")
        for kind in kinds:
            if kind not in MEDIA_KINDS:
                raise ConfigError(f"media.kinds: unknown kind {kind!r}{_suggest(kind, MEDIA_KINDS)}")
        values["kinds"] = frozenset(kinds)
    if "max_mb" in table:
        limits = table["max_mb"]
        if not isinstance(limits, dict):
            raise ConfigError("media.max_mb: must be a table, like { video = 200 }")
        max_bytes = {}
        for kind in limits:
            if kind not in MEDIA_KINDS:
                raise ConfigError(f"media.max_mb.{kind}: unknown kind{_suggest(kind, MEDIA_KINDS)}")
            number = _number("media.max_mb", limits, kind, (int, float), minimum=0)
            if number:
                max_bytes[kind] = int(number * 1_000_000)
        values["max_bytes"] = max_bytes
    if "processors" in table:
        names = table["processors"]
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise ConfigError('media.processors: must be a list of names, like ["ffprobe", "image", "reencode"]')
        values["processors"] = tuple(names)
    if "processor_workers" in table:
        values["processor_workers"] = _number("media", table, "processor_workers", int, minimum=1, maximum=32)
    return MediaSettings(**values)


def _template_limits(table: Mapping[str, Any]) -> TemplateLimits:
    values: dict[str, Any] = {}
    if "max_render_ms" in table:
        values["max_render_ms"] = _number("templates", table, "max_render_ms", int, minimum=1, maximum=600_000)
    if "max_output_chars" in table:
        values["max_output_chars"] = _number(
            "templates", table, "max_output_chars", int, minimum=1000, maximum=100_000_000
        )
    return TemplateLimits(**values)


def _sync_settings(table: Mapping[str, Any]) -> SyncSettings:
    values: dict[str, Any] = {}
    if "recent_messages" in table:
        values["recent_messages"] = _number("sync", table, "recent_messages", int, minimum=0, maximum=10_000)
    if "recent_days" in table:
        values["recent_days"] = float(_number("sync", table, "recent_days", (int, float), minimum=0, maximum=3650))
    return SyncSettings(**values)


def _deletion_settings(table: Mapping[str, Any]) -> DeletionSettings:
    values: dict[str, Any] = {}
    if "policy" in table:
        policy = _typed("deletions", table, "policy", str)
        if policy not in DELETION_POLICIES:
            raise ConfigError(f"deletions.policy: must be one of {', '.join(DELETION_POLICIES)}, not {policy!r}"
                              f"{_suggest(policy, DELETION_POLICIES)}")
        values["policy"] = policy
    if "archive_folder" in table:
        folder = _typed("deletions", table, "archive_folder", str)
        if not folder.strip("/"):
            raise ConfigError("deletions.archive_folder: must name a folder inside the vault, like 'Telegram/_deleted'")
        check_vault_folder("deletions.archive_folder", folder)
        if folder.split("/")[0] == STATE_DIR:
            raise ConfigError(f"deletions.archive_folder: {folder!r} is inside tobs-sync's own {STATE_DIR} folder")
        values["archive_folder"] = folder.strip("/")
    if "hold_above" in table:
        values["hold_above"] = _number("deletions", table, "hold_above", int, minimum=0)
    return DeletionSettings(**values)


def _status_and_metrics(status: Mapping[str, Any], metrics: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if "note" in status:
        note = _typed("status", status, "note", str)
        if note:
            check_path_template("status.note", note, frozenset())
        values["status_note"] = note
    if "port" in metrics:
        values["metrics_port"] = _number("metrics", metrics, "port", int, minimum=0, maximum=65535)
    return values


def _typed(section: str, table: Mapping[str, Any], key: str, kind: type) -> Any:
    value = table[key]
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ConfigError(f"{section}.{key}: must be {_TYPE_NAMES[kind]}, not {type(value).__name__}")
    return value


def _number(
    section: str, table: Mapping[str, Any], key: str, kind: Any, *, minimum: float, maximum: float | None = None
) -> Any:
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{section}.{key}: must be a number, not {type(value).__name__}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"at least {minimum:g}" + (f" and at most {maximum:g}" if maximum is not None else "")
        raise ConfigError(f"{section}.{key}: must be {bound}, not {value}")
    return value


_TYPE_NAMES: Mapping[type, str] = {str: "text", bool: "true or false", int: "a whole number"}


def _check_keys(data: Mapping[str, Any]) -> None:
    for section, value in data.items():
        if section == "chat":
            continue  # an array of tables, checked by parse_chat_rules
        if section not in _SECTIONS:
            raise ConfigError(f"{section}: unknown section{_suggest(section, [*_SECTIONS, 'chat'])}")
        if not isinstance(value, dict):
            raise ConfigError(f"{section}: must be a table ([{section}])")
        for key in value:
            if key not in _SECTIONS[section]:
                raise ConfigError(f"{section}.{key}: unknown key{_suggest(key, _SECTIONS[section])}")


def _suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _string(table: Mapping[str, Any], key: str) -> str:
    value = table[key]
    if not isinstance(value, str):
        raise ConfigError(f"vault.{key}: must be a string, not {type(value).__name__}")
    return value


def check_vault_folder(key: str, folder: str) -> None:
    """A vault-relative POSIX folder: no absolute path, no ``..``, no backslash."""
    parts = folder.strip("/").split("/") if folder.strip("/") else []
    if (folder.startswith("/") and folder != "/") or "\\" in folder or any(p in ("", ".", "..") for p in parts):
        raise ConfigError(f"{key}: {folder!r} must be a folder inside the vault, like 'Telegram/Media'")


def check_path_template(
    key: str, template: str, allowed: frozenset[str], required: frozenset[str] = frozenset()
) -> None:
    """Validate a ``{field}`` path template: known fields only, no format specs, ends in ``.md``."""
    seen: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc} in {template!r}") from exc
    for _literal, field_name, spec, conversion in parsed:
        if field_name is None:
            continue
        if field_name not in allowed:
            raise ConfigError(f"{key}: unknown field {{{field_name}}}; use one of "
                              + ", ".join(f"{{{f}}}" for f in sorted(allowed)))
        if spec or conversion:
            raise ConfigError(f"{key}: {{{field_name}}} takes no format options")
        seen.add(field_name)
    if missing := required - seen:
        raise ConfigError(f"{key}: must contain {{{sorted(missing)[0]}}} so every note gets its own file")
    if not template.endswith(".md"):
        raise ConfigError(f"{key}: must end in .md")
    check_vault_folder(key, template.rsplit("/", 1)[0] if "/" in template else "")
