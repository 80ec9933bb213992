"""The simulated Telegram's rate-based flood limit: so many requests per sliding window (refused ones
counted if asked), answered with the FLOOD_WAIT_X that Telethon turns into FloodWaitError.

Times are given explicitly (the limit takes the clock from its caller) or come from the virtual-time
loop of tests/virtualtime.py: nothing sleeps for real.
"""

from __future__ import annotations

import asyncio

import pytest
from telethon import errors
from virtualtime import run_virtual

from tobs_sync.sim import SimSpec, SimulatedTelegram
from tobs_sync.sim.faults import Faults
from tobs_sync.sim.floodlimit import SlidingLimit


def test_a_limit_admits_so_many_requests_per_sliding_window_and_tells_when_there_is_room() -> None:
    limit = SlidingLimit(3, 10.0)
    assert [limit.attempt(t) for t in (0.0, 1.0, 2.0)] == [0.0, 0.0, 0.0]
    assert limit.attempt(4.0) == pytest.approx(6.0)  # full: room again once the request at 0 leaves the window
    assert limit.attempt(9.5) == pytest.approx(0.5)  # asking early is refused (and costs nothing here)
    assert limit.attempt(10.0) == 0.0  # a client that waited as told is admitted
    assert limit.attempt(10.5) == pytest.approx(0.5)  # the window slides: the next room comes at 11
    assert (limit.admitted, limit.refused, limit.waits) == (4, 3, 2)


def test_counting_refusals_a_refused_request_takes_a_place_in_the_window() -> None:
    limit = SlidingLimit(3, 10.0, count_refused=True)
    for t in (0.0, 1.0, 2.0):
        limit.attempt(t)
    assert limit.attempt(4.0) == pytest.approx(7.0)  # room once the requests at 0 and 1 left: 3 in the window
    assert limit.attempt(11.0) == 0.0


def test_counting_refusals_a_client_that_keeps_asking_during_a_wait_is_kept_waiting_longer() -> None:
    polite, hammering = SlidingLimit(3, 10.0, count_refused=True), SlidingLimit(3, 10.0, count_refused=True)
    for limit in (polite, hammering):
        for t in (0.0, 1.0, 2.0):
            limit.attempt(t)
        assert limit.attempt(4.0) == pytest.approx(7.0)  # both told at 4 to wait until 11
    for t in (5.0, 6.0, 7.0, 8.0):
        hammering.attempt(t)
    assert polite.attempt(11.0) == 0.0
    assert hammering.attempt(11.0) > 0.0
    assert hammering.attempt(18.5) == pytest.approx(0.0)  # room once the attempts up to 8 left the window


def test_without_counting_refusals_asking_during_a_wait_costs_nothing() -> None:
    limit = SlidingLimit(3, 10.0)
    for t in (0.0, 1.0, 2.0):
        limit.attempt(t)
    assert limit.attempt(4.0) == pytest.approx(6.0)
    for t in (5.0, 6.0, 7.0, 8.0):
        limit.attempt(t)
    assert limit.attempt(10.0) == 0.0


def test_floods_depend_on_how_fast_a_client_asks_not_on_how_many_requests_it_makes() -> None:
    paced, burst = SlidingLimit(4, 2.0), SlidingLimit(4, 2.0)
    assert all(paced.attempt(n * 0.5) == 0.0 for n in range(40))  # 4 per 2 s: never refused
    t, sent = 0.0, 0
    while sent < 40:  # as fast as it can, waiting as told when refused
        wait = burst.attempt(t)
        sent += wait == 0.0
        t += wait or 0.01
    assert paced.admitted == burst.admitted == 40
    assert paced.waits == 0 < burst.waits


def test_invalid_limits_are_refused_naming_the_problem() -> None:
    with pytest.raises(ValueError, match="at least 1 request"):
        SlidingLimit(0, 1.0)
    with pytest.raises(ValueError, match="positive window"):
        SlidingLimit(1, 0.0)


def test_a_download_limit_holds_its_dc_only_and_answers_flood_wait_with_the_seconds_left() -> None:
    faults = Faults()
    faults.limit_downloads(3, requests=2, window_s=5.0, count_refused=True)

    async def scenario() -> list[tuple[int, str | None]]:
        answers = []
        for at, dc in ((0.0, 3), (0.5, 3), (1.2, 3), (1.2, 1), (1.3, 1), (1.4, 1), (5.0, 3), (7.0, 3)):
            await asyncio.sleep(at - asyncio.get_running_loop().time())
            rule = faults.take("GetFile", "upload.GetFile", dc)
            answers.append((dc, None if rule is None else rule.flood_message))
        return answers

    assert run_virtual(scenario()) == [
        # told at 1.2 to wait 5 s (4.3, until the attempt at 0.5 leaves the window: the refused one counts);
        # asking again early, at 5.0, is refused and counts too: room once 1.2 has left, at 6.2
        (3, None), (3, None), (3, "FLOOD_WAIT_5"), (1, None), (1, None), (1, None), (3, "FLOOD_WAIT_2"), (3, None),
    ]
    assert (faults.fired["limit"], faults.fired["limit_wait"]) == (2, 1)


@pytest.mark.parametrize(("premium", "error"), [(False, errors.FloodWaitError), (True, errors.FloodPremiumWaitError)])
def test_telethon_raises_its_flood_error_when_a_dc_download_limit_is_exceeded(
    premium: bool, error: type[errors.RPCError]
) -> None:
    sim = SimulatedTelegram(SimSpec(chats=4, messages=60, seed=7))
    chat_id, stored = next((c, m) for c, m in sim.media_messages() if m.document is not None)
    sim.faults.limit_downloads(sim.file_dc(sim.file_key(stored)), requests=2, window_s=30.0, premium=premium)

    async def scenario() -> tuple[int, int]:
        client = sim.client(flood_sleep_threshold=0)
        await client.get_dialogs()
        message = await client.get_messages(chat_id, ids=stored.id)
        parts = 0
        with pytest.raises(error) as caught:
            async for _ in client.iter_download(message.media, request_size=4096):
                parts += 1
        return parts, caught.value.seconds  # type: ignore[attr-defined]

    assert run_virtual(scenario()) == (2, 30)
