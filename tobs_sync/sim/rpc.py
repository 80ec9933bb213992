"""Server-side errors of the simulator, turned into real Telethon exceptions by the sender.

A handler raises :class:`RpcFault` with Telegram's error code and message (``FLOOD_WAIT_5``,
``FILE_MIGRATE_4``, ``CHANNEL_PRIVATE`` ...). The sender converts it with Telethon's own
``telethon.errors.rpc_message_to_error``, exactly as ``MTProtoSender`` does for an ``rpc_error``
received from Telegram, so callers get the same classes and attributes (``e.seconds``, ``e.new_dc``).
:class:`UnsupportedRequest` is for requests the simulator does not implement: it is not an RPC error,
so Telethon never retries or swallows it and tests fail loudly.
"""

from __future__ import annotations

from telethon.tl import types


class RpcFault(Exception):
    """An RPC error as Telegram would send it."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message

    def as_rpc_error(self) -> types.RpcError:
        return types.RpcError(error_code=self.code, error_message=self.message)


class UnsupportedRequest(NotImplementedError):
    """The simulated server has no handler for this request."""


def bad_request(message: str) -> RpcFault:
    return RpcFault(400, message)
