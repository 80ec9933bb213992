"""Bounded first backfills and widening them, through the Telethon source on the simulated Telegram;
and ``tobs-sync chats``, which lists the account's chats and what a sync does with each.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest
from crashing import CrashingStore, install
from rich.console import Console
from vaultcheck import note_ids, vault_differences, vault_files

from tobs_sync.app import App
from tobs_sync.chat_list import ChatListing, printable
from tobs_sync.cli import _print_chats, main
from tobs_sync.config import load_settings
from tobs_sync.lock import VaultLock
from tobs_sync.sim import SimulatedTelegram, parse_spec
from tobs_sync.sources.telegram import TelegramSource
from tobs_sync.store_history import chat_history
from tobs_sync.sync import SyncReport

SPEC = "chats=4,messages=24,media=0.15,seed=12"


def configure(vault: Path, telegram: str = "") -> None:
    (vault / ".tobs" / "config.toml").write_text(f'[vault]\ntimezone = "UTC"\n[telegram]\n{telegram}\n',
                                                 encoding="utf-8")


def sync_pass(
    vault: Path, sim: SimulatedTelegram, *, now: dt.datetime | None = None, commits_before_crash: int | None = None,
    batch_size: int = 100,
) -> SyncReport:
    async def run() -> SyncReport:
        settings = load_settings(vault).telegram
        client = sim.client(raise_last_call_error=True, request_retries=1)
        with App.open(vault) as app:
            if now is not None:
                app.synchronizer.backfill.now = lambda: now
            if commits_before_crash is not None:
                install(app, app.vault, CrashingStore(app.store, commits_before_crash))
            async with TelegramSource(client, settings, retry_delay=0.01, peers=app.store,
                                      batch_size=batch_size) as source:
                return await app.sync_source(source)

    return asyncio.run(run())


def server_ids(sim: SimulatedTelegram, chat_id: int) -> list[int]:
    return sorted(m.id for m in sim.messages(chat_id))


def noted(vault: Path) -> dict[int, list[int]]:
    """chat id -> the message ids its notes hold (a message in two notes shows twice)."""
    found: dict[int, list[int]] = {}
    for (chat_id, message_id), count in note_ids(vault).items():
        found.setdefault(int(chat_id), []).extend([message_id] * count)
    return {chat_id: sorted(ids) for chat_id, ids in found.items()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The vault an unbounded sync of the simulated account gives."""
    root = tmp_path_factory.mktemp("reference") / "vault"
    (root / ".tobs").mkdir(parents=True)
    configure(root)
    sync_pass(root, SimulatedTelegram(parse_spec(SPEC)))
    return root


def start_of_last(sim: SimulatedTelegram, chat_id: int, n: int) -> int:
    """The id below the chat's last ``n`` messages on the server, or below the album they would cut."""
    held = sorted(sim.messages(chat_id), key=lambda m: m.id)
    first = max(len(held) - n, 0)
    while first > 0 and held[first].grouped_id and held[first - 1].grouped_id == held[first].grouped_id:
        first -= 1
    return held[first - 1].id if first > 0 else 0


def test_first_backfill_on_telegram_takes_the_last_n_messages(vault: Path, reference: Path) -> None:
    sim = SimulatedTelegram(parse_spec(SPEC))
    configure(vault, "backfill = 8")
    sync_pass(vault, sim)
    everything = noted(reference)
    for chat_id in sim.chat_ids:
        start = start_of_last(sim, chat_id, 8)
        assert noted(vault).get(chat_id, []) == [i for i in everything[chat_id] if i > start]


def test_first_backfill_on_telegram_takes_the_messages_since_a_time(vault: Path, reference: Path) -> None:
    sim = SimulatedTelegram(parse_spec(SPEC))
    chat_id = sim.chat_ids[0]
    cut = sim.messages(chat_id)[15].date  # the 16th message's time, as a day boundary of a fake clock
    configure(vault, 'since = "3d"')
    sync_pass(vault, sim, now=cut + dt.timedelta(days=3))
    for chat_id in sim.chat_ids:
        newer = {m.id for m in sim.messages(chat_id) if m.date >= cut}
        assert noted(vault).get(chat_id, []) == [i for i in noted(reference)[chat_id] if i in newer]
    assert noted(vault)[sim.chat_ids[0]], "some messages are that recent"


@pytest.mark.parametrize(("cut_index", "count", "tighter"), [(16, 12, "date"), (4, 8, "count")])
def test_with_both_bounds_on_telegram_the_tighter_one_wins(
    vault: Path, reference: Path, cut_index: int, count: int, tighter: str
) -> None:
    sim = SimulatedTelegram(parse_spec(SPEC))
    cut = sim.messages(sim.chat_ids[0])[cut_index].date
    configure(vault, f'since = "1d"\nbackfill = {count}')
    sync_pass(vault, sim, now=cut + dt.timedelta(days=1))
    won = []
    for chat_id in sim.chat_ids:
        by_count = start_of_last(sim, chat_id, count)
        by_date = max([m.id for m in sim.messages(chat_id) if m.date < cut], default=0)
        won.append("count" if by_count > by_date else "date")
        start = max(by_count, by_date)
        assert noted(vault).get(chat_id, []) == [i for i in noted(reference)[chat_id] if i > start]
    assert won[0] == tighter


def test_widening_on_telegram_fetches_the_older_history_once_and_ends_as_an_unbounded_sync(
    vault: Path, reference: Path
) -> None:
    sim = SimulatedTelegram(parse_spec(SPEC))
    configure(vault, "backfill = 8")
    sync_pass(vault, sim)
    configure(vault, "backfill = 20")
    sync_pass(vault, sim)
    configure(vault)
    report = sync_pass(vault, sim)
    assert report.messages > 0
    ids = note_ids(vault)
    assert set(ids) == set(note_ids(reference)) and set(ids.values()) == {1}, "every message noted exactly once"
    assert not (difference := vault_differences(vault, reference, attachments_by_content=True)), difference
    before = vault_files(vault)
    assert sync_pass(vault, sim).messages == 0 and vault_files(vault) == before


def test_a_crash_in_the_middle_of_widening_on_telegram_repeats_harmlessly(vault: Path, reference: Path) -> None:
    sim = SimulatedTelegram(parse_spec(SPEC))
    configure(vault, "backfill = 5")
    sync_pass(vault, sim)
    configure(vault)
    with pytest.raises(SystemExit):  # the second widening batch dies at its commit, its notes in place
        sync_pass(vault, sim, commits_before_crash=1, batch_size=5)
    with App.open(vault, read_only=True) as app:
        widening = [h for c in sim.chat_ids if (h := chat_history(app.store, c)) and h.widen_start is not None]
    assert [(h.widen_after or 0) > (h.widen_start or 0) for h in widening] == [True], "in the middle of one"
    report = sync_pass(vault, sim)
    assert report.conflicts == []
    ids = note_ids(vault)
    assert set(ids) == set(note_ids(reference)) and set(ids.values()) == {1}
    assert not (difference := vault_differences(vault, reference, attachments_by_content=True)), difference


# -- tobs-sync chats -------------------------------------------------------------------------


def chats_json(vault: Path, capsys: pytest.CaptureFixture[str], spec: str = SPEC) -> list[dict[str, Any]]:
    assert main(["chats", "--vault", str(vault), "--simulate", spec, "--json"]) == 0
    return list(json.loads(capsys.readouterr().out)["chats"])


def test_chats_lists_every_chat_with_its_selection_and_bounds(vault: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sim = SimulatedTelegram(parse_spec(SPEC))
    channel = next(c for c in sim.chat_ids if sim.kind(c) == "channel")
    group = next(c for c in sim.chat_ids if sim.kind(c) == "group")
    configure(vault, f'chats = ["channels", "groups", "users"]\nexclude = [{group}]\nbackfill = 100\n'
                     '[[chat]]\nselect = ["channels"]\nsince = "30d"\n')
    before = sorted(p.relative_to(vault).as_posix() for p in vault.rglob("*"))
    rows = {row["id"]: row for row in chats_json(vault, capsys)}
    assert sorted(p.relative_to(vault).as_posix() for p in vault.rglob("*")) == before, "nothing written"
    assert set(rows) == set(sim.chat_ids)
    for chat_id, row in rows.items():
        assert row["title"] == sim.title(chat_id)
        assert row["top_message_id"] == server_ids(sim, chat_id)[-1]
    assert rows[channel] | {"messages": None} == rows[channel] | {
        "kind": "channel", "selected": True, "selected_by": "channels", "excluded_by": None,
        "messages": None, "estimate": "about", "since": "30d", "since_from": "chat[1]",
        "backfill": 100, "backfill_from": "telegram.backfill", "backfilled": False, "history_from": None,
    }
    assert rows[channel]["messages"] == server_ids(sim, channel)[-1]
    assert rows[channel]["username"] and not rows[channel]["username"].startswith("@")
    assert (rows[group]["selected"], rows[group]["selected_by"], rows[group]["excluded_by"]) == (
        False, "groups", str(group))
    assert rows[group]["estimate"] == "at most" and rows[group]["since"] is None
    supergroup = next(c for c in sim.chat_ids if sim.kind(c) == "megagroup")
    assert (rows[supergroup]["selected"], rows[supergroup]["selected_by"]) == (True, "groups")
    assert rows[supergroup]["since"] is None and rows[supergroup]["since_from"] == "telegram.since"


def test_chats_shows_whether_and_from_where_the_first_backfill_happened(
    vault: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = SimulatedTelegram(parse_spec(SPEC))
    configure(vault, 'chats = ["channels"]\nbackfill = 8')
    assert main(["sync", "--vault", str(vault), "--simulate", SPEC]) == 0
    capsys.readouterr()
    rows = {row["id"]: row for row in chats_json(vault, capsys)}
    channel = next(c for c in sim.chat_ids if sim.kind(c) == "channel")
    assert rows[channel]["backfilled"] is True
    assert rows[channel]["history_from"] == start_of_last(sim, channel, 8)
    assert [row["backfilled"] for row in rows.values() if row["id"] != channel] == [False] * 3
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["chats", "--vault", str(vault), "--simulate", SPEC]) == 0
    table = capsys.readouterr().out
    assert "last 8: done" in table and "1 of 4 chats selected" in table


def test_chats_prints_titles_without_their_control_characters() -> None:
    assert printable("Evil\x1b[2J\u202eeman\nchat") == "Evil [2J eman chat"
    row = ChatListing(7, "user", "Evil\x1b[2J\u202e[bold]x[/bold]", "name\x07", 12, 12, "at most", True, "all", None,
                      since=None, since_from="telegram.since", backfill=0, backfill_from="telegram.backfill")
    out = io.StringIO()
    _print_chats(Console(file=out, width=200, color_system=None), [row])
    printed = out.getvalue()
    assert "\x1b" not in printed and "\u202e" not in printed and "\x07" not in printed
    assert "Evil [2J [bold]x[/bold]" in printed, "brackets are text, not markup"
    assert "at most 12" in printed and "whole history: not yet" in printed and "@name" in printed


def test_chats_needs_an_existing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chats", "--vault", str(tmp_path / "nowhere"), "--simulate", SPEC]) == 1
    assert "is not a folder" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()


def test_chats_on_a_simulation_reads_while_a_writer_holds_the_vault(
    vault: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with VaultLock(vault / ".tobs", "tobs-sync sync"):
        assert len(chats_json(vault, capsys)) == 4


def test_chats_on_the_account_waits_its_turn_for_the_session_a_sync_shares(
    vault: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with VaultLock(vault / ".tobs", "tobs-sync sync"):
        assert main(["chats", "--vault", str(vault)]) == 1
    assert "in use by tobs-sync sync" in capsys.readouterr().err
