"""Counters of what the simulated Telegram served, for assertions and benchmarks.

Request names are the short TL function names without ``Request`` (``"GetHistory"``, ``"GetFile"``),
counted for the innermost query (``InvokeWithLayer``/``InitConnection``/``InvokeWithoutUpdates``/
``InvokeWithTakeout`` wrappers are unwrapped); ``takeout_requests`` counts those that arrived wrapped in
``InvokeWithTakeout``. ``log`` keeps the most recent 10 000 requests in order (bounded, so long
benchmark runs do not grow without limit).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

LOG_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the server saw it; ``outcome`` is ``"ok"``, an RPC error message, or a fault kind."""

    name: str
    dc: int
    takeout: bool
    outcome: str


@dataclass
class SimStats:
    """Everything counted by the simulator since it was created (or since :meth:`reset`)."""

    requests: Counter[tuple[str, int]] = field(default_factory=Counter)
    takeout_requests: Counter[tuple[str, int]] = field(default_factory=Counter)
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    file_requests: Counter[str] = field(default_factory=Counter)
    file_downloads: Counter[str] = field(default_factory=Counter)
    file_bytes: Counter[str] = field(default_factory=Counter)
    bytes_by_dc: Counter[int] = field(default_factory=Counter)
    connections_opened: Counter[int] = field(default_factory=Counter)
    log: deque[RequestRecord] = field(default_factory=lambda: deque(maxlen=LOG_LIMIT))

    def count(self, name: str, dc: int | None = None) -> int:
        """Requests named ``name`` (on ``dc``, or on any DC)."""
        return sum(n for (req, at), n in self.requests.items() if req == name and (dc is None or at == dc))

    def names(self) -> list[str]:
        """Request names in arrival order (from the bounded log)."""
        return [record.name for record in self.log]

    def reset(self) -> None:
        for value in vars(self).values():
            value.clear()
