"""Live changes while the agent runs: new messages become notes within seconds, edits and deletions reach them.

On a virtual-time loop: first on the in-memory source (the test decides what is reported, and when),
then on the simulator behind a real Telethon client, whose update loop delivers what the simulated
account does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import frontmatter
import pytest
from agent_clock import WallClock
from test_agent_schedule import NEWS, Pass, memory_source, run_agent, write_config
from virtualtime import run_virtual

from tobs_sync.agent import AGENT_COMMAND, Agent
from tobs_sync.config import load_settings
from tobs_sync.lock import VaultLock
from tobs_sync.model import Message
from tobs_sync.sim import SimSpec, SimulatedTelegram
from tobs_sync.sources.base import MessageEdited, MessagesArrived, MessagesDeleted
from tobs_sync.sources.telegram import TelegramSource
from tobs_sync.sync import SyncReport

BOUND_S = 60.0
"""Loop-time bound on waiting for the agent to do something (virtual seconds)."""


def note_of(vault: Path, chat_id: int, message_id: int) -> frontmatter.Post:
    for path in (vault / "Telegram").rglob("*.md"):
        post = frontmatter.loads(path.read_text(encoding="utf-8"))
        if post.metadata.get("tg_chat_id") == chat_id and post.metadata.get("tg_message_id") == message_id:
            return post
    raise AssertionError(f"no note of message {message_id} in chat {chat_id}")


def test_arrivals_are_one_pass_per_burst_and_edits_and_deletions_reach_their_notes(
    vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(vault, '[agent]\nevery = "1d"\n')
    source = memory_source([NEWS])

    async def telegram_changes(agent: Agent, clock: WallClock) -> AsyncIterator[None]:
        await asyncio.sleep(10)
        for message_id, delay in ((3, 0.0), (4, 0.2), (5, 0.2)):  # a burst
            await asyncio.sleep(delay)
            source.add_message(Message(NEWS.id, message_id, 1_700_000_100 + message_id, text=f"new {message_id}"))
            source.push(MessagesArrived(NEWS.id))
        await asyncio.sleep(10)
        edited = source.change_message(Message(NEWS.id, 2, 1_700_000_002, text="hello, edited", edited=1_700_000_500))
        source.push(MessageEdited(edited))
        await asyncio.sleep(10)
        source.delete_messages(NEWS.id, [1])
        source.push(MessagesDeleted(NEWS.id, (1,)))
        yield None

    passes = run_agent(vault, source, 40, monkeypatch, during=telegram_changes)
    assert [(round(p.at, 6), p.what) for p in passes] == [(0.0, "catch-up"), (11.4, "live"), (20.4, "live edit"),
                                                (30.4, "live deletion")]
    assert passes[1].chats == frozenset({NEWS.id})
    for message_id in (3, 4, 5):
        assert f"new {message_id}" in note_of(vault, NEWS.id, message_id).content
    assert "hello, edited" in note_of(vault, NEWS.id, 2).content
    deleted = note_of(vault, NEWS.id, 1)
    assert deleted.metadata.get("deleted") and "Deleted in Telegram" in deleted.content


@dataclass
class SimRun:
    sim: SimulatedTelegram
    passes: list[Pass]


Scenario = Callable[[SimulatedTelegram, list[Pass]], AsyncIterator[None]]


def run_on_simulator(vault: Path, monkeypatch: pytest.MonkeyPatch, during: Scenario, spec: SimSpec) -> SimRun:
    clock = WallClock()
    clock.install(monkeypatch)
    sim = SimulatedTelegram(spec)
    passes: list[Pass] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        client = sim.client(connected=False, raise_last_call_error=True, request_retries=3)

        def on_pass(what: str, report: SyncReport) -> None:
            passes.append(Pass(loop.time(), what, frozenset(report.per_chat)))

        with VaultLock(load_settings(vault).state_dir, AGENT_COMMAND) as lock:
            agent = Agent(vault, lock, lambda app: TelegramSource(client, app.settings.telegram, peers=app.store),
                          clock=clock, on_pass=on_pass, watch=False)
            running = loop.create_task(agent.run())
            async with asyncio.timeout(BOUND_S):
                while not passes:
                    await asyncio.sleep(0.1)
            async for _ in during(sim, passes):
                pass
            agent.stop()
            await running

    run_virtual(scenario())
    return SimRun(sim, passes)


async def until(condition: Callable[[], bool]) -> float:
    """Wait (in loop time, bounded) until ``condition``; the loop time it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with asyncio.timeout(BOUND_S):
        while not condition():
            await asyncio.sleep(0.05)
    return loop.time() - start


def test_a_message_sent_in_the_simulator_becomes_a_note_within_seconds_and_its_edit_and_deletion_follow(
    vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(vault, '[agent]\nevery = "1d"\n')
    took: dict[str, float] = {}
    chat = 0

    async def use_telegram(sim: SimulatedTelegram, passes: list[Pass]) -> AsyncIterator[None]:
        nonlocal chat
        chat = sim.chat_ids[0]
        sent = sim.add_message(chat, "sent while the agent runs")
        took["new"] = await until(lambda: any(p.what == "live" for p in passes))
        sim.edit_message(chat, sent.id, "sent while the agent runs, then edited")
        took["edit"] = await until(lambda: any(p.what == "live edit" for p in passes))
        sim.delete_messages(chat, [sent.id])
        took["delete"] = await until(lambda: any(p.what == "live deletion" for p in passes))
        chat_message = sent.id
        took["id"] = chat_message
        yield None

    run = run_on_simulator(vault, monkeypatch, use_telegram, SimSpec(chats=2, messages=20, media=0, seed=3))
    assert took["new"] < 5 and took["edit"] < 5 and took["delete"] < 5  # virtual seconds
    note = note_of(vault, chat, int(took["id"]))
    assert "then edited" in note.content
    assert note.metadata.get("deleted")
    assert [p.what for p in run.passes].count("scheduled") == 0
