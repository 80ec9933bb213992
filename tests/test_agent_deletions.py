"""Confirming or discarding held deletions while the agent runs: the decision left as a request.

``tobs-sync deletions --confirm/--discard`` cannot take the vault lock while the agent holds it; it
leaves the decision in the state folder and the agent applies it. The agent runs on an in-memory
source on a virtual-time loop with its watcher off (the test hands the change to the session as the
watcher would); one test runs the whole path on a real loop with the agent's own watcher.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from agent_clock import WallClock
from test_agent_schedule import FRIEND, NEWS, memory_source, run_agent, write_config
from watchdog.events import FileCreatedEvent, FileMovedEvent

from tobs_sync.agent import AGENT_COMMAND, Agent
from tobs_sync.agent_watch import Kind, _Handler, request_event
from tobs_sync.app import App
from tobs_sync.cli import main
from tobs_sync.config import load_settings
from tobs_sync.deletion_requests import leave_request, pending_requests, request_path
from tobs_sync.lock import VaultLock
from tobs_sync.sources.memory import MemorySource
from tobs_sync.store_deletions import held
from tobs_sync.store_passes import PassLog
from tobs_sync.sync import SyncReport

WHEN = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)


@pytest.fixture
def held_vault(vault: Path) -> tuple[Path, MemorySource]:
    """A vault whose chats News and Friend each have two deletions held (``hold_above = 1``)."""
    write_config(vault, '[agent]\nevery = "30m"\n[deletions]\nhold_above = 1\n')
    source = memory_source([NEWS, FRIEND])

    async def sync_then_delete() -> None:
        with App.open(vault) as app:
            async with source:
                await app.synchronizer.sync(source)
                for chat in (NEWS, FRIEND):
                    source.delete_messages(chat.id, [1, 2])
                    await app.synchronizer.apply_deletions(chat.id, [1, 2])

    asyncio.run(sync_then_delete())
    assert held_counts(vault) == {NEWS.id: 2, FRIEND.id: 2}
    return vault, source


def held_counts(vault: Path) -> dict[int, int]:
    with App.open(vault, read_only=True) as app:
        return {h.chat_id: h.count for h in held(app.store)}


def marked_deleted(vault: Path, chat_id: int) -> list[bool]:
    """Whether the notes of messages 1 and 2 of ``chat_id`` show their deletion."""
    with App.open(vault, read_only=True) as app:
        rows = [app.store.note_of_message(chat_id, message_id) for message_id in (1, 2)]
    return [row is not None and "deleted:" in (vault / row.path).read_text(encoding="utf-8") for row in rows]


def state_dir(vault: Path) -> Path:
    return load_settings(vault).state_dir


def test_a_decision_while_the_agent_holds_the_lock_is_checked_and_left_for_it(
    held_vault: tuple[Path, MemorySource], capsys: Any
) -> None:
    vault, _ = held_vault
    with VaultLock(state_dir(vault), AGENT_COMMAND):  # the agent's lock, as `tobs-sync run` holds it
        assert main(["deletions", "--vault", str(vault), "--confirm", str(NEWS.id)]) == 0
        out = capsys.readouterr().out
        assert "confirm 2 held deletion(s) in 'News': requested" in out
        assert f"the agent holding this vault, {AGENT_COMMAND} (pid" in out and "will confirm them" in out
        assert main(["deletions", "--vault", str(vault), "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert [(h["chat_id"], h["requested"]) for h in listed] == [(NEWS.id, "confirm"), (FRIEND.id, None)]
        # validated: a chat without held deletions is refused, and nothing is left for the agent
        assert main(["deletions", "--vault", str(vault), "--discard", "12345"]) == 1
        assert "chat 12345 has no held deletions" in capsys.readouterr().err
        assert not request_path(state_dir(vault), 12345).exists()
    assert [(r.chat_id, r.decision) for r in pending_requests(state_dir(vault))] == [(NEWS.id, "confirm")]
    assert held_counts(vault) == {NEWS.id: 2, FRIEND.id: 2}  # nothing applied by the command
    assert marked_deleted(vault, NEWS.id) == [False, False]


def test_another_writer_holding_the_lock_still_refuses_the_decision(
    held_vault: tuple[Path, MemorySource], capsys: Any
) -> None:
    vault, _ = held_vault
    with VaultLock(state_dir(vault), "tobs-sync sync"):
        assert main(["deletions", "--vault", str(vault), "--discard", str(NEWS.id)]) == 1
    assert "tobs-sync sync (pid" in capsys.readouterr().err
    assert pending_requests(state_dir(vault)) == []


def test_the_running_agent_applies_a_decision_made_with_the_command_records_it_and_removes_the_request(
    held_vault: tuple[Path, MemorySource], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    vault, source = held_vault
    results: list[int] = []

    async def decide(agent: Agent, clock: WallClock) -> AsyncIterator[None]:
        await asyncio.sleep(10)
        for decision, chat in (("--confirm", NEWS), ("--discard", FRIEND)):
            results.append(main(["deletions", "--vault", str(vault), decision, str(chat.id)]))
            assert agent.session is not None
            agent.session.file_changed("requests")  # as the watcher reports the request file
            await asyncio.sleep(5)
        yield None

    passes = run_agent(vault, source, 30, monkeypatch, during=decide)
    assert results == [0, 0]
    assert [p.what for p in passes] == ["catch-up", "deletions confirmed", "deletions discarded"]
    assert passes[1].chats == {NEWS.id}
    assert held_counts(vault) == {}
    assert marked_deleted(vault, NEWS.id) == [True, True]
    assert marked_deleted(vault, FRIEND.id) == [False, False]  # discarded: the notes stay
    assert pending_requests(state_dir(vault)) == []
    with App.open(vault, read_only=True) as app:
        triggers = [record.trigger for record in PassLog(app.store).recent()]
    assert triggers[:2] == ["deletions discarded", "deletions confirmed"]


def test_a_request_left_while_no_agent_ran_is_applied_when_the_agent_starts(
    held_vault: tuple[Path, MemorySource], monkeypatch: pytest.MonkeyPatch
) -> None:
    vault, source = held_vault
    leave_request(state_dir(vault), NEWS.id, "confirm", WHEN)

    passes = run_agent(vault, source, 10, monkeypatch)

    assert [p.what for p in passes] == ["deletions confirmed", "catch-up"]
    assert held_counts(vault) == {FRIEND.id: 2}
    assert marked_deleted(vault, NEWS.id) == [True, True]
    assert pending_requests(state_dir(vault)) == []


def test_the_deletions_command_holding_the_lock_applies_requests_an_agent_left(
    held_vault: tuple[Path, MemorySource], capsys: Any
) -> None:
    vault, _ = held_vault
    leave_request(state_dir(vault), FRIEND.id, "discard", WHEN)
    leave_request(state_dir(vault), NEWS.id, "discard", WHEN)  # superseded by the decision made now

    assert main(["deletions", "--vault", str(vault), "--confirm", str(NEWS.id)]) == 0

    out = capsys.readouterr().out
    assert "applied 2 deletion(s) in 'News'" in out
    assert "dropped 2 held deletion(s) in 'Friend'" in out
    assert held_counts(vault) == {}
    assert marked_deleted(vault, NEWS.id) == [True, True]
    assert pending_requests(state_dir(vault)) == []


def test_a_file_that_is_not_a_valid_request_is_left_alone(vault: Path) -> None:
    folder = state_dir(vault)
    for chat_id, text in ((1, "{not json"), (2, '{"chat_id": 3, "decision": "confirm"}'),
                          (4, '{"chat_id": 4, "decision": "delete everything"}')):
        request_path(folder, chat_id).write_text(text, encoding="utf-8")
    leave_request(folder, 5, "discard", WHEN)
    assert [(r.chat_id, r.decision) for r in pending_requests(folder)] == [(5, "discard")]
    assert all(request_path(folder, chat_id).exists() for chat_id in (1, 2, 4))


def test_only_a_request_file_counts_as_a_request_not_its_temp_file_or_the_store() -> None:
    got: list[Kind] = []
    requests = _Handler("requests", request_event, got.append)
    for event in (FileCreatedEvent("/v/.tobs/.tobs-tmp-deletions-request.-1001.json"),
                  FileCreatedEvent("/v/.tobs/state.db-wal"), FileCreatedEvent("/v/.tobs/config.toml")):
        requests.dispatch(event)
    assert got == []
    requests.dispatch(FileMovedEvent("/v/.tobs/.tobs-tmp-deletions-request.-1001.json",
                                     "/v/.tobs/deletions-request.-1001.json"))
    assert got == ["requests"]


def test_an_agent_applies_a_decision_seen_by_its_own_watcher(held_vault: tuple[Path, MemorySource]) -> None:
    """The whole path on a real event loop: the command, watchdog's thread, the debouncer, the session.
    The wait is bounded by the event (the decision applied), not by a clock."""
    vault, source = held_vault
    done: list[str] = []

    async def scenario() -> None:
        caught_up, applied = asyncio.Event(), asyncio.Event()

        def on_pass(what: str, report: SyncReport) -> None:
            done.append(what)
            (applied if what.startswith("deletions") else caught_up).set()

        with VaultLock(state_dir(vault), AGENT_COMMAND) as lock:
            agent = Agent(vault, lock, lambda app: source, on_pass=on_pass, quiet_s=0.05)
            running = asyncio.get_running_loop().create_task(agent.run())
            try:
                async with asyncio.timeout(30):  # a safety net; each wait returns as soon as its event comes
                    await caught_up.wait()
                    assert main(["deletions", "--vault", str(vault), "--confirm", str(NEWS.id)]) == 0
                    await applied.wait()
            finally:
                agent.stop()
                await running

    asyncio.run(scenario())
    assert done == ["catch-up", "deletions confirmed"]
    assert marked_deleted(vault, NEWS.id) == [True, True]
    assert pending_requests(state_dir(vault)) == []
