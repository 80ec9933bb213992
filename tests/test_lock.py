"""The vault lock: one writer per vault, a clear error naming the holder, no stale lock after a crash."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from lockholder import holding_vault

from tobs_sync.app import App
from tobs_sync.lock import INFO_NAME, LockHolder, VaultBusy, VaultLock

UTC = dt.UTC


def state_dir(vault: Path) -> Path:
    return vault.resolve() / ".tobs"


def fixed_clock(when: dt.datetime) -> Callable[[], dt.datetime]:
    return lambda: when


def test_second_writer_process_gets_one_error_naming_the_first(vault: Path) -> None:
    with holding_vault(vault, command="tobs-sync sync") as (holder, _):
        with pytest.raises(VaultBusy) as raised:
            VaultLock(state_dir(vault), "tobs-sync import").acquire()
        message = str(raised.value)
        assert f"is in use by tobs-sync sync (pid {holder.pid} on {socket.gethostname()}, since " in message
        assert "\n" not in message
        assert raised.value.holder is not None and raised.value.holder.pid == holder.pid
    assert holder.returncode == 0
    assert not (state_dir(vault) / INFO_NAME).exists(), "a clean release removes the holder's info"
    with VaultLock(state_dir(vault), "tobs-sync import") as lock:
        assert lock.holder() is not None and lock.holder().pid == os.getpid()


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_killed_holder_does_not_block_the_next_writer(vault: Path) -> None:
    with holding_vault(vault) as (holder, _):
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=60)
    stale = LockHolder.from_json((state_dir(vault) / INFO_NAME).read_text(encoding="utf-8"))
    assert stale is not None and stale.pid == holder.pid, "the dead holder's info is still there"
    with VaultLock(state_dir(vault), "tobs-sync render") as lock:
        assert lock.holder() == LockHolder(os.getpid(), socket.gethostname(), "tobs-sync render", lock.holder().since)


def test_second_app_in_one_process_fails_and_spares_the_first_ones_download(vault: Path) -> None:
    with App.open(vault, command="tobs-sync sync") as first:
        handle, temp = first.vault.open_temp("Telegram")
        handle.write(b"half a download")
        handle.flush()
        with pytest.raises(VaultBusy, match=rf"in use by tobs-sync sync \(pid {os.getpid()} on "):
            App.open(vault, command="tobs-sync render")
        assert temp.read_bytes() == b"half a download"
        first.vault.discard_temp(handle, temp)
    with App.open(vault) as again:
        assert again.lock is not None and again.lock.held
    assert not again.lock.held, "closing the app lets the next writer in"


def test_temp_files_are_cleaned_only_by_the_lock_holder(vault: Path) -> None:
    leftover = vault / "Telegram" / ".tobs-tmp-crashed"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"from a crash")
    with holding_vault(vault):
        with pytest.raises(VaultBusy):
            App.open(vault)
        assert leftover.exists(), "a writer that did not get the lock deleted a temp file"
    with App.open(vault) as app:
        assert app.cleaned_temp_files == 1
    assert not leftover.exists()


def test_error_says_when_the_holder_started(tmp_path: Path) -> None:
    started = dt.datetime(2026, 11, 30, 12, 0, 3, tzinfo=UTC)
    with VaultLock(tmp_path / ".tobs", "tobs-sync sync", clock=fixed_clock(started)):
        later_that_day = VaultLock(tmp_path / ".tobs", "x", clock=fixed_clock(started + dt.timedelta(hours=3)))
        with pytest.raises(VaultBusy) as raised:
            later_that_day.acquire()
        assert str(raised.value) == (
            f"vault {tmp_path} is in use by tobs-sync sync (pid {os.getpid()} on {socket.gethostname()}, "
            "since 12:00:03); only one tobs-sync command may write to a vault at a time: wait for it to "
            "finish, or stop it"
        )
        next_day = VaultLock(tmp_path / ".tobs", "x", clock=fixed_clock(started + dt.timedelta(days=1)))
        with pytest.raises(VaultBusy, match=r"since 2026-11-30 12:00:03\)"):
            next_day.acquire()


def test_holder_time_is_shown_in_the_local_zone_of_the_reader() -> None:
    holder = LockHolder(7, "box", "tobs-sync sync", dt.datetime(2026, 11, 30, 23, 30, tzinfo=UTC))
    tokyo = dt.timezone(dt.timedelta(hours=9))
    assert holder.describe(dt.datetime(2026, 12, 1, 9, 0, tzinfo=tokyo)) == (
        "tobs-sync sync (pid 7 on box, since 08:30:00)"
    )


@pytest.mark.parametrize("info", ["", "{not json", '{"pid": "x"}', json.dumps({"pid": 1, "host": "h"}),
                                  json.dumps({"pid": 1, "host": "h", "command": "c", "since": "2026-11-30T12:00"})])
def test_missing_or_torn_holder_info_still_gives_a_clear_error(tmp_path: Path, info: str) -> None:
    with VaultLock(tmp_path / ".tobs", "tobs-sync sync") as holder:
        holder.info_path.write_text(info, encoding="utf-8")
        with pytest.raises(VaultBusy, match=r"is in use by another tobs-sync process; only one"):
            VaultLock(tmp_path / ".tobs", "tobs-sync import").acquire()
        holder.info_path.unlink()
        with pytest.raises(VaultBusy, match="another tobs-sync process"):
            VaultLock(tmp_path / ".tobs", "tobs-sync import").acquire()


def test_lock_is_released_and_taken_again(tmp_path: Path) -> None:
    lock = VaultLock(tmp_path / ".tobs", "tobs-sync sync")
    with lock:
        assert lock.held
        assert lock.holder() is not None and lock.holder().command == "tobs-sync sync"
        with pytest.raises(RuntimeError, match="already held"):
            lock.acquire()
    assert not lock.held
    assert not lock.info_path.exists()
    with lock:
        assert lock.held
    assert [p.name for p in (tmp_path / ".tobs").iterdir() if p.name.startswith(".tobs-tmp-")] == []


def test_app_refuses_a_lock_that_is_not_held(vault: Path) -> None:
    with pytest.raises(ValueError, match="must be held"):
        App.open(vault, lock=VaultLock(state_dir(vault), "tobs-sync sync"))
