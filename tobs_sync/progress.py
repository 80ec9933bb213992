"""Progress of a pass for people: live bars on a terminal, one line per chat elsewhere.

:class:`LiveProgress` (on a terminal) shows one bar per chat being read: messages written out of
the number expected when the source can estimate it, media bytes received, the message rate and
the time left; a chat that ends leaves its one-line summary above the bars. :class:`ChatLines`
(not a terminal: a log file, cron, a pipe) prints only that summary line, once per chat and pass,
as text or as a JSON object. Both are :class:`~tobs_sync.observe.SyncObserver` s fed by the engine's
hooks; :func:`progress_for` picks one for a console.

Chat titles come from Telegram: they are shown as plain text (no markup) with control characters
removed, so a title cannot restyle or move the terminal. Limits: the expected count is an estimate
(see :func:`tobs_sync.observe.expected_messages`), so a bar may end short of its total; media
bytes are counted as they arrive, including those of a download that is retried later.
"""

from __future__ import annotations

import json
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from rich.console import Console
from rich.filesize import decimal
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn, TimeRemainingColumn
from rich.text import Text

from tobs_sync.model import Chat
from tobs_sync.observe import SyncObserver


def terminal_text(text: str) -> str:
    """``text`` without control characters (escape sequences, carriage returns, bidi overrides)."""
    return "".join(" " if unicodedata.category(c) in ("Cc", "Cf") and c != "\u200d" else c for c in text)


@dataclass(slots=True)
class _ChatRun:
    chat: Chat
    started: float
    messages: int = 0
    media_bytes: int = 0
    task: TaskID | None = None


def chat_summary(run: _ChatRun, seconds: float, errors: Sequence[str]) -> dict[str, object]:
    return {
        "chat": run.chat.title, "chat_id": run.chat.id, "new": run.messages, "media_bytes": run.media_bytes,
        "seconds": round(seconds, 3), "errors": list(errors),
    }


def summary_line(summary: dict[str, object]) -> str:
    """``Title: 12 new messages, 3.4 MB of media, 2.1 s`` (and its errors)."""
    new = summary["new"]
    line = f"{terminal_text(str(summary['chat']))}: {new} new {'message' if new == 1 else 'messages'}"
    if summary["media_bytes"]:
        line += f", {decimal(int(str(summary['media_bytes'])))} of media"
    line += f", {summary['seconds']:.1f} s"
    errors = summary["errors"]
    if isinstance(errors, list) and errors:
        line += "; " + "; ".join(terminal_text(str(e)) for e in errors)
    return line


class _Runs(SyncObserver):
    """Keeps count per chat of what the hooks report."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._runs: dict[int, _ChatRun] = {}

    def chat_started(self, chat: Chat, expected: int | None) -> None:
        self._runs[chat.id] = _ChatRun(chat, self._clock())

    def batch_published(self, chat: Chat, messages: int) -> None:
        if (run := self._runs.get(chat.id)) is not None:
            run.messages += messages

    def media_bytes(self, chat_id: int, dc_id: int | None, count: int) -> None:
        if (run := self._runs.get(chat_id)) is not None:
            run.media_bytes += count

    def _finish(self, chat: Chat, errors: Sequence[str]) -> tuple[_ChatRun, dict[str, object]] | None:
        run = self._runs.pop(chat.id, None)
        if run is None:
            return None
        return run, chat_summary(run, self._clock() - run.started, errors)


class ChatLines(_Runs):
    """One line per chat and pass (text, or a JSON object with ``json_lines``), when the chat ends."""

    def __init__(self, console: Console, *, json_lines: bool = False, clock: Callable[[], float] = time.monotonic):
        super().__init__(clock)
        self._console, self._json = console, json_lines

    def chat_finished(self, chat: Chat, new: int, errors: Sequence[str]) -> None:
        if (finished := self._finish(chat, errors)) is None:
            return
        summary = finished[1]
        if self._json:
            self._console.print(Text(json.dumps(summary, ensure_ascii=False)), soft_wrap=True)
        else:
            self._console.print(Text(summary_line(summary)), soft_wrap=True)


class _Messages(ProgressColumn):
    def render(self, task: Task) -> Text:
        done = int(task.completed)
        return Text(f"{done}/{int(task.total)} msgs" if task.total is not None else f"{done} msgs")


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.0f} msg/s" if task.speed else "")


class _Media(ProgressColumn):
    def render(self, task: Task) -> Text:
        count = task.fields.get("media_bytes", 0)
        return Text(f"{decimal(count)} media" if count else "")


class LiveProgress(_Runs):
    """A bar per chat being read (a terminal); use as a context manager around the pass."""

    def __init__(
        self, console: Console, *, clock: Callable[[], float] = time.monotonic, auto_refresh: bool = True
    ) -> None:
        """``auto_refresh``: redraw several times a second from a thread (off: on :meth:`refresh` only)."""
        super().__init__(clock)
        self.progress = Progress(
            TextColumn("{task.description}", markup=False), BarColumn(), _Messages(), _Media(), _Rate(),
            TimeRemainingColumn(), console=console, get_time=clock, transient=True, auto_refresh=auto_refresh,
        )

    def refresh(self) -> None:
        self.progress.refresh()

    def __enter__(self) -> Self:
        self.progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.progress.stop()

    def chat_started(self, chat: Chat, expected: int | None) -> None:
        super().chat_started(chat, expected)
        self._runs[chat.id].task = self.progress.add_task(terminal_text(chat.title), total=expected, media_bytes=0)

    def batch_published(self, chat: Chat, messages: int) -> None:
        super().batch_published(chat, messages)
        if (run := self._runs.get(chat.id)) is not None and run.task is not None:
            self.progress.update(run.task, advance=messages)

    def media_bytes(self, chat_id: int, dc_id: int | None, count: int) -> None:
        super().media_bytes(chat_id, dc_id, count)
        if (run := self._runs.get(chat_id)) is not None and run.task is not None:
            self.progress.update(run.task, media_bytes=run.media_bytes)

    def chat_finished(self, chat: Chat, new: int, errors: Sequence[str]) -> None:
        if (finished := self._finish(chat, errors)) is None:
            return
        run, summary = finished
        if run.task is not None:
            self.progress.remove_task(run.task)
        self.progress.console.print(Text(summary_line(summary)), soft_wrap=True)


def progress_for(console: Console, *, json_lines: bool = False) -> LiveProgress | ChatLines:
    """Bars on a terminal (unless JSON is wanted), else one line per chat."""
    if console.is_terminal and not json_lines:
        return LiveProgress(console)
    return ChatLines(console, json_lines=json_lines)
