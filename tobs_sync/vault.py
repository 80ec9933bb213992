"""The vault writer: confined paths, atomic and idempotent writes, temp files, fsync.

Names are not made here: :mod:`tobs_sync.names` turns untrusted text into safe file and folder
names and says when two names are one to Obsidian (``path_key``). This module writes them.

* Confinement: :meth:`Vault.resolve` maps a vault-relative POSIX path to a file below the root and
  refuses ``..``, absolute paths and every symlink on the way (even one pointing inside).
* Durability: a write is a hidden ``.tobs-tmp-*`` file beside the target, fsynced
  (:meth:`Vault.prepare_write`), renamed over the target with ``os.replace``
  (:meth:`Vault.finish_write`), then the folder is fsynced, and so is the parent of every folder
  created for it (:meth:`Vault.sync_folders`), so a power cut cannot lose a new folder. Batches
  (:mod:`tobs_sync.publish`) run these steps themselves, fsyncing each folder once per batch;
  :meth:`Vault.write_atomic` runs them for one file and skips identical bytes (no mtime churn).
  ``_fsync``, ``_replace``, ``_fsync_folder`` and ``_mkdir`` are the only places that touch the
  disk for those steps: tests override them to record or interrupt the order of operations.
* Distinct names: :meth:`Vault.unique_path` numbers a wanted name (``Note 2.md``) until neither the
  caller's index nor the folder on disk (compared as Obsidian compares names) holds it.

Limits: confinement is checked before each write, not held during it: a process swapping a folder
for a symlink between check and rename could still redirect a write (the threat is careless input,
not a hostile local user). One tobs-sync process per vault (:meth:`Vault.clean_temp_files` deletes
any other's temp files). The writer trusts the names it is given to be safe ones; it only refuses
those that would leave the vault.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import secrets
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath, PureWindowsPath
from typing import Any, BinaryIO

from tobs_sync.errors import VaultError
from tobs_sync.names import NAME_MAX_BYTES, numbered_name, path_key
from tobs_sync.plain_paths import inspect_unlinked, strictly_below

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

TEMP_PREFIX = ".tobs-tmp-"  # hidden from Obsidian and from Obsidian Sync
SKIPPED_FOLDERS = frozenset({".obsidian", ".git", ".trash"})  # clean_temp_files never enters them
_CHUNK = 1 << 20
_FULLFSYNC: int | None = getattr(fcntl, "F_FULLFSYNC", None) if fcntl is not None else None
_FSYNC_UNSUPPORTED = {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF, errno.EACCES, errno.EPERM}


def sha256_hex(data: bytes) -> str:
    """The hex sha256 of ``data``: the content hash the notes index stores."""
    return hashlib.sha256(data).hexdigest()



@dataclass(frozen=True, slots=True)
class PreparedWrite:
    """New bytes in a fsynced hidden temp file beside ``target``, waiting for :meth:`Vault.finish_write`."""

    relative: str
    target: Path
    temp: Path
    size: int = -1
    """Bytes written (``os.fstat`` of the temp file once fsynced; the rename keeps it)."""
    mtime_ns: int = 0
    """The temp file's modification time, which the renamed note keeps."""

    @property
    def stamp(self) -> tuple[int, int]:
        """``(size, mtime_ns)`` the note has once renamed, as :meth:`Vault.file_stamp` would read it."""
        return self.size, self.mtime_ns


class Vault:
    """An Obsidian vault folder that tobs-sync writes into; paths are vault-relative POSIX strings."""

    def __init__(self, root: Path) -> None:
        if not os.path.isdir(root):
            raise VaultError(f"vault folder {str(root)!r} does not exist or is not a folder")
        self.root = Path(os.path.realpath(root))
        self._listings: dict[Path, set[str]] = {}
        """Case-folded names per folder, listed once per pass and kept up to date with the files and
        folders this vault places or writes on its own (listing a chat folder for every new note made
        imports quadratic in the folder's size). Notes written through :meth:`finish_write` are not
        added: their paths are in the store's index, which callers of :meth:`unique_path` consult, and
        a listing that grew with every note written held memory proportional to the history synced."""
        self._verified_folders: set[str] = set()
        """Vault-relative folders seen to be plain folders (no symlink, no junction, every parent
        plain too) since :meth:`forget_listings`; :meth:`resolve` checks only the last component
        of a path below one of them (a pass resolved every note's folder chain again and again)."""
        self._new_folders: set[Path] = set()
        """Folders this vault created whose parent has not been fsynced since (see sync_folders)."""
        self._renamed_into: dict[Path, None] = {}
        """Folders that received a rename not yet made durable by :meth:`sync_folders`."""
        self.fsyncs = 0
        """Files and folders fsynced (the benchmark prints it)."""
        self._count_lock = threading.Lock()  # prepare_write may run in several threads at once

    def forget_listings(self) -> None:
        """Drop the remembered folder listings and verified folders (call at the start of a pass:
        others may have added files, or swapped a folder for a symlink)."""
        self._listings.clear()
        self._verified_folders.clear()

    def resolve(self, relative: str | PurePath) -> Path:
        """The absolute path of ``relative``, or VaultError (naming it) if it could leave the vault.

        Refused: absolute paths and drives, backslashes, empty, ``.`` and ``..`` components, any
        existing component that is a symlink or junction, a real location not below the root.
        Within a pass (until :meth:`forget_listings`) a folder once verified is trusted and only
        the last component is inspected again; writes also inspect the file's own folder. A folder
        further up swapped for a symlink during a pass is refused from the next pass on (as the
        module's limits say, the check was never held during a write anyway).
        """
        return self._inspect(relative)[0]

    def _inspect(self, relative: str | PurePath) -> tuple[Path, os.stat_result | None]:
        """:meth:`resolve`, with the ``lstat`` of the path it took on the way (None: no such file),
        so that callers asking "is there a file?" need not ask the file system again."""
        text = relative.as_posix() if isinstance(relative, PurePath) else relative
        problem = _path_problem(text)
        if problem is None and text.rpartition("/")[0] in self._verified_folders:
            target = self.root / text
            info, problem = inspect_unlinked(target)
            if problem is None:
                return target, info
        problem = problem or self._link_problem(text.split("/"))
        target = self.root.joinpath(*text.split("/")) if problem is None else self.root
        if problem is None and not strictly_below(os.path.realpath(target), self.root):
            problem = f"it resolves outside {self.root}"
        if problem:
            raise VaultError(f"refusing vault path {text!r}: {problem}")
        return target, inspect_unlinked(target)[0]

    def _link_problem(self, parts: list[str]) -> str | None:
        """Why the path ``parts`` is unsafe, or None; every folder on the way found plain (and so
        reached from the real root through plain folders only) is remembered as verified."""
        current = self.root
        for index, part in enumerate(parts):
            current = current / part
            info, problem = inspect_unlinked(current)
            if problem or info is None:
                return problem
            if index < len(parts) - 1:
                if not stat.S_ISDIR(info.st_mode):
                    return f"{current} is not a folder"
                self._verified_folders.add("/".join(parts[: index + 1]))
        return None

    def read_bytes(self, relative: str | PurePath) -> bytes | None:
        """The bytes of a vault file, or None if there is none."""
        target, info = self._inspect(relative)
        if info is None:
            return None
        with self._open(target, info) as handle:
            return None if handle is None else handle.read()

    def sha256_of(self, relative: str | PurePath) -> str | None:
        """The hex sha256 of a vault file, read in chunks; None if there is none."""
        return self._hash(self.resolve(relative))

    def write_atomic(self, relative: str | PurePath, data: bytes) -> bool:
        """Make the file hold ``data``; False (nothing written, mtime kept) if it already did.

        Missing folders are created. A new file gets 0o644 minus the umask; a replaced file keeps
        its mode. On any failure the old file is intact and no temp file is left behind.
        """
        target = self.resolve(relative)
        if self._holds(target, data):
            return False
        self._write(target, data)
        return True

    def file_stamp(self, relative: str | PurePath) -> tuple[int, int] | None:
        """``(size, mtime_ns)`` of a vault file, or None if there is none (a cheap "changed?" check)."""
        try:
            info = os.lstat(self.resolve(relative))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise VaultError(f"cannot inspect {relative}: {exc}") from exc
        return info.st_size, info.st_mtime_ns

    def prepare_write(self, relative: str | PurePath, data: bytes) -> PreparedWrite:
        """Step 1 of a write: ``data`` in a new hidden temp file beside ``relative``, fsynced.

        Missing folders are created (and remembered for :meth:`sync_folders`). The temp file gets
        the mode of the file it will replace, or 0o644 minus the umask. Nothing visible changes.
        Safe to call from several threads once the folder exists.
        """
        target, info = self._inspect(relative)
        temp: Path | None = None
        try:
            self._make_folders(target)
            mode = None if info is None else stat.S_IMODE(info.st_mode)
            fd, temp = _create_temp(target.parent)
            with os.fdopen(fd, "wb") as handle:
                if mode is not None:
                    os.chmod(temp, mode)
                handle.write(data)
                handle.flush()
                self._fsync(handle.fileno())
                info = os.fstat(handle.fileno())
        except OSError as exc:
            if temp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
            raise VaultError(f"cannot write {target}: {exc}") from exc
        return PreparedWrite(str(relative), target, temp, info.st_size, info.st_mtime_ns)

    def finish_write(self, prepared: PreparedWrite) -> None:
        """Step 2: rename the temp file over its target (atomic; durable once its folder is synced)."""
        try:
            self._replace(prepared.temp, prepared.target)
        except OSError as exc:
            self.discard_write(prepared)
            raise VaultError(f"cannot write {prepared.target}: {exc}") from exc
        # Not added to the folder's listing: a note's path is in the store's index (its intent) before
        # it is renamed, and every unique_path caller asks the index, so a pass that writes a chat's
        # whole history keeps a listing the size of what was there before, not of what it wrote.
        self._renamed_into[prepared.target.parent] = None

    @staticmethod
    def discard_write(prepared: PreparedWrite) -> None:
        """Drop a prepared write that will not be finished."""
        with contextlib.suppress(OSError):
            os.unlink(prepared.temp)

    def sync_folders(self, folders: Iterable[Path] = ()) -> None:
        """Step 3: fsync once each folder that received a rename since the last call (and ``folders``),
        and the parent of every folder this vault created meanwhile, so the renames and the new
        folders themselves survive a power cut."""
        self.fsync_folders(self.take_folders_to_sync(folders))

    def take_folders_to_sync(self, folders: Iterable[Path] = ()) -> list[Path]:
        """The folders :meth:`sync_folders` would fsync now, forgotten here: the caller fsyncs them
        with :meth:`fsync_folders` (on another thread, say). Call it on the thread that renames."""
        wanted = dict.fromkeys([*self._renamed_into, *folders])
        self._renamed_into.clear()
        for folder in sorted(self._new_folders, key=lambda f: len(f.parts), reverse=True):
            wanted.setdefault(folder.parent)
        self._new_folders.clear()
        return list(wanted)

    def fsync_folders(self, folders: Iterable[Path]) -> None:
        """fsync each of ``folders`` (from :meth:`take_folders_to_sync`); safe on any thread."""
        folder: Path | None = None
        try:
            for folder in folders:
                self._fsync_folder(folder)
        except OSError as exc:
            raise VaultError(f"cannot make the writes in {folder} durable: {exc}") from exc

    def clean_temp_files(self) -> int:
        """Remove ``.tobs-tmp-*`` files left by a crash and return how many; call before writing.

        Symlinks are not followed; ``.obsidian``, ``.git`` and ``.trash`` are not entered.
        """
        removed = 0
        for folder, dirnames, filenames in os.walk(self.root, followlinks=False):
            dirnames[:] = [name for name in dirnames if name not in SKIPPED_FOLDERS]
            for name in filenames:
                path = os.path.join(folder, name)
                with contextlib.suppress(FileNotFoundError):
                    if name.startswith(TEMP_PREFIX) and stat.S_ISREG(os.lstat(path).st_mode):
                        os.unlink(path)
                        removed += 1
        return removed

    def unique_path(
        self, relative_wanted: str, taken: Callable[[str], bool], *, max_bytes: int = NAME_MAX_BYTES
    ) -> str:
        """``relative_wanted``, or ``Name 2.md``, ``Name 3.md``, ... if that name is in use.

        In use: ``taken(candidate)`` says so (the caller's index, compared as it likes), or a file
        or folder of that name exists in the folder, compared case-insensitively as Obsidian does
        (the folder as listed when this pass first looked at it, plus what :meth:`place` and
        :meth:`write_atomic` put there; notes published through :meth:`finish_write` since are the
        caller's ``taken`` to know, as the store's index does).
        The number goes before the extension; the stem is cut to keep the name in ``max_bytes``.
        """
        target, info = self._inspect(relative_wanted)
        folder = target.parent
        existing = self._folded_names(folder)
        prefix, _, name = relative_wanted.rpartition("/")
        prefix += "/" if prefix else ""
        candidate = relative_wanted
        for number in range(2, 100_000):
            leaf = candidate.rpartition("/")[2]
            free = info is None if candidate is relative_wanted else not os.path.lexists(folder / leaf)
            if not taken(candidate) and path_key(leaf) not in existing and free:
                return candidate
            candidate = prefix + numbered_name(name, number, max_bytes=max_bytes)
        raise VaultError(f"no free name for {relative_wanted!r} in vault {self.root}")

    def ensure_folder(self, relative: str) -> Path:
        """The vault folder ``relative`` (``""`` is the root), created if missing, confined as always."""
        if not relative.strip("/"):
            return self.root
        folder = self.resolve(relative.strip("/"))
        try:
            self._make_folders(folder / "_")
        except OSError as exc:
            raise VaultError(f"cannot create folder {folder}: {exc}") from exc
        return folder

    def open_temp(self, folder: str) -> tuple[BinaryIO, Path]:
        """A new hidden temp file in vault folder ``folder``, open for streaming into.

        Finish it with :meth:`finish_temp` (then :meth:`place`) or drop it with :meth:`discard_temp`;
        a crash leaves it for :meth:`clean_temp_files`.
        """
        fd, temp = _create_temp(self.ensure_folder(folder))
        return os.fdopen(fd, "wb"), temp

    def finish_temp(self, handle: BinaryIO, temp: Path) -> Path:
        """Flush, fsync and close a temp file from :meth:`open_temp`; ready for :meth:`place`."""
        try:
            handle.flush()
            self._fsync(handle.fileno())
            handle.close()
        except OSError as exc:
            self.discard_temp(handle, temp)
            raise VaultError(f"cannot write {temp}: {exc}") from exc
        return temp

    @staticmethod
    def discard_temp(handle: BinaryIO, temp: Path) -> None:
        """Close and remove an unfinished temp file."""
        with contextlib.suppress(OSError):
            handle.close()
        with contextlib.suppress(OSError):
            os.unlink(temp)

    def place(self, temp: Path, relative: str, *, sync: bool = True) -> None:
        """Rename a finished temp file (from :meth:`finish_temp`) to ``relative``; durably, unless
        ``sync`` is False: then the next :meth:`sync_folders` makes it durable (once per batch)."""
        target = self.resolve(relative)
        try:
            self._make_folders(target)
            self._replace(temp, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise VaultError(f"cannot write {target}: {exc}") from exc
        self._remember_name(target)
        self._renamed_into[target.parent] = None
        if sync:
            self.sync_folders()

    def load_app_config(self, config_dir: str = ".obsidian") -> dict[str, Any]:
        """``<config_dir>/app.json`` as a dict; {} if missing, {} and a warning if unusable.

        Unusable: malformed JSON, not an object, or below a symlink (never followed, as always).
        """
        relative = f"{config_dir}/app.json"
        try:
            raw = self.read_bytes(relative)
            config = json.loads(raw.decode("utf-8-sig")) if raw is not None else {}
        except (VaultError, ValueError, RecursionError) as exc:
            logger.warning("ignoring Obsidian settings %s: %s", relative, exc)
            return {}
        if not isinstance(config, dict):
            logger.warning("ignoring Obsidian settings %s: not a JSON object", relative)
            return {}
        return config

    # --- reading and writing in small steps; _fsync, _replace, _fsync_folder, _mkdir are seams --

    @contextlib.contextmanager
    def _open(self, target: Path, info: os.stat_result | None = None) -> Iterator[BinaryIO | None]:
        """The regular file at ``target`` opened for reading, or None if it does not exist
        (``info``: its ``lstat``, when the caller has just taken it)."""
        try:
            if not stat.S_ISREG((info or os.lstat(target)).st_mode):
                raise VaultError(f"{target} is not a regular file")
            handle = open(target, "rb")  # noqa: SIM115 (closed below)
        except FileNotFoundError:
            yield None
            return
        except OSError as exc:
            raise VaultError(f"cannot read {target}: {exc}") from exc
        with handle:
            yield handle

    def _hash(self, target: Path) -> str | None:
        with self._open(target) as handle:
            if handle is None:
                return None
            digest = hashlib.sha256()
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
            return digest.hexdigest()

    def _holds(self, target: Path, data: bytes) -> bool:
        with self._open(target) as handle:
            if handle is None or os.fstat(handle.fileno()).st_size != len(data):
                return False
            return handle.read() == data

    def _write(self, target: Path, data: bytes) -> None:
        relative = target.relative_to(self.root).as_posix()
        prepared = self.prepare_write(relative, data)
        self.finish_write(prepared)
        self._remember_name(target)  # written outside any index: the listing must know it
        self.sync_folders()

    def _folded_names(self, folder: Path) -> set[str]:
        names = self._listings.get(folder)
        if names is None:
            try:
                names = {path_key(name) for name in os.listdir(folder)} if folder.is_dir() else set()
            except OSError as exc:
                raise VaultError(f"cannot list {folder}: {exc}") from exc
            self._listings[folder] = names
        return names

    def _remember_name(self, path: Path) -> None:
        if (names := self._listings.get(path.parent)) is not None:
            names.add(path_key(path.name))

    def _make_folders(self, target: Path) -> None:
        parts = target.relative_to(self.root).parts[:-1]
        if "/".join(parts) in self._verified_folders:
            info = inspect_unlinked(target.parent)[0]
            if info is not None and stat.S_ISDIR(info.st_mode):  # lstat: a symlink is not a folder
                return  # verified this pass and still a plain folder (a deleted one is made again)
        current = self.root
        for index, part in enumerate(parts):
            current = current / part
            with contextlib.suppress(FileExistsError):
                self._mkdir(current)
                self._remember_name(current)
                self._new_folders.add(current)
            if not stat.S_ISDIR(os.lstat(current).st_mode):  # lstat: a symlink is not a folder
                raise VaultError(f"cannot write {target}: {current} is not a plain folder")
            self._verified_folders.add("/".join(parts[: index + 1]))

    def _mkdir(self, folder: Path) -> None:
        os.mkdir(folder)

    def _fsync(self, fd: int) -> None:
        """Make a file's bytes durable: ``F_FULLFSYNC`` on macOS (plain fsync there only reaches
        the drive's cache), fsync elsewhere."""
        with self._count_lock:
            self.fsyncs += 1
        if _FULLFSYNC is not None:
            try:
                fcntl.fcntl(fd, _FULLFSYNC)
                return
            except OSError:
                pass  # not supported by this file system: fall back to fsync
        os.fsync(fd)

    def _replace(self, source: Path, target: Path) -> None:
        os.replace(source, target)

    def _fsync_folder(self, folder: Path) -> None:
        """Make the rename durable; skipped where folders cannot be opened or fsynced (Windows)."""
        try:
            fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError:
            return
        with self._count_lock:
            self.fsyncs += 1
        try:
            os.fsync(fd)
        except OSError as exc:
            if exc.errno not in _FSYNC_UNSUPPORTED:
                raise
        finally:
            os.close(fd)


def _path_problem(text: object) -> str | None:
    """Why ``text`` is not a plain vault-relative POSIX path, or None."""
    if not isinstance(text, str) or not text:
        return "not a non-empty string"
    if "\x00" in text or "\\" in text:
        return "it contains a NUL character or a backslash (folders are separated by '/')"
    if text.startswith("/") or (":" in text and PureWindowsPath(text).drive):  # a drive needs a colon
        return "it is absolute"
    if any(part in ("", ".", "..") for part in text.split("/")):
        return "it has an empty, '.' or '..' component"
    return None


def _create_temp(folder: Path) -> tuple[int, Path]:
    """A new hidden temp file in ``folder``, mode 0o644 minus the umask, open for writing."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(100):
        path = folder / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        with contextlib.suppress(FileExistsError):
            return os.open(path, flags, 0o644), path
    raise VaultError(f"cannot create a temp file in {folder}")
