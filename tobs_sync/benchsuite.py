"""The benchmark suite: every case on the production code and the simulator, with a fixed seed.

``python -m tobs_sync.bench --json [--quick]`` runs :func:`run_suite` and prints one JSON object
(the table of figures and targets goes to standard error then; without ``--json`` to standard
output). ``--quick`` runs every case at a tenth of its size. The cases:

1. ``text_msgs_per_s``: ``sync --simulate`` of 4 chats x 25,000 text messages, no latency, a
   durable note per message; ``floor_files_per_s``: as many files with the same bytes written
   durably by the best of three minimal loops (per file tmp+fsync+rename; per batch of 100 with
   concurrent fsyncs; per batch with one file-system sync), measured on the first
   :data:`FLOOR_SAMPLE` notes; ``floor_ratio`` = the first / the second; ``cpu_ms_per_msg``: the
   process's CPU time (user + system, the simulator's included) per message of that sync.
2. ``latency_efficiency``: 100 ms of simulated latency, 100 messages per request, 4 chats: messages/s
   divided by the API-bound limit (4 x 100 / 0.1 s).
3. ``peak_rss_mb_small`` / ``peak_rss_mb_large``: peak RSS of a fresh process syncing 20,000 and
   200,000 messages.
4. ``noop_sync_s``: a sync with nothing new over the vault of case 1 (100,000 notes), in this
   process (interpreter start and the simulated account's set-up excluded);
   ``noop_sync_s_small``: the same over 1,000 notes.
5. ``rerender_notes_per_s``: the vault of case 1 re-rendered after a template change that alters
   the note of every tenth message; ``rerender_files_written`` (equal to
   ``rerender_files_changed``, the notes whose bytes changed).
6. ``media_dc_aware_speedup``: the whole media backlog with one DC in flood waits (rate-limited:
   at most so many download requests per sliding window, ``bench dc``'s "short waits" when quick,
   "long waits" at full size), DC-aware scheduling vs one global pool.
7. ``import_msgs_per_s``: a generated Desktop export of 100,000 messages imported durably.

Figures are printed, never asserted: they depend on the machine. Limits: the simulator runs in the
same process, so its CPU time counts against tobs-sync's; the floor is measured on a sample of the
notes (a rate, not a total), in a sibling folder of the same file system.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import posixpath
import resource
import subprocess  # nosec B404  # justified: runs this interpreter with fixed arguments, never a shell
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

FLOOR_SAMPLE = 10_000
"""Notes the floor loops write (their rate is what counts)."""
FLOOR_BATCH = 100
SEED = 11

FULL_SIZES: dict[str, int] = {
    "text_chats": 4, "text_per_chat": 25_000,
    "latency_per_chat": 5_000,
    "rss_small": 20_000, "rss_large": 200_000,
    "noop_small": 1_000,
    "import_messages": 100_000,
}

TARGETS: dict[str, tuple[str, float]] = {
    "text_msgs_per_s": (">=", 5_000), "floor_ratio": (">=", 0.6), "latency_efficiency": (">=", 0.9),
    "peak_rss_mb_large": ("<=", 150), "noop_sync_s": ("<=", 1.0), "rerender_notes_per_s": (">=", 10_000),
    "media_dc_aware_speedup": (">=", 1.5), "import_msgs_per_s": (">=", 5_000), "cpu_ms_per_msg": ("<=", 0.4),
}

KEYS = (
    "text_msgs_per_s", "floor_files_per_s", "floor_ratio", "latency_efficiency", "peak_rss_mb_small",
    "peak_rss_mb_large", "noop_sync_s", "noop_sync_s_small", "rerender_notes_per_s", "rerender_files_written",
    "media_dc_aware_speedup", "import_msgs_per_s", "cpu_ms_per_msg",
)

TENTH_MARK = "\n{% if message.id % 10 == 0 %}(every tenth message){% endif %}\n"


def sizes(scale: float) -> dict[str, int]:
    """The cases' sizes at ``scale`` (1: the full suite, 0.1: ``--quick``)."""
    scaled = {key: max(1, round(value * scale)) for key, value in FULL_SIZES.items()}
    scaled["text_chats"] = FULL_SIZES["text_chats"]
    return scaled


def new_vault(path: Path) -> Path:
    (path / ".tobs").mkdir(parents=True)
    (path / ".tobs" / "config.toml").write_text('[vault]\ntimezone = "UTC"\n[media]\nprocessors = []\n',
                                                 encoding="utf-8")
    return path


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def simulated_sync(vault: Path, spec: str) -> tuple[Any, float, float]:
    """``tobs-sync sync --simulate spec`` in this process: the report, wall seconds and CPU seconds."""
    from tobs_sync.app import sync_telegram

    cpu, started = _cpu_s(), time.perf_counter()
    report, _ = asyncio.run(sync_telegram(vault, simulate=spec))
    return report, time.perf_counter() - started, _cpu_s() - cpu


def text_spec(chats: int, per_chat: int, latency_ms: int = 0) -> str:
    return f"chats={chats},messages={per_chat},media=0,latency_ms={latency_ms},seed={SEED}"


# -- the floor: the same bytes written durably by minimal loops ---------------------------------------


def _notes(vault: Path, limit: int) -> list[tuple[str, bytes]]:
    from tobs_sync.store import Store
    from tobs_sync.store_rows import MESSAGE_NOTE

    store = Store.open(vault / ".tobs" / "state.db", read_only=True)
    try:
        rows = [row.path for row in store.notes() if row.kind == MESSAGE_NOTE][:limit]
    finally:
        store.close()
    return [(path, (vault / path).read_bytes()) for path in rows]


def _write_synced(path: Path, data: bytes, *, sync: bool = True) -> Path:
    temp = path.with_name(f".{path.name}.tmp")
    with temp.open("wb") as out:
        out.write(data)
        if sync:
            out.flush()
            os.fsync(out.fileno())
    return temp


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _syncfs(folder: Path) -> None:
    """One file-system sync (``syncfs`` on Linux; ``sync`` elsewhere)."""
    libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
    if libc is None or not hasattr(libc, "syncfs"):
        os.sync()
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        libc.syncfs(fd)
    finally:
        os.close(fd)


def _floor_per_file(root: Path, notes: Sequence[tuple[str, bytes]]) -> None:
    folders: set[Path] = set()
    for name, data in notes:
        target = root / name
        if target.parent not in folders:
            target.parent.mkdir(parents=True, exist_ok=True)
            folders.add(target.parent)
        os.replace(_write_synced(target, data), target)
        _sync_folder(target.parent)


def _floor_batch_concurrent(root: Path, notes: Sequence[tuple[str, bytes]]) -> None:
    with ThreadPoolExecutor(8) as pool:
        for start in range(0, len(notes), FLOOR_BATCH):
            batch = [(root / name, data) for name, data in notes[start:start + FLOOR_BATCH]]
            folders = {target.parent for target, _ in batch}
            for folder in folders:
                folder.mkdir(parents=True, exist_ok=True)
            temps = list(pool.map(lambda item: _write_synced(*item), batch))
            for temp, (target, _) in zip(temps, batch, strict=True):
                os.replace(temp, target)
            for folder in folders:
                _sync_folder(folder)


def _floor_batch_syncfs(root: Path, notes: Sequence[tuple[str, bytes]]) -> None:
    for start in range(0, len(notes), FLOOR_BATCH):
        batch = [(root / name, data) for name, data in notes[start:start + FLOOR_BATCH]]
        for folder in {target.parent for target, _ in batch}:
            folder.mkdir(parents=True, exist_ok=True)
        temps = [_write_synced(target, data, sync=False) for target, data in batch]
        _syncfs(root)
        for temp, (target, _) in zip(temps, batch, strict=True):
            os.replace(temp, target)
        _syncfs(root)


FLOOR_LOOPS: dict[str, Callable[[Path, Sequence[tuple[str, bytes]]], None]] = {
    "per_file": _floor_per_file, "per_batch_concurrent_fsync": _floor_batch_concurrent,
    "per_batch_syncfs": _floor_batch_syncfs,
}


def floor_files_per_s(vault: Path, work: Path, sample: int = FLOOR_SAMPLE) -> dict[str, Any]:
    """Files per second of each minimal durable loop writing the first ``sample`` notes' bytes."""
    notes = _notes(vault, sample)
    rates = {}
    for name, loop in FLOOR_LOOPS.items():
        root = work / f"floor-{name}"
        started = time.perf_counter()
        loop(root, notes)
        rates[name] = len(notes) / (time.perf_counter() - started)
    return {"files": len(notes), "rates": rates, "best": max(rates.values())}


# -- the cases -------------------------------------------------------------------------------------


def case_text(work: Path, chats: int, per_chat: int) -> dict[str, Any]:
    vault = new_vault(work / "text")
    report, seconds, cpu = simulated_sync(vault, text_spec(chats, per_chat))
    floor = floor_files_per_s(vault, work)
    rate = report.messages / seconds
    return {"vault": vault, "messages": report.messages, "notes_written": report.notes_written,
            "text_msgs_per_s": rate, "floor_files_per_s": floor["best"], "floor_ratio": rate / floor["best"],
            "floor_loops": floor["rates"], "floor_files": floor["files"],
            "cpu_ms_per_msg": cpu * 1000 / max(1, report.messages), "spec": text_spec(chats, per_chat)}


def case_latency(work: Path, chats: int, per_chat: int) -> dict[str, Any]:
    vault = new_vault(work / "latency")
    spec = text_spec(chats, per_chat, latency_ms=100)
    report, seconds, _ = simulated_sync(vault, spec)
    limit = chats * 100 / 0.1
    rate = report.messages / seconds
    return {"messages": report.messages, "msgs_per_s": rate, "api_bound_msgs_per_s": limit,
            "latency_efficiency": rate / limit, "spec": spec}


def case_noop(vault: Path, spec: str) -> dict[str, Any]:
    """A pass with nothing new, timed from opening the vault to the report, as ``sync_telegram`` runs
    it; the simulated account is built before the clock starts (its set-up is not tobs-sync's)."""
    from tobs_sync.app import App
    from tobs_sync.sim import SimulatedTelegram, parse_spec
    from tobs_sync.sources.telegram import TelegramSource

    simulated = SimulatedTelegram(parse_spec(spec))
    client = simulated.client(raise_last_call_error=True, request_retries=3)

    async def run() -> Any:
        with App.open(vault) as app:
            async with TelegramSource(client, app.settings.telegram, peers=app.store) as source:
                return await app.sync_source(source, concurrent_chats=app.settings.telegram.concurrent_chats)

    started = time.perf_counter()
    report = asyncio.run(run())
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "messages": report.messages, "notes_written": report.notes_written}


def case_rerender(vault: Path) -> dict[str, Any]:
    from tobs_sync.app import App
    from tobs_sync.render import builtin_templates_dir
    from tobs_sync.store_rows import MESSAGE_NOTE

    with App.open(vault) as app:
        templates = app.vault.ensure_folder(app.settings.templates)
        (templates / "message.md").write_text(
            (builtin_templates_dir() / "message.md").read_text(encoding="utf-8") + TENTH_MARK, encoding="utf-8"
        )
        changed = sum(1 for row in app.store.notes() if row.kind == MESSAGE_NOTE and row.message_id % 10 == 0)
        notes = app.store.note_count()
        started = time.perf_counter()
        report = app.synchronizer.render_all()
        seconds = time.perf_counter() - started
    return {"notes": notes, "seconds": seconds, "rerender_notes_per_s": notes / seconds,
            "rerender_files_written": report.notes_written, "rerender_files_changed": changed}


def in_fresh_process(arguments: list[str], what: str) -> dict[str, Any]:
    """Run ``python -m tobs_sync.bench ARGUMENTS`` in a fresh interpreter (``ru_maxrss`` only grows, so
    only a process that did nothing else shows what one case cost) and return the JSON object it
    prints last; ``what`` names the benchmark in the error if the process fails."""
    package_parent = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")])))
    command = [sys.executable, "-m", "tobs_sync.bench", *arguments]
    # This interpreter with fixed arguments, never a shell.
    child = subprocess.run(  # noqa: S603  # nosec B603
        command, shell=False, env=env, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )
    if child.returncode != 0:
        raise RuntimeError(f"the {what} benchmark's process failed ({child.returncode}):\n{child.stderr}")
    figures: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return figures


def case_rss(messages: int) -> dict[str, Any]:
    """Peak RSS of a fresh process syncing ``messages`` text messages (4 chats)."""
    return in_fresh_process(["rss-child", "--messages", str(messages)], "RSS")


def rss_child(messages: int) -> dict[str, Any]:
    """Run in the fresh process of :func:`case_rss`."""
    chats = FULL_SIZES["text_chats"]
    with tempfile.TemporaryDirectory() as folder:
        report, seconds, _ = simulated_sync(new_vault(Path(folder) / "vault"), text_spec(chats, messages // chats))
    return {"messages": report.messages, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's peak resident memory, in MB (10^3 kB).

    On Linux, ``VmHWM`` of ``/proc/self/status``: the high-water mark of this program's own memory.
    Not ``ru_maxrss`` there: it keeps the peak from before the process exec'd, when it was a copy of
    its parent, so a fresh process started by a large one would report the parent's size. Elsewhere
    ``ru_maxrss`` (kB on Linux, bytes on macOS).
    """
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1e3
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak / 1e3


def case_media(scale: float) -> dict[str, Any]:
    from tobs_sync import bench

    scenarios = dict(bench.DC_SCENARIOS)
    if scale >= 1:
        figures = bench.bench_dc_scenario(scenarios["long waits"])
    elif scale >= 0.1:
        spec = "chats=4,messages=15,media=1,latency_ms=20,dcs=3,bandwidth_kbps=16000,seed=21"
        figures = bench.bench_dc_scenario(scenarios["short waits"], spec=spec)
    else:  # tests of the suite itself
        tiny = bench.DcFlood(requests=3, window_s=1.0)
        figures = bench.bench_dc_scenario(tiny, spec="chats=2,messages=12,media=1,dcs=3,seed=21")
    return {"media_dc_aware_speedup": figures["speedup_whole_pass"], "files": figures["dc_aware"]["files"],
            "failed": figures["dc_aware"]["failed"] + figures["global_pool"]["failed"], "spec": figures["spec"]}


def case_import(messages: int) -> dict[str, Any]:
    from tobs_sync import bench

    chats = 4
    figures = bench.bench_import(chats=chats, messages=max(1, messages // chats))
    return {"import_msgs_per_s": figures["messages_per_s"], "messages": figures["messages"],
            "notes_written": figures["notes_written"]}


def run_suite(scale: float = 1.0, *, media: bool = True, rss: bool = True) -> dict[str, Any]:
    """Every case at ``scale``; the figures by name (the keys of :data:`KEYS` and details)."""
    size = sizes(scale)
    results: dict[str, Any] = {"scale": scale, "sizes": size}
    with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stdout(sys.stderr):
        work = Path(folder)
        text = case_text(work, size["text_chats"], size["text_per_chat"])
        vault = text.pop("vault")
        results["text"] = text
        for key in ("text_msgs_per_s", "floor_files_per_s", "floor_ratio", "cpu_ms_per_msg"):
            results[key] = text[key]
        latency = case_latency(work, size["text_chats"], size["latency_per_chat"])
        results["latency"], results["latency_efficiency"] = latency, latency["latency_efficiency"]
        noop = case_noop(vault, text["spec"])
        small_vault = new_vault(work / "noop-small")
        small_spec = text_spec(size["text_chats"], max(1, size["noop_small"] // size["text_chats"]))
        simulated_sync(small_vault, small_spec)
        noop_small = case_noop(small_vault, small_spec)
        results["noop"] = {"large": noop, "small": noop_small}
        results["noop_sync_s"], results["noop_sync_s_small"] = noop["seconds"], noop_small["seconds"]
        rerender = case_rerender(vault)
        results["rerender"] = rerender
        for key in ("rerender_notes_per_s", "rerender_files_written"):
            results[key] = rerender[key]
        if rss:
            small, large = case_rss(size["rss_small"]), case_rss(size["rss_large"])
            results["rss"] = {"small": small, "large": large}
            results["peak_rss_mb_small"], results["peak_rss_mb_large"] = small["peak_rss_mb"], large["peak_rss_mb"]
        if media:
            results["media"] = case_media(scale)
            results["media_dc_aware_speedup"] = results["media"]["media_dc_aware_speedup"]
        imported = case_import(size["import_messages"])
        results["import"], results["import_msgs_per_s"] = imported, imported["import_msgs_per_s"]
    return results


def table(results: dict[str, Any]) -> str:
    """The figures with their targets, one per line, for humans."""
    lines = [f"{'figure':<24} {'value':>12}  target"]
    for key in KEYS:
        if key not in results:
            continue
        value = results[key]
        target = TARGETS.get(key)
        verdict = ""
        if target is not None:
            op, bound = target
            met = value >= bound if op == ">=" else value <= bound
            verdict = f"{op} {bound:g} {'met' if met else 'NOT met'}"
        lines.append(f"{key:<24} {value:>12.3f}  {verdict}".rstrip())
    if "peak_rss_mb_large" in results:
        growth = results["peak_rss_mb_large"] / results["peak_rss_mb_small"] - 1
        lines.append(f"{'rss growth large/small':<24} {growth:>12.1%}  <= 20%")
    if "noop_sync_s" in results:
        lines.append(f"{'noop large/small':<24} {results['noop_sync_s'] / results['noop_sync_s_small']:>12.2f}  <= 2")
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return posixpath.join(*value.parts)
    return value


def main(*, quick: bool, as_json: bool) -> int:
    results = run_suite(0.1 if quick else 1.0)
    command = "python -m tobs_sync.bench --json" + (" --quick" if quick else "")
    if as_json:
        print(table(results) + f"\n({command})", file=sys.stderr)
        print(json.dumps(_jsonable(results)))
    else:
        print(table(results) + f"\n({command})")
    return 0
