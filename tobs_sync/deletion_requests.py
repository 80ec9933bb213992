"""Decisions on held deletions left for the running agent: one small request file per chat.

``tobs-sync deletions --confirm/--discard CHAT_ID`` acts at once when it can take the vault lock.
While the agent (``tobs-sync run``) holds the lock for its life, the command instead checks the
decision (the chat must have held deletions) and leaves it as a request in the state folder,
``deletions-request.<chat id>.json``, written atomically (temp file, fsync, rename). The agent
watches the state folder: it applies a request under its work lock (:func:`apply_decision`, the
same code the command runs), records it as a pass, and removes the file. Requests still there when
no agent runs (the agent stopped before it got to them) are applied by the agent when it starts,
and by the ``deletions`` command when it next holds the lock.

Limits: one decision per chat; a later one replaces an earlier one not yet applied. A decision
covers every deletion of the chat that is held when it is applied. An agent waiting for broken
templates to be fixed applies requests after the fix, like the rest of its work. A file that is not a valid
request is logged and left alone (never applied, never removed).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from tobs_sync.sync import SyncReport
from tobs_sync.vault import TEMP_PREFIX

if TYPE_CHECKING:
    from tobs_sync.app import App

log = logging.getLogger(__name__)

Decision = Literal["confirm", "discard"]
DECISIONS: tuple[Decision, ...] = ("confirm", "discard")
REQUEST_PREFIX = "deletions-request."
REQUEST_SUFFIX = ".json"


@dataclass(frozen=True, slots=True)
class DeletionRequest:
    """A decision left in the state folder, as read (``raw``: the file's bytes, to remove only this one)."""

    chat_id: int
    decision: Decision
    requested_at: str
    path: Path
    raw: bytes


def request_path(state_dir: Path, chat_id: int) -> Path:
    return state_dir / f"{REQUEST_PREFIX}{chat_id}{REQUEST_SUFFIX}"


def is_request_name(name: str) -> bool:
    """Whether a file of the state folder named ``name`` is a request (what the agent's watcher looks for)."""
    return name.startswith(REQUEST_PREFIX) and name.endswith(REQUEST_SUFFIX)


def leave_request(state_dir: Path, chat_id: int, decision: Decision, now: dt.datetime) -> Path:
    """Write the request for ``chat_id`` atomically (replacing one not yet applied); its path."""
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {DECISIONS}, not {decision!r}")
    target = request_path(state_dir, chat_id)
    data = json.dumps({"chat_id": chat_id, "decision": decision, "requested_at": now.isoformat(),
                       "pid": os.getpid()}).encode()
    temp = state_dir / f"{TEMP_PREFIX}{target.name}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, target)
    with contextlib.suppress(OSError):  # the rename itself durable (POSIX; not possible on Windows)
        folder = os.open(state_dir, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    return target


def read_request(path: Path) -> DeletionRequest | None:
    """The request in ``path``, or None (gone, or not a valid request: logged)."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    try:
        data = json.loads(raw)
        chat_id, decision = data["chat_id"], data["decision"]
        if type(chat_id) is not int or decision not in DECISIONS or path != request_path(path.parent, chat_id):
            raise ValueError("chat_id or decision not as expected")
        return DeletionRequest(chat_id, decision, str(data.get("requested_at", "")), path, raw)
    except (ValueError, TypeError, KeyError) as error:
        log.warning("%s is not a valid deletions request, left alone: %s", path, error)
        return None


def pending_requests(state_dir: Path) -> list[DeletionRequest]:
    """The requests waiting in ``state_dir``, by file name."""
    try:
        names = sorted(entry.name for entry in os.scandir(state_dir) if is_request_name(entry.name))
    except OSError:
        return []
    return [request for name in names if (request := read_request(state_dir / name)) is not None]


def remove_request(request: DeletionRequest) -> None:
    """Remove the request once applied, unless it was replaced by a new decision in the meantime."""
    with contextlib.suppress(OSError):
        if request.path.read_bytes() == request.raw:
            request.path.unlink()


def forget_request(state_dir: Path, chat_id: int) -> None:
    """Remove any request for ``chat_id`` (a decision taken at once supersedes it)."""
    with contextlib.suppress(FileNotFoundError):
        request_path(state_dir, chat_id).unlink()


async def apply_decision(app: App, chat_id: int, decision: Decision) -> tuple[SyncReport, int]:
    """Confirm (apply by policy) or discard the held deletions of ``chat_id``; the report and how many."""
    if decision == "confirm":
        report = await app.synchronizer.confirm_deletions(chat_id)
        return report, report.per_chat[chat_id].deleted if chat_id in report.per_chat else 0
    return SyncReport(), app.synchronizer.changes.discard(chat_id)
