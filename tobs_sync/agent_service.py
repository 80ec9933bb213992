"""User-service definitions for the agent: a systemd user unit and a launchd agent (``tobs-sync service``).

Both run ``tobs-sync run --vault VAULT`` with the absolute path of the Python interpreter running
this command (``python -m tobs_sync``), so the service finds the same installation, virtual
environment included, without relying on ``PATH``. Both restart the agent when it fails (not when it
was stopped: the agent exits 0 on SIGTERM) and stop it with SIGTERM, giving it time to end its work.
Limits: the text is printed, not installed; the README says where each file goes. One vault per
unit: the launchd label and the suggested systemd unit name carry a short hash of the vault's path.
"""

from __future__ import annotations

import hashlib
import plistlib
import sys
from pathlib import Path

STOP_TIMEOUT_S = 60
RESTART_DELAY_S = 30


def agent_command(vault: Path, python: str | None = None) -> list[str]:
    """The agent's command line, with absolute paths."""
    return [python or sys.executable, "-m", "tobs_sync", "run", "--vault", str(vault.resolve())]


def vault_tag(vault: Path) -> str:
    """A short, stable name part for one vault (several vaults, several services)."""
    return hashlib.sha256(str(vault.resolve()).encode("utf-8")).hexdigest()[:8]


def _systemd_word(word: str) -> str:
    """One word of ``ExecStart``, double-quoted, with systemd's escapes (``%`` is a specifier)."""
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def systemd_unit(vault: Path, python: str | None = None) -> str:
    """A systemd user unit (``~/.config/systemd/user/tobs-sync-TAG.service``)."""
    command = " ".join(_systemd_word(word) for word in agent_command(vault, python))
    description = f"tobs-sync agent for {vault.resolve()}".replace("%", "%%")
    return (
        "[Unit]\n"
        f"Description={description}\n"
        "Wants=network-online.target\n"
        "After=network-online.target\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"ExecStart={command}\n"
        "Restart=on-failure\n"
        f"RestartSec={RESTART_DELAY_S}\n"
        "KillSignal=SIGTERM\n"
        f"TimeoutStopSec={STOP_TIMEOUT_S}\n"
        "\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )


def launchd_label(vault: Path) -> str:
    return f"org.tobs-sync.agent.{vault_tag(vault)}"


def launchd_plist(vault: Path, python: str | None = None) -> str:
    """A launchd agent (``~/Library/LaunchAgents/LABEL.plist``)."""
    label = launchd_label(vault)
    log = str(Path.home() / "Library" / "Logs" / f"tobs-sync-{vault_tag(vault)}.log")
    data = {
        "Label": label,
        "ProgramArguments": agent_command(vault, python),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": RESTART_DELAY_S,
        "ExitTimeOut": STOP_TIMEOUT_S,
        "ProcessType": "Background",
        "StandardOutPath": log,
        "StandardErrorPath": log,
    }
    return plistlib.dumps(data, sort_keys=False).decode("utf-8")


def service_text(kind: str, vault: Path) -> str:
    if kind == "systemd":
        return systemd_unit(vault)
    if kind == "launchd":
        return launchd_plist(vault)
    raise ValueError(f"unknown service kind {kind!r}")
