"""Another process writing to a vault: it takes the vault lock, says so, and waits on its stdin.

``holding_vault(vault)`` starts it and yields once it holds the lock; closing its stdin (at the end
of the ``with``) makes it release the lock and exit. No sleeps: the two processes talk over pipes.

Modes: ``lock`` only takes the lock (as ``command``); ``import`` opens the vault as a writing app,
imports the sample export (committed to the store's WAL, not checkpointed) and leaves a temp file
open, as a download in progress would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conftest import PROJECT, SAMPLE_EXPORT

HOLDER_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from tobs_sync.app import App
    from tobs_sync.config import load_settings
    from tobs_sync.sources.tdesktop import DesktopExport

    mode, vault, command, export = sys.argv[1], Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])

    async def hold_while_importing():
        async with DesktopExport(export, local_timezone=load_settings(vault).timezone) as source:
            with App.open(vault) as app:
                await app.sync_source(source)
                handle, temp = app.vault.open_temp("Telegram")
                handle.write(b"half a download")
                handle.flush()
                print("ready", temp, flush=True)
                sys.stdin.read()
                app.vault.discard_temp(handle, temp)

    if mode == "import":
        asyncio.run(hold_while_importing())
    else:
        from tobs_sync.lock import VaultLock

        with VaultLock(load_settings(vault).state_dir, command):
            print("ready", flush=True)
            sys.stdin.read()
    """
)


@contextmanager
def holding_vault(
    vault: Path, mode: str = "lock", command: str = "tobs-sync sync"
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Another process holding ``vault``'s lock, and what it said when ready (``import``: its temp file)."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER_SCRIPT, mode, str(vault), command, str(SAMPLE_EXPORT)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=PROJECT, env={**os.environ, "PYTHONPATH": str(PROJECT)},
    )
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    try:
        ready = process.stdout.readline()
        if not ready.startswith("ready"):
            process.wait(timeout=60)
            raise AssertionError(f"the holder did not start: {ready!r} {process.stderr.read()}")
        yield process, ready.removeprefix("ready").strip()
    finally:
        if process.poll() is None:
            process.stdin.close()
            process.wait(timeout=60)
        for pipe in (process.stdin, process.stdout, process.stderr):
            pipe.close()
