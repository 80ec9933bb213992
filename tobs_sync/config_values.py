"""Checks shared by the config sections: typed values, bounded numbers, vault folders and path templates.

Each check raises :class:`~tobs_sync.errors.ConfigError` naming the key (``section.key``) and, where a
word was misspelt, the word that was probably meant (:func:`suggest`). Limits: these check single
values only; which keys a section accepts and what they mean is :mod:`tobs_sync.config_sections`' and
:mod:`tobs_sync.config`'s.
"""

from __future__ import annotations

import difflib
import string
from collections.abc import Mapping
from typing import Any

from tobs_sync.errors import ConfigError

STATE_DIR = ".tobs"
"""tobs-sync's own folder inside the vault (config, state database, backups)."""


def typed_value(section: str, table: Mapping[str, Any], key: str, kind: type) -> Any:
    value = table[key]
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ConfigError(f"{section}.{key}: must be {_TYPE_NAMES[kind]}, not {type(value).__name__}")
    return value


def bounded_number(
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


def suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""



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
