"""A stand-in for Telethon's ``MTProtoSender``: one simulated connection to one data centre.

It offers what ``TelegramClient`` uses of a sender (``connect``, ``disconnect``, ``send``,
``is_connected``, ``disconnected``, ``_transport_connected``, ``_keepalive_ping``, ``auth_key``,
``dc_id``) and nothing else: no sockets, no encryption, no message ids. ``send`` serialises the request
with ``bytes(request)`` (so un-serialisable requests fail as they would), the server parses it back,
and the answer is serialised again and read with ``request.read_result`` -- exactly the objects the
real sender would produce, independent of the server's own copies. RPC errors become Telethon
exceptions through ``rpc_message_to_error``, like ``MTProtoSender._handle_rpc_result``.

Each request is served by its own task (requests are pipelined, as on a real connection): it waits out
an outage, sleeps the simulated latency, applies at most one matching fault, asks the server, then, for
``upload.getFile``, waits for its share of the connection's bandwidth. A user ``disconnect()`` cancels
pending requests, as ``MTProtoSender`` does.

Connection state: the home sender starts usable (requests work without ``connect()``, and
``is_connected()`` is true) but its first ``connect()`` still returns ``True`` so that
``TelegramClient.connect`` runs its real start-up (``InitConnection``, ``get_me``, ``GetState``) and
starts the update and keep-alive loops; only then are live updates pushed to it. With
``connected=False`` the home sender starts closed, as a real client's does, so everything that uses it
must go through ``connect()`` first. Senders for other DCs start closed; opening one costs three round
trips of latency. ``connect()`` of the home sender takes the DC from Telethon's connection object, so
``PHONE_MIGRATE_X`` (Telethon's ``_switch_dc``) moves it. Requests pass the server's rate policy
(:mod:`ratelimit`) before its handlers.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from telethon import errors, utils
from telethon.crypto import AuthKey
from telethon.extensions import BinaryReader
from telethon.tl import functions
from telethon.tl.tlobject import TLObject, TLRequest

from tobs_sync.sim.faults import request_names
from tobs_sync.sim.rpc import RpcFault
from tobs_sync.sim.server import CallContext, SimServer, unwrap
from tobs_sync.sim.stats import RequestRecord

_VECTOR = 0x1CB5C415
_BOOL_TRUE = struct.pack("<I", 0x997275B5)
_BOOL_FALSE = struct.pack("<I", 0xBC799737)
OPEN_COST_ROUND_TRIPS = 3

_Item = tuple[TLRequest, bytes, "asyncio.Future[Any]"]


def serialize_result(value: Any) -> bytes:
    """TL bytes of a handler result: an object, a bool or a vector of objects."""
    if isinstance(value, bool):
        return _BOOL_TRUE if value else _BOOL_FALSE
    if isinstance(value, list):
        return struct.pack("<Ii", _VECTOR, len(value)) + b"".join(serialize_result(v) for v in value)
    if isinstance(value, TLObject):
        return bytes(value)
    raise TypeError(f"cannot serialise handler result {value!r}")


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class SimSender:
    """One simulated connection (see module docs)."""

    def __init__(
        self, server: SimServer, dc_id: int, *, home: bool, updates_queue: asyncio.Queue[Any] | None = None,
        connected: bool = True,
    ) -> None:
        self.dc_id = dc_id
        self.auth_key = AuthKey(None)
        self._server = server
        self._home = home
        self._updates_queue = updates_queue
        self._up = home and connected
        self._handshake = False
        self._pending: dict[asyncio.Task[Any], list[asyncio.Future[Any]]] = {}
        self._disconnected: asyncio.Future[None] | None = None
        self._link_free_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        if home:
            if self._up:
                server.stats.connections_opened[dc_id] += 1
            server.subscribe(self)

    # region MTProtoSender interface

    async def connect(self, connection: object = None) -> bool:
        """Open the connection; ``False`` if it was already open (``TelegramClient.connect`` then stops)."""
        if self._up and (self._handshake or not self._home):
            return False
        if not self._up:
            if self._home and (dc_id := getattr(connection, "_dc_id", None)):
                self.dc_id = dc_id  # after PHONE_MIGRATE_X Telethon connects the home sender elsewhere
            await self._open()
        self._up = True
        self._handshake = self._home
        if self._disconnected is not None and self._disconnected.done():
            self._disconnected = None  # a new connection gets a new "disconnected" future
        self._loop = asyncio.get_running_loop()
        return True

    def is_connected(self) -> bool:
        return self._up

    def _transport_connected(self) -> bool:
        return self._up

    async def disconnect(self) -> None:
        if not self._up:
            return
        self._close(None)

    def send(self, request: TLRequest | list[TLRequest], ordered: bool = False) -> Any:
        if not self._up:
            raise ConnectionError("Cannot send requests while disconnected")
        loop = asyncio.get_running_loop()
        if not utils.is_list_like(request):
            future = loop.create_future()
            self._start(loop, [(request, bytes(request), future)])
            return future
        items = [(r, bytes(r), loop.create_future()) for r in request]
        if ordered:
            self._start(loop, items)
        else:
            for item in items:
                self._start(loop, [item])
        return [future for _, _, future in items]

    @property
    def disconnected(self) -> asyncio.Future[None]:
        return asyncio.shield(self._disconnected_future())

    def _keepalive_ping(self, rnd_id: int) -> None:
        self._server.stats.requests[("Ping", self.dc_id)] += 1

    # endregion

    # region used by the simulator

    @property
    def updates_enabled(self) -> bool:
        """Whether Telethon's update loop runs for this connection (pushed updates are processed)."""
        return self._up and self._handshake and self._updates_queue is not None

    def push_update(self, updates: TLObject) -> None:
        """Queue ``updates`` for Telethon's update loop (dropped when it is not running, as Telegram would)."""
        loop_alive = self._loop is not None and not self._loop.is_closed()
        if self.updates_enabled and self._updates_queue is not None and loop_alive:
            self._updates_queue.put_nowait(updates)

    # endregion

    def _disconnected_future(self) -> asyncio.Future[None]:
        if self._disconnected is None:
            self._disconnected = asyncio.get_running_loop().create_future()
            if not self._up:
                self._disconnected.set_result(None)
        return self._disconnected

    async def _open(self) -> None:
        await self._wait_outage()
        latency = self._server.spec.latency_s
        await asyncio.sleep(OPEN_COST_ROUND_TRIPS * latency)
        if (refusal := self._server.faults.take_refusal(self.dc_id)) is not None:
            raise refusal
        self._server.stats.connections_opened[self.dc_id] += 1

    def _close(self, error: BaseException | None, keep: asyncio.Task[Any] | None = None) -> None:
        """Close the connection: fail (``error``) or cancel (user disconnect) every pending request."""
        self._up = False
        self._handshake = False
        for task, futures in list(self._pending.items()):
            if task is keep:
                continue
            for future in futures:
                if future.done():
                    continue
                if error is None:
                    future.cancel()
                else:
                    future.set_exception(error)
                    future.add_done_callback(_consume_exception)
            task.cancel()
        if self._disconnected is not None and not self._disconnected.done():
            if error is None:
                self._disconnected.set_result(None)
            else:
                self._disconnected.set_exception(error)
                self._disconnected.add_done_callback(_consume_exception)

    def _start(self, loop: asyncio.AbstractEventLoop, items: list[_Item]) -> None:
        task = loop.create_task(self._run(items))
        futures = [future for _, _, future in items]
        self._pending[task] = futures
        task.add_done_callback(lambda t: self._pending.pop(t, None))

        def abandon(future: asyncio.Future[Any]) -> None:
            # The caller gave up (e.g. asyncio.wait_for timed out): stop serving a stalled request.
            if future.cancelled() and all(f.done() for f in futures):
                task.cancel()

        for future in futures:
            future.add_done_callback(abandon)

    async def _run(self, items: list[_Item]) -> None:
        for request, data, future in items:
            try:
                value = await self._serve(request, data)
            except asyncio.CancelledError:
                if not future.done():
                    future.cancel()
                raise
            except RpcFault as fault:
                if not future.done():
                    future.set_exception(errors.rpc_message_to_error(fault.as_rpc_error(), request))
            except Exception as exc:  # delivered to the caller, like a failed read_result
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(value)

    async def _wait_outage(self) -> None:
        while left := self._server.faults.outage_left(self.dc_id):
            await asyncio.sleep(left)

    async def _serve(self, request: TLRequest, data: bytes) -> Any:
        server = self._server
        inner, takeout_id = unwrap(BinaryReader(data).tgread_object())
        short, qualified = request_names(inner)
        server.stats.requests[(short, self.dc_id)] += 1
        if takeout_id is not None:
            server.stats.takeout_requests[(short, self.dc_id)] += 1

        def record(outcome: str) -> None:
            server.stats.log.append(RequestRecord(short, self.dc_id, takeout_id is not None, outcome))

        await self._wait_outage()
        await asyncio.sleep(server.spec.latency_s)
        rule = server.faults.take(short, qualified, self.dc_id)
        try:
            if rule is not None:
                if rule.kind in ("flood", "flood_every"):
                    raise RpcFault(420, rule.flood_message)
                if rule.kind == "end_takeouts":
                    server.end_takeouts()
                if rule.kind == "timeout":
                    raise RpcFault(-503, "Timeout")
                if rule.kind == "rpc":
                    raise RpcFault(rule.code, rule.message)
                if rule.kind == "stall":
                    record("stall")
                    await asyncio.get_running_loop().create_future()
                if rule.kind == "drop":
                    if not rule.reconnect:
                        error = ConnectionError(f"Connection to Telegram failed {OPEN_COST_ROUND_TRIPS} time(s)")
                        self._close(error, keep=asyncio.current_task())
                        raise error
                    await self._open()
            server.rate.admit(short, qualified)
            result = server.handle(inner, CallContext(self.dc_id, takeout_id))
        except RpcFault as fault:
            server.stats.errors[(short, fault.message)] += 1
            record(fault.message)
            raise
        except ConnectionError:
            record("connection lost")
            raise
        if isinstance(inner, functions.upload.GetFileRequest):
            await self._throttle(len(getattr(result, "bytes", b"")))
        record("ok")
        return request.read_result(BinaryReader(serialize_result(result)))

    async def _throttle(self, size: int) -> None:
        rate = self._server.spec.bandwidth_bytes_per_s
        if not rate:
            return
        now = asyncio.get_running_loop().time()
        self._link_free_at = max(now, self._link_free_at) + size / rate
        await asyncio.sleep(self._link_free_at - now)
