"""Crash safety with a real SIGKILL: the process dies mid-run, the next run repairs all.

Each test runs tobs-sync in a child process against the simulated Telegram, kills it with
SIGKILL (no cleanup handlers run) at a point chosen by the vault's progress (never by the clock),
then runs it again to completion and compares the vault with one made by an uninterrupted run:
no gap, no duplicate, no half-written note or attachment. A SIGKILL keeps the page cache, so these
tests cannot see a missing fsync: tests/test_durability_order.py checks those.
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

STORM_SPEC = "chats=3,messages=200,media=0.3,latency_ms=2,seed=12"
STORM_TRIALS = int(os.environ.get("TOBS_STORM_TRIALS", "3"))
"""Trials of the storm test (``TOBS_STORM_TRIALS=12`` for a longer run); each is seeded by its number."""
KILLS_PER_TRIAL = 3
BURST = 150
"""More files than one batch adds at once (its media, then its notes): a kill is aimed at least this far
before the end of the run, so it always lands while the process is still at work."""


def cli(vault: Path, spec: str) -> list[str]:
    return [sys.executable, "-m", "tobs_sync", "sync", "--vault", str(vault), "--simulate", spec]


def visible_files(vault: Path) -> list[str]:
    return sorted(
        p.relative_to(vault).as_posix() for p in vault.rglob("*")
        if p.is_file() and ".tobs" not in p.parts and not p.name.startswith(".")
    )


def count_visible(vault: Path) -> int:
    """Files a run has placed in the vault (notes and attachments; not the state, not temp files)."""
    count = 0
    for _folder, dirnames, filenames in os.walk(vault):
        dirnames[:] = [d for d in dirnames if d != ".tobs"]
        count += sum(not name.startswith(".") for name in filenames)
    return count


def kill_when_vault_has(command: list[str], vault: Path, files: int, timeout_s: float = 300.0) -> bool:
    """Run ``command``; SIGKILL it as soon as ``vault`` holds ``files`` visible files. Whether the kill
    landed (False: the process ended first)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout_s  # a safety net against a hung child, not a measurement
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if count_visible(vault) >= files:
                os.kill(process.pid, signal.SIGKILL)
                return process.wait() == -signal.SIGKILL
            time.sleep(0.002)
        return False
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_a_seeded_sigkill_storm_then_a_pass_gives_the_uninterrupted_vault(vault: Path, tmp_path: Path) -> None:
    """Each trial kills ``sync --simulate`` (with media) three times, each time once the vault has
    gained a number of files drawn by a seeded RNG (not at wall-clock times: the same trial aims at
    the same points on any machine), then lets a run finish; the vault must equal an uninterrupted run's.

    Chats are read concurrently, so a file re-posted in two chats is named after whichever chat's
    batch stored it first: attachments are compared by their bytes (each stored once, every link
    pointing at it), everything else byte for byte."""
    reference = tmp_path / "reference"
    shutil.copytree(vault, reference)
    subprocess.run(cli(reference, STORM_SPEC), check=True, capture_output=True)
    total = count_visible(reference)
    assert total > 3 * BURST
    for trial in range(STORM_TRIALS):
        rng = random.Random(f"storm {trial}")
        attempt = tmp_path / f"trial-{trial}"
        shutil.copytree(vault, attempt)
        aims = []
        for _ in range(KILLS_PER_TRIAL):
            present = count_visible(attempt)
            if total - present <= BURST:
                break
            aim = present + rng.randint(1, total - present - BURST)
            aims.append(aim)
            assert kill_when_vault_has(cli(attempt, STORM_SPEC), attempt, aim), f"trial {trial}: kill at {aim} files"
            for note in attempt.rglob("*.md"):  # whatever instant the kill came, no note is half-written
                assert frontmatter.loads(note.read_text(encoding="utf-8")).metadata, note
        assert aims, f"trial {trial}: no kill was aimed"
        result = subprocess.run(cli(attempt, STORM_SPEC), capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        difference = vault_differences(attempt, reference, attachments_by_content=True)
        assert not difference, f"trial {trial}, killed at {aims} of {total} files:\n{difference}"
        assert check_vault(attempt).broken == []
        assert not list(attempt.rglob(".tobs-tmp-*"))


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
