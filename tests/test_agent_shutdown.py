"""Stopping the agent with signals: a real ``tobs-sync run`` process on the simulator, signalled mid-pass.

The signal is sent once the vault holds a third of the files an uninterrupted run makes (chosen by
the vault's progress, never by the clock). The agent is then started again, and stopped once its
catch-up pass has ended (its log line); the vault must equal the uninterrupted run's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from vaultcheck import check_vault, vault_differences

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.name != "posix", reason="signals as POSIX sends them"),
]

SPEC = "chats=3,messages=60,media=0.2,latency_ms=5,seed=12"
BOUND_S = 120.0
"""A safety net against a hung child (never reached when things work), not a measurement."""


def command(vault: Path, name: str) -> list[str]:
    return [sys.executable, "-m", "tobs_sync", name, "--vault", str(vault), "--simulate", SPEC]


def visible(vault: Path) -> int:
    count = 0
    for _folder, dirnames, filenames in os.walk(vault):
        dirnames[:] = [d for d in dirnames if d != ".tobs"]
        count += sum(not name.startswith(".") for name in filenames)
    return count


def signal_when_vault_has(vault: Path, files: int, signals: list[int]) -> subprocess.CompletedProcess[str]:
    """Start the agent; send ``signals`` once ``vault`` holds ``files`` files; its exit."""
    process = subprocess.Popen(command(vault, "run"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + BOUND_S
    try:
        while visible(vault) < files:
            assert process.poll() is None, "the agent ended before it was signalled"
            assert time.monotonic() < deadline
            time.sleep(0.002)
        lines = []
        for number, signum in enumerate(signals):
            if number:  # a signal sent before the last was handled would merge with it
                assert process.stderr is not None
                for line in process.stderr:
                    lines.append(line)
                    if "stopping:" in line:
                        break
            process.send_signal(signum)
        out, err = process.communicate(timeout=BOUND_S)
        return subprocess.CompletedProcess(process.args, process.returncode, out, "".join(lines) + err)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def run_until_caught_up(vault: Path) -> subprocess.CompletedProcess[str]:
    """Start the agent, SIGTERM it once its catch-up pass has ended; its exit."""
    process = subprocess.Popen(command(vault, "run"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if "catch-up:" in line:
                process.send_signal(signal.SIGTERM)
                break
        out, err = process.communicate(timeout=BOUND_S)
        return subprocess.CompletedProcess(process.args, process.returncode, out, "".join(lines) + err)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    made = tmp_path_factory.mktemp("reference")
    (made / ".tobs").mkdir()
    (made / ".tobs" / "config.toml").write_text('[vault]\ntimezone = "UTC"\n', encoding="utf-8")
    subprocess.run(command(made, "sync"), check=True, capture_output=True)
    return made


@pytest.mark.parametrize("signals", [[signal.SIGINT], [signal.SIGTERM], [signal.SIGINT, signal.SIGINT]],
                         ids=["sigint", "sigterm", "twice"])
def test_a_signal_mid_pass_stops_the_agent_and_the_next_start_resumes_without_loss_or_duplicate(
    vault: Path, reference: Path, signals: list[int]
) -> None:
    total = visible(reference)
    stopped = signal_when_vault_has(vault, total // 3, signals)
    if len(signals) == 1:
        assert stopped.returncode == 0, stopped.stderr
        assert "agent stopped" in stopped.stdout
    else:
        assert stopped.returncode == 128 + signal.SIGINT, stopped.stderr  # the second one: at once
    assert visible(vault) < total
    for note in vault.rglob("*.md"):  # no note half-written
        assert note.read_text(encoding="utf-8").startswith("---\n"), note
    resumed = run_until_caught_up(vault)
    assert resumed.returncode == 0, resumed.stderr
    status_note = vault / "Telegram" / "tobs-sync status.md"  # the agent's own record of its passes
    assert "catch-up" in status_note.read_text(encoding="utf-8")
    status_note.unlink()  # a one-shot sync (the reference) writes none
    assert not vault_differences(vault, reference, attachments_by_content=True)
    assert check_vault(vault).broken == []
    assert not list(vault.rglob(".tobs-tmp-*"))
