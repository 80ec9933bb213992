"""Overlapped publishing: a chat's next batch is rendered while the batch before is still being made
durable, yet commits (and cursors) follow the chat's order, and a crash at any new point of the
overlap leaves a vault the next pass completes with no lost message, no duplicate and no conflict.

The executor here runs each job on the event loop one virtual second after it was submitted
(:class:`HeldExecutor` on the virtual-time loop), so a batch's temp-file writes and folder fsyncs are
certainly still pending while the pass goes on, without real sleeps or threads racing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from crashing import CrashingStore, CrashingVault
from vaultcheck import check_vault, note_ids, vault_differences
from virtualtime import run_virtual

from tobs_sync.config import load_settings
from tobs_sync.errors import VaultError
from tobs_sync.media import MediaWriter
from tobs_sync.model import Chat, ChatKind, MediaKind, Message
from tobs_sync.render import Renderer
from tobs_sync.sources.memory import MemorySource
from tobs_sync.store import Store
from tobs_sync.store_rows import MediaRows, NoteRow
from tobs_sync.store_schema import NO_CURSOR
from tobs_sync.sync import Synchronizer, SyncReport
from tobs_sync.vault import TEMP_PREFIX, PreparedWrite, Vault

CHAT = Chat(-1005550, "Overlap", ChatKind.CHANNEL.value)
START = 1_700_000_000
ATTACHMENTS = "Telegram/_attachments"


class HeldExecutor(concurrent.futures.Executor):
    """Runs each job on the loop ``delay`` virtual seconds after it was submitted; pending until then
    (and cancellable: a cancelled job never runs)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, delay: float = 1.0) -> None:
        self._loop = loop
        self._delay = delay

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as error:  # handed to the waiter, as a thread pool does
                future.set_exception(error)

        self._loop.call_later(self._delay, run)
        return future


Log = list[tuple[str, object]]


def logging_vault(base: type[Vault]) -> type[Vault]:
    class LoggingVault(base):  # type: ignore[valid-type, misc]
        """Logs each temp-file write as it runs: ("write", note path)."""

        log: Log

        def prepare_write(self, relative: Any, data: bytes) -> PreparedWrite:
            self.log.append(("write", str(relative)))
            return super().prepare_write(relative, data)

    return LoggingVault


def logging_store(base: type[Store]) -> type[Store]:
    class LoggingStore(base):  # type: ignore[valid-type, misc]
        """Logs the intents recorded ("intend", their paths) and each cursor commit ("commit", cursor)."""

        log: Log

        def intend_notes(self, rows: Sequence[NoteRow]) -> None:
            super().intend_notes(rows)
            self.log.append(("intend", frozenset(row.path for row in rows)))

        def commit_notes(
            self, rows: Sequence[NoteRow], *, cursor: tuple[int, int] | None = None, media: MediaRows | None = None
        ) -> None:
            super().commit_notes(rows, cursor=cursor, media=media)
            if cursor is not None:
                self.log.append(("commit", cursor[1]))

    return LoggingStore


def history(
    count: int = 30, *, batch_size: int = 10, album: range = range(0), photos: dict[int, str] | None = None
) -> MemorySource:
    """``count`` messages of :data:`CHAT`: those in ``album`` one album of photos, those in ``photos``
    a photo each, by file identity (one identity twice: the same file posted twice)."""
    source = MemorySource([CHAT], batch_size=batch_size)
    files = {}
    for message_id in range(1, count + 1):
        key = (photos or {}).get(message_id) or (f"photo:{message_id}" if message_id in album else None)
        media = ()
        if key is not None:
            if key not in files:
                files[key] = source.add_file(key.encode() * 500, kind=MediaKind.PHOTO.value,
                                             mime_type="image/jpeg", file_key=key)
            media = (files[key],)
        source.add_message(Message(CHAT.id, message_id, START + message_id * 60, text=f"message {message_id}",
                                   grouped_id=7 if message_id in album else None, media=media))
    return source


def run_pass(
    vault: Path, source: MemorySource, *, held: bool = True, log: Log | None = None,
    wrap: Callable[[Vault, Store], tuple[Vault, Store]] | None = None,
) -> None:
    """One pass over ``source``; ``held``: on the virtual-time loop with a :class:`HeldExecutor`."""
    settings = load_settings(vault)

    async def run() -> None:
        store = Store.open(settings.database_path)
        writer = Vault(settings.vault_root)
        try:
            if wrap is not None:
                writer, store_used = wrap(writer, store)
            else:
                store_used = store
            if log is not None:
                writer.log = log  # type: ignore[attr-defined]
                store_used.log = log  # type: ignore[attr-defined]
            executor = HeldExecutor(asyncio.get_running_loop()) if held else None
            media = MediaWriter(writer, store_used, ATTACHMENTS, settings.timezone, settings=settings.media)
            synchronizer = Synchronizer(settings, store_used, writer, Renderer(None), media, executor=executor)
            async with source:
                await synchronizer.sync(source)
        finally:
            store.close()

    if held:
        run_virtual(run())
    else:
        asyncio.run(run())


def logged_pass(vault: Path, source: MemorySource) -> Log:
    log: Log = []

    def wrap(writer: Vault, store: Store) -> tuple[Vault, Store]:
        return logging_vault(Vault)(writer.root), logging_store(Store)(store._db, store.path)

    run_pass(vault, source, log=log, wrap=wrap)
    return log


def batch_of(path: str) -> int | None:
    """The batch (of ten messages) a message note belongs to, read from its name's message id."""
    last = path.removesuffix(".md").rsplit(" ", 1)[-1]
    return (int(last) - 1) // 10 + 1 if last.isdigit() else None


def first(log: Log, kind: str, batch: int) -> int:
    """Where in ``log`` the first event of ``kind`` touching a note of ``batch`` is."""
    for index, (event, value) in enumerate(log):
        paths = value if isinstance(value, frozenset) else {value}
        if event == kind and any(batch_of(str(path)) == batch for path in paths):
            return index
    raise AssertionError(f"no {kind} for batch {batch}")


def test_the_next_batch_is_rendered_while_the_previous_batchs_writes_are_pending(vault: Path) -> None:
    log = logged_pass(vault, history(30))
    assert first(log, "intend", 2) < first(log, "write", 1), "batch 2 was rendered only once batch 1 was written"
    assert first(log, "intend", 3) < log.index(("commit", 20)), "batch 3 is rendered while batch 2 commits"
    assert [value for kind, value in log if kind == "commit"] == [10, 20, 30], "commits follow the chat's order"
    assert note_ids(vault) == {(CHAT.id, i): 1 for i in range(1, 31)}


def test_a_batch_continuing_an_album_of_the_batch_in_flight_waits_for_its_commit(vault: Path, tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    shutil.copytree(vault, reference)
    run_pass(reference, history(30, batch_size=100, album=range(9, 13)), held=False)
    log = logged_pass(vault, history(30, album=range(9, 13)))
    album_note = next(p for p in check_vault(vault).notes if p.name.endswith(" 9.md")).as_posix()
    second_intent = [i for i, (kind, paths) in enumerate(log) if kind == "intend" and album_note in paths][1]  # type: ignore[operator]
    assert log.index(("commit", 10)) < second_intent, "the album's note was read again before batch 1 committed it"
    assert note_ids(vault) == {(CHAT.id, i): 1 for i in range(1, 31)}
    assert not (difference := vault_differences(vault, reference)), difference


def test_a_failed_commit_stops_the_next_batch_with_nothing_committed_and_no_temp_file_left(vault: Path) -> None:
    log: Log = []

    class FailingVault(logging_vault(Vault)):  # type: ignore[misc]
        def _replace(self, source: Path, target: Path) -> None:
            if batch_of(target.name) == 1 and target.name.endswith(" 5.md"):
                raise OSError(28, "No space left on device")
            super()._replace(source, target)

    def wrap(writer: Vault, store: Store) -> tuple[Vault, Store]:
        return FailingVault(writer.root), logging_store(Store)(store._db, store.path)

    with pytest.raises(VaultError, match="No space left"):
        run_pass(vault, history(30), log=log, wrap=wrap)
    assert first(log, "intend", 2) < first(log, "write", 1), "batch 2 was started while batch 1 was in flight"
    assert [kind for kind, _ in log if kind == "commit"] == []
    with contextlib.closing(Store.open(load_settings(vault).database_path)) as store:
        assert [state.cursor for state in store.chat_states()] == [NO_CURSOR]
    assert list(vault.rglob(f"{TEMP_PREFIX}*")) == [], "the temp files of both batches were removed"
    assert not [p for p in vault.rglob("*.md") if batch_of(p.name) == 2], "no note of batch 2 was renamed"


def crash_at_a_rename(renames: int) -> Callable[[Vault, Store], tuple[Vault, Store]]:
    return lambda writer, store: (CrashingVault(writer.root, renames), store)


def crash_at_a_commit(commits: int) -> Callable[[Vault, Store], tuple[Vault, Store]]:
    return lambda writer, store: (writer, CrashingStore(store, commits))


@pytest.mark.parametrize(("crash", "cursor", "renamed", "started"), [
    # batch 2 places its album's three photos (renames 1-3) before batch 1's notes are renamed
    pytest.param(crash_at_a_rename(7), NO_CURSOR, 4, 2, id="after-batch-2-intents-amid-batch-1-renames"),
    pytest.param(crash_at_a_commit(0), NO_CURSOR, 10, 2, id="after-batch-1-renames-before-its-commit"),
    pytest.param(crash_at_a_commit(1), 10, 18, 3, id="after-batch-1-commit-before-batch-2-commit"),
])
def test_a_crash_amid_overlapped_batches_then_a_pass_gives_the_uninterrupted_vault(
    vault: Path, tmp_path: Path, crash: Callable[[Vault, Store], tuple[Vault, Store]], cursor: int, renamed: int,
    started: int,
) -> None:
    reference = tmp_path / "reference"
    shutil.copytree(vault, reference)
    run_pass(reference, history(30, album=range(13, 16)), held=False)

    with contextlib.suppress(SystemExit):
        run_pass(vault, history(30, album=range(13, 16)), wrap=crash)
    with contextlib.closing(Store.open(load_settings(vault).database_path)) as store:
        assert [state.cursor for state in store.chat_states()] == [cursor]
        intended = {row.path for row in store.notes() if row.intended_hash}
    assert any(batch_of(path) == started for path in intended), f"batch {started}'s intents were recorded"
    message_notes = [p for p in vault.rglob("*.md") if batch_of(p.name) is not None]
    assert len(message_notes) == renamed, "the crash came where it was meant to"

    run_pass(vault, history(30, album=range(13, 16)), held=False)
    assert not (difference := vault_differences(vault, reference)), difference
    assert note_ids(vault) == {(CHAT.id, i): 1 for i in range(1, 31)}
    with contextlib.closing(Store.open(load_settings(vault).database_path)) as store:
        assert store.conflicts() == []
        assert [row.path for row in store.notes() if row.intended_hash is not None] == []
        assert [state.cursor for state in store.chat_states()] == [30]


def test_a_file_of_a_batch_still_in_flight_is_stored_once_when_the_next_batch_posts_it_again(
    vault: Path, tmp_path: Path
) -> None:
    reference = tmp_path / "reference"
    shutil.copytree(vault, reference)
    run_pass(reference, history(30, batch_size=100, photos={5: "photo:same", 15: "photo:same"}), held=False)
    log = logged_pass(vault, history(30, photos={5: "photo:same", 15: "photo:same"}))
    assert first(log, "intend", 2) < log.index(("commit", 10)), "batch 2 took the file while batch 1 was in flight"
    assert not (difference := vault_differences(vault, reference)), difference
    assert len(list((vault / ATTACHMENTS).iterdir())) == 1
    with contextlib.closing(Store.open(load_settings(vault).database_path)) as store:
        assert store.media_count()[0] == 1
        slots = [store.media_slots(CHAT.id, message_id)[0] for message_id in (5, 15)]
    assert slots[0].path == slots[1].path and slots[0].status == slots[1].status == "stored"


@pytest.mark.parametrize("cancels", [1, 2])
def test_a_chat_cancelled_mid_overlap_commits_no_batch_after_the_one_in_flight(vault: Path, cancels: int) -> None:
    """Cancelled while batch 2 waits for batch 1's commit: batch 1 (complete) may still commit, batch 2
    never does. Cancelled again while batch 1 is being finished: batch 1 is dropped too."""
    settings = load_settings(vault)

    async def run() -> None:
        store = Store.open(settings.database_path)
        started = asyncio.Event()

        class SignallingStore(Store):
            def intend_notes(self, rows: Sequence[NoteRow]) -> None:
                super().intend_notes(rows)
                if any(batch_of(row.path) == 2 for row in rows):
                    started.set()

        watched = SignallingStore(store._db, store.path)
        writer = Vault(settings.vault_root)
        media = MediaWriter(writer, watched, ATTACHMENTS, settings.timezone, settings=settings.media)
        synchronizer = Synchronizer(settings, watched, writer, Renderer(None), media,
                                    executor=HeldExecutor(asyncio.get_running_loop()))
        try:
            async with history(30) as source:
                task = asyncio.ensure_future(synchronizer.sync_chat(source, CHAT, SyncReport()))
                await started.wait()
                task.cancel()
                if cancels == 2:
                    await asyncio.sleep(0.5)  # virtual: the chat now waits for batch 1, due at 1 s
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        finally:
            store.close()

    run_virtual(run())
    with contextlib.closing(Store.open(settings.database_path)) as store:
        assert [state.cursor for state in store.chat_states()] == [10 if cancels == 1 else NO_CURSOR]
    assert list(vault.rglob(f"{TEMP_PREFIX}*")) == []
    notes = {batch_of(p.name) for p in vault.rglob("*.md")} - {None}
    assert notes == ({1} if cancels == 1 else set())
