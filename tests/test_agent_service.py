"""``tobs-sync service systemd|launchd``: ready user-service definitions that run the agent."""

from __future__ import annotations

import configparser
import plistlib
import shlex
import sys
from pathlib import Path

import pytest

from tobs_sync.cli import main
from tobs_sync.lock import VaultLock


def printed(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_systemd_unit_runs_the_agent_with_this_interpreter_and_restarts_on_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    vault = tmp_path / "My Vault 100%"
    monkeypatch.chdir(tmp_path)
    text = printed(capsys, "service", "systemd", "--vault", "My Vault 100%")
    unit = configparser.ConfigParser(interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(text)
    service = unit["Service"]
    command = shlex.split(service["ExecStart"].replace("%%", "%"))
    assert command == [sys.executable, "-m", "tobs_sync", "run", "--vault", str(vault.resolve())]
    assert Path(command[0]).is_absolute()
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    assert unit["Install"]["WantedBy"] == "default.target"


def test_launchd_agent_runs_the_agent_with_this_interpreter_and_restarts_on_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vault = tmp_path / "vault"
    agent = plistlib.loads(printed(capsys, "service", "launchd", "--vault", str(vault)).encode("utf-8"))
    assert agent["ProgramArguments"] == [sys.executable, "-m", "tobs_sync", "run", "--vault", str(vault.resolve())]
    assert agent["KeepAlive"] == {"SuccessfulExit": False}
    assert agent["RunAtLoad"] is True
    assert agent["Label"].startswith("org.tobs-sync.agent.")
    other = plistlib.loads(printed(capsys, "service", "launchd", "--vault", str(tmp_path / "other")).encode())
    assert other["Label"] != agent["Label"]  # one service per vault


def test_service_needs_a_known_kind(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["service", "cron", "--vault", "."])
    assert "invalid choice: 'cron'" in capsys.readouterr().err


def test_run_is_refused_while_another_command_writes_to_the_vault(
    vault: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with VaultLock(vault / ".tobs", "tobs-sync sync"):
        assert main(["run", "--vault", str(vault), "--simulate", "chats=1,messages=1"]) == 1
    error = capsys.readouterr().err
    assert "is in use by tobs-sync sync (pid" in error
    assert not (vault / "Telegram").exists()
