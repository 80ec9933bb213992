"""Crash safety with a real SIGKILL: the process dies at arbitrary points, the next run repairs all.

Each test runs tobs-sync in a child process against the simulated Telegram, kills it with
SIGKILL (no cleanup handlers run), then runs it again to completion and compares the vault with
one made by an uninterrupted run: no gap, no duplicate, no half-written note or attachment.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import frontmatter
import pytest
from vaultcheck import check_vault, vault_differences

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)"),
]

SPEC = "chats=3,messages=200,media=0.3,latency_ms=2,seed=12"


def cli(vault: Path, spec: str) -> list[str]:
    return [sys.executable, "-m", "tobs_sync", "sync", "--vault", str(vault), "--simulate", spec]


def kill_after(command: list[str], seconds: float) -> None:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(seconds)
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()


def visible_files(vault: Path) -> list[str]:
    return sorted(
        p.relative_to(vault).as_posix() for p in vault.rglob("*")
        if p.is_file() and ".tobs" not in p.parts and not p.name.startswith(".")
    )


def test_sigkill_at_random_points_then_sync_gives_the_uninterrupted_vault(vault: Path, tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    shutil.copytree(vault, reference)
    started = time.monotonic()
    subprocess.run(cli(reference, SPEC), check=True, capture_output=True)
    full_run = time.monotonic() - started
    total = len(list(reference.rglob("*.md")))
    rng = random.Random(2026)
    partial = []
    for _ in range(5):
        kill_after(cli(vault, SPEC), rng.uniform(0.2, full_run))
        notes = list(vault.rglob("*.md"))
        for note in notes:  # whatever instant the kill came, no note is half-written
            assert frontmatter.loads(note.read_text(encoding="utf-8")).metadata, note
        partial.append(len(notes))
    assert any(0 < n < total for n in partial), f"no kill landed mid-sync: {partial} of {total}"
    result = subprocess.run(cli(vault, SPEC), capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert not (difference := vault_differences(vault, reference)), difference
    assert check_vault(vault).broken == []
    assert not [p for p in vault.rglob(".tobs-tmp-*")]


BIG_FILE_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from tobs_sync.app import App
    from tobs_sync.config import load_settings
    from tobs_sync.sim import SimulatedTelegram, parse_spec
    from tobs_sync.sources.telegram import TelegramSource

    async def main(vault):
        sim = SimulatedTelegram(parse_spec("chats=1,messages=3,media=0,seed=1,bandwidth_kbps=160000"))
        sim.add_big_file(sim.chat_ids[0], 40_000_000, text="a big video")
        client = sim.client(raise_last_call_error=True)
        async with TelegramSource(client, load_settings(vault).telegram) as source:
            with App.open(vault) as app:
                report = await app.sync_source(source)
        print(report.messages, app.media.counts.stored)

    asyncio.run(main(Path(sys.argv[1])))
    """
)


def kill_mid_download(command: list[str], vault: Path, timeout_s: float = 60.0) -> list[Path]:
    """Start ``command``, SIGKILL it once a hidden temp file in ``vault`` holds a few MB; those files."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and process.poll() is None:
            partial = [p for p in vault.rglob(".tobs-tmp-*") if p.stat().st_size > 4_000_000]
            if partial:
                os.kill(process.pid, signal.SIGKILL)
                return partial
            time.sleep(0.02)
        raise AssertionError("no download was seen streaming into a hidden temp file")
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_sigkill_during_a_large_download_leaves_no_visible_partial_file(vault: Path, tmp_path: Path) -> None:
    script = tmp_path / "big.py"
    script.write_text(BIG_FILE_SCRIPT, encoding="utf-8")
    command = [sys.executable, str(script), str(vault)]
    kill_mid_download(command, vault)  # 40 MB at 20 MB/s: killed a few MB in, whatever the machine's speed
    temp_files = list(vault.rglob(".tobs-tmp-*"))
    assert temp_files, "the interrupted download is still a hidden temp file"
    assert all(p.stat().st_size < 40_000_000 for p in temp_files)
    assert not [p for p in visible_files(vault) if "_attachments" in p]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["4", "1"]
    attachments = [p for p in visible_files(vault) if "_attachments" in p]
    assert len(attachments) == 1
    assert (vault / attachments[0]).stat().st_size == 40_000_000
    assert not list(vault.rglob(".tobs-tmp-*"))
