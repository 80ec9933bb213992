"""Test helpers: a vault whose process "dies" (``SystemExit``) just before its n-th rename, and a
store that dies instead of its n-th commit of notes' rows and cursor.

Every durable step of tobs-sync ends in a rename (notes, attachments) or a store commit, so dying
before rename k+1 is the state a power cut leaves after step k; dying at a rows commit leaves a
batch's notes renamed into place with only their intended hashes in the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tobs_sync.app import App
from tobs_sync.publish import Publisher
from tobs_sync.store import Store
from tobs_sync.store_rows import MediaRows, NoteRow
from tobs_sync.vault import Vault


class CrashingVault(Vault):
    """Counts renames; raises ``SystemExit`` instead of the one after ``renames_before_crash``."""

    def __init__(self, root: Path, renames_before_crash: int) -> None:
        super().__init__(root)
        self.renames_left = renames_before_crash
        self.renames_done = 0

    def _replace(self, source: Path, target: Path) -> None:
        if self.renames_left == 0:
            raise SystemExit("simulated crash")
        self.renames_left -= 1
        self.renames_done += 1
        super()._replace(source, target)


class CrashingStore(Store):
    """Shares ``store``'s database; raises ``SystemExit`` instead of its ``commits_before_crash + 1``-th
    commit of notes' rows with a cursor (the end of a batch). The transaction is rolled back, as a
    crash leaves it."""

    def __init__(self, store: Store, commits_before_crash: int) -> None:
        super().__init__(store._db, store.path)
        self.commits_left = commits_before_crash

    def commit_notes(
        self, rows: Sequence[NoteRow], *, cursor: tuple[int, int] | None = None, media: MediaRows | None = None
    ) -> None:
        if cursor is not None:
            if self.commits_left == 0:
                raise SystemExit("simulated crash")
            self.commits_left -= 1
        super().commit_notes(rows, cursor=cursor, media=media)


def install(app: App, vault: Vault, store: Store | None = None) -> None:
    """Make every writer of ``app`` go through ``vault`` (and ``store``, if given)."""
    store = store or app.store
    synchronizer = app.synchronizer
    publisher = Publisher(vault, store)
    parts = (synchronizer, synchronizer._placement, synchronizer._notes, synchronizer._rerenderer,
             synchronizer._widening, synchronizer.comments)
    for part in parts:
        for name, value in (("_vault", vault), ("_store", store), ("_publisher", publisher)):
            if hasattr(part, name):
                setattr(part, name, value)
    app.media._vault = vault
    app.media._store = store
