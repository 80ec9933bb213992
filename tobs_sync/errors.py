"""The one exception tree of tobs-sync.

Every error a user can cause (bad config, bad export, bad template, a vault path that escapes)
is a :class:`TobsError` whose message names what was wrong and where; the CLI prints it
without a traceback. Anything else is a bug.
"""

from __future__ import annotations


class TobsError(Exception):
    """Base of every error tobs-sync raises on purpose."""


class ConfigError(TobsError):
    """The configuration is invalid; the message names the key."""


class SourceError(TobsError):
    """A message source failed (unreadable export, Telegram error)."""


class ExportFormatError(SourceError):
    """A Telegram Desktop export is malformed; the message names the file and position."""


class ChatDeferred(SourceError):
    """A chat cannot be synced now (a long flood wait, a stalled connection); the next pass retries it."""


class MediaUnavailable(SourceError):
    """A media file cannot be fetched from the source (not exported, deleted, too large)."""


class MediaChanged(SourceError):
    """The file behind a media reference changed while it downloaded (the message's media was
    replaced): the bytes received so far belong to another file, so the download must start over."""


class FloodWait(SourceError):
    """Telegram asked us to wait ``seconds`` before repeating a request."""

    def __init__(self, seconds: float, what: str) -> None:
        super().__init__(f"Telegram asks to wait {seconds:g} s before {what}")
        self.seconds = seconds


class StoreError(TobsError):
    """The state database is unusable (newer schema, corrupt file)."""


class TemplateError(TobsError):
    """A template failed to compile or render; the message names the file and line."""


class TemplateLimitExceeded(TemplateError):
    """A render went past a bound of ``[templates]`` (time, size); the message names the key."""


class VaultError(TobsError):
    """A vault write was refused (path outside the vault, symlink, not a directory)."""
