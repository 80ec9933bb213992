"""DC-aware scheduling: a flood wait on one DC pauses only that DC's queue."""

from __future__ import annotations

import asyncio
import time

import pytest

from tobs_sync.errors import FloodWait
from tobs_sync.workers import DcScheduler, GlobalPool, Job


class FakeDownloads:
    """Jobs that take ``duration`` seconds; DC ``flooded`` answers each first try with a flood wait."""

    def __init__(self, duration: float = 0.01, flooded: int | None = None, wait: float = 0.3) -> None:
        self.duration = duration
        self.flooded = flooded
        self.wait = wait
        self.flooded_once: set[str] = set()
        self.finished_at: dict[str, float] = {}
        self.running: dict[int | None, int] = {}
        self.max_running: dict[int | None, int] = {}

    def job(self, key: str, dc_id: int | None) -> Job[str]:
        async def run() -> str:
            if dc_id == self.flooded and key not in self.flooded_once:
                self.flooded_once.add(key)
                raise FloodWait(self.wait, "downloading")
            self.running[dc_id] = self.running.get(dc_id, 0) + 1
            self.max_running[dc_id] = max(self.max_running.get(dc_id, 0), self.running[dc_id])
            await asyncio.sleep(self.duration)
            self.running[dc_id] -= 1
            self.finished_at[key] = time.monotonic()
            return key

        return Job(key, dc_id, run)


def test_every_job_runs_once_and_results_are_keyed() -> None:
    fake = FakeDownloads()
    jobs = [fake.job(f"{dc}-{i}", dc) for dc in (1, 2, 4, None) for i in range(5)]
    results = asyncio.run(DcScheduler(per_dc=2, total=4).run_all(jobs))
    assert results == {job.key: job.key for job in jobs}


def test_per_dc_concurrency_is_bounded() -> None:
    fake = FakeDownloads(duration=0.02)
    jobs = [fake.job(f"{dc}-{i}", dc) for dc in (1, 2) for i in range(8)]
    asyncio.run(DcScheduler(per_dc=2, total=10).run_all(jobs))
    assert fake.max_running == {1: 2, 2: 2}


def test_flood_wait_on_one_dc_does_not_stop_the_others() -> None:
    fake = FakeDownloads(duration=0.01, flooded=4, wait=0.3)
    jobs = [fake.job(f"{dc}-{i}", dc) for i in range(3) for dc in (1, 2, 4)]
    start = time.monotonic()
    results = asyncio.run(DcScheduler(per_dc=2, total=6).run_all(jobs))
    assert all(results[job.key] == job.key for job in jobs)
    others_done = max(t for key, t in fake.finished_at.items() if not key.startswith("4-")) - start
    flooded_done = min(t for key, t in fake.finished_at.items() if key.startswith("4-")) - start
    assert others_done < flooded_done  # DC 1 and 2 finished while DC 4 was paused
    assert flooded_done >= 0.3  # DC 4 resumed only after its wait


@pytest.mark.parametrize(("scheduler", "others_stalled"), [(DcScheduler(per_dc=2, total=2), False),
                                                           (GlobalPool(total=2), True)])
def test_only_the_naive_pool_lets_a_flooded_dc_hold_every_worker(
    scheduler: DcScheduler | GlobalPool, others_stalled: bool
) -> None:
    fake = FakeDownloads(duration=0.01, flooded=4, wait=0.5)
    jobs = [fake.job("4-0", 4), fake.job("4-1", 4)] + [fake.job(f"{dc}-{i}", dc) for i in range(4) for dc in (1, 2)]
    start = time.monotonic()
    asyncio.run(scheduler.run_all(jobs))
    others_done = max(t for key, t in fake.finished_at.items() if not key.startswith("4-")) - start
    flooded_done = min(t for key, t in fake.finished_at.items() if key.startswith("4-")) - start
    assert flooded_done >= 0.5
    assert (others_done > flooded_done) is others_stalled  # the others waited for DC 4's flood wait


def test_wait_longer_than_the_maximum_defers_that_dc_only() -> None:
    fake = FakeDownloads(flooded=4, wait=1000)
    jobs = [fake.job(f"{dc}-{i}", dc) for dc in (1, 4) for i in range(3)]
    results = asyncio.run(DcScheduler(max_flood_wait=60).run_all(jobs))
    assert [results[f"1-{i}"] for i in range(3)] == ["1-0", "1-1", "1-2"]
    assert all(isinstance(results[f"4-{i}"], FloodWait) for i in range(3))


def test_a_failing_job_is_reported_and_others_continue() -> None:
    async def boom() -> str:
        raise ConnectionError("reset")

    fake = FakeDownloads()
    jobs = [Job("bad", 2, boom), fake.job("good", 2)]
    results = asyncio.run(DcScheduler().run_all(jobs))
    assert isinstance(results["bad"], ConnectionError)
    assert results["good"] == "good"


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        DcScheduler(per_dc=0)
