"""Live edits and deletions over the Telethon source on the simulator: Telethon's own update loop
delivers the events (``TelegramSource.live_changes``), the engine applies them; changes made while
tobs-sync was stopped or disconnected (which Telethon drops) are found by reconciliation.

Runs on a virtual-time loop (Telethon's gap waits pass at once); deletions are dated by a fake clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from virtualtime import run_virtual

from tobs_sync.app import App
from tobs_sync.config import TelegramSettings
from tobs_sync.merge import BEGIN_MARKER, END_MARKER
from tobs_sync.sim import SimSpec, SimulatedTelegram
from tobs_sync.sources.base import LiveChange, LiveSource, MessageEdited, MessagesArrived, MessagesDeleted, RecentWindow
from tobs_sync.sources.telegram import TelegramSource

T = TypeVar("T")
WAIT_BOUND_S = 120.0
"""Loop-time bound on waiting for a live change (virtual seconds)."""


def simulated() -> SimulatedTelegram:
    return SimulatedTelegram(SimSpec(chats=8, messages=30, seed=11, media=0))


def chat_of(sim: SimulatedTelegram, kind: str, nth: int = 0) -> int:
    return [chat for chat in sim.chat_ids if sim.kind(chat) == kind][nth]


def configure(vault: Path, extra: str) -> None:
    config = vault / ".tobs" / "config.toml"
    config.write_text(config.read_text(encoding="utf-8") + extra, encoding="utf-8")


def sim_clock(sim: SimulatedTelegram) -> Callable[[], float]:
    """A fake clock a minute after the simulation's newest message."""
    newest = max(m.date.timestamp() for chat in sim.chat_ids for m in sim.messages(chat))
    return lambda: newest + 60


async def next_change(changes: AsyncIterator[LiveChange]) -> LiveChange:
    async with asyncio.timeout(WAIT_BOUND_S):
        return await anext(changes)


def with_source(vault: Path, sim: SimulatedTelegram,
                body: Callable[[App, TelegramSource], Awaitable[T]], **telegram: Any) -> T:
    async def scenario() -> T:
        with App.open(vault) as app:
            app.synchronizer.changes.clock = sim_clock(sim)
            settings = dataclasses.replace(TelegramSettings(), **telegram)
            client = sim.client(connected=False, raise_last_call_error=True, request_retries=1)  # its update loop runs
            async with TelegramSource(client, settings, retry_delay=0.01, peers=app.store) as source:
                return await body(app, source)

    return run_virtual(scenario())  # type: ignore[arg-type]


def note_text(vault: Path, chat_id: int, message_id: int) -> str:
    with App.open(vault, read_only=True) as app:
        row = app.store.note_of_message(chat_id, message_id)
    assert row is not None, f"no note for message {message_id} of chat {chat_id}"
    return (vault / row.path).read_text(encoding="utf-8")


def region(text: str) -> str:
    return text.split(BEGIN_MARKER)[1].split(END_MARKER)[0]


def properties(text: str) -> dict[str, Any]:
    return yaml.safe_load(text.split("---\n")[1])


def test_live_events_become_changes_and_reach_the_notes(vault: Path) -> None:
    configure(vault, "[deletions]\nhold_above = 5\n")
    sim = simulated()
    private, group = chat_of(sim, "private"), chat_of(sim, "group")
    channel, megagroup = chat_of(sim, "channel"), chat_of(sim, "megagroup")
    ignored = chat_of(sim, "private", 1)
    old_post = sim.messages(channel)[3]
    doomed = [m.id for m in sim.messages(group)[2:4]]
    doomed_post = sim.messages(channel)[5].id

    async def body(app: App, source: TelegramSource) -> None:
        assert isinstance(source, LiveSource) and isinstance(source, RecentWindow)
        await app.synchronizer.sync(source)  # lists the chats: their events are followed from now on
        changes = source.live_changes()

        hello = sim.add_message(private, text="live hello")
        assert await next_change(changes) == MessagesArrived(private)
        report = await app.synchronizer.sync(source)  # the agent's incremental pass
        assert report.messages == 1
        assert "live hello" in region(note_text(vault, private, hello.id))

        sim.edit_message(ignored, sim.messages(ignored)[0].id, "not followed")
        sim.edit_message(channel, old_post.id, "edited **live**")
        change = await next_change(changes)
        assert isinstance(change, MessageEdited)
        assert (change.message.chat_id, change.message.id, change.message.text) == (
            channel, old_post.id, "edited **live**")
        assert change.message.edited is not None
        report = await app.synchronizer.apply_edits(source, [change.message])
        assert report.per_chat[channel].edited == 1
        assert "edited \\*\\*live\\*\\*" in region(note_text(vault, channel, old_post.id))

        sim.delete_messages(group, doomed)
        change = await next_change(changes)
        assert change == MessagesDeleted(None, tuple(doomed))  # Telegram names no chat
        report = await app.synchronizer.apply_deletions(change.chat_id, change.message_ids)
        assert report.per_chat[group].deleted == 2
        assert all(properties(note_text(vault, group, i))["deleted"] for i in doomed)

        sim.delete_messages(channel, [doomed_post])
        change = await next_change(changes)
        assert change == MessagesDeleted(channel, (doomed_post,))
        await app.synchronizer.apply_deletions(change.chat_id, change.message_ids)
        assert "Deleted in Telegram" in region(note_text(vault, channel, doomed_post))

        cleared = sim.clear_history(megagroup)  # no MessageDeleted event: a raw update
        change = await next_change(changes)
        assert change == MessagesDeleted(megagroup, (), up_to=max(cleared))
        report = await app.synchronizer.apply_deletions(change.chat_id, change.message_ids, up_to=change.up_to)
        assert report.per_chat[megagroup].held == len([i for i in cleared if i > 0]) > 5  # the guard holds it

    with_source(vault, sim, body, exclude=(ignored,))


def test_edits_and_deletions_while_disconnected_are_found_by_the_next_pass(vault: Path) -> None:
    sim = simulated()
    private, group, channel = chat_of(sim, "private"), chat_of(sim, "group"), chat_of(sim, "channel")
    old_private, old_post = sim.messages(private)[-2], sim.messages(channel)[-4]
    doomed_group, doomed_post = sim.messages(group)[-3].id, sim.messages(channel)[-2].id

    async def body(app: App, source: TelegramSource) -> None:
        await app.synchronizer.sync(source)
        changes = source.live_changes()
        client = source._client
        async with sim.away(client):  # a gap: Telethon catches up with a difference and drops these
            sim.edit_message(private, old_private.id, "edited while away")
            sim.edit_message(channel, old_post.id, "post edited while away")
            sim.delete_messages(group, [doomed_group])
            sim.delete_messages(channel, [doomed_post])
            fresh = sim.add_message(private, text="new while away")
        assert await next_change(changes) == MessagesArrived(private)  # only the new message arrives
        report = await app.synchronizer.sync(source)  # the pass reads it and reconciles
        assert report.per_chat[private].new == 1 and "new while away" in note_text(vault, private, fresh.id)
        assert {chat: (c.edited, c.deleted) for chat, c in report.per_chat.items() if c.edited or c.deleted} == {
            private: (1, 0), channel: (1, 1), group: (0, 1)}
        assert all(c.reconciled > 0 for c in report.per_chat.values())

    with_source(vault, sim, body)
    assert "edited while away" in region(note_text(vault, private, old_private.id))
    assert "post edited while away" in region(note_text(vault, channel, old_post.id))
    assert properties(note_text(vault, group, doomed_group))["deleted"]
    assert properties(note_text(vault, channel, doomed_post))["deleted"]


def test_edits_and_deletions_while_stopped_are_found_and_an_unchanged_account_changes_nothing(vault: Path) -> None:
    sim = simulated()
    private, channel = chat_of(sim, "private"), chat_of(sim, "megagroup")
    old_private, doomed = sim.messages(private)[-3], sim.messages(channel)[-2].id

    async def one_pass(app: App, source: TelegramSource) -> Any:
        return await app.synchronizer.sync(source)

    with_source(vault, sim, one_pass)
    again = with_source(vault, sim, one_pass)  # nothing changed: reconciliation finds nothing
    assert again.notes_written == 0 and not any(c.edited or c.deleted for c in again.per_chat.values())
    assert sum(c.reconciled for c in again.per_chat.values()) > 0

    sim.edit_message(private, old_private.id, "edited while stopped")  # no client listens
    sim.delete_messages(channel, [doomed])
    report = with_source(vault, sim, one_pass)

    assert (report.per_chat[private].edited, report.per_chat[channel].deleted) == (1, 1)
    assert "edited while stopped" in region(note_text(vault, private, old_private.id))
    assert properties(note_text(vault, channel, doomed))["deleted"]
