"""Wiring a real ``telethon.TelegramClient`` to the simulated server.

The client is an ordinary ``TelegramClient`` (``MemorySession`` with the home DC set, or an ``SQLiteSession``
file that persists between runs, as a real login's does; ``api_id`` 1), so
Telethon's own code runs unchanged: ``iter_messages`` paging, flood-wait sleeping and retrying,
``_borrow_exported_sender`` for other DCs, ``FILE_MIGRATE`` handling in ``iter_download``/``download_media``,
takeout wrapping, ``Message._finish_init``, the update loop and the ``MessageBox``.

Private Telethon internals this module touches (pinned ``telethon>=1.45,<1.46``; checked by
``tests/test_sim.py::test_telethon_private_attributes_still_exist``):

* ``TelegramClient._sender`` -- replaced by a :class:`SimSender` for the home DC (``__init__`` creates an
  ``MTProtoSender`` that is never connected and simply dropped).
* ``TelegramClient._create_exported_sender`` -- replaced, as an *instance attribute holding a plain
  coroutine function* (not a bound method: the takeout proxy ``_TakeoutClient.__getattr__`` would look a
  bound method up on the class again and reach the real one), by one that opens a :class:`SimSender` for
  the DC and performs ``auth.exportAuthorization``/``auth.importAuthorization`` like the original.
* ``TelegramClient._get_dc`` -- replaced the same way, so reconnecting an idle borrowed sender never
  calls ``help.getConfig`` into the class-wide ``TelegramClient._config`` cache (which would leak the
  simulator's fake addresses into real clients in the same process).
* ``TelegramClient._updates_queue`` -- read only: the home sender puts pushed updates into it, as the real
  ``MTProtoSender`` does with the queue it receives in its constructor.
* ``Connection._dc_id`` -- read only: the home sender's ``connect(connection)`` takes its DC from the
  connection object Telethon builds, so ``_switch_dc`` after ``PHONE_MIGRATE_X`` moves it (checked by
  ``tests/test_sim_protocol.py::test_an_account_homed_on_another_dc_is_followed_there_at_login``).

Everything else on the client is public API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from telethon import TelegramClient
from telethon.sessions import MemorySession, SQLiteSession
from telethon.tl import functions, types
from telethon.tl.alltlobjects import LAYER

from tobs_sync.sim.sender import SimSender
from tobs_sync.sim.server import SimServer

DEFAULT_DC_ID = 2
"""The DC a new Telethon session starts on (``telethon.client.telegrambaseclient.DEFAULT_DC_ID``)."""
API_ID = 1
API_HASH = "tobs-sync-simulator"
PRIVATE_ATTRIBUTES = ("_sender", "_create_exported_sender", "_get_dc", "_updates_queue")
SENDER_INTERFACE = (
    "connect", "disconnect", "send", "is_connected", "disconnected", "_transport_connected", "_keepalive_ping",
    "auth_key",
)
_RESERVED = ("session", "api_id", "api_hash", "connection", "proxy")


def dc_address(dc_id: int) -> str:
    return f"127.0.0.{dc_id}"


def build_client(
    server: SimServer, session_file: str | Path | None = None, *, connected: bool = True, **options: Any
) -> TelegramClient:
    """A ``TelegramClient`` whose connections all go to ``server``; ``options`` go to its constructor.

    ``session_file``: an SQLite session (Telethon's own format) kept between clients, so what Telethon
    saves in it (entities, update state, a takeout id) reaches the next run; else a ``MemorySession``.
    A logged-in account's session starts on its home DC; a new session (the server not logged in)
    starts on Telethon's default DC 2 and is moved by ``PHONE_MIGRATE_X`` when it logs in.
    ``connected=False``: the client starts disconnected, as a real one does, so ``connect()`` (the
    start-up requests, the update and keep-alive loops) runs before anything else.
    """
    for name in _RESERVED:
        if name in options:
            raise TypeError(f"the simulated client sets {name!r} itself")
    home = server.spec.home_dc
    start = home if server.logged_in else min(DEFAULT_DC_ID, server.spec.dcs)
    session: MemorySession
    if session_file is None:
        session = MemorySession()
        session.set_dc(start, dc_address(start), 443)
    else:
        session = SQLiteSession(str(session_file))
        if not session.server_address or (server.logged_in and session.dc_id != home):
            session.set_dc(start, dc_address(start), 443)
    client = TelegramClient(session, API_ID, API_HASH, **options)
    client._sender = SimSender(
        server, session.dc_id, home=True, updates_queue=client._updates_queue, connected=connected
    )

    async def create_exported_sender(dc_id: int) -> SimSender:
        sender = SimSender(server, dc_id, home=False)
        await sender.connect()
        auth = await client(functions.auth.ExportAuthorizationRequest(dc_id))
        init = functions.InitConnectionRequest(
            api_id=API_ID, device_model="tobs-sync simulator", system_version="1", app_version="1",
            system_lang_code="en", lang_pack="", lang_code="en",
            query=functions.auth.ImportAuthorizationRequest(id=auth.id, bytes=auth.bytes),
        )
        await sender.send(functions.InvokeWithLayerRequest(LAYER, init))
        return sender

    async def get_dc(dc_id: int, cdn: bool = False) -> types.DcOption:
        if cdn or not 1 <= dc_id <= server.spec.dcs:
            raise ValueError(f"Failed to get DC {dc_id} (cdn = {cdn})")
        return types.DcOption(id=dc_id, ip_address=dc_address(dc_id), port=443)

    client._create_exported_sender = create_exported_sender
    client._get_dc = get_dc
    return client
