"""Whether stored notes' files are still in the vault, from one listing per folder.

A re-render asks, for every note whose rendered bytes equal its stored hash, whether its file is
still there (a deleted note is written again). :class:`NoteFiles` answers from one ``os.scandir``
of each note folder (folders resolved through :meth:`tobs_sync.vault.Vault.resolve`, so a folder
that is a symlink or leaves the vault is refused as before), instead of resolving and inspecting
every note's path. Limits: the listing is taken once, when a folder is first asked about; only a
name listed as a plain file (no symlink) counts as present from the listing, anything else is
asked of the vault as before (:meth:`Vault.resolve` then ``exists``), which refuses links and
answers case-insensitive file systems the way the file system does.
"""

from __future__ import annotations

import os

from tobs_sync.vault import Vault


class NoteFiles:
    """The plain files of the note folders of one vault, listed once per folder."""

    def __init__(self, vault: Vault) -> None:
        self._vault = vault
        self._plain_files: dict[str, frozenset[str]] = {}

    def exists(self, path: str) -> bool:
        """Whether the vault holds a file at the vault-relative note ``path`` (VaultError if unsafe)."""
        folder, _, name = path.rpartition("/")
        names = self._plain_files.get(folder)
        if names is None:
            names = self._plain_files[folder] = self._list(folder)
        return name in names or self._vault.resolve(path).exists()

    def _list(self, folder: str) -> frozenset[str]:
        location = self._vault.resolve(folder) if folder else self._vault.root
        try:
            with os.scandir(location) as entries:
                return frozenset(entry.name for entry in entries if entry.is_file(follow_symlinks=False))
        except (FileNotFoundError, NotADirectoryError):
            return frozenset()
