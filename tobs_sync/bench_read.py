"""Reading alone: a simulated account's chats read through the Telegram source, nothing rendered or written.

``python -m tobs_sync.bench_read [--chats 4] [--messages 2500] [--latency-ms 100] [--seed 11]`` prints
one JSON object: the messages read, the wall time and messages per second of the read, that rate as a
fraction of the API-bound one (``chats x 100`` messages per round trip of ``latency_ms``: one history
page in flight per chat), the process CPU per message of the read (the simulator's share included:
serialising and Telethon parsing every page) and, apart, the CPU per message of generating the
simulated account (done before the read's clock starts). It isolates what the text benchmark's
``latency_efficiency`` and ``cpu_ms_per_msg`` owe to reading, from what they owe to rendering and
publishing.

The chats are read as a pass reads them: all at once, each through ``TelegramSource.batches`` (its
read-ahead, deadlines and conversion), over one real Telethon client on the simulator.

Limits: figures, not assertions; on a shared machine wall time moves with the load, CPU time much less.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from typing import Any

from tobs_sync.config import TelegramSettings
from tobs_sync.sim import SimulatedTelegram, parse_spec
from tobs_sync.sources.telegram import TelegramSource

HISTORY_PAGE = 100
"""Messages per history request: the API-bound rate is one page per chat per round trip."""
DEFAULT_SEED = 11


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def read_only(
    chats: int = 4, per_chat: int = 2500, latency_ms: float = 100, seed: int = DEFAULT_SEED
) -> dict[str, Any]:
    """Generate a text-only account, read every chat through the source, and return the figures."""
    spec = f"chats={chats},messages={per_chat},media=0,latency_ms={latency_ms:g},seed={seed}"
    before = _cpu_s()
    simulated = SimulatedTelegram(parse_spec(spec))
    generation_s = _cpu_s() - before
    client = simulated.client(raise_last_call_error=True, request_retries=3)

    async def read_all() -> tuple[int, float, float]:
        async with TelegramSource(client, TelegramSettings()) as source:
            listed = [chat async for chat in source.chats()]

            async def read(chat: Any) -> int:
                return sum([len(batch) async for batch in source.batches(chat, 0)])

            started, cpu = time.perf_counter(), _cpu_s()
            counts = await asyncio.gather(*(read(chat) for chat in listed))
            return sum(counts), time.perf_counter() - started, _cpu_s() - cpu

    messages, seconds, cpu_s = asyncio.run(read_all())
    rate = messages / seconds if seconds else 0.0
    bound = chats * HISTORY_PAGE / (latency_ms / 1000) if latency_ms else None
    return {
        "spec": spec, "messages": messages, "seconds": seconds, "msgs_per_s": rate,
        "api_bound_msgs_per_s": bound, "efficiency": rate / bound if bound else None,
        "read_cpu_ms_per_msg": cpu_s * 1000 / max(1, messages),
        "generation_cpu_ms_per_msg": generation_s * 1000 / max(1, chats * per_chat),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tobs_sync.bench_read", description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=4)
    parser.add_argument("--messages", type=int, default=2500, help="messages per chat")
    parser.add_argument("--latency-ms", type=float, default=100)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    figures = read_only(args.chats, args.messages, args.latency_ms, args.seed)
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
