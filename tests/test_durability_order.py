"""The order of durable steps, recorded: fsync of each temp file before its rename, every folder
that received a rename and the parent of every created folder fsynced, and only then the store
commit of the notes' rows and the cursor.

A SIGKILL keeps the page cache, so kill tests cannot see a missing fsync; a power cut would. This
records every mkdir, fsync, rename and store commit of a real import into one ordered log (a
Vault and a Store subclass, overriding only their seams) and checks the order.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from conftest import SAMPLE_EXPORT
from crashing import install

from tobs_sync.app import App
from tobs_sync.config import load_settings
from tobs_sync.sources.tdesktop import DesktopExport
from tobs_sync.store import Store
from tobs_sync.store_rows import MediaRows, NoteRow
from tobs_sync.vault import Vault


@dataclass(frozen=True)
class Event:
    kind: str  # mkdir, fsync (a file, by inode), rename, fsync-folder, commit, commit-rows
    path: Path | None = None
    inode: int | None = None


class RecordingVault(Vault):
    def __init__(self, root: Path, log: list[Event]) -> None:
        super().__init__(root)
        self.log = log

    def _mkdir(self, folder: Path) -> None:
        super()._mkdir(folder)
        self.log.append(Event("mkdir", folder))

    def _fsync(self, fd: int) -> None:
        super()._fsync(fd)
        self.log.append(Event("fsync", inode=os.fstat(fd).st_ino))

    def _replace(self, source: Path, target: Path) -> None:
        inode = os.lstat(source).st_ino
        super()._replace(source, target)
        self.log.append(Event("rename", target, inode))

    def _fsync_folder(self, folder: Path) -> None:
        super()._fsync_folder(folder)
        self.log.append(Event("fsync-folder", folder))


class RecordingStore(Store):
    """Logs each commit; "commit-rows" for one that records notes' rows (with the cursor, media)."""

    def __init__(self, store: Store, log: list[Event]) -> None:
        super().__init__(store._db, store.path)
        self.log = log
        self._rows_pending = False

    def commit_notes(
        self, rows: list[NoteRow], *, cursor: tuple[int, int] | None = None, media: MediaRows | None = None
    ) -> None:  # type: ignore[override]
        self._rows_pending = True
        super().commit_notes(rows, cursor=cursor, media=media)

    def _commit(self) -> None:
        super()._commit()
        self.log.append(Event("commit-rows" if self._rows_pending else "commit"))
        self._rows_pending = False


def order_problems(log: list[Event]) -> list[str]:
    """Every way ``log`` breaks the durability order (empty: none)."""
    problems = []
    for index, event in enumerate(log):
        if event.kind == "rename" and not any(e.kind == "fsync" and e.inode == event.inode for e in log[:index]):
            problems.append(f"{event.path} renamed before its bytes were fsynced")
        if event.kind != "commit-rows":
            continue
        for at, earlier in enumerate(log[:index]):
            needs = {"rename": earlier.path.parent if earlier.path else None,
                     "mkdir": earlier.path.parent if earlier.path else None}.get(earlier.kind)
            if needs is None:
                continue
            synced = any(e.kind == "fsync-folder" and e.path == needs for e in log[at + 1:index])
            if not synced:
                what = "the rename to" if earlier.kind == "rename" else "the new folder"
                problems.append(f"store commit #{index} before {needs} was fsynced after {what} {earlier.path}")
    return problems


def recorded_import(vault: Path, vault_type: type[RecordingVault] = RecordingVault) -> list[Event]:
    log: list[Event] = []

    async def run() -> None:
        async with DesktopExport(SAMPLE_EXPORT, local_timezone=load_settings(vault).timezone) as source:
            with App.open(vault) as app:
                install(app, vault_type(vault, log), RecordingStore(app.store, log))
                await app.sync_source(source)

    asyncio.run(run())
    return log


def test_a_batch_creating_a_chat_folder_makes_everything_durable_before_its_commit(vault: Path) -> None:
    log = recorded_import(vault)
    created = [e.path for e in log if e.kind == "mkdir"]
    chat_folder = vault / "Telegram" / "Field Notes"
    assert vault / "Telegram" in created and chat_folder in created
    assert any(e.kind == "rename" and e.path.parent == vault / "Telegram" / "_attachments" for e in log), "media"
    assert sum(e.kind == "commit-rows" for e in log) >= 6
    assert order_problems(log) == []
    # group commit: the chat folder is fsynced once for its batch of notes, not once per note
    renames_into = sum(e.kind == "rename" and e.path.parent == chat_folder for e in log)
    fsyncs_of = sum(e.kind == "fsync-folder" and e.path == chat_folder for e in log)
    assert renames_into >= 5 and fsyncs_of < renames_into


class ForgetsNewFolders(RecordingVault):
    """What the vault did before: fsyncs the folders renamed into, never the parent of a new folder."""

    def take_folders_to_sync(self, folders: Iterable[Path] = ()) -> list[Path]:
        self._new_folders.clear()  # every writer (notes, media) asks here which folders to fsync
        return super().take_folders_to_sync(folders)


class NeverSyncsFolders(RecordingVault):
    def _fsync_folder(self, folder: Path) -> None:
        pass


def test_the_order_check_catches_a_missing_parent_or_folder_fsync(vault: Path, tmp_path: Path) -> None:
    """The check above can fail: without the parent fsyncs, or without any folder fsync, it does."""
    forgetful = order_problems(recorded_import(vault, ForgetsNewFolders))
    assert any(f"before {vault} was fsynced after the new folder {vault / 'Telegram'}" in p for p in forgetful)
    other = tmp_path / "other"
    other.mkdir()
    (other / ".tobs").mkdir()
    (other / ".tobs" / "config.toml").write_bytes((vault / ".tobs" / "config.toml").read_bytes())
    never = order_problems(recorded_import(other, NeverSyncsFolders))
    assert any("after the rename to" in p for p in never)
