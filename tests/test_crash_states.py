"""States a real crash leaves, then the next run: a batch's notes renamed into place, their rows
holding only the intended hash (the commit of rows and cursor never happened).

Whatever the next run renders for such a note (the same bytes, or different ones because an edit
arrived or a failed download now succeeds), the note is tobs-sync's own: it is updated, never
recorded as a user edit.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import shutil
from pathlib import Path

from conftest import SAMPLE_EXPORT
from crashing import CrashingStore, install
from vaultcheck import check_vault, vault_differences

from tobs_sync.app import App, import_export
from tobs_sync.config import load_settings
from tobs_sync.sim import SimulatedTelegram, parse_spec
from tobs_sync.sources.tdesktop import DesktopExport
from tobs_sync.sources.telegram import TelegramSource
from tobs_sync.store_schema import NO_CURSOR

NOTE = "Telegram/Field Notes/2024-03-01 2.md"


def import_dying_at_first_commit(vault: Path, export: Path) -> None:
    async def run() -> None:
        async with DesktopExport(export, local_timezone=load_settings(vault).timezone) as source:
            with App.open(vault) as app:
                install(app, app.vault, CrashingStore(app.store, 0))
                await app.sync_source(source)

    with contextlib.suppress(SystemExit):
        asyncio.run(run())


def edited_export(folder: Path) -> Path:
    folder.mkdir()
    for sub in ("photos", "files"):
        shutil.copytree(SAMPLE_EXPORT / sub, folder / sub)
    data = json.loads((SAMPLE_EXPORT / "result.json").read_text(encoding="utf-8"))
    message = next(m for m in data["chats"]["list"][0]["messages"] if m["id"] == 2)
    message["text"] = "Welcome, edited after the crash"
    message["text_entities"] = [{"type": "plain", "text": message["text"]}]
    message["edited_unixtime"] = str(int(message["date_unixtime"]) + 60)
    (folder / "result.json").write_text(json.dumps(data), encoding="utf-8")
    return folder


def test_a_note_written_just_before_a_crash_takes_an_edit_that_arrived_since(vault: Path, tmp_path: Path) -> None:
    import_dying_at_first_commit(vault, SAMPLE_EXPORT)
    assert (vault / NOTE).is_file(), "the crash came after the note's rename"
    with App.open(vault) as app:
        row = app.store.note_at(NOTE)
        assert row is not None and row.content_hash == "" and row.intended_hash, "only the intent was committed"
        assert app.store.chat_states()[0].cursor == NO_CURSOR
    export = edited_export(tmp_path / "edited")
    report, _ = asyncio.run(import_export(vault, export))
    assert report.conflicts == []
    assert "Welcome, edited after the crash" in (vault / NOTE).read_text(encoding="utf-8")
    reference = tmp_path / "reference"
    reference.mkdir()
    shutil.copytree(vault / ".tobs", reference / ".tobs", ignore=shutil.ignore_patterns("state.db*"))
    asyncio.run(import_export(reference, export))
    assert not (difference := vault_differences(vault, reference)), difference
    with App.open(vault) as app:
        assert app.store.conflicts() == []
        assert [r.path for r in app.store.notes() if r.intended_hash is not None] == []


SPEC = "chats=1,messages=40,media=0.4,seed=4"


def sync(vault: Path, sim: SimulatedTelegram, *, commits_before_crash: int | None = None, stall_s: float = 60) -> None:
    async def run() -> None:
        client = sim.client(raise_last_call_error=True, request_retries=1)
        settings = dataclasses.replace(load_settings(vault).telegram, stall_timeout_s=stall_s)
        with App.open(vault) as app:
            if commits_before_crash is not None:
                install(app, app.vault, CrashingStore(app.store, commits_before_crash))
            async with TelegramSource(client, settings, retry_delay=0.01, peers=app.store) as source:
                await app.sync_source(source)

    with contextlib.suppress(SystemExit):
        asyncio.run(run())


def test_a_note_written_just_before_a_crash_takes_a_download_that_now_succeeds(vault: Path, tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    shutil.copytree(vault, reference)
    sync(reference, SimulatedTelegram(parse_spec(SPEC)))
    sim = SimulatedTelegram(parse_spec(SPEC))
    sim.faults.stall("GetFile", times=None)  # every download hangs
    sync(vault, sim, commits_before_crash=0, stall_s=0.2)
    waiting = [p for p in vault.rglob("*.md") if "will retry" in p.read_text(encoding="utf-8")]
    assert waiting, "notes were written without their media, then the process died before committing them"
    sim.faults.clear()
    sync(vault, sim)
    with App.open(vault) as app:
        assert app.store.conflicts() == []
    assert not [p for p in vault.rglob("*.md") if "will retry" in p.read_text(encoding="utf-8")]
    assert not (difference := vault_differences(vault, reference)), difference
    assert check_vault(vault).broken == []


def test_attachments_placed_just_before_a_crash_are_kept_not_stored_twice(vault: Path, tmp_path: Path) -> None:
    """Media rows are committed with their batch's notes: a crash after the attachments' renames
    leaves files the index does not know. The next run must take them as they are, not add copies."""
    reference = tmp_path / "reference"
    shutil.copytree(vault, reference)
    sync(reference, SimulatedTelegram(parse_spec(SPEC)))
    sync(vault, SimulatedTelegram(parse_spec(SPEC)), commits_before_crash=0)
    placed = {p.name: p.stat().st_ino for p in (vault / "Telegram" / "_attachments").iterdir()}
    assert placed, "attachments were renamed into place before the crash"
    with App.open(vault) as app:
        assert app.store.media_count() == (0, 0), "their index rows died with the batch's transaction"
    sync(vault, SimulatedTelegram(parse_spec(SPEC)))
    assert not (difference := vault_differences(vault, reference)), difference
    after = {p.name: p.stat().st_ino for p in (vault / "Telegram" / "_attachments").iterdir()}
    assert {name: after[name] for name in placed} == placed, "the files placed before the crash were kept"
    with App.open(vault) as app:
        assert app.store.media_count()[0] == len(after)
