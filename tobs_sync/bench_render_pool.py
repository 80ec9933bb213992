"""Does a process pool for rendering pay? ``python -m tobs_sync.bench render-pool``.

The notes of a seeded simulated chat (texts with entities, read through the production source) are
rendered by the production renderer and views in this process, then by two worker processes fed
msgpack records of the messages (the store's own encoding; nothing of ours is pickled: the records
go out as bytes and the notes come back as bytes), one task per worker (each worker builds its
renderer once, when it starts, as a long-lived pool would, and renders a few notes before the clock
runs). The two ways run alternately, so that a change in the machine's load hits both. Printed: wall
time per note of each (the best of the runs), this process's CPU per note in each, the workers' CPU
per note (what pooled rendering costs the machine in all), and the machine's load before and after,
since on a machine where other work competes for the cores the pool's wall figure flatters it.

Limits: the workers render without reply links or stored media (text messages have none), and the
pool is started before the clock runs (a long-lived pool would start once per app).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from tobs_sync.config import TelegramSettings
from tobs_sync.model import Chat, Message
from tobs_sync.records import decode_message, encode_message
from tobs_sync.render import MESSAGE_TEMPLATE, Renderer
from tobs_sync.sim import SimulatedTelegram, parse_spec
from tobs_sync.sources.telegram import TelegramSource
from tobs_sync.views import chat_view, message_view

CHAT = Chat(-1001234, "Bench chat", "channel")
WORKERS = 2


def _render(message: Message, renderer: Renderer) -> bytes:
    context = {
        "message": message_view([message], [], tz=dt.UTC, reply_path=None, note_path=f"Bench/{message.id}.md"),
        "chat": chat_view(CHAT, "Bench/Bench chat.md"),
    }
    return renderer.render(MESSAGE_TEMPLATE, context, {"tg_chat_id": CHAT.id, "tg_message_id": message.id})


_worker_renderer: Renderer | None = None


def start_worker() -> None:
    """In a worker process, once: the renderer it keeps."""
    global _worker_renderer  # one renderer per worker process, as a long-lived pool keeps it
    _worker_renderer = Renderer(None)
    _worker_renderer.check()


def render_records(records: Sequence[bytes]) -> tuple[list[bytes], float]:
    """In a worker process: the notes of msgpack-encoded messages, and the CPU seconds they took."""
    if _worker_renderer is None:
        start_worker()
    assert _worker_renderer is not None  # nosec B101  # set just above
    cpu = time.process_time()
    notes = [_render(decode_message(record), _worker_renderer) for record in records]
    return notes, time.process_time() - cpu


def _messages(count: int) -> list[Message]:
    sim = SimulatedTelegram(parse_spec(f"chats=1,messages={count},media=0,seed=11"))
    read: list[Message] = []

    async def run() -> None:
        async with TelegramSource(sim.client(raise_last_call_error=True), TelegramSettings()) as source:
            async for chat in source.chats():
                async for batch in source.batches(chat, 0):
                    read.extend(batch)

    asyncio.run(run())
    return read


def bench_render_pool(count: int = 4000, repeats: int = 3) -> dict[str, Any]:
    messages = _messages(count)
    renderer = Renderer(None)
    renderer.check()
    load_before = os.getloadavg()[0]
    in_process = in_process_cpu = pooled = pooled_cpu = workers_cpu = float("inf")
    size = -(-len(messages) // WORKERS)
    local: list[bytes] = []
    remote: list[bytes] = []
    with ProcessPoolExecutor(WORKERS, initializer=start_worker) as pool:
        warm = [encode_message(m) for m in messages[:20]]
        list(pool.map(render_records, [warm] * WORKERS))  # the workers are up and warm before the clock runs
        for _ in range(repeats):
            cpu, started = time.process_time(), time.perf_counter()
            local = [_render(message, renderer) for message in messages]
            in_process = min(in_process, time.perf_counter() - started)
            in_process_cpu = min(in_process_cpu, time.process_time() - cpu)
            cpu, started = time.process_time(), time.perf_counter()
            tasks = [[encode_message(m) for m in messages[i:i + size]] for i in range(0, len(messages), size)]
            results = list(pool.map(render_records, tasks))
            pooled = min(pooled, time.perf_counter() - started)
            pooled_cpu = min(pooled_cpu, time.process_time() - cpu)
            workers_cpu = min(workers_cpu, sum(seconds for _, seconds in results))
            remote = [note for notes, _ in results for note in notes]
    notes = len(messages)
    figures = {
        "notes": notes, "identical": remote == local, "cores": os.cpu_count(),
        "load": load_before, "load_after": os.getloadavg()[0],
        "in_process_ms_per_note": in_process * 1e3 / notes, "in_process_cpu_ms_per_note": in_process_cpu * 1e3 / notes,
        "pool_ms_per_note": pooled * 1e3 / notes, "pool_parent_cpu_ms_per_note": pooled_cpu * 1e3 / notes,
        "pool_workers_cpu_ms_per_note": workers_cpu * 1e3 / notes,
    }
    print(f"render-pool: {notes} notes on {figures['cores']} cores (load {load_before:.1f} before, "
          f"{figures['load_after']:.1f} after); in this process {figures['in_process_ms_per_note']:.3f} ms/note "
          f"({figures['in_process_cpu_ms_per_note']:.3f} ms CPU); {WORKERS} worker processes "
          f"{figures['pool_ms_per_note']:.3f} ms/note (this process's CPU {figures['pool_parent_cpu_ms_per_note']:.3f} "
          f"ms/note, the workers' {figures['pool_workers_cpu_ms_per_note']:.3f}); same bytes: {figures['identical']}")
    return figures
