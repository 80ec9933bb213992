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
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tobs_sync.errors import ConfigError

STATE_DIR = ".tobs"
CONFIG_NAME = "config.toml"

NOTE_PATH_FIELDS = frozenset({"chat", "chat_id", "date", "year", "month", "day", "time", "id"})
CHAT_NOTE_PATH_FIELDS = frozenset({"chat", "chat_id"})

DEFAULT_CONFIG = """\
# tobs-sync configuration. Every key is optional; the values below are the defaults.

[vault]
# Where each message note goes, relative to the vault. Fields: {chat} (the chat's folder-safe
# title), {chat_id}, {date} (YYYY-MM-DD), {year}, {month}, {day}, {time} (HHMMSS), {id}.
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
"""

_VAULT_KEYS = frozenset(
    {"note_path", "chat_note_path", "attachments", "templates", "timezone", "obsidian_config"}
)
_SECTIONS: Mapping[str, frozenset[str]] = {"vault": _VAULT_KEYS}


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
    settings = dataclasses.replace(Settings(vault_root=vault_root), **values)
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
        if section not in _SECTIONS:
            raise ConfigError(f"{section}: unknown section{_suggest(section, _SECTIONS)}")
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
