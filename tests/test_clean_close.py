"""Temp files are looked for after a writer that did not close cleanly, and only then (a no-op pass
must not walk a large vault)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tobs_sync.app import App


def plant_leftover(vault: Path) -> Path:
    leftover = vault / "Telegram" / "chat" / ".tobs-tmp-leftover"
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_bytes(b"from a crash")
    return leftover


def test_a_writer_after_a_clean_close_does_not_walk_the_vault(vault: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with App.open(vault):
        pass
    walked: list[Path] = []
    monkeypatch.setattr("tobs_sync.vault.Vault.clean_temp_files", lambda self: walked.append(self.root) or 0)
    with App.open(vault) as app:
        assert app.cleaned_temp_files == 0
    assert walked == []


def test_a_writer_after_an_error_removes_the_temp_files_left(vault: Path) -> None:
    with pytest.raises(RuntimeError), App.open(vault):
        leftover = plant_leftover(vault)  # as if a write had been cut short by the error
        raise RuntimeError("the pass failed")
    with App.open(vault) as app:
        assert app.cleaned_temp_files == 1
    assert not leftover.exists()


def test_a_writer_after_a_crash_removes_the_temp_files_left(vault: Path) -> None:
    with App.open(vault):
        pass
    app = App.open(vault)
    leftover = plant_leftover(vault)
    app.store.close()  # the process dies: no close, the lock's file stays (its holder is gone)
    assert app.lock is not None
    app.lock.release()
    with App.open(vault) as again:
        assert again.cleaned_temp_files == 1
    assert not leftover.exists()


def test_a_read_only_app_leaves_the_mark_of_the_last_writer_alone(vault: Path) -> None:
    with pytest.raises(RuntimeError), App.open(vault):
        leftover = plant_leftover(vault)
        raise RuntimeError("the pass failed")
    with App.open(vault, read_only=True):
        pass
    with App.open(vault) as app:
        assert app.cleaned_temp_files == 1
    assert not leftover.exists()
