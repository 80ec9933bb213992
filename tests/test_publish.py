"""Publishing notes: the one conflict rule, intended hashes, group commit, and the read-only audit."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePath

import pytest

from tobs_sync.model import Chat
from tobs_sync.publish import Draft, Outcome, Published, Publisher, audit_notes
from tobs_sync.store import Store
from tobs_sync.store_rows import MESSAGE_NOTE, NoteRow
from tobs_sync.vault import TEMP_PREFIX, PreparedWrite, Vault, sha256_hex

OLD_TIME = 1_000_000_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "vault" / ".tobs" / "state.db") as opened:
        opened.upsert_chat(Chat(1, "Chat"), lambda chat: chat.title)
        yield opened


@pytest.fixture
def vault(store: Store) -> Vault:
    return Vault(store.path.parents[1])


def publish(vault: Vault, store: Store, path: str, data: bytes, **kwargs: object) -> Outcome:
    draft = Draft(path, data, 1, (7,), previous=store.note_at(path))
    published = Publisher(vault, store).publish([draft], **kwargs)  # type: ignore[arg-type]
    return published.outcomes[0][1]


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(f"{TEMP_PREFIX}*")]


def test_a_missing_note_is_written_and_its_row_remembers_hash_size_and_time(vault: Vault, store: Store) -> None:
    assert publish(vault, store, "Chat/n.md", b"v1", cursor=(1, 7)) is Outcome.WRITTEN
    info = (vault.root / "Chat/n.md").stat()
    row = store.note_at("Chat/n.md")
    assert row == NoteRow("Chat/n.md", MESSAGE_NOTE, 1, 7, (7,), sha256_hex(b"v1"), None, None, 2, info.st_mtime_ns)
    assert store.chat_state(1).cursor == 7
    assert store.note_of_message(1, 7) == row


def test_a_note_the_user_deleted_is_written_again(vault: Vault, store: Store) -> None:
    publish(vault, store, "n.md", b"v1")
    (vault.root / "n.md").unlink()
    assert publish(vault, store, "n.md", b"v1") is Outcome.WRITTEN
    assert (vault.root / "n.md").read_bytes() == b"v1"


def test_identical_bytes_are_not_rewritten(vault: Vault, store: Store) -> None:
    publish(vault, store, "n.md", b"v1")
    os.utime(vault.root / "n.md", (OLD_TIME, OLD_TIME))
    assert publish(vault, store, "n.md", b"v1") is Outcome.UNCHANGED
    assert (vault.root / "n.md").stat().st_mtime == OLD_TIME
    assert store.note_at("n.md").mtime_ns == OLD_TIME * 10**9


def test_what_tobs_sync_committed_last_is_overwritten(vault: Vault, store: Store) -> None:
    publish(vault, store, "n.md", b"v1")
    assert publish(vault, store, "n.md", b"v2") is Outcome.WRITTEN
    assert (vault.root / "n.md").read_bytes() == b"v2"
    assert store.note_at("n.md").content_hash == sha256_hex(b"v2")
    assert temp_files(vault.root) == []


def test_a_user_edit_is_never_overwritten_and_is_recorded_as_a_conflict(vault: Vault, store: Store) -> None:
    publish(vault, store, "n.md", b"v1")
    edited = b"v1\n\nmy own thoughts \xf0\x9f\x92\xad\r\n"
    (vault.root / "n.md").write_bytes(edited)
    os.utime(vault.root / "n.md", (OLD_TIME, OLD_TIME))
    assert publish(vault, store, "n.md", b"v2") is Outcome.CONFLICT
    assert (vault.root / "n.md").read_bytes() == edited
    assert (vault.root / "n.md").stat().st_mtime == OLD_TIME
    row = store.note_at("n.md")
    assert (row.content_hash, row.conflict_hash, row.intended_hash) == (sha256_hex(b"v1"), sha256_hex(edited), None)
    assert temp_files(vault.root) == []


def test_a_file_tobs_sync_never_wrote_is_a_conflict(vault: Vault, store: Store) -> None:
    (vault.root / "n.md").write_bytes(b"the user's note")
    assert publish(vault, store, "n.md", b"generated") is Outcome.CONFLICT
    assert (vault.root / "n.md").read_bytes() == b"the user's note"


def test_bytes_written_just_before_a_crash_are_ours_not_a_user_edit(vault: Vault, store: Store) -> None:
    """The state a crash between a note's rename and its commit leaves: the row holds the intended
    hash only. A different render on the next run (an edit arrived) must update the note."""
    store.intend_notes([NoteRow("n.md", MESSAGE_NOTE, 1, 7, (7,), "", intended_hash=sha256_hex(b"v1"))])
    (vault.root / "n.md").write_bytes(b"v1")  # renamed into place, then the process died
    assert publish(vault, store, "n.md", b"v1 edited") is Outcome.WRITTEN
    assert (vault.root / "n.md").read_bytes() == b"v1 edited"
    assert store.conflicts() == []


def test_a_second_crash_before_the_next_write_keeps_the_first_crashs_bytes_ours(
    vault: Vault, store: Store
) -> None:
    """Run 1 wrote v1 and died before committing; run 2 intends v2 and dies before its rename;
    run 3 renders v3: v1 on disk must still count as tobs-sync's own."""
    store.intend_notes([NoteRow("n.md", MESSAGE_NOTE, 1, 7, (7,), "", intended_hash=sha256_hex(b"v1"))])
    (vault.root / "n.md").write_bytes(b"v1")

    class DiesBeforeRename(Vault):
        def _replace(self, source: Path, target: Path) -> None:
            raise SystemExit("simulated crash")

    with pytest.raises(SystemExit):
        publish(DiesBeforeRename(vault.root), store, "n.md", b"v2")
    assert store.note_at("n.md").intended_hash == sha256_hex(b"v2")
    assert publish(vault, store, "n.md", b"v3") is Outcome.WRITTEN
    assert (vault.root / "n.md").read_bytes() == b"v3"
    assert store.conflicts() == []


def test_a_batch_is_one_intent_and_one_commit_transaction_and_one_fsync_per_note_and_folder(
    vault: Vault, store: Store
) -> None:
    drafts = [Draft(f"Chat/{n}.md", f"note {n}".encode(), 1, (n,)) for n in range(1, 11)]
    before = store.transactions
    published = Publisher(vault, store).publish(drafts, cursor=(1, 10))
    assert published.paths(Outcome.WRITTEN) == [d.path for d in drafts]
    assert store.transactions - before == 2
    assert vault.fsyncs == 10 + 2  # ten notes; the new folder "Chat" and its parent, the vault root
    again = store.transactions
    assert Publisher(vault, store).publish(
        [Draft(d.path, d.data, 1, d.message_ids, previous=store.note_at(d.path)) for d in drafts]
    ).paths(Outcome.UNCHANGED) == [d.path for d in drafts]
    assert store.transactions - again == 1  # nothing to write: no intent transaction


def test_one_batch_cannot_publish_a_note_twice(vault: Vault, store: Store) -> None:
    with pytest.raises(ValueError, match="twice"):
        Publisher(vault, store).publish([Draft("n.md", b"a", 1), Draft("n.md", b"b", 1)])


# --- the read-only audit behind `status` ------------------------------------------------------


def test_audit_lists_edited_missing_and_conflicting_notes_without_writing(vault: Vault, store: Store) -> None:
    for name in ("kept", "edited", "gone", "conflict", "touched"):
        publish(vault, store, f"{name}.md", f"{name} v1".encode())
    (vault.root / "edited.md").write_bytes(b"edited by hand")
    (vault.root / "gone.md").unlink()
    (vault.root / "conflict.md").write_bytes(b"mine")
    publish(vault, store, "conflict.md", b"conflict v2")
    os.utime(vault.root / "touched.md", (OLD_TIME, OLD_TIME))  # same bytes, new time: hashed, still ours
    before = notes_on_disk(vault.root), store.transactions
    audit = audit_notes(vault, store)
    assert (audit.edited, audit.missing, audit.conflicts) == (["edited.md"], ["gone.md"], ["conflict.md"])
    assert (notes_on_disk(vault.root), store.transactions) == before


def notes_on_disk(root: Path) -> dict[Path, tuple[bytes, int]]:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*.md")}


def test_audit_trusts_size_and_time_and_hashes_only_changed_files(vault: Vault, store: Store) -> None:
    publish(vault, store, "n.md", b"v1")

    class CountingVault(Vault):
        def __init__(self, root: Path) -> None:
            super().__init__(root)
            self.hashed: list[str] = []

        def sha256_of(self, relative: object) -> str | None:  # type: ignore[override]
            self.hashed.append(str(relative))
            return super().sha256_of(relative)  # type: ignore[arg-type]

    counting = CountingVault(vault.root)
    assert audit_notes(counting, store).edited == []
    assert counting.hashed == []
    (vault.root / "n.md").write_bytes(b"v2")
    assert audit_notes(counting, store).edited == ["n.md"]
    assert counting.hashed == ["n.md"]


class WaitsForTheLoop(Vault):
    """A vault whose temp-file writes (in the executor's threads) wait until a task on the event loop
    has run, and record whether it had: only a publisher that lets the loop run meanwhile sees it."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.loop_ran = threading.Event()
        self.seen: list[bool] = []

    def prepare_write(self, relative: str | PurePath, data: bytes) -> PreparedWrite:
        self.seen.append(self.loop_ran.wait(timeout=2))
        return super().prepare_write(relative, data)


def test_a_started_batch_lets_the_event_loop_run_while_its_notes_are_fsynced(store: Store) -> None:
    vault = WaitsForTheLoop(store.path.parents[1])
    drafts = [Draft(f"n{i}.md", b"note %d" % i, 1, (i,)) for i in range(3)]

    async def run() -> Published:
        other = asyncio.get_running_loop().call_soon(vault.loop_ran.set)  # e.g. the next batch being read
        with ThreadPoolExecutor(2) as executor:
            publisher = Publisher(vault, store, executor=executor)
            published = await publisher.finish(publisher.start(drafts, cursor=(1, 2)))
        other.cancel()
        return published

    published = asyncio.run(run())
    assert vault.seen == [True] * 3
    assert published.paths(Outcome.WRITTEN) == ["n0.md", "n1.md", "n2.md"]
    assert [(vault.root / f"n{i}.md").read_bytes() for i in range(3)] == [b"note %d" % i for i in range(3)]
    assert store.chat_states()[0].cursor == 2 and temp_files(vault.root) == []
