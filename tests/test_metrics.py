"""Metrics (opt-in): counted from the engine's hooks into a registry per app, served on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from virtualtime import run_virtual

from tobs_sync.app import App
from tobs_sync.errors import ChatDeferred, FloodWait, TobsError
from tobs_sync.media import MediaWriter
from tobs_sync.metrics import Metrics, MetricsServer
from tobs_sync.model import Chat, ChatKind, MediaKind, MediaRef, Message
from tobs_sync.sources.memory import MemorySource
from tobs_sync.store import Store
from tobs_sync.sync import SyncReport
from tobs_sync.vault import Vault
from tobs_sync.workers import DcScheduler

NEWS = Chat(-1001234, "News", ChatKind.CHANNEL.value)
FRIEND = Chat(4242, "Friend", ChatKind.USER.value)
START = 1_700_000_000
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


class Clock:
    def __init__(self, *times: dt.datetime) -> None:
        self._times = list(times)

    def __call__(self) -> dt.datetime:
        return self._times.pop(0)


def test_a_pass_counts_messages_notes_media_dedup_errors_and_its_duration(vault: Path) -> None:
    source = MemorySource([NEWS, FRIEND])
    same = [source.add_file(b"p" * 2000, kind=MediaKind.DOCUMENT.value, file_name=f"{n}.bin") for n in range(2)]
    flaky = source.add_file(b"f" * 700, kind=MediaKind.DOCUMENT.value, file_name="flaky.bin")
    source.fail_fetches(flaky, times=1)
    for message_id, media in enumerate([(same[0],), (same[1],), (flaky,), ()], start=1):
        source.add_message(Message(NEWS.id, message_id, START + message_id, text=f"m{message_id}", media=media))
    source.add_message(Message(FRIEND.id, 1, START, text="hi"))
    source.fail_history(FRIEND.id, ChatDeferred("chat 'Friend': Telegram asks to wait 900 s"))

    async def run() -> Metrics:
        with App.open(vault) as app:
            metrics = app.observe_metrics()
            app.clock = Clock(T0, T0 + dt.timedelta(seconds=42))
            async with source:
                await app.run_pass(source, "schedule")
            return metrics

    metrics = asyncio.run(run())
    assert value(metrics, "tobs_messages_synced_total") == 4
    assert value(metrics, "tobs_notes_total", outcome="written") == 5  # 4 message notes and the chat note
    assert value(metrics, "tobs_notes_total", outcome="conflict") == 0
    assert value(metrics, "tobs_media_bytes_total") == 2000 + 2000  # the flaky file failed before any byte
    assert value(metrics, "tobs_media_dedup_hits_total") == 1  # same bytes, two files: stored once
    assert value(metrics, "tobs_errors_total", kind="deferred") == 1
    assert value(metrics, "tobs_errors_total", kind="media_download") == 1
    assert value(metrics, "tobs_pass_duration_seconds_count") == 1
    assert value(metrics, "tobs_pass_duration_seconds_sum") == 42
    assert value(metrics, "tobs_queue_depth", queue="publish") == 0


def test_flood_waits_are_counted_per_data_centre(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    metrics = Metrics()
    refused: set[int] = set()

    async def fetch(media: MediaRef, offset: int) -> AsyncIterator[bytes]:
        if media.dc_id == 2 and media.dc_id not in refused:
            refused.add(media.dc_id)
            raise FloodWait(30, "downloading from DC 2")
        yield (media.file_name or "").encode() * 10

    files = [MediaRef(MediaKind.DOCUMENT.value, locator=str(n), size=50, file_name=f"file{n}", dc_id=dc)
             for n, dc in enumerate([1, 2, 2, 4])]
    messages = [(Message(NEWS.id, n + 1, START, text="", media=(media,)), "Telegram/News/note.md")
                for n, media in enumerate(files)]

    async def run() -> None:
        with Store.open(tmp_path / ".tobs" / "state.db") as store:
            writer = MediaWriter(vault, store, "Telegram/_attachments", dt.UTC, scheduler=DcScheduler())
            writer.observer = metrics
            await writer.store_media(messages, "News", fetch)

    run_virtual(run())
    assert value(metrics, "tobs_flood_waits_total", dc="2") == 1
    assert value(metrics, "tobs_flood_wait_seconds_total", dc="2") == 30
    assert value(metrics, "tobs_flood_waits_total", dc="1") is None
    assert value(metrics, "tobs_media_bytes_total") == 4 * 50


def test_each_app_has_a_registry_of_its_own() -> None:
    first, second = Metrics(), Metrics()
    first.batch_published(NEWS, 3)
    assert value(first, "tobs_messages_synced_total") == 3
    assert value(second, "tobs_messages_synced_total") == 0


def test_the_endpoint_serves_the_metrics_on_localhost_only() -> None:
    metrics = Metrics()
    metrics.error("deferred")
    server = MetricsServer(metrics.registry, 0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as response:
            body = response.read().decode()
        assert server.address == "127.0.0.1"
    finally:
        server.stop()
    assert 'tobs_errors_total{kind="deferred"} 1.0' in body


def test_a_configured_port_serves_while_the_app_is_open_and_zero_is_off(vault: Path) -> None:
    with App.open(vault) as app:
        assert app.metrics_server is None and app.metrics is None, "off by default"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = vault / ".tobs" / "config.toml"
    config.write_text(config.read_text(encoding="utf-8") + f"[metrics]\nport = {port}\n", encoding="utf-8")
    with App.open(vault) as app:
        assert app.metrics_server is not None and app.metrics_server.port == port
        app.record_pass(SyncReport(), T0, T0 + dt.timedelta(seconds=3), "schedule")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read().decode()
    assert "tobs_pass_duration_seconds_count 1.0" in body
    with pytest.raises(ConnectionRefusedError):  # the app closed its endpoint
        socket.create_connection(("127.0.0.1", port), timeout=5).close()



def test_a_port_in_use_is_a_clear_error_naming_the_key_and_the_vault_stays_usable(vault: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = vault / ".tobs" / "config.toml"
        config.write_text(config.read_text(encoding="utf-8") + f"[metrics]\nport = {port}\n", encoding="utf-8")
        with pytest.raises(TobsError, match=rf"metrics.port: cannot serve metrics on 127.0.0.1:{port}"):
            App.open(vault)
    config.write_text(config.read_text(encoding="utf-8").replace(f"port = {port}", "port = 0"), encoding="utf-8")
    with App.open(vault) as app:  # the failed open released the lock
        assert app.metrics_server is None
