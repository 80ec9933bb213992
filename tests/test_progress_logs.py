"""Progress and logs: bars on a terminal, a line per chat elsewhere, JSON logs, a rate limit, ``-v`` anywhere."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import SAMPLE_EXPORT
from rich.console import Console

from tobs_sync.app import App, sync_telegram
from tobs_sync.cli import build_parser, main
from tobs_sync.logs import RateLimit, configure_logging
from tobs_sync.model import Chat, ChatKind, MediaKind, Message
from tobs_sync.observe import SyncObserver
from tobs_sync.progress import ChatLines, LiveProgress, progress_for
from tobs_sync.sources.memory import MemorySource

NEWS = Chat(-1001234, "News", ChatKind.CHANNEL.value)
FRIEND = Chat(4242, "Friend", ChatKind.USER.value)
START = 1_700_000_000


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder(SyncObserver):
    """Every hook call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def chat_started(self, chat: Chat, expected: int | None) -> None:
        self.calls.append(("chat_started", chat.id, expected))

    def batch_published(self, chat: Chat, messages: int) -> None:
        self.calls.append(("batch", chat.id, messages))

    def media_bytes(self, chat_id: int, dc_id: int | None, count: int) -> None:
        self.calls.append(("media_bytes", chat_id, count))

    def chat_finished(self, chat: Chat, new: int, errors: Sequence[str]) -> None:
        self.calls.append(("chat_finished", chat.id, new, tuple(errors)))

    def queue_depth(self, queue: str, depth: int) -> None:
        self.calls.append(("queue", queue, depth))


class CountingSource(MemorySource):
    """A memory source that, like Telegram's dialog list, knows each chat's newest message id."""

    def newest_message_id(self, chat: Chat) -> int | None:
        messages = self.messages(chat.id)
        return messages[-1].id if messages else None


def terminal(width: int = 150) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=width, color_system=None, legacy_windows=False), out


def plain() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=False, width=150), out


# --- the engine's hooks -------------------------------------------------------------------


def test_the_engine_reports_expected_totals_batches_and_media_bytes_per_chat(vault: Path) -> None:
    source = CountingSource([NEWS], batch_size=2)
    files = [source.add_file(bytes([n]) * (1000 + n), kind=MediaKind.DOCUMENT.value, file_name=f"{n}.bin")
             for n in range(2)]
    for message_id in range(1, 6):
        media = (files[message_id % 2],) if message_id <= 2 else ()
        source.add_message(Message(NEWS.id, message_id, START + message_id, text=f"m{message_id}", media=media))
    recorder = Recorder()

    async def run() -> None:
        with App.open(vault) as app:
            app.watch(recorder)
            async with source:
                await app.sync_source(source)

    asyncio.run(run())
    calls = recorder.calls
    assert calls[0] == ("chat_started", NEWS.id, 5)
    assert [c[2] for c in calls if c[0] == "batch"] == [2, 2, 1]
    assert sum(c[2] for c in calls if c[0] == "media_bytes") == 1000 + 1001
    assert calls[-1] == ("chat_finished", NEWS.id, 5, ())
    assert ("queue", "publish", 0) in calls
    downloads = [c[2] for c in calls if c[:2] == ("queue", "downloads")]
    assert max(downloads) == 2 and downloads[-1] == 0, "the first batch's two files under way at once, then none"


def test_a_source_that_cannot_estimate_gives_no_total(vault: Path) -> None:
    source = MemorySource([NEWS])
    source.add_message(Message(NEWS.id, 1, START, text="x"))
    recorder = Recorder()

    async def run() -> None:
        with App.open(vault) as app:
            app.watch(recorder)
            async with source:
                await app.sync_source(source)

    asyncio.run(run())
    assert recorder.calls[0] == ("chat_started", NEWS.id, None)


# --- progress ----------------------------------------------------------------------------


def test_on_a_terminal_each_chat_has_a_bar_with_messages_media_rate_and_time_left() -> None:
    console, out = terminal()
    clock = FakeClock()
    with LiveProgress(console, clock=clock, auto_refresh=False) as progress:
        progress.chat_started(NEWS, 200)
        progress.batch_published(NEWS, 50)
        progress.media_bytes(NEWS.id, 2, 3_400_000)
        clock.now += 10
        progress.batch_published(NEWS, 50)
        progress.refresh()
        shown = out.getvalue()
        assert "News" in shown
        assert "100/200 msgs" in shown
        assert "3.4 MB media" in shown
        assert "5 msg/s" in shown
        assert "0:00:20" in shown  # time left: 100 messages more at 5 a second
        progress.chat_finished(NEWS, 100, [])
        assert "News: 100 new messages, 3.4 MB of media, 10.0 s" in out.getvalue()
        assert progress.progress.tasks == [], "a finished chat's bar goes away"


def test_without_a_terminal_a_pass_prints_one_line_per_chat(vault: Path, capsys: Any) -> None:
    assert main(["import", str(SAMPLE_EXPORT), "--vault", str(vault)]) == 0
    lines = capsys.readouterr().out.splitlines()
    per_chat = [line for line in lines if line.endswith(" s")]
    assert [line.rsplit(", ", 1)[0] for line in per_chat] == [
        "Field Notes: 7 new messages, 311 bytes of media",
        "Allotment Crew: 8 new messages, 704 bytes of media",  # a sticker of 580 bytes among them
        "Sam Gardner: 3 new messages",
    ]
    assert not any("\x1b[" in line for line in lines), "no terminal codes when not on a terminal"


def test_progress_for_picks_bars_on_a_terminal_and_lines_elsewhere() -> None:
    assert isinstance(progress_for(terminal()[0]), LiveProgress)
    assert isinstance(progress_for(plain()[0]), ChatLines)
    assert isinstance(progress_for(terminal()[0], json_lines=True), ChatLines)


def test_a_chat_title_cannot_move_or_restyle_the_terminal() -> None:
    console, out = plain()
    lines = ChatLines(console, clock=FakeClock())
    evil = Chat(1, "Evil\x1b[2J\x1b]0;pwn\x07\r[bold]x[/bold]\u202e", ChatKind.USER.value)
    lines.chat_started(evil, None)
    lines.chat_finished(evil, 0, ["bad\x1b[31m"])
    text = out.getvalue()
    assert "\x1b" not in text and "\r" not in text and "\u202e" not in text
    assert "[bold]x[/bold]" in text


def test_json_lines_give_one_object_per_chat() -> None:
    console, out = plain()
    clock = FakeClock()
    lines = ChatLines(console, json_lines=True, clock=clock)
    lines.chat_started(NEWS, 10)
    lines.batch_published(NEWS, 10)
    lines.media_bytes(NEWS.id, 1, 500)
    clock.now += 2
    lines.chat_finished(NEWS, 10, [])
    (line,) = out.getvalue().splitlines()
    assert json.loads(line) == {"chat": "News", "chat_id": NEWS.id, "new": 10, "media_bytes": 500, "seconds": 2.0,
                                "errors": []}


# --- logs --------------------------------------------------------------------------------


def test_the_rate_limit_holds_back_repeats_and_then_says_how_many() -> None:
    clock = FakeClock()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RateLimit(burst=3, window=10, clock=clock))
    logger = logging.getLogger("tobs_sync.test_rate_limit")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for n in range(20):
            logger.warning("media of message %s failed", n)
        logger.warning("another message")
        logger.error("an error %s", 1)
        logger.error("an error %s", 2)
        logger.error("an error %s", 3)
        logger.error("an error %s", 4)
        clock.now += 10
        logger.warning("media of message %s failed", 99)
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines[:3] == [f"media of message {n} failed" for n in range(3)]
    assert "another message" in lines
    assert [line for line in lines if line.startswith("an error")] == [f"an error {n}" for n in range(1, 5)]
    assert lines[-1] == "media of message 99 failed (and 17 similar messages in the last 10 s not shown)"


def test_json_log_format_writes_one_object_per_line() -> None:
    stream = io.StringIO()
    handler = configure_logging(log_format="json", stream=stream)
    try:
        logging.getLogger("tobs_sync.test").warning("chat %r deferred", "News")
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("tobs_sync.test").exception("it failed")
    finally:
        logging.getLogger().removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{"))
    assert (first["level"], first["logger"], first["message"]) == ("warning", "tobs_sync.test", "chat 'News' deferred")
    assert "T" in first["time"]
    assert second["message"] == "it failed" and "ValueError: boom" in second["exception"]


@pytest.mark.parametrize("command", [
    ["init", "V"], ["import", "E", "--vault", "V"], ["sync", "--vault", "V"], ["login", "--vault", "V"],
    ["render", "--vault", "V"], ["status", "--vault", "V"],
])
def test_verbose_and_log_format_are_accepted_before_or_after_every_command(command: list[str]) -> None:
    parser = build_parser()
    before = parser.parse_args(["-v", "--log-format", "json", *command])
    after = parser.parse_args([*command, "--verbose", "--log-format", "json"])
    neither = parser.parse_args(command)
    assert (before.verbose, before.log_format) == (True, "json")
    assert (after.verbose, after.log_format) == (True, "json")
    assert (neither.verbose, neither.log_format) == (False, "text")


def test_the_log_format_of_a_pass_makes_its_chat_lines_json(vault: Path, capsys: Any) -> None:
    assert main(["import", str(SAMPLE_EXPORT), "--vault", str(vault), "--log-format", "json"]) == 0
    objects = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [(o["chat"], o["new"], o["media_bytes"]) for o in objects] == [
        ("Field Notes", 7, 311), ("Allotment Crew", 8, 704), ("Sam Gardner", 3, 0)]
    assert all(set(o) == {"chat", "chat_id", "new", "media_bytes", "seconds", "errors"} for o in objects)


def test_the_telegram_source_estimates_a_chats_messages_from_its_newest_id(vault: Path) -> None:
    recorder = Recorder()
    asyncio.run(sync_telegram(vault, simulate="chats=2,messages=30,media=0,seed=1", observer=recorder))
    expected = sorted(c[2] for c in recorder.calls if c[0] == "chat_started")
    new = sorted(c[2] for c in recorder.calls if c[0] == "chat_finished")
    assert new == [30, 30]
    assert all(n <= e <= n + 5 for n, e in zip(new, expected, strict=True)), expected
