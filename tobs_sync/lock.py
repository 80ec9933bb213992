"""The vault lock: one writing tobs-sync process per vault, and a clear error for a second one.

Every command that writes (``init``, ``import``, ``sync``, ``render``, ``login``, and the long-running
agent for its whole life) holds :class:`VaultLock` on ``.tobs/lock`` while it works. The lock is an
OS file lock (``flock`` on POSIX, ``LockFileEx`` on Windows) taken through the ``filelock`` library,
without waiting: a second writer fails at once with :class:`VaultBusy`, which names the holder.

The operating system's lock is the only truth about who holds the vault. It is released when its
process ends, even by ``SIGKILL``, so a crash never blocks the next writer. Who holds it is written,
after acquiring, to ``.tobs/lock.info`` (pid, host, command, start time; replaced atomically, removed
on release) purely so that the error can say which process to wait for; an info file a crashed
process left behind is overwritten by the next holder and never consulted while the lock is free.

Limits: two locks on the same vault in one process exclude each other too (each holds its own open
file). On a filesystem without working OS file locks (some network shares) the lock is only as
good as filelock's fallback there (a plain lock file). In the instant between another writer
taking the lock and writing its info, the error may name that vault's previous holder or none.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from tobs_sync.errors import TobsError
from tobs_sync.vault import TEMP_PREFIX

LOCK_NAME = "lock"
INFO_NAME = "lock.info"

Clock = Callable[[], dt.datetime]


def local_now() -> dt.datetime:
    """The current time, aware, in the local time zone."""
    return dt.datetime.now().astimezone()


class VaultBusy(TobsError):
    """Another process (or another part of this one) is writing to the vault."""

    def __init__(self, message: str, holder: LockHolder | None) -> None:
        super().__init__(message)
        self.holder = holder


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds a vault's lock, as that process wrote it into the info file."""

    pid: int
    host: str
    command: str
    since: dt.datetime

    def describe(self, now: dt.datetime) -> str:
        """``tobs-sync sync (pid 1234 on host, since 12:00:03)``; the date is shown unless it is today."""
        started = self.since.astimezone(now.tzinfo)
        when = started.strftime("%H:%M:%S" if started.date() == now.date() else "%Y-%m-%d %H:%M:%S")
        return f"{self.command} (pid {self.pid} on {self.host}, since {when})"

    def to_json(self) -> str:
        return json.dumps(
            {"pid": self.pid, "host": self.host, "command": self.command, "since": self.since.isoformat()}
        )

    @classmethod
    def from_json(cls, text: str) -> LockHolder | None:
        """The holder an info file names, or None if the file is not one (torn, foreign, empty)."""
        try:
            data: Any = json.loads(text)
            holder = cls(int(data["pid"]), str(data["host"]), str(data["command"]),
                         dt.datetime.fromisoformat(str(data["since"])))
        except (ValueError, TypeError, KeyError):
            return None
        return holder if holder.since.tzinfo is not None else None


class VaultLock:
    """The writer lock of one vault; a context manager that holds it from entry to exit.

    ``VaultLock(state_dir, command).acquire()`` (or ``with VaultLock(...):``) takes the lock without
    waiting and raises :class:`VaultBusy` naming the holder if another process has it.
    """

    def __init__(self, state_dir: Path, command: str, *, clock: Clock = local_now) -> None:
        self.state_dir = state_dir
        self.command = command
        self._clock = clock
        self._lock = FileLock(state_dir / LOCK_NAME, timeout=0, thread_local=False)
        self._held = False

    @property
    def info_path(self) -> Path:
        return self.state_dir / INFO_NAME

    @property
    def held(self) -> bool:
        return self._held

    def acquire(self) -> VaultLock:
        """Take the lock now or raise :class:`VaultBusy`; creates the state folder if needed."""
        if self._held:
            raise RuntimeError("this vault lock is already held")
        vault = self.state_dir.parent
        try:
            self.state_dir.mkdir(exist_ok=True)
            self._lock.acquire()
        except Timeout:
            holder = self.holder()
            who = holder.describe(self._clock()) if holder else "another tobs-sync process"
            raise VaultBusy(
                f"vault {vault} is in use by {who}; only one tobs-sync command may write to a vault at a "
                "time: wait for it to finish, or stop it", holder,
            ) from None
        except (OSError, NotImplementedError) as exc:  # NotImplementedError: no flock (older filelock)
            raise TobsError(f"cannot lock vault {vault}: {exc}") from exc
        self._held = True
        try:
            self._write_info(LockHolder(os.getpid(), socket.gethostname(), self.command, self._clock()))
        except BaseException:
            self.release()
            raise
        return self

    def release(self) -> None:
        """Let the next writer in; the info file goes first, so it never names a process that let go."""
        if not self._held:
            return
        try:
            with contextlib.suppress(FileNotFoundError):
                self.info_path.unlink()
        finally:
            self._held = False
            self._lock.release()

    def holder(self) -> LockHolder | None:
        """Who the info file says holds the lock (meaningful only while the lock is taken)."""
        try:
            return LockHolder.from_json(self.info_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            return None

    def _write_info(self, holder: LockHolder) -> None:
        temp = self.state_dir / f"{TEMP_PREFIX}{INFO_NAME}-{os.getpid()}"
        try:
            temp.write_text(holder.to_json(), encoding="utf-8")
            os.replace(temp, self.info_path)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise

    def __enter__(self) -> VaultLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
