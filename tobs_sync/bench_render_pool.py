"""Does a process pool for rendering pay? ``python -m tobs_sync.bench render-pool``.

The notes of a seeded simulated chat (texts with entities, read through the production source) are
rendered by the production renderer and views in this process, then by two worker processes fed
msgpack records of the messages (the store's own encoding; nothing of ours is pickled: the records
go out as bytes and the notes come back as bytes), one task per worker (each worker builds its
renderer once per task, as a pool that keeps its renderer would once per pass). Printed: wall time per
note of each (the best of three runs), this process's CPU per note in each, and the machine's load,
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


def render_records(records: Sequence[bytes]) -> list[bytes]:
    """In a worker process: the notes of msgpack-encoded messages (a renderer made per task)."""
    renderer = Renderer(None)
    renderer.check()
    return [_render(decode_message(record), renderer) for record in records]


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
    in_process = in_process_cpu = float("inf")
    for _ in range(repeats):
        cpu, started = time.process_time(), time.perf_counter()
        local = [_render(message, renderer) for message in messages]
        in_process = min(in_process, time.perf_counter() - started)
        in_process_cpu = min(in_process_cpu, time.process_time() - cpu)
    pooled = pooled_cpu = float("inf")
    size = -(-len(messages) // WORKERS)
    with ProcessPoolExecutor(WORKERS) as pool:
        pool.submit(render_records, []).result()  # the workers are up before the clock runs
        for _ in range(repeats):
            cpu, started = time.process_time(), time.perf_counter()
            tasks = [[encode_message(m) for m in messages[i:i + size]] for i in range(0, len(messages), size)]
            remote = [note for notes in pool.map(render_records, tasks) for note in notes]
            pooled = min(pooled, time.perf_counter() - started)
            pooled_cpu = min(pooled_cpu, time.process_time() - cpu)
    notes = len(messages)
    figures = {
        "notes": notes, "identical": remote == local, "cores": os.cpu_count(), "load": os.getloadavg()[0],
        "in_process_ms_per_note": in_process * 1e3 / notes, "in_process_cpu_ms_per_note": in_process_cpu * 1e3 / notes,
        "pool_ms_per_note": pooled * 1e3 / notes, "pool_parent_cpu_ms_per_note": pooled_cpu * 1e3 / notes,
    }
    print(f"render-pool: {notes} notes on {figures['cores']} cores (load {figures['load']:.1f}); in this process "
          f"{figures['in_process_ms_per_note']:.3f} ms/note ({figures['in_process_cpu_ms_per_note']:.3f} ms CPU); "
          f"2 worker processes {figures['pool_ms_per_note']:.3f} ms/note (this process's CPU "
          f"{figures['pool_parent_cpu_ms_per_note']:.3f} ms/note); same bytes: {figures['identical']}")
    return figures
