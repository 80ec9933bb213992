"""The reading-alone benchmark reads every generated message through the source and reports its figures."""

from __future__ import annotations

import json

import pytest

from tobs_sync import bench_read


def test_read_only_reads_every_message_and_reports_rates_and_cpu() -> None:
    figures = bench_read.read_only(chats=2, per_chat=30, latency_ms=0, seed=3)
    assert figures["messages"] == 60
    assert figures["efficiency"] is None and figures["api_bound_msgs_per_s"] is None  # no latency, no bound
    assert figures["read_cpu_ms_per_msg"] > 0 and figures["generation_cpu_ms_per_msg"] > 0
    assert figures["spec"] == "chats=2,messages=30,media=0,latency_ms=0,seed=3"


def test_read_only_prints_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    bench_read.main(["--chats", "1", "--messages", "20", "--latency-ms", "0"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["messages"] == 20 and printed["msgs_per_s"] > 0
