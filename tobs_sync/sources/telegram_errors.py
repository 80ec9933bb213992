"""What Telegram's answers mean to the Telethon source: which errors say "wait", which say "try
again", which say "fetch the message again", and whether a refreshed file is still the same file.

Limits: the classes are Telethon 1.45's (``telethon.errors``); ``CdnRedirect`` is Telethon's private
``_CdnRedirect`` (``iter_download`` raises it for ``upload.fileCdnRedirect``, which Telethon can only
follow inside ``download_media``), checked by a contract test.
"""

from __future__ import annotations

from typing import Any

from telethon import errors, types
from telethon.client.downloads import _CdnRedirect as CdnRedirect

from tobs_sync.model import MediaRef

__all__ = ["FILE_REFERENCE_ERRORS", "FLOOD_ERRORS", "TRANSIENT_ERRORS", "CdnRedirect", "needs_fresh_reference",
           "same_file"]

FLOOD_ERRORS = (errors.FloodWaitError, errors.FloodPremiumWaitError)
"""Telegram's "wait, then repeat" answers. ``FloodPremiumWaitError`` (the download speed limit of
non-Premium accounts) is a sibling of ``FloodWaitError`` in Telethon, not a subclass."""
TRANSIENT_ERRORS = (TimeoutError, ConnectionError, errors.ServerError, errors.TimedOutError)
"""Failures worth repeating after a pause."""
FILE_REFERENCE_ERRORS = (
    errors.FileReferenceExpiredError, errors.FileReferenceInvalidError, errors.FileReferenceEmptyError,
    errors.FilerefUpgradeNeededError,
)


def needs_fresh_reference(error: BaseException) -> bool:
    """Whether Telegram asks for the message to be fetched again: every ``FILE_REFERENCE_*`` error
    (Telethon names three of them; newer ones arrive as plain ``RPCError`` with that message)."""
    if isinstance(error, FILE_REFERENCE_ERRORS):
        return True
    message = getattr(error, "message", None)
    return isinstance(error, errors.RPCError) and isinstance(message, str) and message.startswith("FILE_REFERENCE_")


def same_file(media: MediaRef, file: Any) -> bool:
    """Whether the TL ``Photo``/``Document`` ``file`` is the file ``media`` was made from (id and size)."""
    kind = "photo" if isinstance(file, types.Photo) else "document"
    if media.file_key is not None and media.file_key != f"{kind}:{file.id}":
        return False
    size = getattr(file, "size", None)  # documents; a photo's sizes never change under one id
    return size is None or media.size is None or size == media.size
