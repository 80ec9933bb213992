"""DC-aware scheduling: a flood wait on one DC pauses only that DC's queue, for exactly the wait.

Every test runs on a virtual-time event loop (``virtualtime``): a job "takes" 0.01 s and a flood wait
"lasts" 0.3 s of loop time, nothing really sleeps, and the times asserted are exact, so the order of
events is forced by the scheduler alone, never by how fast the machine is.
"""

from __future__ import annotations

import asyncio

import pytest
from virtualtime import run_virtual

from tobs_sync.errors import FloodWait
from tobs_sync.workers import DcScheduler, GlobalPool, Job, stop_if_paused

DURATION = 0.01


def loop_time() -> float:
    return asyncio.get_running_loop().time()


class FakeDownloads:
    """Jobs that take ``DURATION`` seconds of loop time; DC ``flooded`` answers each job's first try
    with a flood wait of ``wait`` seconds. Records when each job finished and how many ran at once."""

    def __init__(self, flooded: int | None = None, wait: float = 0.3) -> None:
        self.flooded = flooded
        self.wait = wait
        self.flooded_once: set[str] = set()
        self.finished_at: dict[str, float] = {}
        self.running: dict[int | None, int] = {}
        self.max_running: dict[int | None, int] = {}
        self.max_running_total = 0

    def job(self, key: str, dc_id: int | None) -> Job[str]:
        async def run() -> str:
            if dc_id == self.flooded and key not in self.flooded_once:
                self.flooded_once.add(key)
                raise FloodWait(self.wait, "downloading")
            self.running[dc_id] = self.running.get(dc_id, 0) + 1
            self.max_running[dc_id] = max(self.max_running.get(dc_id, 0), self.running[dc_id])
            self.max_running_total = max(self.max_running_total, sum(self.running.values()))
            await asyncio.sleep(DURATION)
            self.running[dc_id] -= 1
            self.finished_at[key] = loop_time()
            return key

        return Job(key, dc_id, run)

    def finished(self, *, dc: int, on: bool = True) -> list[float]:
        """Finish times of the jobs on DC ``dc`` (``on=False``: on every other DC), in order."""
        return sorted(t for key, t in self.finished_at.items() if key.startswith(f"{dc}-") is on)


def test_every_job_runs_once_and_results_are_keyed() -> None:
    fake = FakeDownloads()
    jobs = [fake.job(f"{dc}-{i}", dc) for dc in (1, 2, 4, None) for i in range(5)]
    results = run_virtual(DcScheduler(per_dc=2, total=4).run_all(jobs))
    assert results == {job.key: job.key for job in jobs}


def test_per_dc_and_total_concurrency_are_bounded() -> None:
    fake = FakeDownloads()
    jobs = [fake.job(f"{dc}-{i}", dc) for dc in (1, 2, 3) for i in range(8)]
    run_virtual(DcScheduler(per_dc=2, total=5).run_all(jobs))
    assert fake.max_running == {1: 2, 2: 2, 3: 2}
    assert fake.max_running_total == 5


def test_flood_wait_on_one_dc_pauses_that_dc_for_exactly_the_wait_and_no_other() -> None:
    fake = FakeDownloads(flooded=4, wait=0.3)
    jobs = [fake.job(f"{dc}-{i}", dc) for i in range(3) for dc in (1, 2, 4)]

    async def run() -> tuple[dict[object, object], float]:
        results = await DcScheduler(per_dc=2, total=6).run_all(jobs)
        return results, loop_time()

    results, ended = run_virtual(run())
    assert all(results[job.key] == job.key for job in jobs)
    # DC 1 and 2: three jobs on two workers each, two rounds, untouched by DC 4's pauses.
    assert fake.finished(dc=4, on=False) == pytest.approx([DURATION] * 4 + [2 * DURATION] * 2)
    # DC 4: each job's first try is refused; the DC resumes exactly when each wait ends, and not before.
    assert fake.finished(dc=4) == pytest.approx([0.3 + DURATION, 0.6 + DURATION, 0.9 + DURATION])
    assert ended == pytest.approx(0.9 + DURATION)


@pytest.mark.parametrize(
    ("scheduler", "others_done", "flooded_done"),
    [
        # Two workers in all: while DC 4 is paused, both serve DC 1 and 2 (8 jobs: 4 rounds).
        (DcScheduler(per_dc=2, total=2), 4 * DURATION, 0.5 + DURATION),
        # The naive pool: both workers sleep through DC 4's waits, then do the 8 others.
        (GlobalPool(total=2), 0.5 + 5 * DURATION, 0.5 + DURATION),
    ],
    ids=["dc-aware", "global-pool"],
)
def test_only_the_naive_pool_lets_a_flooded_dc_hold_every_worker(
    scheduler: DcScheduler | GlobalPool, others_done: float, flooded_done: float
) -> None:
    fake = FakeDownloads(flooded=4, wait=0.5)
    jobs = [fake.job("4-0", 4), fake.job("4-1", 4)] + [fake.job(f"{dc}-{i}", dc) for i in range(4) for dc in (1, 2)]
    run_virtual(scheduler.run_all(jobs))
    assert fake.finished(dc=4, on=False)[-1] == pytest.approx(others_done)
    assert fake.finished(dc=4)[0] == pytest.approx(flooded_done)


def test_wait_longer_than_the_maximum_defers_that_dc_only_without_waiting() -> None:
    fake = FakeDownloads(flooded=4, wait=1000)

    async def run() -> tuple[dict[object, object], float]:
        results = await DcScheduler(max_flood_wait=60).run_all(jobs)
        return results, loop_time()

    jobs = [fake.job(f"{dc}-{i}", dc) for dc in (1, 4) for i in range(3)]
    results, ended = run_virtual(run())
    assert [results[f"1-{i}"] for i in range(3)] == ["1-0", "1-1", "1-2"]
    assert all(isinstance(results[f"4-{i}"], FloodWait) for i in range(3))
    assert ended == pytest.approx(2 * DURATION), "the deferred DC's 1000 s wait is not slept"


def test_the_naive_pool_gives_up_on_a_wait_longer_than_the_maximum_without_waiting() -> None:
    fake = FakeDownloads(flooded=4, wait=1000)

    async def run() -> tuple[dict[object, object], float]:
        results = await GlobalPool(total=2, max_flood_wait=60).run_all([fake.job("4-0", 4), fake.job("1-0", 1)])
        return results, loop_time()

    results, ended = run_virtual(run())
    assert isinstance(results["4-0"], FloodWait) and results["1-0"] == "1-0"
    assert ended == pytest.approx(DURATION)


def test_a_failing_job_is_reported_and_others_continue() -> None:
    async def boom() -> str:
        raise ConnectionError("reset")

    fake = FakeDownloads()
    jobs = [Job("bad", 2, boom), fake.job("good", 2)]
    results = run_virtual(DcScheduler().run_all(jobs))
    assert isinstance(results["bad"], ConnectionError)
    assert results["good"] == "good"


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        DcScheduler(per_dc=0)


def test_concurrent_callers_share_each_dcs_limit_and_the_total() -> None:
    """Two batches (or chats) fetching at once go through the one scheduler: DC 1 never runs more
    than its 2 workers, and all DCs together never more than the total, whoever submitted the jobs."""
    fake = FakeDownloads()
    scheduler = DcScheduler(per_dc=2, total=3)

    async def run() -> list[dict[object, object]]:
        first = [fake.job(f"1-a{i}", 1) for i in range(4)] + [fake.job(f"2-a{i}", 2) for i in range(4)]
        second = [fake.job(f"1-b{i}", 1) for i in range(4)] + [fake.job(f"2-b{i}", 2) for i in range(4)]
        return list(await asyncio.gather(scheduler.run_all(first), scheduler.run_all(second)))

    first, second = run_virtual(run())
    assert len(first) == len(second) == 8 and all(key == value for key, value in (first | second).items())
    assert fake.max_running == {1: 2, 2: 2}
    assert fake.max_running_total == 3


def test_a_flood_pause_seen_by_one_caller_holds_back_the_next_callers_jobs_on_that_dc() -> None:
    """The lanes outlive a call: a batch submitted while DC 4 is paused waits for the pause to end."""
    fake = FakeDownloads(flooded=4, wait=0.3)
    scheduler = DcScheduler(per_dc=1, total=4)

    async def run() -> None:
        first = asyncio.ensure_future(scheduler.run_all([fake.job("4-a", 4)]))
        await asyncio.sleep(0.1)  # DC 4 answered "wait 0.3 s" at 0.0
        fake.flooded_once.add("4-b")  # the later job would not be refused by itself
        await asyncio.gather(first, scheduler.run_all([fake.job("4-b", 4)]))

    run_virtual(run())
    assert fake.finished(dc=4) == pytest.approx([0.3 + DURATION, 0.3 + 2 * DURATION])


def test_jobs_submitted_one_by_one_get_their_results_in_their_futures() -> None:
    fake = FakeDownloads()
    scheduler = DcScheduler(per_dc=1, total=2)

    async def run() -> list[object]:
        futures = [scheduler.submit(fake.job(f"{dc}-{i}", dc)) for i in range(3) for dc in (1, 2)]
        return list(await asyncio.gather(*futures))

    assert run_virtual(run()) == ["1-0", "2-0", "1-1", "2-1", "1-2", "2-2"]
    assert fake.max_running == {1: 1, 2: 1}


def test_a_pause_ends_at_the_earliest_end_the_answers_received_during_it_allow() -> None:
    """Telegram says how long to wait in whole seconds, rounded up: the flood below ends at 3.0; the
    answer at 0.25 to a request sent before the pause says 3 s (ceil of 2.75), which would end the
    pause at 3.25. The DC resumes at 3.0."""
    flood_ends = 3.0
    refused: list[float] = []
    finished: list[float] = []

    def job(key: str, start_after: float) -> Job[str]:
        async def run() -> str:
            if not refused or loop_time() < start_after:
                await asyncio.sleep(max(0.0, start_after - loop_time()))
            now = loop_time()
            if now < flood_ends:
                refused.append(now)
                raise FloodWait(-(-(flood_ends - now) // 1), "downloading")
            await asyncio.sleep(DURATION)
            finished.append(loop_time())
            return key

        return Job(key, 3, run)

    run_virtual(DcScheduler(per_dc=2, total=2).run_all([job("a", 0.0), job("b", 0.25)]))
    assert refused[:2] == [0.0, 0.25]
    assert finished == pytest.approx([flood_ends + DURATION] * 2)


@pytest.mark.parametrize("scheduler", [DcScheduler(per_dc=1, total=1), GlobalPool(total=1)], ids=["dc-aware", "global"])
def test_a_job_that_ends_cancelled_does_not_stop_the_jobs_queued_behind_it(scheduler: DcScheduler | GlobalPool) -> None:
    async def cancelled_inside() -> str:
        raise asyncio.CancelledError  # e.g. a stream it awaited was cancelled

    fake = FakeDownloads()
    results = run_virtual(scheduler.run_all([Job("gone", 1, cancelled_inside), fake.job("1-next", 1)]))
    assert isinstance(results["gone"], asyncio.CancelledError)
    assert results["1-next"] == "1-next"


def parts_job(key: str, dc_id: int, sent: list[tuple[str, float]], *, flood_at_part: int | None = None,
              wait: float = 0.3, parts: int = 4) -> Job[str]:
    """A download of ``parts`` requests of ``DURATION`` each, checking its DC between two (as
    ``Download`` does); ``flood_at_part`` is answered once with a flood wait. Resumes where it stopped."""
    done = 0
    flooded = False

    async def run() -> str:
        nonlocal done, flooded
        while done < parts:
            sent.append((key, loop_time()))
            if done == flood_at_part and not flooded:
                flooded = True
                raise FloodWait(wait, "downloading")
            await asyncio.sleep(DURATION)
            done += 1
            if done < parts:
                stop_if_paused()
        return key

    return Job(key, dc_id, run)


def test_a_running_job_of_a_dc_given_up_stops_at_its_next_request_and_is_deferred() -> None:
    """A wait longer than the maximum on DC 4 (told at the second part of one file) defers the file
    running beside it at its next part, without sending it: both fail with the wait."""
    sent: list[tuple[str, float]] = []
    jobs = [parts_job("4-a", 4, sent, flood_at_part=1, wait=1000), parts_job("4-b", 4, sent, parts=6)]
    results = run_virtual(DcScheduler(per_dc=2, total=2, max_flood_wait=60).run_all(jobs))
    assert isinstance(results["4-a"], FloodWait) and isinstance(results["4-b"], FloodWait)
    flood_told_at = max(at for key, at in sent if key == "4-a")
    assert flood_told_at == pytest.approx(DURATION)
    assert max(at for key, at in sent if key == "4-b") <= flood_told_at  # none of its 6 parts after


def test_the_naive_pool_sends_on_to_a_dc_that_asked_another_worker_to_wait() -> None:
    """As a plain client does: stop_if_paused is no check outside the DC-aware scheduler."""
    sent: list[tuple[str, float]] = []
    jobs = [parts_job("4-a", 4, sent, flood_at_part=1), parts_job("4-b", 4, sent)]
    results = run_virtual(GlobalPool(total=2).run_all(jobs))
    assert results == {"4-a": "4-a", "4-b": "4-b"}
    assert [at for key, at in sent if key == "4-b"] == pytest.approx([n * DURATION for n in range(4)])
