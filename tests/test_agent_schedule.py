"""The agent's schedules, on a virtual-time event loop: which chats each pass reads, and when.

The agent runs on an in-memory source; its clock and APScheduler's follow the loop's virtual clock
(``agent_clock``), so an hour of schedules runs at once and every pass's time is exact.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from agent_clock import START, WallClock
from virtualtime import run_virtual

from tobs_sync.agent import AGENT_COMMAND, Agent
from tobs_sync.agent_schedule import MAX_WAIT_S
from tobs_sync.app import App
from tobs_sync.cli import collect_status
from tobs_sync.config import STATE_DIR, load_settings
from tobs_sync.lock import VaultBusy, VaultLock
from tobs_sync.model import Chat, ChatKind, Message
from tobs_sync.sources.memory import MemorySource
from tobs_sync.store import Store
from tobs_sync.store_passes import PassLog
from tobs_sync.sync import SyncReport

SAVED = Chat(777, "Saved Messages", ChatKind.SAVED.value)
NEWS = Chat(-1001, "News", ChatKind.CHANNEL.value)
MORE_NEWS = Chat(-1002, "More News", ChatKind.CHANNEL.value)
FRIEND = Chat(4242, "Friend", ChatKind.USER.value)
ARCHIVE = Chat(-1003, "Archive 2019", ChatKind.CHANNEL.value)


@dataclass(frozen=True)
class Pass:
    at: float
    """Loop time when it ended."""
    what: str
    chats: frozenset[int]


def memory_source(chats: Sequence[Chat], source: MemorySource | None = None) -> MemorySource:
    source = source or MemorySource(chats)
    for chat in chats:
        for message_id in (1, 2):
            source.add_message(Message(chat.id, message_id, 1_700_000_000 + message_id, text=f"hello {message_id}"))
    return source


def write_config(vault: Path, extra: str) -> None:
    (vault / ".tobs" / "config.toml").write_text('[vault]\ntimezone = "UTC"\n' + extra, encoding="utf-8")



def run_agent(
    vault: Path, source: MemorySource, seconds: float, monkeypatch: pytest.MonkeyPatch,
    during: Callable[[Agent, WallClock], AsyncIterator[None]] | None = None, clock: WallClock | None = None,
) -> list[Pass]:
    """Run the agent on ``source`` for ``seconds`` of loop time (``during`` runs alongside); its passes."""
    clock = clock or WallClock()
    clock.install(monkeypatch)
    passes: list[Pass] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()

        def on_pass(what: str, report: SyncReport) -> None:
            passes.append(Pass(loop.time(), what, frozenset(report.per_chat)))

        with VaultLock(load_settings(vault).state_dir, AGENT_COMMAND) as lock:
            agent = Agent(vault, lock, lambda app: source, clock=clock, on_pass=on_pass, watch=False)
            running = loop.create_task(agent.run())
            if during is not None:
                async for _ in during(agent, clock):
                    pass
            await asyncio.sleep(seconds - loop.time())
            agent.stop()
            await running

    run_virtual(scenario())
    return passes


def test_chats_sharing_a_rule_share_one_job_and_each_job_reads_only_its_chats(
    vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(vault, '[agent]\nevery = "30m"\n[[chat]]\nselect = ["saved"]\nevery = "1m"\n'
                        '[[chat]]\nselect = ["channels"]\nevery = "15m"\n')
    source = memory_source([SAVED, NEWS, MORE_NEWS, FRIEND])
    passes = run_agent(vault, source, 3599, monkeypatch)
    assert passes[0] == Pass(0, "catch-up", frozenset({SAVED.id, NEWS.id, MORE_NEWS.id, FRIEND.id}))
    by_job: dict[str, list[Pass]] = {}
    for done in passes[1:]:
        by_job.setdefault(done.what, []).append(done)
    assert [p.at for p in by_job["chat[1]"]] == [60.0 * n for n in range(1, 60)]
    assert {p.chats for p in by_job["chat[1]"]} == {frozenset({SAVED.id})}
    assert [p.at for p in by_job["chat[2]"]] == [900.0, 1800.0, 2700.0]
    assert {p.chats for p in by_job["chat[2]"]} == {frozenset({NEWS.id, MORE_NEWS.id})}
    assert [p.at for p in by_job["scheduled"]] == [1800.0]
    assert {p.chats for p in by_job["scheduled"]} == {frozenset({FRIEND.id})}


def test_a_cron_rule_runs_its_chats_at_the_given_time_of_day(vault: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(vault, '[agent]\nevery = "1d"\n[[chat]]\nselect = ["title:Archive*"]\ncron = "0 3 * * *"\n')
    assert START.hour == 1
    passes = run_agent(vault, memory_source([ARCHIVE, FRIEND]), 3 * 3600 + 600, monkeypatch)
    assert [(p.at, p.what, p.chats) for p in passes[1:]] == [(7200.0, "chat[1]", frozenset({ARCHIVE.id}))]


def test_passes_missed_during_a_hibernation_run_once_soon_after_waking(
    vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop's clock stops while the machine sleeps; the wall clock does not."""
    write_config(vault, '[agent]\nevery = "30m"\n')

    async def sleep_five_hours(agent: Agent, clock: WallClock) -> AsyncIterator[None]:
        await asyncio.sleep(100)
        clock.hibernate(5 * 3600)  # ten runs missed
        yield None

    passes = run_agent(vault, memory_source([FRIEND]), 1000, monkeypatch, during=sleep_five_hours)
    scheduled = [p.at for p in passes if p.what == "scheduled"]
    assert len(scheduled) == 1
    assert 100 < scheduled[0] <= 100 + MAX_WAIT_S


class SlowSource(MemorySource):
    """Every read of a chat's history takes 150 s; records when each began."""

    def __init__(self, chats: Sequence[Chat]) -> None:
        super().__init__(chats)
        self.reads: list[float] = []

    async def batches(self, chat: Chat, after: int) -> AsyncIterator[Sequence[Message]]:
        self.reads.append(asyncio.get_running_loop().time())
        await asyncio.sleep(150)
        async for batch in super().batches(chat, after):
            yield batch


def test_a_pass_longer_than_its_interval_is_not_started_again_nor_piled_up(
    vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(vault, '[agent]\nevery = "1m"\n')
    source = memory_source([FRIEND], SlowSource([FRIEND]))
    passes = run_agent(vault, source, 1000, monkeypatch)
    ends = [p.at for p in passes]
    starts = source.reads
    assert all(start >= end for start, end in zip(starts[1:], ends, strict=False))  # never two at once
    assert len(passes) <= 1000 / 150 + 1  # not one per minute queued behind the running one
    assert len(passes) >= 4


def test_next_run_times_are_saved_for_status_and_cleared_on_stop(
    vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(vault, '[agent]\nevery = "30m"\n[[chat]]\nselect = ["saved"]\nevery = "1m"\n')
    seen: list[dict[int, dt.datetime]] = []
    shown: list[dict[int, str | None]] = []

    async def look(agent: Agent, clock: WallClock) -> AsyncIterator[None]:
        await asyncio.sleep(90)
        seen.append(stored_next_runs(vault))
        with App.open(vault, read_only=True) as app:  # what `status` shows
            shown.append({chat["id"]: chat["next_run"] for chat in collect_status(app)["chats"]})
        yield None

    run_agent(vault, memory_source([SAVED, FRIEND]), 200, monkeypatch, during=look)
    minute = START.replace(minute=2)
    assert seen[0] == {SAVED.id: minute, FRIEND.id: START.replace(minute=30)}  # the chat's table, the default
    assert {chat_id: dt.datetime.fromisoformat(when) for chat_id, when in shown[0].items() if when} == seen[0]
    assert stored_next_runs(vault) == {}  # the agent stopped
    with App.open(vault, read_only=True) as app:
        status = collect_status(app)
        assert all(chat["next_run"] is None for chat in status["chats"])
        assert {chat["id"] for chat in status["chats"] if chat["last_pass"]} == {SAVED.id, FRIEND.id}


def test_a_second_writer_is_refused_naming_the_running_agent(vault: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    errors: list[str] = []

    async def second_writer(agent: Agent, clock: WallClock) -> AsyncIterator[None]:
        await asyncio.sleep(10)
        for command in ("tobs-sync sync", AGENT_COMMAND):
            with pytest.raises(VaultBusy) as refused:
                VaultLock(load_settings(vault).state_dir, command).acquire()
            errors.append(str(refused.value))
        yield None

    run_agent(vault, memory_source([FRIEND]), 20, monkeypatch, during=second_writer)
    assert len(errors) == 2
    for error in errors:
        assert f"in use by {AGENT_COMMAND} (pid {os.getpid()} on" in error


def stored_next_runs(vault: Path) -> dict[int, dt.datetime]:
    """The next runs the agent saved for ``status``, by chat id (read as ``status`` reads them, whatever
    the config file says now)."""
    with Store.open(vault / STATE_DIR / "state.db", read_only=True) as store:
        return PassLog(store).next_runs()
