"""Prometheus metrics of a vault's passes (opt-in): an observer and a localhost endpoint.

:class:`Metrics` is a :class:`~tobs_sync.observe.SyncObserver` that counts what the engine reports
into a registry of its own (one per app, nothing at module level): messages synced; notes written,
unchanged and conflicted; media bytes and deduplicated files; flood waits per data centre; errors
by kind; pass durations; queue depths. :class:`MetricsServer` serves that registry at
``http://127.0.0.1:PORT/metrics`` (``[metrics] port``; 0 = off) from a daemon thread while the app
runs.

Limits: the endpoint listens on 127.0.0.1 only (never on other interfaces), speaks plain HTTP
without authentication, and shows counts and durations only: no chat title, message text or path.
Counters start at zero with each process (Prometheus handles the reset). Flood waits are those of
media downloads (each data centre's queue); a flood wait on reading a chat's history shows as the
chat being deferred when it is too long to wait out.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server

from tobs_sync.model import Chat
from tobs_sync.observe import SyncObserver

LOCALHOST = "127.0.0.1"
PASS_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, float("inf"))


class Metrics(SyncObserver):
    """The app's metrics, fed by the same hooks as the progress display."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages = Counter("tobs_messages_synced", "Messages written to the vault", registry=r)
        self.notes = Counter("tobs_notes", "Notes published by passes, by outcome", ["outcome"], registry=r)
        self.media_bytes_total = Counter("tobs_media_bytes", "Media bytes downloaded", registry=r)
        self.dedup = Counter("tobs_media_dedup_hits", "Media files not fetched or stored again (same bytes known)",
                             registry=r)
        self.floods = Counter("tobs_flood_waits", "Flood waits Telegram asked for, by data centre", ["dc"],
                              registry=r)
        self.flood_seconds = Counter("tobs_flood_wait_seconds", "Seconds of flood waits asked for, by data centre",
                                     ["dc"], registry=r)
        self.errors = Counter("tobs_errors", "Errors, by kind", ["kind"], registry=r)
        self.passes = Histogram("tobs_pass_duration_seconds", "Duration of passes", buckets=PASS_BUCKETS, registry=r)
        self.queues = Gauge("tobs_queue_depth", "Items waiting, by queue", ["queue"], registry=r)
        for outcome in ("written", "unchanged", "conflict"):
            self.notes.labels(outcome)

    def batch_published(self, chat: Chat, messages: int) -> None:
        self.messages.inc(messages)

    def media_bytes(self, chat_id: int, dc_id: int | None, count: int) -> None:
        self.media_bytes_total.inc(count)

    def media_deduplicated(self, count: int = 1) -> None:
        self.dedup.inc(count)

    def flood_wait(self, dc_id: int | None, seconds: float) -> None:
        dc = "none" if dc_id is None else str(dc_id)
        self.floods.labels(dc).inc()
        self.flood_seconds.labels(dc).inc(seconds)

    def error(self, kind: str) -> None:
        self.errors.labels(kind).inc()

    def queue_depth(self, queue: str, depth: int) -> None:
        self.queues.labels(queue).set(depth)

    def chat_finished(self, chat: Chat, new: int, errors: Sequence[str]) -> None:
        return None

    def pass_finished(self, seconds: float, notes_written: int, notes_unchanged: int, conflicts: int) -> None:
        self.passes.observe(seconds)
        self.notes.labels("written").inc(notes_written)
        self.notes.labels("unchanged").inc(notes_unchanged)
        self.notes.labels("conflict").inc(conflicts)

    def exposition(self) -> bytes:
        """The metrics as Prometheus' text format (what the endpoint serves)."""
        return generate_latest(self.registry)


class MetricsServer:
    """Serves a registry on 127.0.0.1 from a daemon thread until :meth:`stop`."""

    def __init__(self, registry: CollectorRegistry, port: int) -> None:
        self._server: WSGIServer
        self._thread: threading.Thread
        self._server, self._thread = start_http_server(port, addr=LOCALHOST, registry=registry)

    @property
    def address(self) -> str:
        """The address it listens on (always 127.0.0.1)."""
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        """The port it listens on (the one given, or the one the system chose for port 0)."""
        return int(self._server.server_address[1])

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
