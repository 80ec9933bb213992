"""The benchmark suite: figures, printed, never asserted (speed targets do not belong in tests).

``python -m tobs_sync.bench --json [--quick]``  the suite (:mod:`tobs_sync.benchsuite`): one JSON
                                      object with every case's figure, and the table of targets.

``python -m tobs_sync.bench dc``      DC-aware scheduling vs a naive global pool, on the same
                                      seeded simulation: no flood waits, then one data centre
                                      rate-limited (at most N download requests per sliding
                                      window, as Telegram's limits are rates) with
                                      short waits (a 3 s window: waits Telethon forgets) and long
                                      ones (10 s: waits Telethon applies to downloads on every DC);
                                      ``--limit N --window S [--count-refused]`` runs one
                                      scenario of your own, and
                                      ``--flood-every N --flood-s S`` one under the older count-based
                                      model (every N-th request opens an S-second window).
``python -m tobs_sync.bench memory``  one 500 MB simulated file downloaded into a vault, in a fresh
                                      process: its peak RSS before and after, and the peak of
                                      Python allocations during the pass (streaming: both stay
                                      far below the file's size).
``python -m tobs_sync.bench import``  messages per second importing a generated Desktop export
                                      (durable writes: every note fsynced and renamed), with the
                                      fsyncs and store transactions it took per message.
``python -m tobs_sync.bench parse``   messages per second and peak RSS reading a large generated
                                      export without writing (streaming: memory must stay flat).
``python -m tobs_sync.bench markdown``  entities per second rendering generated messages with
                                      500, 1,000, 2,000 and 20,000 formatting entities of every
                                      kind (linear: the time per entity must not grow).
``python -m tobs_sync.bench render-pool``  rendering in this process vs two worker processes fed
                                      msgpack records (:mod:`tobs_sync.bench_render_pool`).
``python -m tobs_sync.bench all``     all five (not render-pool).

Every run uses the production code (render_text, TelegramSource over the simulator's real Telethon client,
MediaWriter, the vault writer); the figures depend on the machine, so compare them on one machine.
Limits: the simulator's latency and bandwidth are models, not measurements of Telegram.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tobs_sync import benchsuite
from tobs_sync.config import TelegramSettings
from tobs_sync.markdown import render_text
from tobs_sync.model import Entity, EntityKind
from tobs_sync.sim import SimulatedTelegram, parse_spec
from tobs_sync.sim.faults import Faults
from tobs_sync.sources.telegram import TelegramSource
from tobs_sync.workers import DcScheduler, GlobalPool, Job

T = TypeVar("T")

DC_SPEC = "chats=4,messages=60,media=1,latency_ms=20,dcs=3,bandwidth_kbps=16000,seed=21,rate=telegram"
FLOODED_DC = 3


class _Timed:
    """Wraps a scheduler to note when each DC's last download finished."""

    def __init__(self, scheduler: DcScheduler | GlobalPool) -> None:
        self._scheduler = scheduler
        self.started = time.monotonic()
        self.finished: dict[int | None, float] = {}

    async def run_all(self, jobs: Sequence[Job[Any]]) -> dict[Hashable, Any]:
        def timed(job: Job[Any]) -> Job[Any]:
            async def run() -> Any:
                result = await job.run()
                self.finished[job.dc_id] = time.monotonic()
                return result

            return Job(job.key, job.dc_id, run, job.abandon)

        return await self._scheduler.run_all([timed(job) for job in jobs])


@dataclass(frozen=True, slots=True)
class DcFlood:
    """How the flooded DC refuses downloads: a rate limit of ``requests`` GetFile per sliding
    ``window_s`` seconds (``Faults.limit_downloads``; ``count_refused`` as there), or, with
    ``every_n``, the older count-based model where every ``every_n``-th GetFile opens a
    ``window_s``-second window (``Faults.throttle_downloads``). Neither: no flood waits."""

    requests: int = 0
    window_s: float = 0.0
    every_n: int = 0
    count_refused: bool = False

    def apply(self, faults: Faults) -> None:
        if self.every_n:
            faults.throttle_downloads(FLOODED_DC, every_n=self.every_n, seconds=int(self.window_s))
        elif self.requests:
            faults.limit_downloads(FLOODED_DC, requests=self.requests, window_s=self.window_s,
                                   count_refused=self.count_refused)

    def describe(self) -> str:
        if self.every_n:
            return f"every {self.every_n}th GetFile opens a {self.window_s:g} s window"
        if self.requests:
            counted = ", refused ones counted" if self.count_refused else ""
            return f"at most {self.requests} GetFile per sliding {self.window_s:g} s{counted}"
        return "no flood waits"


def _floods(faults: Faults) -> tuple[int, int]:
    """(requests refused with a flood wait, floods) by whichever download flood rule ran."""
    return (faults.fired["throttle"] + faults.fired["limit"],
            faults.fired["throttle_window"] + faults.fired["limit_wait"])


async def _download_backlog(scheduler: DcScheduler | GlobalPool, flood: DcFlood, spec: str = DC_SPEC) -> dict[str, Any]:
    """The media of the whole seeded account stored into a fresh vault by MediaWriter under ``scheduler``.

    The history is read first; then every file is queued at once, as a backfill does (a sync pass
    queues each batch's files as the batch is read, on the same long-lived scheduler, so files of
    many batches wait in its per-DC queues together: this measures that scheduling).

    The naive baseline (:class:`GlobalPool`) also keeps Telethon's default flood handling, which
    remembers a flood wait per request type and so holds back downloads on every DC: what a plain
    worker pool over Telethon gets.
    """
    naive = isinstance(scheduler, GlobalPool)
    timed = _Timed(scheduler)
    from tobs_sync.app import App

    sim = SimulatedTelegram(parse_spec(spec))
    settings = TelegramSettings(stall_timeout_s=30, flood_max_wait_s=600)
    with tempfile.TemporaryDirectory() as folder:
        vault = Path(folder) / "vault"
        (vault / ".tobs").mkdir(parents=True)
        (vault / ".tobs" / "config.toml").write_text("[media]\nprocessors = []\n", encoding="utf-8")
        client = sim.client(raise_last_call_error=True)
        async with TelegramSource(client, settings, retry_delay=0.05, per_dc_download_floods=not naive) as source:
            with App.open(vault, scheduler=timed) as app:  # type: ignore[arg-type]
                pairs = []
                async for chat in source.chats():
                    async for batch in source.batches(chat, 0):
                        pairs += [(m, f"Telegram/{abs(chat.id)}/{m.id}.md") for m in batch if m.media]
                flood.apply(sim.faults)
                started = timed.started = time.monotonic()
                await app.media.store_media(pairs, "bench", source.media_chunks)
                elapsed = time.monotonic() - started
                counts = app.media.counts
    megabytes = counts.fetched_bytes / 1e6
    per_dc = _per_dc_figures(sim, timed, started)
    others = [dc for dc in timed.finished if dc != FLOODED_DC]
    others_mb = sum(sim.stats.bytes_by_dc[dc] for dc in others) / 1e6
    others_s = max(timed.finished[dc] for dc in others) - started
    return {
        "messages_with_media": len(pairs),
        "other_dcs_mb": others_mb,
        "other_dcs_s": others_s,
        "other_dcs_mb_per_s": others_mb / others_s,
        "files": counts.stored,
        "failed": counts.failed,
        "megabytes": megabytes,
        "seconds": elapsed,
        "mb_per_s": megabytes / elapsed,
        "flood_waits_served": _floods(sim.faults)[0],
        "flood_windows": _floods(sim.faults)[1],
        "rate_flood_waits": sim.flood_waits,
        "per_dc": per_dc,
    }


def _per_dc_figures(sim: SimulatedTelegram, timed: _Timed, started: float) -> dict[int, dict[str, float]]:
    """By DC: download requests sent and refused with a flood wait, megabytes, when its last file was
    done (seconds from the start), and how long its connection was busy carrying bytes."""
    refused: dict[int, int] = {}
    for record in sim.stats.log:
        if record.name == "GetFile" and record.outcome.startswith("FLOOD"):
            refused[record.dc] = refused.get(record.dc, 0) + 1
    bandwidth = sim.spec.bandwidth_bytes_per_s
    return {
        dc: {
            "getfile_requests": sim.stats.count("GetFile", dc),
            "refused": refused.get(dc, 0),
            "megabytes": sim.stats.bytes_by_dc[dc] / 1e6,
            "done_s": timed.finished[dc] - started,
            "link_busy_s": sim.stats.bytes_by_dc[dc] / bandwidth if bandwidth else 0.0,
        }
        for dc in sorted(d for d in timed.finished if d is not None)
    }


DC_SCENARIOS: tuple[tuple[str, DcFlood], ...] = (
    ("no waits", DcFlood()),
    ("short waits", DcFlood(requests=6, window_s=3.0)),
    ("long waits", DcFlood(requests=20, window_s=10.0)),
)
"""(name, flood on DC 3). Both limits allow 2 download requests per second on average, about half what
the DC's simulated connection carries in 512 KiB parts. Telethon forgets a flood wait of 3 s or less;
a longer one it remembers per request type and applies to every DC (the global pool keeps that)."""


def bench_dc_scenario(flood: DcFlood, spec: str = DC_SPEC) -> dict[str, Any]:
    """One backlog with DC-aware per-DC queues vs one global pool, 6 workers each, one DC flooded."""
    aware_scheduler = DcScheduler(per_dc=2, total=6, max_flood_wait=600)
    aware = asyncio.run(_download_backlog(aware_scheduler, flood, spec))
    naive = asyncio.run(_download_backlog(GlobalPool(total=6, max_flood_wait=600), flood, spec))
    figures = {"spec": spec, "flooded_dc": FLOODED_DC, "flood": flood.describe(),
               "dc_aware": aware, "global_pool": naive,
               "speedup_other_dcs": aware["other_dcs_mb_per_s"] / naive["other_dcs_mb_per_s"],
               "speedup_whole_pass": aware["mb_per_s"] / naive["mb_per_s"]}
    print(f"DC {FLOODED_DC}: {flood.describe()}")
    for name, run in (("DC-aware   ", aware), ("global pool", naive)):
        print(f"  {name}: other DCs {run['other_dcs_mb']:.1f} MB in {run['other_dcs_s']:.1f} s = "
              f"{run['other_dcs_mb_per_s']:.2f} MB/s; whole pass {run['megabytes']:.1f} MB in {run['seconds']:.1f} s"
              f" = {run['mb_per_s']:.2f} MB/s; {run['flood_waits_served']} requests refused in "
              f"{run['flood_windows']} floods; {run['rate_flood_waits']} provoked by the spec's rate policy")
        for dc, row in run["per_dc"].items():
            print(f"    DC {dc}: {row['getfile_requests']} GetFile, {row['refused']} refused, "
                  f"{row['megabytes']:.1f} MB, link busy {row['link_busy_s']:.1f} s, done at {row['done_s']:.1f} s")
    print(f"  speed-up   : {figures['speedup_other_dcs']:.2f}x on the DCs not flooded, "
          f"{figures['speedup_whole_pass']:.2f}x for the whole pass")
    return figures


def bench_dc(scenarios: Sequence[tuple[str, DcFlood]] = DC_SCENARIOS) -> dict[str, Any]:
    """Every scenario of :data:`DC_SCENARIOS` (or those given), by name."""
    return {name: bench_dc_scenario(flood) for name, flood in scenarios}


async def traced_peak(awaitable: Awaitable[T]) -> tuple[T, int]:
    """``awaitable``'s result and the peak of Python allocations (bytes, ``tracemalloc``) while it ran,
    counting only what it allocated: a file held whole in memory shows here at its full size."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = await awaitable
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def _download_big(size: int, vault: Path) -> dict[str, Any]:
    from tobs_sync.app import App

    sim = SimulatedTelegram(parse_spec("chats=1,messages=2,media=0,seed=1"))
    message = sim.add_big_file(sim.chat_ids[0], size, text="big")
    (vault / ".tobs").mkdir(parents=True)
    (vault / ".tobs" / "config.toml").write_text("[media]\nprocessors = []\n", encoding="utf-8")
    async with TelegramSource(sim.client(raise_last_call_error=True), TelegramSettings()) as source:
        with App.open(vault) as app:
            before = benchsuite.peak_rss_mb()
            started = time.monotonic()
            report, traced = await traced_peak(app.sync_source(source))
            elapsed = time.monotonic() - started
            after = benchsuite.peak_rss_mb()
            stored = app.media.counts.stored
    return {"file_mb": size / 1e6, "message_id": message.id, "stored": stored, "seconds": elapsed,
            "peak_rss_before_mb": before, "peak_rss_after_mb": after, "traced_peak_mb": traced / 1e6,
            "messages": report.messages}


def stream_big_file(size: int) -> dict[str, Any]:
    """One large file streamed into a fresh vault, measured in this process (``bench memory`` runs it
    in a fresh one, so that nothing done before can hide the peak)."""
    with tempfile.TemporaryDirectory() as folder:
        return asyncio.run(_download_big(size, Path(folder) / "vault"))


def bench_memory(size: int = 500_000_000) -> dict[str, Any]:
    """Streaming one large file into a vault, in a fresh process: its peak RSS before and after the
    pass (``ru_maxrss`` only grows, so only a process that did nothing else shows what the pass
    cost) and the peak of Python allocations during the pass. Streaming keeps both far below the file."""
    figures = benchsuite.in_fresh_process(["memory-stream", "--size", str(size)], "memory")
    growth = figures["peak_rss_after_mb"] - figures["peak_rss_before_mb"]
    print(f"downloaded {figures['file_mb']:.0f} MB in {figures['seconds']:.1f} s (a fresh process); peak RSS "
          f"{figures['peak_rss_before_mb']:.0f} MB before the pass, {figures['peak_rss_after_mb']:.0f} MB after "
          f"(+{growth:.0f} MB); peak Python allocations during the pass {figures['traced_peak_mb']:.1f} MB")
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


async def _import_counted(vault: Path, export: Path) -> tuple[Any, int, int]:
    """Import ``export`` as ``tobs-sync import`` does; the report, fsyncs and store transactions."""
    from tobs_sync.app import App
    from tobs_sync.config import load_settings
    from tobs_sync.sources.tdesktop import DesktopExport

    async with DesktopExport(export, local_timezone=load_settings(vault).timezone) as source:
        with App.open(vault) as app:
            report = await app.sync_source(source)
            return report, app.vault.fsyncs, app.store.transactions


def bench_import(chats: int = 4, messages: int = 2500) -> dict[str, Any]:
    """Messages per second of a first import and of a no-op re-import, with fsyncs and store
    transactions per message (group commit: one fsync per note, one per folder and batch)."""
    with tempfile.TemporaryDirectory() as folder:
        export, vault = Path(folder) / "result.json", Path(folder) / "vault"
        _write_export(export, chats, messages)
        vault.mkdir()
        started = time.monotonic()
        report, fsyncs, transactions = asyncio.run(_import_counted(vault, export))
        first = time.monotonic() - started
        started = time.monotonic()
        again, _, noop_transactions = asyncio.run(_import_counted(vault, export))
        noop = time.monotonic() - started
    total = chats * messages
    figures = {"messages": total, "first_import_s": first, "messages_per_s": total / first,
               "notes_written": report.notes_written, "fsyncs": fsyncs, "fsyncs_per_message": fsyncs / total,
               "transactions": transactions, "transactions_per_message": transactions / total,
               "noop_reimport_s": noop, "noop_written": again.notes_written, "noop_transactions": noop_transactions}
    print(f"import: {total} messages in {first:.1f} s = {total / first:.0f} messages/s "
          f"({report.notes_written} notes written; {fsyncs} fsyncs = {fsyncs / total:.2f} per message, "
          f"{transactions} store transactions = {transactions / total:.3f} per message); "
          f"re-import: {noop:.2f} s, {again.notes_written} written, {noop_transactions} transactions")
    return figures


async def _read_export(path: Path) -> tuple[int, int]:
    from tobs_sync.sources.tdesktop import DesktopExport

    chats = messages = 0
    async with DesktopExport(path, local_timezone=dt.UTC) as source:
        async for chat in source.chats():
            chats += 1
            async for batch in source.batches(chat, 0):
                messages += len(batch)
    return chats, messages


def bench_parse(chats: int = 4, messages: int = 100_000) -> dict[str, Any]:
    """Reading a large generated export (checking pass + every message built), nothing written:
    messages per second and peak RSS, which must not grow with the file (the export is streamed)."""
    with tempfile.TemporaryDirectory() as folder:
        export = Path(folder) / "result.json"
        _write_export(export, chats, messages)
        size_mb = export.stat().st_size / 1e6
        before = benchsuite.peak_rss_mb()
        started = time.monotonic()
        read_chats, read_messages = asyncio.run(_read_export(export))
        elapsed = time.monotonic() - started
        after = benchsuite.peak_rss_mb()
    figures = {"export_mb": size_mb, "chats": read_chats, "messages": read_messages, "seconds": elapsed,
               "messages_per_s": read_messages / elapsed, "peak_rss_before_mb": before, "peak_rss_after_mb": after}
    print(f"parse: {size_mb:.0f} MB export, {read_messages} messages read in {elapsed:.1f} s = "
          f"{read_messages / elapsed:.0f} messages/s; peak RSS {before:.0f} MB before, {after:.0f} MB after "
          f"(+{after - before:.0f} MB)")
    return figures


_MARKDOWN_WORDS = (
    "word", "😀", "\U0001d518\U0001d52b\U0001d526", "x*y", "a_b", "#tag", "https://example.org/p", "12.", "<%",
    "[[n]]", "::", "end.",
)
_MARKDOWN_STYLES = (EntityKind.BOLD, EntityKind.ITALIC, EntityKind.STRIKETHROUGH, EntityKind.UNDERLINE,
                    EntityKind.SPOILER)
_MARKDOWN_KINDS = tuple(kind for kind in EntityKind if kind != EntityKind.BLOCKQUOTE) + _MARKDOWN_STYLES * 4


def markdown_case(entities: int, seed: int = 7) -> tuple[str, list[Entity]]:
    """A generated message of about two words per entity (astral characters among them, so UTF-16
    offsets differ from code points), with lines and blank lines, and ``entities`` entities of
    every kind, mostly styles as in real messages: nested, overlapping, adjacent, half of them
    starting at any code unit (inside a word or a surrogate pair); four are blockquotes (so the
    quoted and plain regions grow with the message)."""
    # a reproducible case, not a secret
    rng = random.Random(seed)  # noqa: S311  # nosec B311
    pieces: list[str] = []
    for index in range(2 * entities + 1):
        separator = "\n\n" if index % 40 == 39 else "\n" if index % 12 == 11 else " "
        pieces.append(rng.choice(_MARKDOWN_WORDS) + separator)
    text = "".join(pieces)
    units = len(text.encode("utf-16-le")) // 2
    found: list[Entity] = []
    previous_end = 0
    for index in range(entities):
        kind = EntityKind.BLOCKQUOTE if index % (entities // 4 or 1) == 1 else rng.choice(_MARKDOWN_KINDS)
        offset = previous_end if rng.random() < 0.25 else rng.randrange(units)  # adjacent, or anywhere
        length = rng.randint(20, 120) if kind == EntityKind.BLOCKQUOTE else rng.randint(1, 24)
        found.append(Entity(kind, offset, length, url=f"https://example.org/{index}", user_id=index,
                            language="python", collapsed=index % 2 == 1))
        previous_end = offset + length
    return text, found


def bench_markdown(sizes: Sequence[int] = (500, 1000, 2000, 20_000), repeats: int = 3) -> dict[str, Any]:
    """Entities per second of :func:`render_text` on :func:`markdown_case` messages of each size
    (the best of ``repeats`` runs: the least disturbed by other work on the machine);
    ``per_entity_ratio`` is the time per entity at the largest size over that at the smallest
    (1.0: linear; quadratic code doubles it with each doubling of the size). Small sizes fit in the
    CPU caches and make less work for Python's garbage collector: expect some rise past them."""
    runs = []
    for size in sizes:
        text, entities = markdown_case(size)
        elapsed = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            markdown = render_text(text, entities)
            elapsed = min(elapsed, time.perf_counter() - started)
        runs.append({"entities": len(entities), "characters": len(text), "markdown_characters": len(markdown),
                     "seconds": elapsed, "entities_per_s": len(entities) / elapsed,
                     "per_entity_ratio": (elapsed / len(entities)) / (runs[0]["seconds"] / runs[0]["entities"])
                     if runs else 1.0})
        print(f"markdown: {len(entities)} entities over {len(text)} characters in {elapsed:.3f} s = "
              f"{len(entities) / elapsed:.0f} entities/s; time per entity {runs[-1]['per_entity_ratio']:.2f}x "
              f"the first size's")
    ratio = runs[-1]["per_entity_ratio"]
    print(f"  time per entity at {runs[-1]['entities']} entities / at {runs[0]['entities']}: {ratio:.2f}x "
          f"(linear: 1; quadratic: {runs[-1]['entities'] / runs[0]['entities']:.0f})")
    return {"runs": runs, "per_entity_ratio": ratio}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tobs_sync.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("which", nargs="?", default="suite",
                        choices=["suite", "dc", "memory", "import", "parse", "markdown", "all", "memory-stream",
                                 "rss-child", "render-pool"],
                        help="suite (the default): every case of tobs_sync.benchsuite, with its targets; "
                             "memory-stream, rss-child: one measurement in this process, printed as JSON "
                             "(what `memory` and the suite run in a fresh process)")
    parser.add_argument("--quick", action="store_true", help="suite: every case at a tenth of its size")
    parser.add_argument("--messages", type=int, default=20_000, help="rss-child: messages to sync")
    parser.add_argument("--size", type=int, default=500_000_000, help="memory, memory-stream: file size in bytes")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--limit", type=int, metavar="N",
                        help="dc: one scenario where DC 3 allows N download requests per window (0: no limit)")
    parser.add_argument("--window", type=float, default=3.0, metavar="S",
                        help="dc: that sliding window's length in seconds (default 3)")
    parser.add_argument("--count-refused", action="store_true",
                        help="dc: with --limit, refused requests count in the window too (asking during a wait "
                             "makes it longer)")
    parser.add_argument("--flood-every", type=int, metavar="N",
                        help="dc: one scenario of the count-based model: every N-th download request on DC 3 "
                             "opens a flood window")
    parser.add_argument("--flood-s", type=int, default=3, metavar="S", help="dc: that window's length (default 3)")
    args = parser.parse_args(argv)
    if args.which == "suite":
        return benchsuite.main(quick=args.quick, as_json=args.json)
    if args.which == "rss-child":
        print(json.dumps(benchsuite.rss_child(args.messages)))
        return 0
    if args.which == "memory-stream":
        print(json.dumps(stream_big_file(args.size)))
        return 0
    figures: dict[str, Any] = {}
    if args.which in ("dc", "all"):
        scenarios: Sequence[tuple[str, DcFlood]] = DC_SCENARIOS
        if args.flood_every is not None:
            scenarios = [("custom", DcFlood(window_s=args.flood_s, every_n=args.flood_every))]
        elif args.limit is not None:
            scenarios = [("custom", DcFlood(requests=args.limit, window_s=args.window,
                                            count_refused=args.count_refused))]
        figures["dc"] = bench_dc(scenarios)
    if args.which in ("memory", "all"):
        figures["memory"] = bench_memory(args.size)
    if args.which in ("import", "all"):
        figures["import"] = bench_import()
    if args.which in ("parse", "all"):
        figures["parse"] = bench_parse()
    if args.which in ("markdown", "all"):
        figures["markdown"] = bench_markdown()
    if args.which == "render-pool":
        from tobs_sync.bench_render_pool import bench_render_pool

        figures["render_pool"] = bench_render_pool()
    if args.json:
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
