"""Tests for tobs_sync.vault (confinement, atomic writes, unique names) and the name sanitisers of tobs_sync.names."""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from pyfakefs.fake_filesystem import FakeFilesystem

from tobs_sync.errors import VaultError
from tobs_sync.vault import TEMP_PREFIX, Vault, sha256_hex

OLD_TIME = 1_000_000_000


@pytest.fixture
def vault_dir(tmp_path: Path) -> Path:
    root = tmp_path / "vault"
    root.mkdir()
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


@pytest.fixture
def vault(vault_dir: Path) -> Vault:
    return Vault(vault_dir)


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def temp_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.name.startswith(TEMP_PREFIX)]


# --- confinement -------------------------------------------------------------------------


def test_vault_root_must_be_an_existing_folder(tmp_path: Path) -> None:
    with pytest.raises(VaultError, match="missing"):
        Vault(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(VaultError, match="file"):
        Vault(tmp_path / "file")


def test_vault_stores_resolved_root(tmp_path: Path, vault_dir: Path) -> None:
    link = tmp_path / "link-to-vault"
    link.symlink_to(vault_dir)
    assert Vault(link).root == vault_dir.resolve()


def test_resolve_maps_posix_paths_below_the_root(vault: Vault) -> None:
    assert vault.resolve("Chats/Family/note.md") == vault.root / "Chats" / "Family" / "note.md"
    assert vault.resolve(PurePosixPath("a/b.md")) == vault.root / "a" / "b.md"


ESCAPES = ["../x", "/etc/passwd", "a/../../x", "a/../b", "", "a//b", "a/", "./a", "a\\..\\x", "C:/x", "a\x00"]


@pytest.mark.parametrize("bad", ESCAPES)
def test_resolve_refuses_paths_that_could_leave_the_vault(vault: Vault, outside: Path, bad: str) -> None:
    with pytest.raises(VaultError) as caught:
        vault.resolve(bad)
    assert repr(bad) in str(caught.value)
    with pytest.raises(VaultError):
        vault.write_atomic(bad, b"data")
    assert list(outside.iterdir()) == []


def test_write_through_symlinked_folder_is_refused(vault: Vault, outside: Path) -> None:
    (vault.root / "link").symlink_to(outside, target_is_directory=True)
    for path in ("link/x.md", "link/sub/x.md"):
        with pytest.raises(VaultError, match="symlink"):
            vault.write_atomic(path, b"data")
    assert list(outside.iterdir()) == []


def test_symlink_pointing_inside_the_vault_is_refused_too(vault: Vault) -> None:
    (vault.root / "real").mkdir()
    (vault.root / "alias").symlink_to(vault.root / "real", target_is_directory=True)
    with pytest.raises(VaultError, match="symlink"):
        vault.write_atomic("alias/x.md", b"data")
    assert list((vault.root / "real").iterdir()) == []


class CountingLstat:
    """``os.lstat`` that counts its calls (the real call does the work)."""

    def __init__(self) -> None:
        self.calls = 0
        self._real = os.lstat

    def __call__(self, path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        self.calls += 1
        return self._real(path, *args, **kwargs)


def test_resolve_in_a_folder_verified_this_pass_inspects_only_the_file(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault.write_atomic("Chats/Family/2024/first.md", b"one")
    counting = CountingLstat()
    monkeypatch.setattr(os, "lstat", counting)
    assert vault.resolve("Chats/Family/2024/second.md") == vault.root / "Chats/Family/2024/second.md"
    assert counting.calls == 1


def test_folder_swapped_for_a_symlink_is_refused_from_the_next_pass(vault: Vault, outside: Path) -> None:
    vault.write_atomic("chat/one.md", b"one")
    (vault.root / "chat").rename(vault.root / "chat-moved")
    (vault.root / "chat").symlink_to(outside, target_is_directory=True)
    vault.forget_listings()  # a new pass
    with pytest.raises(VaultError, match="symlink"):
        vault.write_atomic("chat/two.md", b"two")
    with pytest.raises(VaultError, match="symlink"):
        vault.resolve("chat/two.md")
    assert list(outside.iterdir()) == []


def test_folder_swapped_for_a_symlink_during_a_pass_is_refused_at_the_next_write(
    vault: Vault, outside: Path
) -> None:
    vault.write_atomic("chat/one.md", b"one")
    (vault.root / "chat").rename(vault.root / "chat-moved")
    (vault.root / "chat").symlink_to(outside, target_is_directory=True)
    with pytest.raises(VaultError, match="plain folder"):
        vault.write_atomic("chat/two.md", b"two")
    assert list(outside.iterdir()) == []


def test_symlinked_file_in_a_verified_folder_is_still_refused(vault: Vault, outside: Path) -> None:
    vault.write_atomic("chat/one.md", b"one")
    (vault.root / "chat" / "two.md").symlink_to(outside / "target.md")
    with pytest.raises(VaultError, match="symlink"):
        vault.write_atomic("chat/two.md", b"two")
    assert list(outside.iterdir()) == []


def test_folder_deleted_during_a_pass_is_made_again_by_the_next_write(vault: Vault) -> None:
    vault.write_atomic("chat/one.md", b"one")
    (vault.root / "chat" / "one.md").unlink()
    (vault.root / "chat").rmdir()
    assert vault.write_atomic("chat/two.md", b"two")
    assert (vault.root / "chat" / "two.md").read_bytes() == b"two"


def test_symlink_at_the_target_file_is_refused(vault: Vault, outside: Path) -> None:
    (vault.root / "note.md").symlink_to(outside / "target.md")  # dangling: would create the target
    with pytest.raises(VaultError, match="symlink"):
        vault.write_atomic("note.md", b"data")
    with pytest.raises(VaultError):
        vault.prepare_write("note.md", b"data")
    with pytest.raises(VaultError):
        vault.read_bytes("note.md")
    assert list(outside.iterdir()) == []


def test_file_in_place_of_a_folder_is_refused(vault: Vault) -> None:
    (vault.root / "a").write_bytes(b"file")
    with pytest.raises(VaultError, match="not a folder"):
        vault.write_atomic("a/b.md", b"data")


# --- atomic writes -----------------------------------------------------------------------


def test_write_atomic_creates_folders_and_content(vault: Vault) -> None:
    assert vault.write_atomic("Chats/Family/note.md", b"hello") is True
    assert (vault.root / "Chats" / "Family" / "note.md").read_bytes() == b"hello"
    assert vault.read_bytes("Chats/Family/note.md") == b"hello"
    assert temp_files(vault.root) == []


def test_write_atomic_replaces_different_content(vault: Vault) -> None:
    vault.write_atomic("note.md", b"old")
    assert vault.write_atomic("note.md", b"new, longer") is True
    assert vault.read_bytes("note.md") == b"new, longer"
    assert temp_files(vault.root) == []


def test_identical_rewrite_writes_nothing_and_keeps_mtime(vault: Vault) -> None:
    vault.write_atomic("note.md", b"same")
    path = vault.root / "note.md"
    os.utime(path, (OLD_TIME, OLD_TIME))
    inode = path.stat().st_ino
    assert vault.write_atomic("note.md", b"same") is False
    assert path.stat().st_mtime == OLD_TIME
    assert path.stat().st_ino == inode


def test_same_size_different_content_is_rewritten(vault: Vault) -> None:
    vault.write_atomic("note.md", b"abc")
    assert vault.write_atomic("note.md", b"abd") is True
    assert vault.read_bytes("note.md") == b"abd"


def test_new_files_get_0644_minus_umask(vault: Vault, umask_022: None) -> None:
    vault.write_atomic("open.md", b"x")
    assert stat.S_IMODE((vault.root / "open.md").stat().st_mode) == 0o644
    os.umask(0o077)
    vault.write_atomic("private.md", b"x")
    assert stat.S_IMODE((vault.root / "private.md").stat().st_mode) == 0o600


def test_rewrite_keeps_the_users_file_mode(vault: Vault) -> None:
    vault.write_atomic("note.md", b"old")
    os.chmod(vault.root / "note.md", 0o600)
    vault.write_atomic("note.md", b"new")
    assert stat.S_IMODE((vault.root / "note.md").stat().st_mode) == 0o600


class FsyncFailsVault(Vault):
    def _fsync(self, fd: int) -> None:
        raise OSError(errno.EIO, "simulated disk failure")


class ReplaceFailsVault(Vault):
    def _replace(self, source: Path, target: Path) -> None:
        raise OSError(errno.ENOSPC, "simulated full disk")


@pytest.mark.parametrize("failing", [FsyncFailsVault, ReplaceFailsVault])
def test_failed_write_keeps_old_content_and_leaves_no_temp_file(
    vault_dir: Path, failing: type[Vault]
) -> None:
    Vault(vault_dir).write_atomic("note.md", b"old content")
    broken = failing(vault_dir)
    with pytest.raises(VaultError, match="simulated"):
        broken.write_atomic("note.md", b"new content")
    with pytest.raises(VaultError, match="simulated"):
        broken.write_atomic("Chats/new.md", b"new content")
    assert (vault_dir / "note.md").read_bytes() == b"old content"
    assert not (vault_dir / "Chats" / "new.md").exists()
    assert temp_files(vault_dir) == []


def test_write_onto_a_folder_is_refused(vault: Vault) -> None:
    (vault.root / "note.md").mkdir()
    with pytest.raises(VaultError, match="not a regular file"):
        vault.write_atomic("note.md", b"x")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_special_files_are_refused_not_read(vault: Vault) -> None:
    os.mkfifo(vault.root / "pipe.md")  # opening it for reading would block forever
    for call in (vault.read_bytes, vault.sha256_of, lambda path: vault.write_atomic(path, b"x")):
        with pytest.raises(VaultError, match="not a regular file"):
            call("pipe.md")


def test_read_and_hash_of_missing_file_are_none(vault: Vault) -> None:
    assert vault.read_bytes("nope.md") is None
    assert vault.sha256_of("nope/nope.md") is None


def test_sha256_of_matches_the_bytes_on_disk(vault: Vault) -> None:
    data = os.urandom(3 << 20)  # more than one read chunk
    vault.write_atomic("big.bin", data)
    assert vault.sha256_of("big.bin") == sha256_hex(data)


def test_clean_temp_files_removes_only_stale_temp_files(vault: Vault, outside: Path) -> None:
    root = vault.root
    (root / "Chats").mkdir()
    (root / ".obsidian").mkdir()
    for stale in (root / f"{TEMP_PREFIX}abc", root / "Chats" / f"{TEMP_PREFIX}123"):
        stale.write_bytes(b"half a note")
    keep = [
        root / "Chats" / "note.md",
        root / "Chats" / ".tobs-tmpnodash",
        root / "Chats" / "x.tobs-tmp-",
        root / ".obsidian" / f"{TEMP_PREFIX}plugin",
    ]
    for path in keep:
        path.write_bytes(b"keep")
    (outside / f"{TEMP_PREFIX}elsewhere").write_bytes(b"keep")
    (root / "linked").symlink_to(outside, target_is_directory=True)

    assert vault.clean_temp_files() == 2
    assert temp_files(root) == [root / ".obsidian" / f"{TEMP_PREFIX}plugin"]
    assert all(path.read_bytes() == b"keep" for path in keep)
    assert (outside / f"{TEMP_PREFIX}elsewhere").exists()
    assert vault.clean_temp_files() == 0


# --- unique names ------------------------------------------------------------------------


def test_unique_path_keeps_a_free_name(vault: Vault) -> None:
    assert vault.unique_path("Chats/Note.md", lambda _: False) == "Chats/Note.md"


def test_unique_path_numbers_names_taken_in_the_callers_index(vault: Vault) -> None:
    index = {"chats/note.md", "chats/note 2.md"}
    assert vault.unique_path("Chats/NOTE.md", lambda p: p.casefold() in index) == "Chats/NOTE 3.md"


def test_unique_path_sees_files_on_disk_case_insensitively(vault: Vault) -> None:
    vault.write_atomic("Chats/note.md", b"x")
    vault.write_atomic("Chats/NOTE 2.md", b"x")
    assert vault.unique_path("Chats/Note.md", lambda _: False) == "Chats/Note 3.md"
    assert vault.unique_path("Other/Note.md", lambda _: False) == "Other/Note.md"


def test_unique_path_lists_a_folder_once_and_keeps_up_with_its_own_writes(vault: Vault) -> None:
    assert vault.unique_path("Chats/Note.md", lambda _: False) == "Chats/Note.md"  # folder listed (absent)
    vault.write_atomic("Chats/note.md", b"x")
    assert vault.unique_path("Chats/NOTE.md", lambda _: False) == "Chats/NOTE 2.md"
    vault.write_atomic("Chats/Sub/a.md", b"x")  # creating a folder is remembered too
    assert vault.unique_path("Chats/SUB", lambda _: False) == "Chats/SUB 2"


def test_notes_published_in_a_pass_leave_the_folder_listing_as_it_was_and_the_index_numbers_them(
    vault: Vault,
) -> None:
    assert vault.unique_path("Chats/Note.md", lambda _: False) == "Chats/Note.md"  # folder listed (absent)
    index: set[str] = set()
    for number in range(200):
        path = f"Chats/note {number}.md"
        index.add(path.casefold())  # as a publisher records its intent before the rename
        vault.finish_write(vault.prepare_write(path, b"x"))
    vault.sync_folders()
    # A pass writing a whole history keeps a listing of what was there, not of what it wrote
    # (white-box: the listing is what held memory proportional to the notes written).
    assert vault._listings[vault.root / "Chats"] == set()
    assert vault.unique_path("Chats/NOTE 7.md", lambda p: p.casefold() in index) == "Chats/NOTE 7 2.md"


def test_unique_path_sees_files_others_add_exactly_at_once_and_by_case_after_forgetting(vault: Vault) -> None:
    assert vault.unique_path("Chats/Note.md", lambda _: False) == "Chats/Note.md"
    (vault.root / "Chats").mkdir()
    (vault.root / "Chats" / "Note.md").write_bytes(b"the user's")
    assert vault.unique_path("Chats/Note.md", lambda _: False) == "Chats/Note 2.md"  # same name: always seen
    (vault.root / "Chats" / "other.md").write_bytes(b"the user's")
    vault.forget_listings()  # as every sync pass does first: a name differing in case only is seen again
    assert vault.unique_path("Chats/OTHER.md", lambda _: False) == "Chats/OTHER 2.md"


def test_unique_path_without_extension_and_at_the_root(vault: Vault) -> None:
    (vault.root / "Family").mkdir()
    assert vault.unique_path("family", lambda _: False) == "family 2"
    assert vault.unique_path("2024.05.01 chat", lambda p: p == "2024.05.01 chat") == "2024.05.01 chat 2"


def test_unique_path_stays_within_the_byte_limit(vault: Vault) -> None:
    wanted = "a" * 197 + ".md"
    result = vault.unique_path(wanted, lambda p: p == wanted)
    assert result == "a" * 195 + " 2.md"
    assert len(result.encode("utf-8")) == 200


def test_unique_path_refuses_paths_outside_the_vault(vault: Vault) -> None:
    with pytest.raises(VaultError):
        vault.unique_path("../Note.md", lambda _: False)


# --- Obsidian settings -------------------------------------------------------------------


def test_load_app_config_reads_settings(vault: Vault) -> None:
    assert vault.load_app_config() == {}
    vault.write_atomic(".obsidian/app.json", b'{"attachmentFolderPath": "./", "useMarkdownLinks": false}')
    assert vault.load_app_config() == {"attachmentFolderPath": "./", "useMarkdownLinks": False}
    vault.write_atomic(".config/app.json", b'{"newLinkFormat": "absolute"}')
    assert vault.load_app_config(".config") == {"newLinkFormat": "absolute"}


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b"\xff\xfe", b"[" * 100_000])
def test_malformed_app_config_is_ignored_with_a_warning(
    vault: Vault, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    vault.write_atomic(".obsidian/app.json", content)
    with caplog.at_level(logging.WARNING, logger="tobs_sync.vault"):
        assert vault.load_app_config() == {}
    assert "app.json" in caplog.text


def test_symlinked_config_folder_is_ignored_with_a_warning(
    vault: Vault, outside: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (outside / "app.json").write_text('{"useMarkdownLinks": true}')
    (vault.root / ".obsidian").symlink_to(outside, target_is_directory=True)
    with caplog.at_level(logging.WARNING, logger="tobs_sync.vault"):
        assert vault.load_app_config() == {}
    assert "symlink" in caplog.text


# --- on a fake file system ---------------------------------------------------------------


def test_atomic_writes_in_steps_on_a_fake_file_system(fs: FakeFilesystem) -> None:
    fs.create_dir("/vault")
    vault = Vault(Path("/vault"))
    assert vault.write_atomic("Chats/a.md", b"one") is True
    assert vault.write_atomic("Chats/a.md", b"one") is False
    prepared = vault.prepare_write("Chats/a.md", b"two")
    assert Path("/vault/Chats/a.md").read_bytes() == b"one", "nothing visible changes before the rename"
    vault.finish_write(prepared)
    vault.sync_folders()
    assert Path("/vault/Chats/a.md").read_bytes() == b"two"
    fs.create_file("/vault/Chats/.tobs-tmp-stale")
    assert vault.clean_temp_files() == 1
    assert sorted(os.listdir("/vault/Chats")) == ["a.md"]


class FolderSyncRecordingVault(Vault):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.synced: list[Path] = []

    def _fsync_folder(self, folder: Path) -> None:
        super()._fsync_folder(folder)
        self.synced.append(folder)


def test_a_write_that_creates_folders_fsyncs_the_folder_and_every_new_folders_parent(vault_dir: Path) -> None:
    vault = FolderSyncRecordingVault(vault_dir)
    vault.write_atomic("A/B/n.md", b"data")
    assert sorted(vault.synced) == sorted([vault.root, vault.root / "A", vault.root / "A" / "B"])
    vault.synced.clear()
    vault.write_atomic("A/B/m.md", b"data")
    assert vault.synced == [vault.root / "A" / "B"], "folders that existed already are not fsynced again"
