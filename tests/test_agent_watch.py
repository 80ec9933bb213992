"""Template and config changes while the agent runs: checked first, applied to the notes that change.

The agent runs on an in-memory source on a virtual-time loop with its file watcher off; each test
saves a file and hands the change to the session as the watcher would (``file_changed``). The
watcher itself is tested on real files (watchdog's thread reports a save; only changes of template
and config files count), and the debouncing of an editor's burst of events on virtual time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from agent_clock import WallClock
from test_agent_schedule import FRIEND, NEWS, memory_source, run_agent, stored_next_runs, write_config
from virtualtime import run_virtual
from watchdog.events import (
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
)

from tobs_sync.agent import AGENT_COMMAND, Agent
from tobs_sync.agent_watch import Debouncer, Kind, Watcher, _Handler, config_event, template_event
from tobs_sync.app import init_vault
from tobs_sync.config import load_settings
from tobs_sync.lock import VaultLock
from tobs_sync.model import Message
from tobs_sync.sync import SyncReport

TEMPLATES = "Telegram/_templates"


def notes(vault: Path) -> dict[str, tuple[bytes, int]]:
    """Every note outside the templates: bytes and mtime."""
    return {p.relative_to(vault).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted((vault / "Telegram").rglob("*.md")) if "_templates" not in p.parts}


def save(path: Path, text: str) -> None:
    """As editors save: a temp file beside it, renamed over it."""
    temp = path.with_name(f".{path.name}.swp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)


@pytest.fixture
def initialised(vault: Path) -> Path:
    init_vault(vault)
    write_config(vault, '[agent]\nevery = "30m"\n')
    return vault


def test_a_saved_template_rerenders_exactly_the_notes_whose_bytes_change(
    initialised: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault = initialised
    template = vault / TEMPLATES / "message.md"
    before: dict[str, tuple[bytes, int]] = {}

    async def edit_template(agent: Agent, clock: WallClock) -> AsyncIterator[None]:
        await asyncio.sleep(10)
        before.update(notes(vault))
        save(template, template.read_text(encoding="utf-8") + "{% if message.id == 1 %}\nThe first one.\n{% endif %}\n")
        assert agent.session is not None
        agent.session.file_changed("templates")
        await asyncio.sleep(10)
        yield None

    passes = run_agent(vault, memory_source([NEWS, FRIEND]), 30, monkeypatch, during=edit_template)
    after = notes(vault)
    changed = {path for path in after if after[path] != before[path]}
    assert len(changed) == 2 and all(b"The first one." in after[path][0] for path in changed)
    assert all(b"The first one." not in after[path][0] for path in after.keys() - changed)
    assert [p.what for p in passes] == ["catch-up", "templates"]


def test_a_broken_template_is_reported_with_its_line_and_the_previous_one_stays(
    initialised: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    vault = initialised
    template = vault / TEMPLATES / "message.md"
    source = memory_source([NEWS])
    before: dict[str, tuple[bytes, int]] = {}
    untouched: dict[str, tuple[bytes, int]] = {}

    async def break_template(agent: Agent, clock: WallClock) -> AsyncIterator[None]:
        await asyncio.sleep(10)
        before.update(notes(vault))
        save(template, template.read_text(encoding="utf-8") + "\n{% if %}\n")
        assert agent.session is not None
        agent.session.file_changed("templates")
        await asyncio.sleep(10)
        untouched.update(notes(vault))
        source.add_message(Message(NEWS.id, 3, 1_700_000_100, text="after the broken save"))
        yield None

    with caplog.at_level(logging.ERROR):
        passes = run_agent(vault, source, 1900, monkeypatch, during=break_template)
    status_note = "Telegram/tobs-sync status.md"
    assert {k: v for k, v in untouched.items() if k != status_note} == {
        k: v for k, v in before.items() if k != status_note}  # no note touched; the status note reports it:
    assert "message.md, line" in untouched[status_note][0].decode()
    errors = [r.getMessage() for r in caplog.records if "template change not applied" in r.getMessage()]
    assert len(errors) == 1
    assert f"{template}" in errors[0] or "message.md" in errors[0]
    assert f"line {len(template.read_text(encoding='utf-8').splitlines())}" in errors[0]
    # the scheduled pass renders the new message with the template in force before the broken save
    assert [p.what for p in passes] == ["catch-up", "scheduled"]
    new_note = next(path for path in notes(vault) if path not in before)
    assert "after the broken save" in (vault / new_note).read_text(encoding="utf-8")


def test_a_valid_config_change_remakes_the_schedules_and_an_invalid_one_is_refused(
    initialised: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    vault = initialised
    state_dir = load_settings(vault).state_dir
    config = state_dir / "config.toml"
    seen: list[tuple[int, dict[int, dt.datetime]]] = []

    async def change_config(agent: Agent, clock: WallClock) -> AsyncIterator[None]:
        await asyncio.sleep(10)
        for text in ('[vault]\ntimezone = "UTC"\n[agent]\nevery = "30m"\n',  # saved unchanged
                     '[vault]\ntimezone = "UTC"\n[agent]\nevery = "soon"\n',  # invalid
                     '[vault]\ntimezone = "UTC"\n[agent]\nevery = "5m"\n'):  # valid
            save(config, text)
            assert agent.session is not None
            agent.session.file_changed("config")
            await asyncio.sleep(10)
            seen.append((agent.sessions, stored_next_runs(vault)))
        yield None

    with caplog.at_level(logging.ERROR):
        passes = run_agent(vault, memory_source([FRIEND]), 50, monkeypatch, during=change_config)
    start = WallClock().start
    assert seen[0] == (1, {FRIEND.id: start.replace(minute=30)})
    assert seen[1] == (1, {FRIEND.id: start.replace(minute=30)})
    assert "agent.every: 'soon' is not a duration" in caplog.text
    assert "previous settings stay in force" in caplog.text
    assert seen[2][0] == 2  # a new session with the new settings, starting with a catch-up
    assert seen[2][1] == {FRIEND.id: start.replace(minute=5, second=30)}
    assert [p.what for p in passes] == ["catch-up", "catch-up"]


def test_an_editors_burst_of_events_gives_one_call_once_quiet() -> None:
    calls: list[tuple[float, Kind]] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        debouncer = Debouncer(loop, lambda kind: calls.append((loop.time(), kind)), quiet_s=1.0)
        for delay in (0.0, 0.01, 0.01, 0.3):  # temp written, renamed, attributes, a late modify
            await asyncio.sleep(delay)
            debouncer.poke("templates")
        debouncer.poke("config")
        await asyncio.sleep(5)
        debouncer.poke("templates")  # the next save
        await asyncio.sleep(5)

    run_virtual(scenario())
    assert sorted((round(at, 6), kind) for at, kind in calls) == [(1.32, "config"), (1.32, "templates"),
                                                                  (6.32, "templates")]


def test_only_changes_of_template_and_config_files_count() -> None:
    got: list[Kind] = []
    templates = _Handler("templates", template_event, got.append)
    for event in (FileOpenedEvent("/v/t/message.md"), FileClosedNoWriteEvent("/v/t/message.md"),
                  FileModifiedEvent("/v/t/.message.md.swp"), FileCreatedEvent("/v/t/message.md~"),
                  FileCreatedEvent("/v/t/4913")):
        templates.dispatch(event)
    assert got == []
    templates.dispatch(FileMovedEvent("/v/t/.message.md.swp", "/v/t/message.md"))
    templates.dispatch(FileModifiedEvent("/v/t/sub/chat.md"))
    config = _Handler("config", config_event, got.append)
    config.dispatch(FileModifiedEvent("/v/.tobs/state.db-wal"))
    config.dispatch(FileMovedEvent("/v/.tobs/.config.toml.swp", "/v/.tobs/config.toml"))
    assert got == ["templates", "templates", "config"]


def test_the_watcher_reports_a_saved_template_and_a_saved_config(tmp_path: Path) -> None:
    templates, state = tmp_path / "templates", tmp_path / ".tobs"
    templates.mkdir()
    state.mkdir()
    got: list[Kind] = []
    both = threading.Event()

    def notify(kind: Kind) -> None:
        got.append(kind)
        if {"templates", "config"} <= set(got):
            both.set()

    watcher = Watcher(templates, state, notify)
    watcher.start()
    try:
        (state / "state.db").write_bytes(b"not watched")
        save(templates / "message.md", "{{ message.text }}")
        save(state / "config.toml", "[agent]\nevery = '5m'\n")
        assert both.wait(timeout=10), got  # returns as soon as both arrived
    finally:
        watcher.stop()
    assert set(got) == {"templates", "config"}


def test_a_running_agent_rerenders_after_a_template_save_seen_by_its_own_watcher(initialised: Path) -> None:
    """The whole path on a real event loop: watchdog's thread, the debouncer, the session. The wait is
    bounded by the event (the re-render), not by a clock."""
    vault = initialised
    template = vault / TEMPLATES / "chat.md"
    source = memory_source([NEWS])
    done: list[str] = []

    async def scenario() -> None:
        caught_up, rerendered = asyncio.Event(), asyncio.Event()

        def on_pass(what: str, report: SyncReport) -> None:
            done.append(what)
            (rerendered if what == "templates" else caught_up).set()

        with VaultLock(load_settings(vault).state_dir, AGENT_COMMAND) as lock:
            agent = Agent(vault, lock, lambda app: source, on_pass=on_pass, quiet_s=0.05)
            running = asyncio.get_running_loop().create_task(agent.run())
            try:
                async with asyncio.timeout(30):  # a safety net; each wait returns as soon as its event comes
                    await caught_up.wait()
                    save(template, template.read_text(encoding="utf-8") + "\nWatched.\n")
                    await rerendered.wait()
            finally:
                agent.stop()
                await running

    asyncio.run(scenario())
    assert done == ["catch-up", "templates"]
    chat_note = next(p for p in (vault / "Telegram").rglob("*.md") if "_templates" not in p.parts
                     and "tg_message_id" not in (text := p.read_text(encoding="utf-8"))
                     and "tobs_status" not in text)
    assert "Watched." in chat_note.read_text(encoding="utf-8")
