"""Watching the templates folder and the config file, and turning a burst of events into one call.

The agent watches exactly two places with watchdog (inotify, FSEvents or ReadDirectoryChangesW: the
operating system reports changes, nothing polls): the templates folder, and the state folder for
``config.toml`` and the deletions requests the ``deletions`` command leaves for a running agent
(:mod:`tobs_sync.deletion_requests`) alone. A save is rarely one event: editors write a temp file and rename it over the
original, or truncate and write in several steps. :class:`Debouncer` collects the events of one kind
and calls back once, when none has come for ``quiet_s`` seconds on the event loop's clock (virtual
time in tests). Events arrive on watchdog's thread and are handed to the loop thread-safely.

Only changes count (created, modified, moved, deleted; not a file being opened or read), and only of
files that look like templates: ``*.md`` names, not hidden, not editor backups (``name~``).
Limits: a templates folder that does not exist when watching starts is not watched (the agent
watches it from its next start, or after a config change); a folder replaced as a whole (rather
than its files) may go unnoticed until then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from tobs_sync.config import CONFIG_NAME
from tobs_sync.deletion_requests import is_request_name
from tobs_sync.vault import TEMP_PREFIX

log = logging.getLogger(__name__)

Kind = Literal["templates", "config", "requests"]
QUIET_S = 1.0
"""Seconds without a new event before a change counts as saved."""
CHANGE_EVENTS = frozenset({"created", "modified", "moved", "deleted"})


class Debouncer:
    """Calls ``callback(kind)`` once per burst of :meth:`poke` calls of that kind, ``quiet_s`` after the last."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[Kind], None], quiet_s: float = QUIET_S):
        self._loop = loop
        self._callback = callback
        self._quiet_s = quiet_s
        self._timers: dict[Kind, asyncio.TimerHandle] = {}

    def poke(self, kind: Kind) -> None:
        """An event of ``kind`` (call on the loop's thread)."""
        if (timer := self._timers.pop(kind, None)) is not None:
            timer.cancel()
        self._timers[kind] = self._loop.call_later(self._quiet_s, self._fire, kind)

    def poke_threadsafe(self, kind: Kind) -> None:
        """:meth:`poke` from another thread."""
        with contextlib.suppress(RuntimeError):  # the loop has closed: the agent is gone
            self._loop.call_soon_threadsafe(self.poke, kind)

    def cancel(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def _fire(self, kind: Kind) -> None:
        self._timers.pop(kind, None)
        self._callback(kind)


def template_event(path: str) -> bool:
    """Whether a change of ``path`` (inside the templates folder) can change a template."""
    name = os.path.basename(path)
    return name.endswith(".md") and not name.startswith((".", TEMP_PREFIX))


def config_event(path: str) -> bool:
    return os.path.basename(path) == CONFIG_NAME


def request_event(path: str) -> bool:
    """Whether ``path`` (in the state folder) is a deletions request (its temp file is not)."""
    return is_request_name(os.path.basename(path))


class _Handler(FileSystemEventHandler):
    def __init__(self, kind: Kind, wanted: Callable[[str], bool], notify: Callable[[Kind], None]) -> None:
        self._kind = kind
        self._wanted = wanted
        self._notify = notify

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in CHANGE_EVENTS or event.is_directory:
            return
        paths = [event.src_path, getattr(event, "dest_path", "")]
        if any(path and self._wanted(os.fsdecode(path)) for path in paths):
            self._notify(self._kind)


class Watcher:
    """The watchdog observer of one agent session: ``notify(kind)`` on every relevant change."""

    def __init__(self, templates_dir: Path | None, state_dir: Path, notify: Callable[[Kind], None]) -> None:
        self._observer = Observer()
        self._observer.daemon = True
        if templates_dir is not None and templates_dir.is_dir():
            self._observer.schedule(_Handler("templates", template_event, notify), str(templates_dir), recursive=True)
        else:
            log.info("templates folder %s does not exist: not watched", templates_dir)
        self._observer.schedule(_Handler("config", config_event, notify), str(state_dir), recursive=False)
        self._observer.schedule(_Handler("requests", request_event, notify), str(state_dir), recursive=False)

    def start(self) -> None:
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)
