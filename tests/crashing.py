"""Test helper: a vault whose process "dies" (``SystemExit``) just before its n-th rename.

Every durable step of tobs-sync ends in a rename (notes, attachments), and the store commits
between renames, so dying before rename k+1 is the state a power cut leaves after step k.
"""

from __future__ import annotations

from pathlib import Path

from tobs_sync.app import App
from tobs_sync.publish import Publisher
from tobs_sync.store import Store
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


def install(app: App, vault: Vault, store: Store | None = None) -> None:
    """Make every writer of ``app`` go through ``vault`` (and ``store``, if given)."""
    store = store or app.store
    app.synchronizer._vault = vault
    app.synchronizer._store = store
    app.synchronizer._publisher = Publisher(vault, store)
    app.media._vault = vault
    app.media._store = store
