"""The benchmark suite still runs and counts right, on tiny inputs (its figures are never asserted)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tobs_sync import bench, benchsuite
from tobs_sync.model import Chat, EntityKind
from tobs_sync.sim.faults import Faults
from tobs_sync.sources.memory import MemorySource

TINY_DC_SPEC = "chats=2,messages=12,media=1,dcs=3,seed=21"


def test_dc_benchmark_stores_every_file_under_both_schedulers(capsys: Any) -> None:
    figures = bench.bench_dc_scenario(bench.DcFlood(requests=3, window_s=1.0), spec=TINY_DC_SPEC)
    aware, naive = figures["dc_aware"], figures["global_pool"]
    assert aware["files"] == naive["files"] > 0
    assert aware["failed"] == naive["failed"] == 0
    assert aware["megabytes"] == pytest.approx(naive["megabytes"])
    assert aware["flood_waits_served"] > 0 and naive["flood_waits_served"] > 0
    assert aware["per_dc"][bench.FLOODED_DC]["refused"] == aware["flood_waits_served"]
    assert sum(row["megabytes"] for row in aware["per_dc"].values()) == pytest.approx(aware["megabytes"])
    printed = capsys.readouterr().out
    assert "DC-aware" in printed and "global pool" in printed and "speed-up" in printed


def test_memory_benchmark_streams_a_file_without_ever_holding_it_whole(capsys: Any) -> None:
    """Measured in a fresh process: a 50 MB file held whole (or a chunk list growing with it) would show
    in both the peak of Python allocations and the growth of the peak RSS."""
    figures = bench.bench_memory(size=50_000_000)
    assert figures["stored"] == 1
    assert figures["traced_peak_mb"] < figures["file_mb"] / 10
    assert figures["peak_rss_after_mb"] - figures["peak_rss_before_mb"] < figures["file_mb"] / 2
    assert "downloaded 50 MB" in capsys.readouterr().out


def test_the_traced_peak_sees_a_file_held_whole_and_not_one_streamed() -> None:
    """The instrument of the memory benchmark can tell the two apart."""
    source = MemorySource([Chat(1, "files")], chunk_size=64 * 1024)
    big = source.add_file(bytes(20_000_000))

    async def held_whole() -> int:
        async with source:
            return len(b"".join([chunk async for chunk in source.media_chunks(big)]))

    async def streamed() -> int:
        total = 0
        async with source:
            async for chunk in source.media_chunks(big):
                total += len(chunk)
        return total

    assert asyncio.run(bench.traced_peak(held_whole()))[1] >= 20_000_000
    assert asyncio.run(bench.traced_peak(streamed()))[1] < 1_000_000


def test_import_benchmark_writes_every_note_once_then_nothing(capsys: Any) -> None:
    figures = bench.bench_import(chats=2, messages=15)
    assert figures["messages"] == 30
    assert figures["notes_written"] == 30 + 2  # a note per message and a chat index note per chat
    assert figures["noop_written"] == 0
    assert "30 messages" in capsys.readouterr().out


def test_the_command_line_runs_one_custom_dc_scenario(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    ran: list[tuple[str, bench.DcFlood]] = []
    monkeypatch.setattr(bench, "bench_dc", lambda scenarios: ran.extend(scenarios) or {})
    assert bench.main(["dc", "--limit", "7", "--window", "5"]) == 0
    assert ran == [("custom", bench.DcFlood(requests=7, window_s=5.0))]
    assert bench.main(["dc", "--flood-every", "7", "--flood-s", "5"]) == 0
    assert ran[1] == ("custom", bench.DcFlood(window_s=5.0, every_n=7))
    assert bench.main(["dc", "--limit", "7", "--count-refused"]) == 0
    assert ran[2] == ("custom", bench.DcFlood(requests=7, window_s=3.0, count_refused=True))
    assert bench.main(["dc"]) == 0
    assert ran[3:] == list(bench.DC_SCENARIOS)


def test_the_dc_flood_of_a_scenario_sets_up_the_rule_it_describes() -> None:
    limited, counted, none = Faults(), Faults(), Faults()
    bench.DcFlood(requests=7, window_s=5.0).apply(limited)
    bench.DcFlood(window_s=5.0, every_n=7).apply(counted)
    bench.DcFlood().apply(none)
    assert [(r.kind, r.dc) for r in limited.pending()] == [("limit", bench.FLOODED_DC)]
    assert [(r.kind, r.dc, r.every_n, r.seconds) for r in counted.pending()] == [("throttle", bench.FLOODED_DC, 7, 5)]
    assert none.pending() == []


def test_parse_benchmark_reads_every_message_of_the_generated_export(capsys: Any) -> None:
    figures = bench.bench_parse(chats=3, messages=40)
    assert (figures["chats"], figures["messages"]) == (3, 120)
    assert "120 messages read" in capsys.readouterr().out


def test_markdown_benchmark_renders_every_generated_message(capsys: Any) -> None:
    figures = bench.bench_markdown(sizes=(20, 40), repeats=1)
    assert [run["entities"] for run in figures["runs"]] == [20, 40]
    assert all(run["markdown_characters"] >= run["characters"] > 0 for run in figures["runs"])
    assert figures["per_entity_ratio"] > 0
    printed = capsys.readouterr().out
    assert "40 entities" in printed and "time per entity" in printed


def test_markdown_case_has_the_asked_entities_of_every_kind() -> None:
    text, entities = bench.markdown_case(400)
    assert len(entities) == 400
    assert {entity.kind for entity in entities} == set(EntityKind)
    assert sum(entity.kind == EntityKind.BLOCKQUOTE for entity in entities) == 4
    assert len(text.encode("utf-16-le")) // 2 > len(text)  # astral characters: UTF-16 offsets differ


def test_the_suite_reports_every_figure_and_its_cases_count_right_at_tiny_sizes(capsys: Any) -> None:
    """Counts only: every case ran on real work (notes written, files re-rendered, nothing on a no-op)."""
    results = benchsuite.run_suite(0.002)
    size = results["sizes"]
    assert set(benchsuite.KEYS) <= set(results)
    assert all(isinstance(results[key], int | float) and results[key] > 0
               for key in benchsuite.KEYS if not key.startswith("noop"))
    messages = size["text_chats"] * size["text_per_chat"]
    assert results["text"]["messages"] == messages
    assert results["text"]["notes_written"] == messages + size["text_chats"]  # and one index note per chat
    assert results["text"]["floor_files"] == messages
    assert set(results["text"]["floor_loops"]) == set(benchsuite.FLOOR_LOOPS)
    assert results["latency"]["messages"] == size["text_chats"] * size["latency_per_chat"]
    assert results["noop"]["large"]["messages"] == results["noop"]["small"]["messages"] == 0
    assert results["noop"]["large"]["notes_written"] == results["noop"]["small"]["notes_written"] == 0
    changed = results["rerender"]["rerender_files_changed"]
    assert 0 < changed < results["rerender"]["notes"]
    assert results["rerender_files_written"] == changed
    assert results["rss"]["small"]["messages"] == size["rss_small"]
    assert results["rss"]["large"]["messages"] == size["rss_large"]
    assert results["media"]["files"] > 0 and results["media"]["failed"] == 0
    assert results["import"]["notes_written"] == results["import"]["messages"] + 4
    printed = benchsuite.table(results)
    assert all(key in printed for key in benchsuite.KEYS)


def test_the_suite_sizes_are_a_tenth_when_quick() -> None:
    full, quick = benchsuite.sizes(1.0), benchsuite.sizes(0.1)
    assert full["text_per_chat"] * full["text_chats"] == 100_000 and full["rss_large"] == 200_000
    assert quick["text_per_chat"] == full["text_per_chat"] // 10 and quick["text_chats"] == 4
    assert quick["import_messages"] == 10_000


def test_the_json_form_prints_one_object_with_every_key(capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    figures = {key: 1.0 for key in benchsuite.KEYS} | {"text": {"vault_path": Path("a/b")}}
    monkeypatch.setattr(benchsuite, "run_suite", lambda scale: figures | {"scale": scale})
    assert bench.main(["--json", "--quick"]) == 0
    out = capsys.readouterr()
    printed = json.loads(out.out)
    assert set(benchsuite.KEYS) <= set(printed) and printed["scale"] == 0.1
    assert "target" in out.err and "--quick" in out.err


def test_the_render_pool_benchmark_renders_the_same_notes_in_both_ways(capsys: Any) -> None:
    from tobs_sync.bench_render_pool import bench_render_pool

    figures = bench_render_pool(count=30, repeats=1)
    assert figures["notes"] == 30 and figures["identical"] is True
    assert figures["pool_ms_per_note"] > 0 and figures["in_process_ms_per_note"] > 0
    assert "render-pool: 30 notes" in capsys.readouterr().out


def test_a_fresh_process_reports_its_own_peak_memory_not_its_large_parents() -> None:
    held = bytearray(200_000_000)  # the parent touches 200 MB before it starts the child
    for index in range(0, len(held), 4096):
        held[index] = 1
    child = benchsuite.in_fresh_process(["rss-child", "--messages", "8"], "RSS")
    assert child["messages"] == 8
    assert child["peak_rss_mb"] < 190, child
    assert benchsuite.peak_rss_mb() > 200  # this process's own peak does count what it held
