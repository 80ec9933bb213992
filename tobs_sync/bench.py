"""The benchmark suite: figures, printed, never asserted (speed targets do not belong in tests).

``python -m tobs_sync.bench dc``      DC-aware scheduling vs a naive global pool, on the same
                                      seeded simulation with one data centre under flood waits.
``python -m tobs_sync.bench memory``  peak RSS while one 500 MB simulated file is downloaded into
                                      a vault (streaming: memory must stay flat).
``python -m tobs_sync.bench import``  messages per second importing a generated Desktop export
                                      (durable writes: every note fsynced and renamed).
``python -m tobs_sync.bench all``     all three.

Every run uses the production code (TelegramSource over the simulator's real Telethon client,
MediaWriter, the vault writer); the figures depend on the machine, so compare them on one machine.
Limits: the simulator's latency and bandwidth are models, not measurements of Telegram.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tobs_sync.config import TelegramSettings
from tobs_sync.model import MediaRef
from tobs_sync.sim import SimulatedTelegram, parse_spec
from tobs_sync.sources.telegram import TelegramSource
from tobs_sync.workers import DcScheduler, GlobalPool, Job

DC_SPEC = "chats=4,messages=60,media=1,latency_ms=20,dcs=3,bandwidth_kbps=16000,seed=21"
FLOODED_DC = 4


async def _account_media(sim: SimulatedTelegram, source: TelegramSource) -> list[MediaRef]:
    media: dict[str, MediaRef] = {}
    async for chat in source.chats():
        async for batch in source.batches(chat, 0):
            for message in batch:
                for item in message.media:
                    if item.locator and item.file_key:
                        media.setdefault(item.file_key, item)
    return list(media.values())


async def _download_all(scheduler: DcScheduler | GlobalPool, flood_every: int, flood_s: int) -> dict[str, Any]:
    sim = SimulatedTelegram(parse_spec(DC_SPEC))
    settings = TelegramSettings(stall_timeout_s=30, flood_max_wait_s=600)
    async with TelegramSource(sim.client(raise_last_call_error=True), settings, retry_delay=0.05) as source:
        media = await _account_media(sim, source)
        sim.faults.flood_downloads(FLOODED_DC, every_n=flood_every, seconds=flood_s)

        async def fetch(item: MediaRef) -> int:
            digest = hashlib.sha256()
            size = 0
            async for chunk in source.media_chunks(item):
                digest.update(chunk)
                size += len(chunk)
            return size

        jobs = [Job(item.file_key, item.dc_id, lambda item=item: fetch(item)) for item in media]
        started = time.monotonic()
        results = await scheduler.run_all(jobs)
        elapsed = time.monotonic() - started
    done = [r for r in results.values() if isinstance(r, int)]
    return {
        "files": len(done),
        "failed": len(results) - len(done),
        "megabytes": sum(done) / 1e6,
        "seconds": elapsed,
        "mb_per_s": sum(done) / 1e6 / elapsed,
        "flood_waits_served": sum(n for (kind, _), n in sim.stats.errors.items() if "FLOOD" in kind),
    }


def bench_dc(flood_every: int = 3, flood_s: int = 2) -> dict[str, Any]:
    """DC-aware per-DC queues vs one global pool, 6 workers each, DC 4 flooding."""
    aware = asyncio.run(_download_all(DcScheduler(per_dc=2, total=6), flood_every, flood_s))
    naive = asyncio.run(_download_all(GlobalPool(total=6), flood_every, flood_s))
    figures = {"spec": DC_SPEC, "flooded_dc": FLOODED_DC, "flood": f"every {flood_every}th GetFile, {flood_s} s",
               "dc_aware": aware, "global_pool": naive, "speedup": aware["mb_per_s"] / naive["mb_per_s"]}
    print(f"DC-aware  : {aware['files']} files, {aware['megabytes']:.1f} MB in {aware['seconds']:.1f} s "
          f"= {aware['mb_per_s']:.2f} MB/s")
    print(f"global pool: {naive['files']} files, {naive['megabytes']:.1f} MB in {naive['seconds']:.1f} s "
          f"= {naive['mb_per_s']:.2f} MB/s")
    print(f"speed-up   : {figures['speedup']:.2f}x (DC {FLOODED_DC} floods {figures['flood']})")
    return figures


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak / 1e3


async def _download_big(size: int, vault: Path) -> dict[str, Any]:
    from tobs_sync.app import App

    sim = SimulatedTelegram(parse_spec("chats=1,messages=2,media=0,seed=1"))
    message = sim.add_big_file(sim.chat_ids[0], size, text="big")
    (vault / ".tobs").mkdir(parents=True)
    (vault / ".tobs" / "config.toml").write_text("[media]\nprocessors = []\n", encoding="utf-8")
    async with TelegramSource(sim.client(raise_last_call_error=True), TelegramSettings()) as source:
        with App.open(vault) as app:
            before = _peak_rss_mb()
            started = time.monotonic()
            report = await app.sync_source(source)
            elapsed = time.monotonic() - started
            after = _peak_rss_mb()
            stored = app.media.counts.stored
    return {"file_mb": size / 1e6, "message_id": message.id, "stored": stored, "seconds": elapsed,
            "peak_rss_before_mb": before, "peak_rss_after_mb": after, "messages": report.messages}


def bench_memory(size: int = 500_000_000) -> dict[str, Any]:
    """Peak RSS before and after streaming one large file into a vault."""
    with tempfile.TemporaryDirectory() as folder:
        figures = asyncio.run(_download_big(size, Path(folder) / "vault"))
    print(f"downloaded {figures['file_mb']:.0f} MB in {figures['seconds']:.1f} s; peak RSS "
          f"{figures['peak_rss_before_mb']:.0f} MB before, {figures['peak_rss_after_mb']:.0f} MB after "
          f"(+{figures['peak_rss_after_mb'] - figures['peak_rss_before_mb']:.0f} MB)")
    return figures


def _write_export(path: Path, chats: int, messages: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write('{"chats": {"list": [')
        for c in range(chats):
            out.write("," if c else "")
            out.write(json.dumps({"name": f"Bench chat {c}", "type": "private_supergroup", "id": 5000 + c})[:-1])
            out.write(', "messages": [')
            for m in range(1, messages + 1):
                text = [f"message {m} with ", {"type": "bold", "text": "bold"}, " and ",
                        {"type": "text_link", "text": "a link", "href": "https://example.org"}]
                record = {"id": m, "type": "message", "date_unixtime": str(1_700_000_000 + m * 60),
                          "from": "Bench", "from_id": "user1", "text": text}
                out.write(("," if m > 1 else "") + json.dumps(record))
            out.write("]}")
        out.write("]}}")


def bench_import(chats: int = 4, messages: int = 2500) -> dict[str, Any]:
    """Messages per second of a first import and of a no-op re-import."""
    from tobs_sync.app import import_export

    with tempfile.TemporaryDirectory() as folder:
        export, vault = Path(folder) / "result.json", Path(folder) / "vault"
        _write_export(export, chats, messages)
        vault.mkdir()
        started = time.monotonic()
        report, _ = asyncio.run(import_export(vault, export))
        first = time.monotonic() - started
        started = time.monotonic()
        again, _ = asyncio.run(import_export(vault, export))
        noop = time.monotonic() - started
    total = chats * messages
    figures = {"messages": total, "first_import_s": first, "messages_per_s": total / first,
               "notes_written": report.notes_written, "noop_reimport_s": noop, "noop_written": again.notes_written}
    print(f"import: {total} messages in {first:.1f} s = {total / first:.0f} messages/s "
          f"({report.notes_written} notes written, each fsynced); re-import: {noop:.2f} s, "
          f"{again.notes_written} written")
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tobs_sync.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("which", choices=["dc", "memory", "import", "all"])
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args(argv)
    figures: dict[str, Any] = {}
    if args.which in ("dc", "all"):
        figures["dc"] = bench_dc()
    if args.which in ("memory", "all"):
        figures["memory"] = bench_memory()
    if args.which in ("import", "all"):
        figures["import"] = bench_import()
    if args.json:
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
