"""Bounded first backfills (``since`` / ``backfill``) and widening them later, over the in-memory source.

A chat's first backfill takes the messages since a date and at most the last N (the tighter bound
wins); widening the bounds later fetches the older messages once, so that the vault ends exactly as
an unbounded sync of the same account leaves it, also after a crash in the middle of the widening.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import tomllib
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import SAMPLE_EXPORT
from crashing import CrashingStore, CrashingVault, install
from vaultcheck import note_ids, vault_differences, vault_files

import tobs_sync.widening
from tobs_sync.app import App, import_export
from tobs_sync.config import DEFAULT_CONFIG, load_settings, settings_from_mapping
from tobs_sync.errors import ConfigError
from tobs_sync.model import Chat, ChatKind, MediaRef, Message, Reply
from tobs_sync.sources.base import BoundsHistory
from tobs_sync.sources.memory import MemorySource
from tobs_sync.store_history import chat_history
from tobs_sync.store_schema import NO_CURSOR
from tobs_sync.sync import SyncReport

NEWS = Chat(-1001234, "News", ChatKind.CHANNEL.value)
FRIEND = Chat(4242, "Friend", ChatKind.USER.value)
START = 1_700_006_400  # 2023-11-15 00:00 UTC
HOURS_APART = 6  # four messages a day
NEWS_COUNT, FRIEND_COUNT = 30, 8


def account(batch_size: int = 4) -> MemorySource:
    """Two chats: NEWS with 30 messages over seven and a half days, FRIEND with 8."""
    source = MemorySource([NEWS, FRIEND], batch_size=batch_size)
    for chat, count in ((NEWS, NEWS_COUNT), (FRIEND, FRIEND_COUNT)):
        for message_id in range(1, count + 1):
            when = START + (message_id - 1) * HOURS_APART * 3600
            source.add_message(Message(chat.id, message_id, when, text=f"{chat.title} {message_id}"))
    return source


def configure(vault: Path, telegram: str = "", rules: str = "") -> None:
    """Replace the vault's config: UTC notes, ``telegram`` lines in [telegram], then ``rules``."""
    text = f'[vault]\ntimezone = "UTC"\n[telegram]\n{telegram}\n{rules}'
    (vault / ".tobs" / "config.toml").write_text(text, encoding="utf-8")


def sync_pass(vault: Path, source: MemorySource, *, now: dt.datetime | None = None) -> SyncReport:
    async def run() -> SyncReport:
        with App.open(vault) as app:
            if now is not None:
                app.synchronizer.backfill.now = lambda: now
            async with source:
                return await app.sync_source(source)

    return asyncio.run(run())


def ids_of(vault: Path, chat: Chat) -> list[int]:
    """The message ids of the chat's notes, each as often as a note holds it."""
    return sorted(mid for (chat_id, mid), count in note_ids(vault).items() if chat_id == chat.id
                  for _ in range(count))


def unbounded_reference(tmp_path: Path, vault: Path) -> Path:
    reference = tmp_path / "reference"
    shutil.copytree(vault, reference)
    configure(reference)
    sync_pass(reference, account())
    return reference


# -- configuration ---------------------------------------------------------------------------


def test_since_and_backfill_default_to_the_whole_history_and_are_documented() -> None:
    settings = settings_from_mapping(Path("/v"), {})
    assert (settings.telegram.since, settings.telegram.backfill) == (None, 0)
    assert 'since = ""' in DEFAULT_CONFIG and "backfill = 0" in DEFAULT_CONFIG
    assert "tighter" in DEFAULT_CONFIG and "Desktop export import is not bounded" in DEFAULT_CONFIG
    documented = settings_from_mapping(Path("/v"), tomllib.loads(DEFAULT_CONFIG))
    assert (documented.telegram.since, documented.telegram.backfill) == (None, 0)


def test_since_takes_a_date_or_a_span_and_backfill_a_count() -> None:
    settings = settings_from_mapping(Path("/v"), {"telegram": {"since": "30d", "backfill": 500}})
    assert (str(settings.telegram.since), settings.telegram.backfill) == ("30d", 500)
    settings = settings_from_mapping(Path("/v"), {"telegram": {"since": dt.date(2024, 1, 31)}})
    assert str(settings.telegram.since) == "2024-01-31"


@pytest.mark.parametrize(("telegram", "key"), [
    ({"since": "30 days"}, "telegram.since"),
    ({"since": 30}, "telegram.since"),
    ({"backfill": -1}, "telegram.backfill"),
    ({"backfill": True}, "telegram.backfill"),
    ({"backfill": "100"}, "telegram.backfill"),
    ({"backfil": 10}, "telegram.backfil"),
])
def test_a_bad_since_or_backfill_is_an_error_naming_the_key(telegram: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=f"^{key}:"):
        settings_from_mapping(Path("/v"), {"telegram": telegram})


# -- first backfill --------------------------------------------------------------------------


def test_first_backfill_takes_only_the_last_n_messages(vault: Path) -> None:
    configure(vault, "backfill = 10")
    report = sync_pass(vault, account())
    assert ids_of(vault, NEWS) == list(range(21, 31))
    assert ids_of(vault, FRIEND) == list(range(1, 9)), "a chat with fewer messages is taken whole"
    assert report.messages == 10 + FRIEND_COUNT


def test_first_backfill_takes_only_the_messages_since_a_date(vault: Path) -> None:
    configure(vault, 'since = "2023-11-20"')  # day 6 of NEWS: messages 21 onwards
    sync_pass(vault, account())
    assert ids_of(vault, NEWS) == list(range(21, 31))
    assert ids_of(vault, FRIEND) == [], "every FRIEND message is older than the date"


def test_a_span_counts_back_from_the_time_of_the_pass(vault: Path) -> None:
    configure(vault, 'since = "2d"')
    sync_pass(vault, account(), now=dt.datetime(2023, 11, 22, 0, 0, tzinfo=dt.UTC))
    assert ids_of(vault, NEWS) == list(range(21, 31)), "since 2023-11-20 00:00"


@pytest.mark.parametrize(("bounds", "first"), [
    ('since = "2023-11-20"\nbackfill = 5', 26),  # the count is tighter
    ('since = "2023-11-20"\nbackfill = 25', 21),  # the date is tighter
])
def test_with_both_bounds_the_tighter_one_wins(vault: Path, bounds: str, first: int) -> None:
    configure(vault, bounds)
    sync_pass(vault, account())
    assert ids_of(vault, NEWS) == list(range(first, 31))


def test_a_count_that_would_cut_an_album_takes_the_whole_album(vault: Path) -> None:
    source = MemorySource([NEWS])
    for message_id in range(1, 31):
        album = 7 if 19 <= message_id <= 22 else None  # the last 10 would start inside it, at 21
        source.add_message(Message(NEWS.id, message_id, START + message_id * 60, text=f"m {message_id}",
                                   grouped_id=album))
    configure(vault, "backfill = 10")
    sync_pass(vault, source)
    assert ids_of(vault, NEWS) == list(range(19, 31))
    assert sorted(note_ids(vault)) == sorted({(NEWS.id, i) for i in range(19, 31)})


def test_a_chat_table_bounds_its_chats_only(vault: Path) -> None:
    configure(vault, "backfill = 3", '[[chat]]\nselect = ["channels"]\nbackfill = 12\n')
    sync_pass(vault, account())
    assert ids_of(vault, NEWS) == list(range(19, 31))
    assert ids_of(vault, FRIEND) == [6, 7, 8]


def test_a_bounded_chat_goes_on_with_new_messages_and_asks_for_its_start_once(vault: Path) -> None:
    configure(vault, "backfill = 10")
    source = account()
    sync_pass(vault, source)
    asked = source.history_start_calls
    source.add_message(Message(NEWS.id, 31, START + 31 * HOURS_APART * 3600, text="fresh"))
    report = sync_pass(vault, source)
    assert report.messages == 1
    assert ids_of(vault, NEWS) == list(range(21, 32))
    assert source.history_start_calls == asked, "unchanged bounds are not asked about again"


def test_bounds_do_not_apply_to_chats_read_before(vault: Path) -> None:
    source = account()
    sync_pass(vault, source)
    configure(vault, "backfill = 5")
    source.add_message(Message(NEWS.id, 31, START + 31 * HOURS_APART * 3600, text="fresh"))
    sync_pass(vault, source)
    assert ids_of(vault, NEWS) == list(range(1, 32))
    assert source.history_start_calls == 0


# -- widening --------------------------------------------------------------------------------


def test_widening_fetches_the_older_history_once_and_ends_as_an_unbounded_sync(vault: Path, tmp_path: Path) -> None:
    reference = unbounded_reference(tmp_path, vault)
    configure(vault, "backfill = 10")
    source = account()
    sync_pass(vault, source)
    configure(vault, "backfill = 20")
    report = sync_pass(vault, source)
    assert report.messages == 10
    assert ids_of(vault, NEWS) == list(range(11, 31))
    configure(vault, 'since = "2023-11-16"\nbackfill = 0')  # earlier still: messages 5 onwards
    sync_pass(vault, source)
    assert ids_of(vault, NEWS) == list(range(5, 31))
    configure(vault)  # bounds removed: the whole history
    report = sync_pass(vault, source)
    assert report.messages == 4
    assert ids_of(vault, NEWS) == list(range(1, 31)) and ids_of(vault, FRIEND) == list(range(1, 9))
    assert not (difference := vault_differences(vault, reference)), difference
    with App.open(vault, read_only=True) as app:
        history = chat_history(app.store, NEWS.id)
        assert history is not None and (history.floor, history.widen_start) == (NO_CURSOR, None)
    before = vault_files(vault)
    assert sync_pass(vault, source).messages == 0
    assert vault_files(vault) == before


def test_widening_links_the_replies_to_the_messages_it_fetches(vault: Path, tmp_path: Path) -> None:
    def replying_account() -> MemorySource:
        source = account()
        source.add_message(Message(NEWS.id, 31, START + 31 * HOURS_APART * 3600, text="as said", reply=Reply(3)))
        return source

    reference = tmp_path / "reference"
    shutil.copytree(vault, reference)
    configure(reference)
    sync_pass(reference, replying_account())
    configure(vault, "backfill = 5")
    source = replying_account()
    sync_pass(vault, source)
    (reply_note,) = [p for p in vault.rglob("* 31.md")]
    assert "[[" not in reply_note.read_text(encoding="utf-8").split("In reply to")[1].splitlines()[0]
    configure(vault, "backfill = 30")  # messages 2 onwards: the replied-to message among them
    sync_pass(vault, source)
    assert "In reply to [[" in reply_note.read_text(encoding="utf-8")
    configure(vault)
    sync_pass(vault, source)
    assert not (difference := vault_differences(vault, reference)), difference


def test_narrowing_deletes_nothing_and_reads_nothing(vault: Path) -> None:
    configure(vault, "backfill = 20")
    source = account()
    sync_pass(vault, source)
    before = vault_files(vault)
    asked = source.history_start_calls
    configure(vault, 'backfill = 5\nsince = "2023-11-21"')
    report = sync_pass(vault, source)
    assert report.messages == 0 and vault_files(vault) == before
    assert source.history_start_calls == asked


def test_a_span_that_only_moves_with_time_reads_nothing_older(vault: Path) -> None:
    configure(vault, 'since = "2d"')
    source = account()
    sync_pass(vault, source, now=dt.datetime(2023, 11, 22, tzinfo=dt.UTC))
    asked = source.history_start_calls
    report = sync_pass(vault, source, now=dt.datetime(2023, 11, 25, tzinfo=dt.UTC))
    assert report.messages == 0 and source.history_start_calls == asked
    configure(vault, 'since = "6d"')  # back to 2023-11-19 00:00 at the later time: messages 17 onwards
    sync_pass(vault, source, now=dt.datetime(2023, 11, 25, tzinfo=dt.UTC))
    assert ids_of(vault, NEWS) == list(range(17, 31))


def crashing_widening(vault: Path, source: MemorySource, arm: Callable[[App], None]) -> None:
    async def run() -> None:
        with App.open(vault) as app:
            arm(app)
            async with source:
                await app.sync_source(source)

    with pytest.raises(SystemExit):
        asyncio.run(run())


def test_a_crash_at_a_widening_batchs_commit_repeats_only_that_batch(vault: Path, tmp_path: Path) -> None:
    reference = unbounded_reference(tmp_path, vault)
    configure(vault, "backfill = 6")
    source = account(batch_size=4)
    sync_pass(vault, source)
    configure(vault)
    # the second widening batch of NEWS (messages 5 to 8) dies at its commit, its notes already renamed
    crashing_widening(vault, source, lambda app: install(app, app.vault, CrashingStore(app.store, 1)))
    assert 5 in ids_of(vault, NEWS) and 8 in ids_of(vault, NEWS), "the batch's notes were renamed into place"
    with App.open(vault, read_only=True) as app:
        history = chat_history(app.store, NEWS.id)
        assert history is not None and history.widen_after == 4, "the widening got as far as the first batch"
    report = sync_pass(vault, source)
    assert report.messages == 20 + 2, "messages 5 to 24 of NEWS once, and FRIEND's 1 and 2"
    assert ids_of(vault, NEWS) == list(range(1, 31))
    assert report.conflicts == []
    assert not (difference := vault_differences(vault, reference)), difference


def test_a_crash_after_a_widening_batch_committed_repeats_it_harmlessly(
    vault: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = unbounded_reference(tmp_path, vault)
    configure(vault, "backfill = 6")
    source = account(batch_size=4)
    sync_pass(vault, source)
    configure(vault)
    recorded = tobs_sync.widening.widened_to
    calls: list[int] = []

    def dying_after_the_second_batch(store: object, chat_id: int, message_id: int) -> None:
        calls.append(message_id)
        if len(calls) == 2:
            raise SystemExit("simulated crash")  # the batch is committed; the widening's cursor is not moved
        recorded(store, chat_id, message_id)  # type: ignore[arg-type]

    monkeypatch.setattr(tobs_sync.widening, "widened_to", dying_after_the_second_batch)
    crashing_widening(vault, source, lambda app: None)
    monkeypatch.setattr(tobs_sync.widening, "widened_to", recorded)
    assert calls == [4, 8]
    report = sync_pass(vault, source)
    assert report.messages == 20 + 2, "NEWS from 5 (messages 5 to 8 read again, once), FRIEND's 1 and 2"
    assert report.notes_unchanged >= 4 and report.conflicts == []
    assert ids_of(vault, NEWS) == list(range(1, 31))
    assert not (difference := vault_differences(vault, reference)), difference


def test_a_crash_before_any_rename_of_a_widening_leaves_nothing_behind(vault: Path, tmp_path: Path) -> None:
    reference = unbounded_reference(tmp_path, vault)
    configure(vault, "backfill = 6")
    source = account(batch_size=4)
    sync_pass(vault, source)
    configure(vault)
    crashing_widening(vault, source, lambda app: install(app, CrashingVault(app.vault.root, 5)))
    sync_pass(vault, source)
    assert ids_of(vault, NEWS) == list(range(1, 31))
    assert not (difference := vault_differences(vault, reference)), difference


def test_the_store_remembers_where_a_bounded_history_starts(vault: Path) -> None:
    configure(vault, "backfill = 10")
    sync_pass(vault, account())
    settings = load_settings(vault)
    with App.open(vault, read_only=True) as app:
        news = chat_history(app.store, NEWS.id)
        friend = chat_history(app.store, FRIEND.id)
    assert news is not None and news.floor == 20 and news.bounds.last == 10
    assert friend is not None and friend.floor == NO_CURSOR
    assert settings.telegram.backfill == 10



def test_a_desktop_export_import_is_not_bounded(vault: Path, tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    shutil.copytree(vault, reference)
    asyncio.run(import_export(reference, SAMPLE_EXPORT))
    configure(vault, 'backfill = 1\nsince = "2030-01-01"')
    asyncio.run(import_export(vault, SAMPLE_EXPORT))
    assert note_ids(vault) == note_ids(reference) and len(note_ids(vault)) > 2
    with App.open(vault, read_only=True) as app:
        assert {chat_history(app.store, s.chat.id) for s in app.store.chat_states()} == {None}


def test_a_chat_read_before_bounds_existed_is_never_bounded_or_widened(vault: Path) -> None:
    source = account()
    sync_pass(vault, source)
    with App.open(vault) as app, app.store.transaction() as db:
        db.execute("DELETE FROM chat_history")  # as a vault synced by a version without bounds
    configure(vault, "backfill = 5")
    source.add_message(Message(NEWS.id, 31, START + 31 * HOURS_APART * 3600, text="fresh"))
    assert sync_pass(vault, source).messages == 1
    configure(vault)
    assert sync_pass(vault, source).messages == 0
    assert ids_of(vault, NEWS) == list(range(1, 32)) and source.history_start_calls == 0


class Snapshot:
    """A source that bounds nothing, as a Desktop export: the in-memory account without ``history_start``."""

    name = "snapshot"

    def __init__(self, account: MemorySource) -> None:
        self._account = account

    async def __aenter__(self) -> Snapshot:
        await self._account.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._account.__aexit__(*exc)

    def chats(self) -> AsyncIterator[Chat]:
        return self._account.chats()

    def batches(self, chat: Chat, after: int) -> AsyncIterator[Sequence[Message]]:
        return self._account.batches(chat, after)

    def media_chunks(self, media: MediaRef, offset: int = 0) -> AsyncIterator[bytes]:
        return self._account.media_chunks(media, offset)


def test_a_source_that_bounds_nothing_fills_in_below_a_bounded_chats_floor_and_leaves_the_floor(
    vault: Path, tmp_path: Path
) -> None:
    reference = unbounded_reference(tmp_path, vault)
    configure(vault, "backfill = 10")
    source = account()
    sync_pass(vault, source)
    snapshot = Snapshot(source)
    assert not isinstance(snapshot, BoundsHistory)
    report = sync_pass(vault, snapshot)  # type: ignore[arg-type]
    assert report.messages == 20 and ids_of(vault, NEWS) == list(range(1, 31))
    assert not (difference := vault_differences(vault, reference)), difference
    with App.open(vault, read_only=True) as app:
        history = chat_history(app.store, NEWS.id)
        assert history is not None and (history.floor, history.widen_start) == (20, None), "the floor stays"
    before = vault_files(vault)
    assert sync_pass(vault, snapshot).messages == 20, "read again, as an import is"  # type: ignore[arg-type]
    assert vault_files(vault) == before, "and nothing written"
