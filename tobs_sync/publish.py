"""Publishing a batch of rendered notes: the one place where notes reach the vault and the store.

:meth:`Publisher.publish` takes the rendered notes of a batch (a sync batch, the notes a media
retry updates, a slice of a re-render, a chat's index note) and:

1. decides each note on the bytes now on disk (:func:`decide_note`): no file -> *written*;
   otherwise the new generated part is merged into the file (:func:`tobs_sync.merge.merge`, with
   what tobs-sync generated there last, its *base*), keeping the user's properties and text
   outside the ``%% tobs %%`` markers -> *written*, or *unchanged* if that is what the file holds;
   an edit inside the markers (or markers gone) -> *conflict*: left byte for byte and listed.
   A note with no base (written before the markers existed) follows the hash rule: the file holds
   what tobs-sync committed or intended last -> *written*; anything else -> *conflict*;
2. records, in one transaction (with the batch's messages, if given), the hash each note is about
   to get (its *intended* hash) and its base, and, as committed, the bytes on disk (and their
   base) when they are tobs-sync's own: from now until step 6 both the old and the new bytes count
   as its own, so a crash at any instant never turns its own note into a "user edit" or a conflict;
3. writes each note to a hidden temp file beside it and fsyncs it (several at once, in threads:
   :mod:`tobs_sync.note_writes`), taking its size and modification time from the temp file;
4. renames each temp file over its note (``os.replace``);
5. fsyncs each folder that received a rename once, and the parent of every folder created for
   the batch (a new chat's folder would otherwise vanish in a power cut);
6. commits, in one transaction, the notes' rows (hash, size and modification time of what was
   written, for ``status``'s fast check) and bases, the media index rows of the batch and the
   chat's cursor.

A sync pass splits a batch in two: :meth:`Publisher.start` runs steps 1 and 2 and starts step 3;
:meth:`Publisher.finish` (awaited later, while the next batch is rendered) runs the rest, or
:meth:`Publisher.abandon` drops the temp files. A later batch's intents may so be recorded before
an earlier batch's commit: intents only widen what counts as tobs-sync's own, so a crash between
the two leaves both batches to be repeated, never a note taken for a user edit. Re-running a
batch after a crash at any point writes identical bytes (skipped) or finishes the job.
:func:`audit_notes` is the read-only counterpart: it compares the notes on disk with the store
(size and modification time first, the hash only when they differ).

How the temp files are flushed: one ``fsync`` (``F_FULLFSYNC`` on macOS) per file, run by the
executor's threads, the batch handed to them in chunks of about one per thread
(:mod:`tobs_sync.note_writes`); chosen over one future per note (the same concurrent fsyncs, but
a hand-off per note: three times the user CPU per file in a write-only loop) and over one
``syncfs`` per batch (no thread traffic at all, but it flushes the whole file system, other
programs' data included, so a batch waits on their writes, and Linux before 5.8 does not report
a failed writeback to it). Threads cost futex traffic (the GIL changes hands around each system
call a writer makes), which grows with the threads writing at once; fewer than about eight leave
the disk idle while a batch renders, so the writers follow ``telegram.blocking_workers``.

Guarantee per platform: on Linux, fsync of the file and of its folder makes a rename durable
(ext4, xfs, btrfs). On macOS, files are flushed with ``F_FULLFSYNC`` (plain fsync stops at the
drive's cache) and folders with fsync. On Windows, folders cannot be fsynced: a rename is atomic
but a power cut just after a batch may undo it while the store says it happened. Limits: a user
edit landing between step 1 and step 4 is overwritten, and so is a file created at a new note's
path between the moment the path was found free (as the batch was grouped, a fraction of a second
earlier) and step 4; one publisher per vault (the vault lock).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from enum import StrEnum

from tobs_sync.errors import VaultError
from tobs_sync.merge import Conflict, generated_base, merge
from tobs_sync.model import Message
from tobs_sync.note_writes import BatchWrites
from tobs_sync.store import Store
from tobs_sync.store_rows import MESSAGE_NOTE, MediaRows, NoteRow
from tobs_sync.vault import PreparedWrite, Vault, sha256_hex

log = logging.getLogger(__name__)

FSYNC_WORKERS = 8
"""Threads writing and fsyncing a batch's temp files concurrently."""


class Outcome(StrEnum):
    WRITTEN = "written"
    UNCHANGED = "unchanged"
    CONFLICT = "conflict"


@dataclass(frozen=True, slots=True)
class Draft:
    """One rendered note, ready to publish; ``previous`` is its row in the store (None: new note)."""

    path: str
    data: bytes
    chat_id: int
    message_ids: tuple[int, ...] = ()
    kind: str = MESSAGE_NOTE
    previous: NoteRow | None = None
    fresh: bool = False
    """Its path was found free (no file, no row) as its batch was grouped: the disk is not read again."""

    def row(self, content_hash: str, **fields: object) -> NoteRow:
        ids = self.message_ids
        return replace(NoteRow(self.path, self.kind, self.chat_id, ids[0] if ids else 0, ids, content_hash), **fields)


@dataclass(slots=True)
class Published:
    """What :meth:`Publisher.publish` did, note by note (in the order given)."""

    outcomes: list[tuple[str, Outcome]] = field(default_factory=list)

    def paths(self, outcome: Outcome) -> list[str]:
        return [path for path, result in self.outcomes if result == outcome]


def decide(disk_hash: str | None, new_hash: str, previous: NoteRow | None) -> Outcome:
    """The rule for a note with nothing to merge (no base, or no markers): see the module docstring, step 1."""
    if disk_hash == new_hash:
        return Outcome.UNCHANGED
    if disk_hash is None or (previous is not None and previous.is_ours(disk_hash)):
        return Outcome.WRITTEN
    return Outcome.CONFLICT


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one note: the outcome, the bytes to write and their hash, and the bases
    (what tobs-sync generated) of the bytes on disk now and of the bytes written."""

    outcome: Outcome
    data: bytes
    new_hash: str
    disk_hash: str | None
    disk_base: bytes | None
    new_base: bytes | None
    reason: str = ""


def decide_note(
    draft: Draft,
    disk: bytes | None,
    bases: tuple[bytes | None, bytes | None],
    *,
    force: bool = False,
) -> Decision:
    """Step 1 for one note: merge the new generated part into the bytes on disk, or decide by hash.

    ``bases`` are the committed and intended bases of the note in the store. The intended one
    describes the disk when the disk holds the intended bytes (a crash after the rename), so a
    note tobs-sync wrote is never taken for a user edit. ``force`` (``render --force``) replaces
    an edited region instead of reporting it, and a note without markers by the generated note.
    """
    generated, new_base = draft.data, generated_base(draft.data)
    disk_hash = None if disk is None else sha256_hex(disk)
    committed_base, intended_base = bases
    previous = draft.previous
    disk_base = committed_base
    if previous is not None and disk_hash is not None and disk_hash == previous.intended_hash and intended_base:
        disk_base = intended_base
    if disk is None:
        return Decision(Outcome.WRITTEN, generated, sha256_hex(generated), None, None, new_base)
    result: bytes | Conflict = Conflict("tobs-sync has no record of what it generated in this note")
    if disk_base is not None and new_base is not None:
        result = merge(disk_base, disk, generated, force_region=force)
    if isinstance(result, bytes):
        outcome = Outcome.UNCHANGED if result == disk else Outcome.WRITTEN
        return Decision(outcome, result, sha256_hex(result), disk_hash, disk_base, new_base)
    new_hash = sha256_hex(generated)
    outcome = Outcome.WRITTEN if force else decide(disk_hash, new_hash, previous)
    ours = previous is not None and previous.is_ours(disk_hash)
    return Decision(outcome, generated, new_hash, disk_hash, disk_base if ours else None, new_base, result.reason)


@dataclass(slots=True)
class PendingBatch:
    """A batch past steps 1 and 2 whose temp files are being written (:meth:`Publisher.start`); it
    is finished (steps 3 to 6, :meth:`Publisher.finish`) or abandoned (:meth:`Publisher.abandon`)."""

    decided: list[tuple[Draft, Decision]]
    writes: BatchWrites | None
    cursor: tuple[int, int] | None
    media: MediaRows | None
    messages: Sequence[Message]

    @property
    def paths(self) -> frozenset[str]:
        """Every note of the batch (written or not): their rows are committed by :meth:`Publisher.finish`."""
        return frozenset(draft.path for draft, _ in self.decided)


class Publisher:
    """Publishes batches of notes into one vault and its store."""

    def __init__(
        self, vault: Vault, store: Store, *, executor: Executor | None = None, threads: int = FSYNC_WORKERS
    ) -> None:
        self._vault = vault
        self._store = store
        self._executor = executor
        """The app's executor for blocking work; None: a pool of ``threads`` per batch."""
        self._threads = max(1, threads)
        """Chunks a batch's temp-file writes are cut into: the executor's worker threads."""

    def publish(
        self,
        drafts: Sequence[Draft],
        *,
        cursor: tuple[int, int] | None = None,
        media: MediaRows | None = None,
        messages: Sequence[Message] = (),
        force: bool = False,
    ) -> Published:
        """Publish ``drafts`` (distinct paths); commit their rows with ``media`` rows and ``cursor``.

        ``messages`` (the batch, for the message cache) are stored in the first transaction.
        ``force`` writes over the user's edits of the generated part (the caller keeps a backup).
        """
        pending = self.start(drafts, cursor=cursor, media=media, messages=messages, force=force)
        stamps: dict[str, tuple[int, int]] = {}
        if pending.writes is not None:
            stamps = self._rename_all(pending.writes.wait_blocking())
            self._vault.fsync_folders(self._vault.take_folders_to_sync())
        return self._commit(pending, stamps)

    def start(
        self,
        drafts: Sequence[Draft],
        *,
        cursor: tuple[int, int] | None = None,
        media: MediaRows | None = None,
        messages: Sequence[Message] = (),
        force: bool = False,
    ) -> PendingBatch:
        """Steps 1 and 2 of :meth:`publish` on this thread, and step 3 started: the notes' folders
        made, their temp files being written by the executor. Nothing visible has changed yet."""
        decided, to_write, messages = self._decide_and_intend(drafts, messages, force)
        writes = self._start_writes(to_write) if to_write else None
        return PendingBatch(decided, writes, cursor, media, messages)

    async def finish(self, pending: PendingBatch) -> Published:
        """Steps 3 to 6 of a started batch: its temp files awaited, renamed, their folders fsynced
        (by the executor) and its rows, media rows and cursor committed. Cancelled before the
        renames: the temp files are dropped and nothing is committed."""
        stamps: dict[str, tuple[int, int]] = {}
        if pending.writes is not None:
            stamps = self._rename_all(await pending.writes.wait())
            folders = self._vault.take_folders_to_sync()
            if self._executor is None:
                self._vault.fsync_folders(folders)
            else:
                await asyncio.wrap_future(self._executor.submit(self._vault.fsync_folders, folders))
        return self._commit(pending, stamps)

    @staticmethod
    def abandon(pending: PendingBatch) -> None:
        """Drop a started batch that will not be finished: its threads end, its temp files go.
        Its intents stay recorded: harmless, as after a crash."""
        if pending.writes is not None:
            pending.writes.abandon()

    def _start_writes(self, drafts: Sequence[Draft]) -> BatchWrites:
        items = [(draft.path, draft.data) for draft in drafts]
        if len(items) < 2 or self._executor is not None:
            return BatchWrites(self._vault, items, self._executor if len(items) > 1 else None, self._threads)
        pool = ThreadPoolExecutor(min(self._threads, len(items)))
        try:
            return BatchWrites(self._vault, items, pool, self._threads)
        finally:
            pool.shutdown(wait=False)  # its threads end once the batch's writes have

    def _decide_and_intend(
        self, drafts: Sequence[Draft], messages: Sequence[Message], force: bool
    ) -> tuple[list[tuple[Draft, Decision]], list[Draft], Sequence[Message]]:
        """Steps 1 and 2: each note decided; the intended hashes recorded (with ``messages``, which are
        then returned empty). The drafts to write come back with the bytes to write."""
        if len({draft.path for draft in drafts}) != len(drafts):
            raise ValueError("a batch cannot publish one note twice")
        bases = self._store.note_bases([draft.path for draft in drafts])
        decided = [
            (draft, decide_note(draft, None if draft.fresh else self._vault.read_bytes(draft.path),
                                bases.get(draft.path, (None, None)), force=force))
            for draft in drafts
        ]
        to_write = [(draft, decision) for draft, decision in decided if decision.outcome == Outcome.WRITTEN]
        if to_write or messages:  # the messages now: a later batch's album finds its note before this commits
            with self._store.transaction():
                if messages:
                    self._store.put_messages(messages)
                    messages = ()
                if to_write:
                    self._store.intend_notes([_intent(draft, d.new_hash, d.disk_hash) for draft, d in to_write])
                    self._store.intend_bases({draft.path: (d.disk_base, d.new_base) for draft, d in to_write})
        return decided, [replace(draft, data=d.data) for draft, d in to_write], messages

    def _commit(self, pending: PendingBatch, stamps: dict[str, tuple[int, int]]) -> Published:
        """Step 6: the notes' rows, bases, media rows and cursor in one transaction."""
        decided = pending.decided
        rows = [self._row(draft, d.new_hash, d.disk_hash, d.outcome, stamps) for draft, d in decided]
        with self._store.transaction():
            if pending.messages:
                self._store.put_messages(pending.messages)
            self._store.commit_notes(rows, cursor=pending.cursor, media=pending.media)
            self._store.commit_bases({
                draft.path: d.new_base for draft, d in decided if d.outcome != Outcome.CONFLICT
            })
        for draft, d in decided:
            if d.outcome == Outcome.CONFLICT:
                log.info("%s left as it is: %s", draft.path, d.reason or "edited outside tobs-sync")
        return Published([(draft.path, d.outcome) for draft, d in decided])

    def _rename_all(self, prepared: Sequence[PreparedWrite]) -> dict[str, tuple[int, int]]:
        """Step 4: every temp file renamed over its note, in order; the notes' ``(size, mtime_ns)``."""
        renamed = 0
        try:
            for write in prepared:
                self._vault.finish_write(write)
                renamed += 1
        except BaseException:
            for write in prepared[renamed:]:
                self._vault.discard_write(write)
            raise
        return {write.relative: write.stamp for write in prepared}

    def _row(
        self, draft: Draft, new_hash: str, disk_hash: str | None, outcome: Outcome, stamps: dict[str, tuple[int, int]]
    ) -> NoteRow:
        previous = draft.previous
        if outcome == Outcome.CONFLICT:
            return draft.row(
                previous.content_hash if previous else "", conflict_hash=disk_hash,
                size=previous.size if previous else None, mtime_ns=previous.mtime_ns if previous else None,
            )
        stamp = stamps.get(draft.path) or self._vault.file_stamp(draft.path)
        if stamp is None:
            raise VaultError(f"{draft.path} vanished while it was being written")
        return draft.row(new_hash, size=stamp[0], mtime_ns=stamp[1])


def _intent(draft: Draft, new_hash: str, disk_hash: str | None) -> NoteRow:
    """The row recorded before writing: the new bytes intended, the bytes on disk (if ours) committed."""
    previous = draft.previous
    committed = previous.content_hash if previous else ""
    if previous is not None and previous.is_ours(disk_hash):
        committed = disk_hash or committed
    return draft.row(committed, intended_hash=new_hash)


@dataclass(frozen=True, slots=True)
class NoteAudit:
    """Notes whose file is not what tobs-sync last wrote, by kind of difference (vault paths)."""

    edited: list[str] = field(default_factory=list)
    """Changed outside tobs-sync since it last wrote them (not yet recorded as conflicts)."""
    missing: list[str] = field(default_factory=list)
    """Written once, now gone."""
    conflicts: list[str] = field(default_factory=list)
    """Recorded as conflicts by a write that found someone else's bytes (and still not tobs-sync's)."""


def audit_notes(vault: Vault, store: Store) -> NoteAudit:
    """Compare every note in the store with the file on disk; reads only, writes nothing.

    A file whose size and modification time equal those recorded when it was written is taken as
    unchanged without reading it; otherwise it is hashed and compared with the committed and the
    intended hash. Notes reserved but never written are not listed.
    """
    audit = NoteAudit()
    for row in store.notes():
        try:
            stamp = vault.file_stamp(row.path)
        except VaultError:
            audit.edited.append(row.path)  # something other than a plain file sits there now
            continue
        if stamp is None:
            if row.content_hash or row.conflict_hash:
                audit.missing.append(row.path)
            continue
        if row.conflict_hash is None and row.size is not None and stamp == (row.size, row.mtime_ns):
            continue
        disk_hash = vault.sha256_of(row.path)
        if row.is_ours(disk_hash):
            continue
        (audit.conflicts if row.conflict_hash is not None else audit.edited).append(row.path)
    return audit
