"""A simulated Telegram server behind a real ``telethon.TelegramClient``.

``SimulatedTelegram(parse_spec("chats=4,messages=5000,media=0.2,latency_ms=100,seed=1"))`` generates a
deterministic account (channels, a megagroup, a basic group, private chats; texts with entities,
forwards, replies, service messages, photos, videos, voice notes, documents, albums, re-posted files)
and ``sim.client()`` returns a ``TelegramClient`` whose connections are answered from it: Telethon's own
paging, flood-wait retries, DC borrowing, ``FILE_MIGRATE`` handling, takeout wrapping and update handling
run on real TL objects, with no network and no crypto. ``sim.faults`` injects flood waits (premium
ones too), stalls, dropped connections, outages, ``FILE_REFERENCE_*`` errors, media replaced
mid-download, CDN redirects, ended takeouts, timeouts and private channels; ``sim.client(session_file=)``
keeps Telethon's SQLite session between runs; ``sim.stats`` counts what was served.

Modules: :mod:`.spec` (the ``--simulate`` syntax), :mod:`.content` and :mod:`.account` (generation),
:mod:`.media`, :mod:`.files` and :mod:`.samples` (media objects; lazily computed, valid media files),
:mod:`.updates` (pts logs), :mod:`.shapes` and :mod:`.difference` (pushed updates and
differences), :mod:`.server` (request handlers), :mod:`.faults`, :mod:`.stats`, :mod:`.sender` (the ``MTProtoSender``
stand-in), :mod:`.client` (wiring; lists the private Telethon attributes touched) and :mod:`.simulator`
(facade).
Limits: see each module; the semantics are an approximation of Telegram's, verified against Telethon
1.45 only.
"""

from tobs_sync.sim.faults import Faults
from tobs_sync.sim.simulator import SimulatedTelegram
from tobs_sync.sim.spec import SimSpec, parse_spec
from tobs_sync.sim.stats import SimStats

__all__ = ["Faults", "SimSpec", "SimStats", "SimulatedTelegram", "parse_spec"]
