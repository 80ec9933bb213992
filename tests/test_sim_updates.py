"""Updates as Telegram sends them, received by a real Telethon client's update loop and ``MessageBox``.

Every test runs on a virtual-time event loop (``virtualtime``): Telethon's own waits (half a second
before it treats a ``pts`` gap as real, keep-alive pings) pass at once, and every wait for an event is
bounded in loop time, never by the wall clock. What the client sees is recorded by ordinary
``events.NewMessage`` / ``MessageEdited`` / ``MessageDeleted`` / ``Raw`` handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest
from telethon import TelegramClient, events
from telethon.tl import functions, types
from virtualtime import run_virtual

from tobs_sync.sim import SimSpec, SimulatedTelegram

T = TypeVar("T")
WAIT_BOUND_S = 120.0
"""Loop-time bound on waiting for an event (virtual seconds: Telethon's gap wait is 0.5 s)."""

Seen = tuple[Any, ...]


def run(make: Callable[[], Awaitable[T]]) -> T:
    return run_virtual(make())  # type: ignore[arg-type]


def simulated(**overrides: Any) -> SimulatedTelegram:
    values = {"chats": 8, "messages": 30, "seed": 11} | overrides
    return SimulatedTelegram(SimSpec(**values))


def chat_of(sim: SimulatedTelegram, kind: str, nth: int = 0) -> int:
    return [chat for chat in sim.chat_ids if sim.kind(chat) == kind][nth]


class Recorder:
    """Everything the client's event handlers receive, in order, with a bounded wait for more."""

    def __init__(self, client: TelegramClient) -> None:
        self.seen: list[Seen] = []
        self._before: dict[str, int] = {}
        self._changed = asyncio.Event()
        client.add_event_handler(self._on_new, events.NewMessage)
        client.add_event_handler(self._on_edit, events.MessageEdited)
        client.add_event_handler(self._on_delete, events.MessageDeleted)
        client.add_event_handler(self._on_raw, events.Raw(types.UpdateChannelAvailableMessages))

    def _add(self, item: Seen) -> None:
        self.seen.append(item)
        self._changed.set()

    async def _on_new(self, event: events.NewMessage.Event) -> None:
        self._add(("new", event.chat_id, event.message.id, event.raw_text))

    async def _on_edit(self, event: events.MessageEdited.Event) -> None:
        self._add(("edit", event.chat_id, event.message.id, event.raw_text))

    async def _on_delete(self, event: events.MessageDeleted.Event) -> None:
        self._add(("delete", event.chat_id, tuple(event.deleted_ids)))

    async def _on_raw(self, update: types.UpdateChannelAvailableMessages) -> None:
        self._add(("available", update.channel_id, update.available_min_id))

    def mark(self, sim: SimulatedTelegram) -> None:
        """Count difference requests from now on (logging in makes one)."""
        self._before = {name: sim.stats.count(name) for name in ("GetDifference", "GetChannelDifference")}

    def asked(self, sim: SimulatedTelegram, name: str) -> int:
        """``name`` requests since :meth:`mark`."""
        return sim.stats.count(name) - self._before[name]

    async def until(self, predicate: Callable[[list[Seen]], bool], what: str) -> None:
        try:
            async with asyncio.timeout(WAIT_BOUND_S):
                while not predicate(self.seen):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"never saw {what}; saw {self.seen}") from None

    async def settle(self, sim: SimulatedTelegram, expecting: int) -> list[Seen]:
        """Everything seen once ``expecting`` events arrived and then a marker message pushed afterwards
        (updates are handled in order, so a late duplicate would show up before it); without the marker."""
        await self.until(lambda seen: len(seen) >= expecting, f"{expecting} events")
        chat = chat_of(sim, "private")
        marker = new(chat, sim.add_message(chat, text="marker", shape="updates"))
        await self.until(lambda seen: marker in seen, "the marker")
        return [s for s in self.seen if s != marker]


@contextlib.asynccontextmanager
async def listening(sim: SimulatedTelegram) -> AsyncIterator[tuple[TelegramClient, Recorder]]:
    """A connected client with a :class:`Recorder`; disconnected at the end (also when a check fails,
    so its update loop cannot outlive the test)."""
    client = sim.client()
    recorder = Recorder(client)
    await client.connect()  # starts Telethon's update loop (GetState fills its MessageBox)
    try:
        await client.get_dialogs()  # channel pts and access hashes, as a real client has them
        recorder.mark(sim)
        yield client, recorder
    finally:
        await client.disconnect()


def new(chat_id: int, message: types.Message) -> Seen:
    return ("new", chat_id, message.id, message.message)


# region every shape delivers every new message once


@pytest.mark.parametrize(
    ("shape", "kinds"),
    [
        ("updates", ("private", "group", "channel", "megagroup")),
        ("updatesCombined", ("private", "group", "channel", "megagroup")),
        ("updateShort", ("private", "group", "channel", "megagroup")),
        ("updateShortMessage", ("private",)),
        ("updateShortChatMessage", ("group",)),
    ],
)
def test_each_update_shape_delivers_every_new_message_exactly_once(shape: str, kinds: tuple[str, ...]) -> None:
    sim = simulated()

    async def scenario() -> None:
        async with listening(sim) as (_client, recorder):
            expected = []
            for round_ in range(3):
                for kind in kinds:
                    chat = chat_of(sim, kind)
                    expected.append(new(chat, sim.add_message(chat, text=f"{shape} {kind} {round_}", shape=shape)))
            assert await recorder.settle(sim, len(expected)) == expected
            assert recorder.asked(sim, "GetDifference") == 0  # pts and seq followed on, no gap was suspected
            assert recorder.asked(sim, "GetChannelDifference") == 0

    run(scenario)
    assert set(sim.shapes_sent[:-1]) == {shape}


def test_changes_held_together_travel_as_one_updates_combined_with_a_seq_range() -> None:
    sim = simulated()
    private, group, channel = chat_of(sim, "private"), chat_of(sim, "group"), chat_of(sim, "channel")
    old = sim.messages(group)[3]

    async def scenario() -> None:
        async with listening(sim) as (_client, recorder):
            with sim.updates_together():
                first = sim.add_message(private, text="one")
                second = sim.add_message(channel, text="two")
                third = sim.add_message(group, text="three")
                sim.edit_message(group, old.id, "old, edited")
            assert sim.shapes_sent == ["updatesCombined"]
            seen = await recorder.settle(sim, 4)
            assert sorted(seen) == sorted(
                [new(private, first), new(channel, second), new(group, third), ("edit", group, old.id, "old, edited")]
            )
            assert recorder.asked(sim, "GetDifference") == 0  # seq_start..seq (three account updates) fitted

    run(scenario)


def test_mixed_policy_picks_seeded_shapes_that_all_deliver() -> None:
    def shapes(seed: int) -> list[str]:
        sim = simulated(seed=seed)
        sim.update_shape = "mixed"
        kinds = ("private", "group", "channel", "megagroup", "private")

        async def scenario() -> None:
            async with listening(sim) as (_client, recorder):
                expected = [new(chat_of(sim, k), sim.add_message(chat_of(sim, k), text=f"m{i}")) for i, k in
                            enumerate(kinds * 4)]
                assert await recorder.settle(sim, len(expected)) == expected
                assert recorder.asked(sim, "GetDifference") == 0

        run(scenario)
        return sim.shapes_sent

    first = shapes(3)
    assert first == shapes(3)
    assert len(set(first)) >= 3
    assert not set(first) & {"updatesTooLong", "dropped"}


def test_unknown_or_unfitting_shape_is_refused_by_name() -> None:
    sim = simulated()
    channel = chat_of(sim, "channel")
    before = {chat: sim.messages(chat) for chat in sim.chat_ids}
    with pytest.raises(ValueError, match="unknown update shape 'shortMessage'"):
        sim.add_message(channel, text="x", shape="shortMessage")
    with pytest.raises(ValueError, match="updateShortMessage cannot carry a new message in a channel"):
        sim.add_message(channel, text="x", shape="updateShortMessage")
    private = chat_of(sim, "private")
    with pytest.raises(ValueError, match="updateShortMessage cannot carry a new message with media in a private"):
        sim.add_message(private, media_kind="photo", shape="updateShortMessage")
    with pytest.raises(ValueError, match="updateShortChatMessage cannot carry an edit or deletion"):
        sim.delete_messages(private, [sim.messages(private)[0].id], shape="updateShortChatMessage")
    assert not sim.live_events and not sim.shapes_sent  # a refused call changes nothing
    assert {chat: sim.messages(chat) for chat in sim.chat_ids} == before
    with pytest.raises(ValueError, match="unknown update shape"):
        sim.update_shape = "often"
    with pytest.raises(ValueError, match="slice_limit must be at least 1, got 0"):
        sim.set_difference_limits(slice_limit=0)


# endregion

# region gaps and differences


@pytest.mark.parametrize(("kind", "next_shape"), [("private", "updates"), ("private", "updateShortMessage"),
                                                  ("group", "updateShortChatMessage"), ("channel", "updates")])
def test_a_dropped_update_is_a_gap_that_telethon_fills_with_a_difference(kind: str, next_shape: str) -> None:
    sim = simulated()
    chat = chat_of(sim, kind)

    async def scenario() -> None:
        async with listening(sim) as (_client, recorder):
            lost = sim.add_message(chat, text="never pushed", shape="dropped")
            after = sim.add_message(chat, text="pushed after the gap", shape=next_shape)
            expected = [new(chat, lost), new(chat, after)]
            assert await recorder.settle(sim, len(expected)) == expected
            assert recorder.asked(sim, "GetChannelDifference" if kind == "channel" else "GetDifference") == 1

    run(scenario)


@pytest.mark.parametrize("kind", ["private", "megagroup"])
def test_updates_too_long_makes_telethon_fetch_the_difference(kind: str) -> None:
    sim = simulated()
    chat = chat_of(sim, kind)

    async def scenario() -> None:
        async with listening(sim) as (_client, recorder):
            message = sim.add_message(chat, text="too long to push", shape="updatesTooLong")
            expected = [new(chat, message)]
            assert await recorder.settle(sim, len(expected)) == expected
            assert recorder.asked(sim, "GetDifference") == 1
            # for a channel, the account difference named it with updateChannelTooLong
            assert recorder.asked(sim, "GetChannelDifference") == (kind == "megagroup")

    run(scenario)


def test_difference_slices_deliver_everything_missed_once() -> None:
    sim = simulated()
    private, group = chat_of(sim, "private"), chat_of(sim, "group")
    sim.set_difference_limits(slice_limit=2)

    async def scenario() -> None:
        async with listening(sim) as (client, recorder):
            async with sim.away(client):
                missed = [new(c, sim.add_message(c, text=f"away {i}")) for i, c in enumerate([private, group] * 3)]
            assert await recorder.settle(sim, len(missed)) == missed
            assert recorder.asked(sim, "GetDifference") == 3  # slices of 2, 2, then the final 2 with the state

    run(scenario)


def test_channel_difference_pages_by_the_clients_limit() -> None:
    sim = simulated()
    channel = chat_of(sim, "channel")

    async def scenario() -> None:
        async with listening(sim) as (client, recorder):
            async with sim.away(client):
                missed = [new(channel, sim.add_message(channel, text=f"post {i}")) for i in range(130)]
            assert await recorder.settle(sim, len(missed)) == missed
            assert recorder.asked(sim, "GetChannelDifference") == 2  # Telethon asks for 100 at a time

    run(scenario)


def test_difference_too_long_is_skipped_by_telethon_and_history_still_has_the_messages() -> None:
    sim = simulated()
    private = chat_of(sim, "private")

    async def scenario() -> None:
        async with listening(sim) as (client, recorder):
            async with sim.away(client):
                missed = [sim.add_message(private, text=f"while away {i}") for i in range(3)]
                sim.forget_updates()
            later = sim.add_message(private, text="after catching up")
            # Telethon jumped its pts to the server's: nothing of the gap is an event, later updates flow on.
            expected = [new(private, later)]
            assert await recorder.settle(sim, len(expected)) == expected
            recent = await client.get_messages(private, limit=5)
            assert {m.id for m in missed} <= {m.id for m in recent}
            # differenceTooLong carries no seq: the next ``updates`` is a seq gap, filled from the new pts
            assert recorder.asked(sim, "GetDifference") == 2

    run(scenario)


def test_channel_difference_too_long_is_skipped_by_telethon_and_history_still_has_the_messages() -> None:
    sim = simulated()
    channel = chat_of(sim, "megagroup")
    sim.set_difference_limits(channel_too_long_after=2)

    async def scenario() -> None:
        async with listening(sim) as (client, recorder):
            channel_answers = sim.differences_answered.get("channel", 0)
            async with sim.away(client):
                missed = [sim.add_message(channel, text=f"while away {i}") for i in range(3)]
            await sim.await_differences(channel=channel_answers + 1)  # the channel's, after the account's
            later = sim.add_message(channel, text="after catching up")
            expected = [new(channel, later)]
            assert await recorder.settle(sim, len(expected)) == expected
            recent = await client.get_messages(channel, limit=5)
            assert {m.id for m in missed} <= {m.id for m in recent}
            # Telethon does not end the difference on channelDifferenceTooLong: it asks once more (empty)
            assert recorder.asked(sim, "GetChannelDifference") == 2

    run(scenario)


# endregion

# region edits and deletions


def test_live_edits_and_deletions_of_old_messages_bulk_deletes_and_cleared_history_are_events() -> None:
    sim = simulated()
    private, group, channel = chat_of(sim, "private"), chat_of(sim, "group"), chat_of(sim, "megagroup")
    other_private = chat_of(sim, "private", 1)
    old_private = sim.messages(private)[1]
    old_channel = sim.messages(channel)[2]
    bulk = [m.id for m in sim.messages(group)[1:8]]

    async def scenario() -> None:
        async with listening(sim) as (client, recorder):
            sim.edit_message(private, old_private.id, "edited long after")
            sim.edit_message(channel, old_channel.id, "edited channel post")
            sim.delete_messages(group, bulk)
            sim.delete_messages(channel, [old_channel.id])
            cleared = sim.clear_history(other_private)
            channel_cleared = sim.clear_history(channel)
            expected = [
                ("edit", private, old_private.id, "edited long after"),
                ("edit", channel, old_channel.id, "edited channel post"),
                ("delete", None, tuple(bulk)),  # Telegram names no chat for private/basic-group deletions
                ("delete", channel, (old_channel.id,)),
                ("delete", None, tuple(cleared)),
                ("available", -channel - 1_000_000_000_000, max(channel_cleared)),  # no MessageDeleted for it
            ]
            assert await recorder.settle(sim, len(expected)) == expected
            assert await client.get_messages(channel, limit=10) == []
            assert await client.get_messages(other_private, limit=10) == []

    run(scenario)


def test_difference_reflects_messages_as_they_are_now() -> None:
    sim = simulated()
    private, channel = chat_of(sim, "private"), chat_of(sim, "channel")

    async def scenario() -> None:
        async with listening(sim) as (client, recorder):
            async with sim.away(client):
                kept = sim.add_message(private, text="first version")
                sim.edit_message(private, kept.id, "second version")
                gone = sim.add_message(private, text="soon deleted")
                sim.delete_messages(private, [gone.id])
                post = sim.add_message(channel, text="draft")
                sim.edit_message(channel, post.id, "final")
            expected = [
                ("new", private, kept.id, "second version"),
                ("new", channel, post.id, "final"),
            ]
            assert await recorder.settle(sim, len(expected)) == expected

    run(scenario)


def test_edits_and_deletions_while_away_are_no_events_in_telethon_but_show_when_rereading() -> None:
    sim = simulated()
    private, group, channel = chat_of(sim, "private"), chat_of(sim, "group"), chat_of(sim, "channel")
    old_private, old_channel = sim.messages(private)[2], sim.messages(channel)[4]
    doomed_group, doomed_channel = sim.messages(group)[5], sim.messages(channel)[6]

    async def scenario() -> None:
        async with listening(sim) as (client, recorder):
            before = await client(functions.updates.GetStateRequest())
            async with sim.away(client):
                sim.edit_message(private, old_private.id, "edited while away")
                sim.edit_message(channel, old_channel.id, "channel edit while away")
                sim.delete_messages(group, [doomed_group.id])
                sim.delete_messages(channel, [doomed_channel.id])
                fresh = sim.add_message(private, text="new while away")
                fresh_post = sim.add_message(channel, text="new post while away")

            # Telethon 1.45 delivers the new messages of the differences and drops their edits and deletions.
            expected = [new(private, fresh), new(channel, fresh_post)]
            assert await recorder.settle(sim, len(expected)) == expected
            assert recorder.asked(sim, "GetDifference") == 1
            assert recorder.asked(sim, "GetChannelDifference") == 1

            # The server did send them: the account difference carries the edit (as it is now) and deletion.
            diff = await client(functions.updates.GetDifferenceRequest(pts=before.pts, date=before.date, qts=0))
            edits = [u for u in diff.other_updates if isinstance(u, types.UpdateEditMessage)]
            assert [(u.message.id, u.message.message) for u in edits] == [(old_private.id, "edited while away")]
            assert any(isinstance(u, types.UpdateDeleteMessages) and u.messages == [doomed_group.id]
                       for u in diff.other_updates)

            # Re-reading recent messages (what reconciliation does) finds both.
            private_now = await client.get_messages(private, ids=old_private.id)
            channel_now = await client.get_messages(channel, ids=old_channel.id)
            assert (private_now.message, private_now.edit_date is not None) == ("edited while away", True)
            assert channel_now.message == "channel edit while away"
            assert await client.get_messages(group, ids=doomed_group.id) is None
            assert await client.get_messages(channel, ids=doomed_channel.id) is None

    run(scenario)


# endregion
