"""Templates broken when a session starts: the agent stays up, says where, and keeps what works.

On a fresh start with a broken template the agent does no pass (nothing is rendered with a broken
template) until a saved fix passes the check; after a config change the templates of the session
before stay in force. Either way the error is one log line with file and line, and a failed pass
record that ``status`` and the status note show. Virtual time, an in-memory source, the watcher off
(the test hands the changes to the session as the watcher would).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from agent_clock import WallClock
from test_agent_schedule import FRIEND, NEWS, memory_source, run_agent, write_config
from test_agent_watch import TEMPLATES, notes, save

from tobs_sync.agent import Agent
from tobs_sync.app import App, init_vault
from tobs_sync.cli import collect_status
from tobs_sync.model import Message
from tobs_sync.sources.base import MessageEdited, MessagesArrived

BROKEN = "\n{% if %}\n"


@pytest.fixture
def initialised(vault: Path) -> Path:
    init_vault(vault)
    write_config(vault, '[agent]\nevery = "30m"\n')
    return vault


def template_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and "templates" in r.getMessage()]


def last_failures(vault: Path) -> list[str]:
    with App.open(vault, read_only=True) as app:
        return [problem for record in collect_status(app)["recent_passes"] for problem in record["failed"]]


def test_a_fresh_start_with_a_broken_template_waits_for_the_fix_then_catches_up(
    initialised: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    vault = initialised
    template = vault / TEMPLATES / "message.md"
    good = template.read_text(encoding="utf-8")
    save(template, good + BROKEN)
    broken_line = len((good + BROKEN).splitlines())
    while_broken: dict[str, object] = {}

    async def fix_later(agent: Agent, clock: WallClock) -> AsyncIterator[None]:
        await asyncio.sleep(1800 + 60)  # a scheduled run would have come by now
        while_broken["notes"] = [p for p in notes(vault) if "status" not in p]
        while_broken["failures"] = last_failures(vault)
        while_broken["errors"] = template_errors(caplog)
        save(template, good)
        assert agent.session is not None
        agent.session.file_changed("templates")
        await asyncio.sleep(10)
        yield None

    with caplog.at_level(logging.INFO):
        passes = run_agent(vault, memory_source([NEWS, FRIEND]), 1900, monkeypatch, during=fix_later)

    assert while_broken["notes"] == []  # no pass with the broken template
    errors = while_broken["errors"]
    assert isinstance(errors, list) and len(errors) == 1
    assert "no pass until they are fixed" in errors[0]
    assert "message.md" in errors[0] and f"line {broken_line}" in errors[0]
    failures = while_broken["failures"]
    assert isinstance(failures, list) and len(failures) == 1
    assert failures[0].startswith("templates: ") and f"line {broken_line}" in failures[0]
    assert "message.md, line" in (vault / "Telegram" / "tobs-sync status.md").read_text(encoding="utf-8")
    # fixed: the catch-up runs, then the schedules
    assert [p.what for p in passes] == ["catch-up"]
    assert len([p for p in notes(vault) if "status" not in p]) == 6  # 2 chats: 2 messages and a chat note each


def test_a_fix_that_is_still_broken_keeps_the_agent_waiting(
    initialised: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    vault = initialised
    template = vault / TEMPLATES / "chat.md"
    good = template.read_text(encoding="utf-8")
    save(template, good + BROKEN)

    async def fix_badly(agent: Agent, clock: WallClock) -> AsyncIterator[None]:
        await asyncio.sleep(10)
        save(template, good + "{{ unclosed")
        assert agent.session is not None
        agent.session.file_changed("templates")
        await asyncio.sleep(10)
        yield None

    with caplog.at_level(logging.ERROR):
        passes = run_agent(vault, memory_source([NEWS]), 30, monkeypatch, during=fix_badly)
    assert passes == []
    assert [p for p in notes(vault) if "status" not in p] == []
    errors = template_errors(caplog)
    assert len(errors) == 2 and "still not usable" in errors[1] and "chat.md" in errors[1]


def test_a_config_change_while_a_template_is_broken_keeps_the_previous_templates(
    initialised: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    vault = initialised
    template = vault / TEMPLATES / "message.md"
    config = vault / ".tobs" / "config.toml"
    source = memory_source([NEWS])
    sessions: list[int] = []

    async def break_then_reconfigure(agent: Agent, clock: WallClock) -> AsyncIterator[None]:
        await asyncio.sleep(10)
        save(template, template.read_text(encoding="utf-8") + "\nOnly in the broken save.\n" + BROKEN)
        save(config, '[vault]\ntimezone = "UTC"\n[agent]\nevery = "5m"\n')
        assert agent.session is not None
        agent.session.file_changed("config")  # the template save is not handed over: the new session meets it
        await asyncio.sleep(10)
        sessions.append(agent.sessions)
        source.add_message(Message(NEWS.id, 3, 1_700_000_100, text="after the config change"))
        yield None

    with caplog.at_level(logging.ERROR):
        passes = run_agent(vault, source, 400, monkeypatch, during=break_then_reconfigure)

    assert sessions == [2]  # the agent went on with a new session
    errors = template_errors(caplog)
    assert len(errors) == 1 and "the previous templates stay in force" in errors[0] and "message.md" in errors[0]
    assert [p.what for p in passes] == ["catch-up", "catch-up", "scheduled"]
    new_note = next(vault / p for p in notes(vault) if "after the config change" in (vault / p).read_text("utf-8"))
    # rendered with the templates in force before the broken save
    assert "Only in the broken save." not in new_note.read_text(encoding="utf-8")
    assert any(f.startswith("templates: ") for f in last_failures(vault))


def test_a_config_change_while_waiting_for_a_fix_starts_over_still_waiting_and_the_fix_catches_up(
    initialised: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    vault = initialised
    template = vault / TEMPLATES / "message.md"
    good = template.read_text(encoding="utf-8")
    save(template, good + BROKEN)
    sessions: list[int] = []

    async def reconfigure_then_fix(agent: Agent, clock: WallClock) -> AsyncIterator[None]:
        await asyncio.sleep(10)
        save(vault / ".tobs" / "config.toml", '[vault]\ntimezone = "UTC"\n[agent]\nevery = "5m"\n')
        assert agent.session is not None
        agent.session.file_changed("config")  # the waiting catch-up of the first session must not hold it up
        await asyncio.sleep(10)
        sessions.append(agent.sessions)
        save(template, good)
        agent.session.file_changed("templates")
        await asyncio.sleep(10)
        yield None

    with caplog.at_level(logging.ERROR):
        passes = run_agent(vault, memory_source([NEWS]), 60, monkeypatch, during=reconfigure_then_fix)
    assert sessions == [2]
    errors = template_errors(caplog)  # once per session
    assert len(errors) == 2 and all("no pass until they are fixed" in error for error in errors)
    assert [p.what for p in passes] == ["catch-up"]
    assert len([p for p in notes(vault) if "status" not in p]) == 3


def test_live_changes_while_waiting_for_a_fix_wait_too_and_reach_the_notes_after_it(
    initialised: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault = initialised
    template = vault / TEMPLATES / "message.md"
    good = template.read_text(encoding="utf-8")
    save(template, good + BROKEN)
    source = memory_source([NEWS])
    during_wait: list[list[str]] = []

    async def change_then_fix(agent: Agent, clock: WallClock) -> AsyncIterator[None]:
        await asyncio.sleep(10)
        source.push(MessageEdited(source.edit_message(NEWS.id, 1, text="edited while waiting", edited=1_700_000_500)))
        source.push(MessagesArrived(NEWS.id))
        await asyncio.sleep(10)  # past the arrivals' quiet time: their pass waits as well
        during_wait.append([p for p in notes(vault) if "status" not in p])
        save(template, good)
        assert agent.session is not None
        agent.session.file_changed("templates")
        await asyncio.sleep(10)
        yield None

    passes = run_agent(vault, source, 60, monkeypatch, during=change_then_fix)
    assert during_wait == [[]]
    assert [p.what for p in passes] == ["catch-up", "live edit", "live"]
    assert any("edited while waiting" in (vault / p).read_text(encoding="utf-8") for p in notes(vault))
