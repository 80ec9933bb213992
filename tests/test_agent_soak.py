"""An idle agent costs nothing: hours of live traffic from the simulator, compressed by virtual time.

The simulated account changes every two minutes (new messages, edits, deletions) for ten and a half
hours of loop time; the agent follows it through a real Telethon client. Between changes it does no
work (every pass it runs answers a change), its tasks do not accumulate, and the memory its own code
holds stops growing: tracemalloc, started after a warm-up, sees the agent's allocations (those made
by tobs-sync's code, not the simulator's, whose account grows with every message by design) grow
while its bounded caches fill and churn, then level off; a leak of even a couple of hundred bytes per
change would keep growing by more than the bound over the last hours.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_agent_live import Pass, run_on_simulator
from test_agent_schedule import write_config

from tobs_sync.sim import SimSpec, SimulatedTelegram
from tobs_sync.sources import telegram_downloads

HOUR = 3600.0
CHANGE_EVERY_S = 120.0
WARM_UP_HOURS = 0.5
WINDOWS = 10
"""Hours measured after the warm-up."""
LAST_HOURS = 3
LAST_HOURS_GROWTH_BOUND = 24 * 1024
"""Bytes the agent's own allocations may grow by in the last three hours (90 changes). Its bounded
caches (SQL statements, file names, note paths, the TL messages of the latest reads) fill during the
first hours (about 15 KB an hour), then churn (measured: +1.4 KB over hours 7 to 9); a leak of 300
bytes per change would exceed this bound."""


def agent_bytes() -> int:
    """Bytes allocated by tobs-sync's code (not the simulator's) and still alive, since tracemalloc started."""
    gc.collect()
    kept = tracemalloc.take_snapshot().filter_traces([
        tracemalloc.Filter(True, "*/tobs_sync/*"),
        tracemalloc.Filter(False, "*/tobs_sync/sim/*"),
    ])
    return sum(stat.size for stat in kept.statistics("filename"))


@pytest.mark.slow
def test_hours_of_live_traffic_cost_work_only_per_change_and_bounded_memory(
    vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(vault, '[agent]\nevery = "1d"\n[sync]\nrecent_messages = 20\n')
    # The source keeps the TL messages it read last (2,000) so their files download without a second
    # request: a bounded cache that would still be filling after these hours. Bounded lower here, so
    # that what grows past the warm-up is what the agent keeps, not a cache on its way to its bound.
    monkeypatch.setattr(telegram_downloads, "RECENT_MESSAGES", 50)
    sizes: list[int] = []
    tasks: list[int] = []
    changes = 0

    async def live_for_hours(sim: SimulatedTelegram, passes: list[Pass]) -> AsyncIterator[None]:
        nonlocal changes
        sim.start_live(every_s=CHANGE_EVERY_S)
        await asyncio.sleep(WARM_UP_HOURS * HOUR)
        tracemalloc.start(1)
        try:
            for _ in range(WINDOWS):
                await asyncio.sleep(HOUR)
                sizes.append(agent_bytes())
                tasks.append(len(asyncio.all_tasks()))
        finally:
            tracemalloc.stop()
        await sim.stop_live()
        await asyncio.sleep(5)  # the last change's pass
        changes = len(sim.live_events)
        yield None

    run = run_on_simulator(vault, monkeypatch, live_for_hours, SimSpec(chats=3, messages=30, media=0, seed=5))
    work = [p for p in run.passes if p.what != "catch-up"]
    assert changes >= (WARM_UP_HOURS + WINDOWS) * HOUR / CHANGE_EVERY_S - 1
    assert len(work) <= changes  # no pass without a change to answer (a burst may share one)
    assert len(work) >= changes * 0.9
    assert len(set(tasks)) == 1, tasks
    growth = [later - earlier for earlier, later in itertools.pairwise(sizes)]
    assert sum(growth[-LAST_HOURS:]) < LAST_HOURS_GROWTH_BOUND, f"the agent's memory grew by {growth} bytes per hour"
