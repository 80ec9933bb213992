"""Logging for the commands: readable or JSON lines, and a rate limit for messages that repeat.

:func:`configure_logging` sets up the root logger once per command: ``verbose`` shows debug logs;
``log_format="json"`` writes one JSON object per line (``time``, ``level``, ``logger``, ``message``,
and ``exception`` when there is one) for machines; otherwise rich formats them for people.
:class:`RateLimit` is a logging filter that lets each message template (a logger and its format
string, so "media of message %s ..." counts as one) through at most ``burst`` times per ``window``
seconds; what it holds back is counted and said once the window reopens ("... 41 similar messages
were not shown"). A pass over a large account logs a warning per failed download or flood wait; the
limit keeps that readable without hiding that it happened.

Limits: the rate limit is per process and per template, not per argument; errors (``ERROR`` and
above) are never held back. Time comes from ``clock`` (monotonic seconds), so tests use a fake one.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from typing import IO

from rich.console import Console
from rich.logging import RichHandler

LOG_FORMATS = ("text", "json")
_HANDLER_NAME = "tobs-sync"


class RateLimit(logging.Filter):
    """At most ``burst`` records per message template every ``window`` seconds (errors always pass)."""

    def __init__(self, *, burst: int = 5, window: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._burst, self._window, self._clock = burst, window, clock
        self._seen: dict[tuple[str, object], tuple[float, int, int]] = {}
        """Per template: when its window opened, records let through in it, records held back."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        key = (record.name, record.msg)
        now = self._clock()
        opened, passed, held = self._seen.get(key, (now, 0, 0))
        if now - opened >= self._window:
            if held:
                record.msg = f"{record.msg} (and {held} similar messages in the last {now - opened:.0f} s not shown)"
            opened, passed, held = now, 0, 0
        if passed < self._burst:
            self._seen[key] = (opened, passed + 1, held)
            return True
        self._seen[key] = (opened, passed, held + 1)
        return False


class JsonLines(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(
    *, verbose: bool = False, log_format: str = "text", stream: IO[str] | None = None,
    rate_limit: RateLimit | None = None,
) -> logging.Handler:
    """Route every log record to one handler on ``stream`` (stderr by default); that handler."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}")
    handler: logging.Handler
    if log_format == "json":
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonLines())
    else:
        console = Console(file=stream, stderr=stream is None, markup=False)
        handler = RichHandler(console=console, show_path=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(rate_limit or RateLimit())
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:  # a command run before, in-process
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    return handler
